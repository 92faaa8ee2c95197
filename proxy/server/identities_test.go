package server

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
)

// TestIdentitiesFollowTheRows holds pgveil to following the identity
// rows upstream without a reload: an agent moved to another team reads
// the new team's rows at her next statement, an employee who left is
// refused, and a read that fails keeps the rows in force.
func TestIdentitiesFollowTheRows(t *testing.T) {
	pgtest.Require(t, cluster)
	leaks := []goleak.Option{
		goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/pgveil/pgveil/internal/pgtest.(*Cluster).startLocked.func1"),
	}
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
	exec(fmt.Sprintf(`DROP TABLE IF EXISTS idr_employees, idr_tickets;
CREATE TABLE idr_employees (login text, roles text[], team int, password text);
INSERT INTO idr_employees VALUES ('dave', ARRAY['agent'], 1, '%[1]s'), ('erin', ARRAY['agent'], 2, '%[1]s'),
  ('frank', NULL, 1, NULL); -- a row that logs no one in: never named added or removed
CREATE TABLE idr_tickets (id int, team int);
INSERT INTO idr_tickets VALUES (1, 1), (2, 2), (3, 2)`, v.String()))
	t.Cleanup(func() {
		_ = cluster.Exec(context.Background(), "postgres", "DROP TABLE IF EXISTS idr_employees, idr_employees_gone, idr_tickets")
	})

	path := writeConfig(t, `
identity "hr" {
  query   = "SELECT login, roles, team, password FROM public.idr_employees"
  refresh = "100ms"
}
role "agent" {
  statements = ["select"]
}
table "public.idr_tickets" {}
rule "own team" {
  tables = ["public.idr_tickets"]
  roles  = ["agent"]
  where  = "team = me.team"
}
`)
	setUpstream(t, path, `catalog_refresh = "1h"`)
	cfg := load(t, path)
	core, logs := observer.New(zap.InfoLevel)
	srv, err := Start(ctx, Config{Path: path, Config: cfg, Version: "test", Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	connect := func(login string) (*pgconn.PgConn, error) {
		return pgconn.Connect(ctx, "postgres://"+login+":pw@"+srv.Addr().String()+"/postgres?sslmode=disable")
	}
	ids := func(c *pgconn.PgConn) (string, error) {
		res, err := c.Exec(ctx, "SELECT id FROM public.idr_tickets ORDER BY id").ReadAll()
		if err != nil {
			return "", err
		}
		var out []string
		for _, r := range res[len(res)-1].Rows {
			out = append(out, string(r[0]))
		}
		return strings.Join(out, ","), nil
	}
	metric := func(result string) int {
		resp, err := http.Get("http://" + srv.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		m := regexp.MustCompile(`(?m)^pgveil_identity_reads_total\{result="` + result + `"\} (\d+)$`).FindSubmatch(b)
		if m == nil {
			return 0
		}
		n, _ := strconv.Atoi(string(m[1]))
		return n
	}
	dave, err := connect("dave")
	if err != nil {
		t.Fatalf("connecting as dave: %v", err)
	}
	defer dave.Close(ctx)
	if got, err := ids(dave); err != nil || got != "1" {
		t.Fatalf("dave in team 1 reads %q, %v; want 1", got, err)
	}

	t.Run("unchanged rows change nothing", func(t *testing.T) {
		before := srv.Policies().Current()
		n := metric("unchanged")
		if !poll(10*time.Second, func() bool { return metric("unchanged") > n }) {
			t.Fatal("no unchanged read counted")
		}
		if srv.Policies().Current() != before {
			t.Fatal("a read of unchanged rows replaced the policies in force")
		}
	})

	var moved string
	t.Run("a team change reaches a session's next statement", func(t *testing.T) {
		before := srv.Policies().Current()
		// NOTE: an edit waiting for a reload must not be applied by a
		// refresh, which reads the rows and not the files.
		f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(f, "# an edit no one reloaded yet")
		f.Close()
		exec("UPDATE idr_employees SET team = 2 WHERE login = 'dave'")
		var got string
		if !poll(10*time.Second, func() bool { got, err = ids(dave); return err == nil && got == "2,3" }) {
			t.Fatalf("dave still reads %q, %v; want 2,3", got, err)
		}
		now := srv.Policies().Current()
		if now.Config != before.Config {
			t.Error("the refresh read the configuration files again")
		}
		if now.Version == before.Version {
			t.Error("the refresh kept the policy version")
		}
		moved = now.Version
		// The service account's warnings were logged at start, and are
		// not again at each change of the rows.
		if n := logs.FilterMessage("Service account is a superuser").Len(); n != 1 {
			t.Errorf("the superuser warning was logged %d times; want once, at start", n)
		}
		if metric("changed") < 1 {
			t.Error("the change was not counted")
		}
	})

	t.Run("a failed read keeps the rows in force", func(t *testing.T) {
		before := srv.Policies().Current()
		n := metric("failed")
		exec("ALTER TABLE idr_employees RENAME TO idr_employees_gone")
		if !poll(10*time.Second, func() bool { return metric("failed") > n }) {
			t.Fatal("no failed read counted")
		}
		if srv.Policies().Current() != before {
			t.Fatal("a failed read replaced the policies in force")
		}
		failed := logs.FilterMessageSnippet("reading the identities again failed").All()
		if len(failed) == 0 || !strings.Contains(fmt.Sprint(failed[0].ContextMap()["error"]), `relation "public.idr_employees" does not exist`) {
			t.Errorf("the failed read's log: %v", failed)
		}
		if got, err := ids(dave); err != nil || got != "2,3" {
			t.Fatalf("after a failed read dave reads %q, %v; want 2,3", got, err)
		}
		exec("ALTER TABLE idr_employees_gone RENAME TO idr_employees")
	})

	t.Run("an employee who left is refused", func(t *testing.T) {
		exec("DELETE FROM idr_employees WHERE login = 'dave'")
		if !poll(10*time.Second, func() bool { _, ok := srv.Policies().User("dave"); return !ok }) {
			t.Fatal("dave is still a user")
		}
		if _, err := ids(dave); err == nil {
			t.Error("dave's session still runs statements")
		}
		if c, err := connect("dave"); err == nil {
			c.Close(ctx)
			t.Error("dave may still log in")
		}
		erin, err := connect("erin")
		if err != nil {
			t.Fatalf("erin: %v", err)
		}
		defer erin.Close(ctx)
		if got, err := ids(erin); err != nil || got != "2,3" {
			t.Fatalf("erin reads %q, %v; want 2,3", got, err)
		}
	})

	t.Run("a user whose attribute became NULL reads no row", func(t *testing.T) {
		erin, err := connect("erin")
		if err != nil {
			t.Fatalf("erin: %v", err)
		}
		defer erin.Close(ctx)
		exec("UPDATE idr_employees SET team = NULL WHERE login = 'erin'")
		var got string
		if !poll(10*time.Second, func() bool { got, err = ids(erin); return err == nil && got == "" }) {
			t.Fatalf("erin without a team reads %q, %v; want no row", got, err)
		}
	})

	t.Run("a reload and refreshes take turns", func(t *testing.T) {
		// NOTE: the refreshes run every 100ms meanwhile; the race
		// detector checks that they do not overlap the reload's swap.
		if err := srv.Reload(ctx); err != nil {
			t.Fatalf("Reload: %v", err)
		}
	})

	t.Run("Close stops the refreshes and the audit trail says what each did", func(t *testing.T) {
		if err := srv.Close(); err != nil {
			t.Fatalf("Close: %v", err)
		}
		var err error
		if !poll(5*time.Second, func() bool { err = goleak.Find(leaks...); return err == nil }) {
			t.Errorf("goroutines leaked: %v", err)
		}
		type rec struct {
			Event, Reason, Message string
			Policy                 string `json:"policy_version"`
			Old                    string `json:"old_policy_version"`
		}
		f, err := os.Open(filepath.Join(filepath.Dir(path), "audit.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		var refreshes []rec
		reloads := 0
		sc := bufio.NewScanner(f)
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			var r rec
			if err := json.Unmarshal(sc.Bytes(), &r); err != nil {
				t.Fatal(err)
			}
			switch {
			case r.Event == "reload" && r.Reason == IdentityRefreshReason:
				refreshes = append(refreshes, r)
			case r.Event == "reload":
				reloads++
			}
		}
		if len(refreshes) != 3 || reloads != 1 {
			t.Fatalf("audit: %d identity refreshes and %d reloads; want 3 and 1: %+v", len(refreshes), reloads, refreshes)
		}
		if r := refreshes[0]; r.Policy != moved || r.Old == "" || r.Old == moved {
			t.Errorf("the team change's record has versions %q from %q; want %q from the start's", r.Policy, r.Old, moved)
		}
		if r := refreshes[1]; r.Old != moved || !strings.Contains(r.Message, "logins removed, now without access (1): \"dave\"") {
			t.Errorf("the departure's record: %+v", r)
		}
		if slices.ContainsFunc(refreshes, func(r rec) bool { return strings.Contains(r.Message, "added") }) {
			t.Errorf("a refresh added logins: %+v", refreshes)
		}
	})
}

// poll calls cond until it holds or timeout passes, and reports whether
// it held: how a test waits for what the server does in its own time.
func poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

// TestIdentityWatchIntervalIsTheShortestRefresh holds the period of the
// identity reads to the shortest refresh of the blocks in force, and to
// none without identity blocks.
func TestIdentityWatchIntervalIsTheShortestRefresh(t *testing.T) {
	w := func(refresh ...time.Duration) *identityWatch {
		cfg := &policy.Config{}
		for i, r := range refresh {
			cfg.IdentitySources = append(cfg.IdentitySources, &policy.IdentitySource{Name: strconv.Itoa(i), Refresh: r})
		}
		return &identityWatch{reloader: &Reloader{Policies: NewPolicies(&Enforcement{Config: cfg})}}
	}
	for _, c := range []struct {
		refresh []time.Duration
		want    time.Duration
	}{
		{nil, 0},
		{[]time.Duration{time.Minute}, time.Minute},
		{[]time.Duration{time.Minute, 10 * time.Second, time.Hour}, 10 * time.Second},
	} {
		if got := w(c.refresh...).interval(); got != c.want {
			t.Errorf("refresh %v: interval %v; want %v", c.refresh, got, c.want)
		}
	}
}
