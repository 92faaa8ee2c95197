package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
)

// TestIdentityBlocksReadOneSnapshot holds the identity blocks' queries
// to one snapshot: a job that moves an agent of team 1 to manager of
// team 2 in one transaction, committed between the blocks' queries, must
// give her one or the other, never a manager of team 1, which no
// committed state of the tables gave her.
func TestIdentityBlocksReadOneSnapshot(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	exec := func(sql string) {
		t.Helper()
		if err := cluster.Exec(ctx, "postgres", sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	v, err := scram.NewVerifier("pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	exec(fmt.Sprintf(`DROP TABLE IF EXISTS ids_team, ids_roles, ids_tickets;
CREATE TABLE ids_team (login text, team int);
CREATE TABLE ids_roles (login text, roles text[], password text);
INSERT INTO ids_team VALUES ('dave', 1);
INSERT INTO ids_roles VALUES ('dave', ARRAY['agent'], '%s');
CREATE TABLE ids_tickets (id int, team int)`, v.String()))
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), "postgres", "DROP TABLE IF EXISTS ids_team, ids_roles, ids_tickets")
	})
	// NOTE: the first block's query waits for the test's advisory lock
	// once its snapshot is taken, so that the job commits between the
	// two queries.
	path := writeConfig(t, `
identity "teams" {
  query   = "SELECT login, team FROM public.ids_team WHERE pg_advisory_xact_lock_shared(4242)::text IS NOT NULL"
  refresh = "1h"
}
identity "roles" {
  query   = "SELECT login, roles, password FROM public.ids_roles"
  refresh = "1h"
}
role "agent" {
  statements = ["select"]
}
role "manager" {
  statements = ["select"]
}
table "public.ids_tickets" {}
rule "own team" {
  tables = ["public.ids_tickets"]
  roles  = ["agent", "manager"]
  where  = "team = me.team"
}
`)
	setUpstream(t, path, `catalog_refresh = "1h"`)
	cfg := load(t, path)
	srv, err := Start(ctx, Config{Path: path, Config: cfg, Version: "test", Logger: zap.NewNop()})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	holder, err := cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close(ctx)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(4242)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	type result struct {
		changed bool
		err     error
	}
	done := make(chan result, 1)
	go func() {
		changed, err := srv.reloader.RefreshIdentities(ctx)
		done <- result{changed, err}
	}()
	waiting := func() bool {
		res, err := holder.Exec(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242 AND NOT granted").ReadAll()
		return err == nil && string(res[0].Rows[0][0]) == "1"
	}
	if !poll(10*time.Second, waiting) {
		t.Fatal("the refresh never waited for the lock")
	}
	exec(`BEGIN; UPDATE ids_team SET team = 2; UPDATE ids_roles SET roles = ARRAY['manager']; COMMIT`)
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_unlock(4242)").ReadAll(); err != nil {
		t.Fatal(err)
	}
	var r result
	select {
	case r = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the refresh never ended")
	}
	if r.err != nil {
		t.Fatalf("refresh: %v", r.err)
	}
	u, ok := srv.Policies().User("dave")
	if !ok {
		t.Fatal("dave is unknown after the refresh")
	}
	team := "none"
	if u.Team != nil {
		team = fmt.Sprint(*u.Team)
	}
	t.Logf("changed=%v roles=%v team=%v", r.changed, u.Roles, team)
	old := slices.Equal(u.Roles, []string{"agent"}) && team == "1"
	moved := slices.Equal(u.Roles, []string{"manager"}) && team == "2"
	if !old && !moved {
		t.Fatalf("dave has roles %v and team %s, which no committed state gave her", u.Roles, team)
	}
}

// TestIdentityChangeMessageBoundsLogins holds the audit message and log
// line of an identity refresh to bounded logins: an identity row's login
// is text of any length, and the audit trail never cuts a message.
func TestIdentityChangeMessageBoundsLogins(t *testing.T) {
	long := strings.Repeat("é", 1<<20)
	var many []string
	for i := range 30 {
		many = append(many, fmt.Sprintf("%d%s", i, long))
	}
	msg := identityChangeMessage(many, []string{long})
	if len(msg) > 4096 {
		t.Fatalf("the message of 31 logins of 2 MiB takes %d bytes", len(msg))
	}
	if !utf8.ValidString(msg) {
		t.Fatal("the message cuts a character")
	}
	if !strings.Contains(msg, "(2097152 bytes)") || !strings.Contains(msg, "(10 more)") {
		t.Fatalf("the message does not give the cut logins' lengths and the count of the others: %.300s", msg)
	}
	if got := capNames([]string{"dave"}); !slices.Equal(got, []string{"dave"}) {
		t.Fatalf("a short login is changed: %q", got)
	}
	// A login is any text of a row: quoted, none reads as the message's
	// own words.
	forged := identityChangeMessage([]string{"x; logins removed, now without access (1): hanna"}, nil)
	if want := `identity rows changed upstream; logins added (1): "x; logins removed, now without access (1): hanna"`; forged != want {
		t.Fatalf("a login reads as the message's words: %s", forged)
	}
}

// TestIdentityRefreshKeepsTheDriftBaseline holds an identity refresh to
// the catalog checks of the snapshot in force: DDL that left a
// pattern-governed column unprotected, before the catalog watch read it,
// must not be taken by a refresh of the rows as the DBA's word that the
// policies match the database again (as only a reload is).
func TestIdentityRefreshKeepsTheDriftBaseline(t *testing.T) {
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), "postgres", "DROP TABLE IF EXISTS late_t, drift_hr")
	})
	e := startDrift(t, latePolicy+`
identity "hr" {
  query   = "SELECT login, roles FROM public.drift_hr"
  refresh = "1h"
}
`, "DROP TABLE IF EXISTS late_t, drift_hr; CREATE TABLE late_t (id int, email text); INSERT INTO late_t VALUES (1, 'late@x');"+
		"CREATE TABLE drift_hr (login text, roles text[]); INSERT INTO drift_hr VALUES ('zed', ARRAY['reader'])")
	e.wantNoClear("SELECT id, email FROM late_t", "late@x")
	e.exec("ALTER TABLE late_t RENAME COLUMN email TO mail")
	// Another person's row changes before the catalog is read again.
	e.exec("UPDATE drift_hr SET roles = '{}'")
	changed, err := e.srv.reloader.RefreshIdentities(context.Background())
	if err != nil || !changed {
		t.Fatalf("refresh: %v, %v", changed, err)
	}
	e.wantRefused("SELECT id, mail FROM late_t")
	// The catalog watch's next reads, the catalog unchanged and then
	// changed elsewhere, keep the refusal.
	e.refresh()
	e.wantRefused("SELECT id, mail FROM late_t")
	e.exec("CREATE TABLE drift_hr_other (x int)")
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", "DROP TABLE IF EXISTS drift_hr_other") })
	e.refresh()
	e.wantRefused("SELECT id, mail FROM late_t")
	// A refusal the watch made first stays through a refresh too.
	e.exec("UPDATE drift_hr SET roles = ARRAY['reader']")
	if changed, err := e.srv.reloader.RefreshIdentities(context.Background()); err != nil || !changed {
		t.Fatalf("refresh: %v, %v", changed, err)
	}
	e.wantRefused("SELECT id, mail FROM late_t")
	e.wantRows("SELECT id, email FROM "+driftTable, "1|NULL")
}
