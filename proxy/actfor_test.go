package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
)

// actConn wraps a connection of the demo's metabase service for the
// impersonation tests.
type actConn struct {
	c *pgx.Conn
}

// exec runs sql with the simple protocol (psql, Superset) and returns
// its error.
func (a actConn) exec(sql string) error {
	_, err := a.c.PgConn().Exec(context.Background(), sql).ReadAll()
	return err
}

// execExtended runs sql with the extended protocol, unnamed statement
// and portal, as JDBC does for Statement.execute (Metabase).
func (a actConn) execExtended(sql string) error {
	return a.c.PgConn().ExecParams(context.Background(), sql, nil, nil, nil, nil).Read().Err
}

// responses counts the responses the session sees now.
func (a actConn) responses(t *testing.T) int {
	t.Helper()
	return proxytest.Count(t, a.c, "SELECT count(*) FROM responses")
}

// must fails the test on err.
func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// refusedBy fails the test unless err is a 42501 refusal of rule.
func refusedBy(t *testing.T, err error, rule string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "firewall rule "+rule) {
		t.Fatalf("want a 42501 refusal by %s, got %v", rule, err)
	}
}

// directCount counts the demo responses matching where, as the superuser.
func directCount(t *testing.T, where string) int {
	t.Helper()
	n, err := strconv.Atoi(proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+where)[0][0])
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestActForMetabaseCheckouts(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	a := actConn{c: p.Connect(t, "metabase")}
	france, all := directCount(t, proxytest.Scopes["marie"]), directCount(t, "true")
	if france == 0 || france == all {
		t.Fatalf("demo data: %d French responses of %d", france, all)
	}
	service := a.responses(t)
	if service != 0 {
		t.Fatalf("the service alone sees %d responses, want none", service)
	}

	t.Run("each checkout sees its viewer's rows, through the same cached text", func(t *testing.T) {
		for i := 0; i < 2; i++ {
			must(t, a.execExtended("SET ROLE marie"))
			if got := a.responses(t); got != france {
				t.Fatalf("as marie: %d responses, want %d", got, france)
			}
			must(t, a.execExtended("SET ROLE NONE"))
			must(t, a.execExtended("SET ROLE hq"))
			if got := a.responses(t); got != all {
				t.Fatalf("as hq: %d responses, want %d", got, all)
			}
			must(t, a.execExtended("RESET ROLE"))
			if got := a.responses(t); got != service {
				t.Fatalf("after RESET ROLE: %d responses, want the service's %d", got, service)
			}
		}
	})
	t.Run("a way back to the login answers the command tag PostgreSQL gives it", func(t *testing.T) {
		for _, c := range []struct{ sql, tag string }{
			{"SET ROLE NONE", "SET"},
			{"SET ROLE TO DEFAULT", "SET"},
			{"SET pgveil.act_for TO DEFAULT", "SET"},
			{"RESET ROLE", "RESET"},
			{"RESET pgveil.act_for", "RESET"},
		} {
			must(t, a.exec("SET ROLE marie"))
			for _, extended := range []bool{false, true} {
				var tag string
				if extended {
					must(t, a.exec("SET ROLE marie"))
					r := a.c.PgConn().ExecParams(context.Background(), c.sql, nil, nil, nil, nil).Read()
					must(t, r.Err)
					tag = r.CommandTag.String()
				} else {
					rs, err := a.c.PgConn().Exec(context.Background(), c.sql).ReadAll()
					must(t, err)
					tag = rs[0].CommandTag.String()
				}
				if tag != c.tag {
					t.Fatalf("%s (extended %v): command tag %q, want %q", c.sql, extended, tag, c.tag)
				}
				if got := a.responses(t); got != service {
					t.Fatalf("after %s: %d responses, want the service's %d", c.sql, got, service)
				}
			}
		}
	})
	t.Run("SET pgveil.act_for works with the simple protocol and shows upstream", func(t *testing.T) {
		must(t, a.exec("SET pgveil.act_for = 'marie'"))
		if got := a.responses(t); got != france {
			t.Fatalf("as marie: %d responses, want %d", got, france)
		}
		if got := proxytest.Through(t, a.c, "SHOW pgveil.act_for"); got[0][0] != "marie" {
			t.Fatalf("SHOW pgveil.act_for = %v", got)
		}
		must(t, a.exec("RESET pgveil.act_for"))
		if got := a.responses(t); got != service {
			t.Fatalf("after RESET: %d responses", got)
		}
	})
	t.Run("a service never acts for a user outside its list, and stays usable", func(t *testing.T) {
		refusedBy(t, a.exec("SET ROLE survey_admin"), "act_for")
		refusedBy(t, a.execExtended("SET ROLE survey_admin"), "act_for")
		refusedBy(t, a.exec("SET ROLE nobody"), "act_for")
		if got := a.responses(t); got != service {
			t.Fatalf("after refusals: %d responses, want the service's", got)
		}
	})
	t.Run("acting for one user, a switch is checked against the service's list", func(t *testing.T) {
		must(t, a.exec("SET ROLE marie"))
		refusedBy(t, a.exec("SET ROLE survey_admin"), "act_for")
		if got := a.responses(t); got != france {
			t.Fatalf("after a refused switch: %d responses, want marie's %d", got, france)
		}
		must(t, a.exec("SET ROLE hq"))
		if got := a.responses(t); got != all {
			t.Fatalf("as hq: %d responses", got)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("SET LOCAL, set_config and a switch with other statements are refused", func(t *testing.T) {
		refusedBy(t, a.exec("SET LOCAL ROLE marie"), "act_for")
		refusedBy(t, a.exec("SET ROLE marie; SELECT 1"), "act_for")
		refusedBy(t, a.exec("SELECT set_config('pgveil.act_for', 'marie', false)"), "pinned_settings")
		if got := a.responses(t); got != service {
			t.Fatalf("%d responses, want the service's", got)
		}
	})
	t.Run("a switch after BEGIN, SAVEPOINT or RELEASE in its text is made, with its transaction (psqlODBC)", func(t *testing.T) {
		// psqlODBC with autocommit off sends BEGIN;SET ROLE …, and with
		// statement-level rollback RELEASE …;SAVEPOINT …; before it.
		must(t, a.exec("BEGIN;SET ROLE marie"))
		if got := a.responses(t); got != france {
			t.Fatalf("after BEGIN;SET ROLE marie: %d responses, want marie's %d", got, france)
		}
		must(t, a.exec("ROLLBACK"))
		if got := a.responses(t); got != service {
			t.Fatalf("after ROLLBACK: %d responses, want the service's", got)
		}
		must(t, a.exec("BEGIN;SET ROLE marie"))
		must(t, a.exec("COMMIT"))
		if got := a.responses(t); got != france {
			t.Fatalf("after a committed switch: %d responses, want marie's %d", got, france)
		}
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT _EXEC_SVP_1;SET ROLE hq"))
		if got := a.responses(t); got != all {
			t.Fatalf("after SAVEPOINT;SET ROLE hq: %d responses, want %d", got, all)
		}
		must(t, a.exec("RELEASE _EXEC_SVP_1;SAVEPOINT _EXEC_SVP_1;SET ROLE marie"))
		must(t, a.exec("COMMIT"))
		if got := a.responses(t); got != france {
			t.Fatalf("after RELEASE;SAVEPOINT;SET ROLE marie: %d responses, want marie's %d", got, france)
		}
		// The server fails the statement before the switch and skips it:
		// so does pgveil.
		var pe *pgconn.PgError
		if err := a.exec("SAVEPOINT s;SET ROLE hq"); !errors.As(err, &pe) || pe.Code != "25P01" {
			t.Fatalf("SAVEPOINT outside a transaction block: want 25P01, got %v", err)
		}
		if got := a.responses(t); got != france {
			t.Fatalf("after a failed SAVEPOINT;SET ROLE hq: %d responses, want marie's %d", got, france)
		}
		must(t, a.exec("BEGIN"))
		if err := a.exec("RELEASE no_such;SET ROLE hq"); !errors.As(err, &pe) || pe.Code != "3B001" {
			t.Fatalf("RELEASE of no savepoint: want 3B001, got %v", err)
		}
		must(t, a.exec("ROLLBACK"))
		if got := a.responses(t); got != france {
			t.Fatalf("after a failed RELEASE;SET ROLE hq: %d responses, want marie's %d", got, france)
		}
		// Anything else with a switch is checked for one user and run
		// for another, or ends what the switch's tracking follows.
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT s"))
		for _, sql := range []string{"SELECT 1;SET ROLE hq", "BEGIN;SELECT 1;SET ROLE hq", "SET ROLE hq;RELEASE s",
			"ROLLBACK TO s;SET ROLE hq", "COMMIT;SET ROLE hq", "BEGIN;SET ROLE hq;SET ROLE marie"} {
			refusedBy(t, a.exec(sql), "act_for")
			must(t, a.exec("ROLLBACK TO s"))
		}
		must(t, a.exec("ROLLBACK"))
		if got := a.responses(t); got != france {
			t.Fatalf("after refused switches: %d responses, want marie's %d", got, france)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a switch pipelined after another statement is refused", func(t *testing.T) {
		errs := proxytest.RunPipeline(t, a.c, func(pl *pgconn.Pipeline) {
			pl.SendQueryParams("SELECT 1", nil, nil, nil, nil)
			pl.SendQueryParams("SET ROLE hq", nil, nil, nil, nil)
		})
		if len(errs) != 2 || errs[0] != nil {
			t.Fatalf("pipeline results: %v", errs)
		}
		refusedBy(t, errs[1], "act_for")
		if got := a.responses(t); got != service {
			t.Fatalf("%d responses, want the service's", got)
		}
	})
	t.Run("a switch after a refused message of its batch is refused", func(t *testing.T) {
		must(t, a.exec("SET ROLE marie"))
		_, err := proxytest.RoundTrip(t, a.c,
			&pgproto3.Parse{Name: "refused", Query: "SELECT * FROM employees"},
			&pgproto3.Parse{Query: "RESET ROLE"},
			&pgproto3.Bind{},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
		refusedBy(t, err, "ungoverned_table")
		if got := a.responses(t); got != france {
			t.Fatalf("%d responses, want marie's %d: the server skipped the RESET, pgveil must too", got, france)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a switch after another Parse of its batch is refused", func(t *testing.T) {
		must(t, a.exec("SET ROLE marie"))
		// The upstream fails the first Parse and skips the RESET.
		_, err := proxytest.RoundTrip(t, a.c,
			&pgproto3.Parse{Name: "fails_upstream", Query: "SELECT no_such_column FROM countries"},
			&pgproto3.Parse{Query: "RESET ROLE"},
			&pgproto3.Bind{},
			&pgproto3.Execute{},
			&pgproto3.Sync{})
		if err == nil {
			t.Fatal("the batch succeeded")
		}
		if got := a.responses(t); got != france {
			t.Fatalf("%d responses, want marie's %d", got, france)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a switch in a failed transaction fails there and changes nothing", func(t *testing.T) {
		must(t, a.exec("BEGIN"))
		if err := a.exec("SELECT 1/0"); err == nil {
			t.Fatal("1/0 succeeded")
		}
		var pe *pgconn.PgError
		if err := a.exec("SET ROLE marie"); !errors.As(err, &pe) || pe.Code != "25P02" {
			t.Fatalf("want 25P02, got %v", err)
		}
		must(t, a.exec("ROLLBACK"))
		if got := a.responses(t); got != service {
			t.Fatalf("%d responses, want the service's", got)
		}
	})
	t.Run("DISCARD ALL returns to the service, with either protocol", func(t *testing.T) {
		for _, run := range []func(string) error{a.exec, a.execExtended} {
			must(t, a.exec("SET ROLE hq"))
			must(t, run("DISCARD ALL"))
			// DISCARD ALL dropped pgx's cached statements too.
			must(t, a.c.DeallocateAll(context.Background()))
			if got := a.responses(t); got != service {
				t.Fatalf("after DISCARD ALL: %d responses", got)
			}
		}
	})
	t.Run("DISCARD ALL in a transaction block fails and keeps the viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE marie"))
		if err := a.exec("BEGIN; DISCARD ALL"); err == nil {
			t.Fatal("DISCARD ALL ran in a transaction block")
		}
		must(t, a.exec("ROLLBACK"))
		if got := a.responses(t); got != france {
			t.Fatalf("%d responses, want marie's %d", got, france)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("statements prepared for one user never run for another", func(t *testing.T) {
		ctx := context.Background()
		must(t, a.exec("SET ROLE marie"))
		sd, err := a.c.Prepare(ctx, "by_viewer", "SELECT count(*) FROM responses WHERE nps >= $1")
		must(t, err)
		must(t, a.exec("PREPARE sql_by_viewer AS SELECT count(*) FROM responses"))
		var n int
		must(t, a.c.QueryRow(ctx, sd.Name, 0).Scan(&n))
		if n != france {
			t.Fatalf("as marie: %d", n)
		}
		must(t, a.exec("SET ROLE hq"))
		// The protocol-level statement is prepared again for hq.
		must(t, a.c.QueryRow(ctx, sd.Name, 0).Scan(&n))
		if n != all {
			t.Fatalf("the statement prepared for marie ran for hq with %d rows, want %d", n, all)
		}
		refusedBy(t, a.exec("EXECUTE sql_by_viewer"), "policy_changed")
		must(t, a.exec("DEALLOCATE sql_by_viewer"))
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a portal bound for one user is refused after a switch", func(t *testing.T) {
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE marie"))
		rows, err := proxytest.RoundTrip(t, a.c,
			&pgproto3.Parse{Name: "", Query: "SELECT country FROM responses"},
			&pgproto3.Bind{DestinationPortal: "viewer_portal"},
			&pgproto3.Execute{Portal: "viewer_portal", MaxRows: 1},
			&pgproto3.Sync{})
		if err != nil || len(rows) != 1 || rows[0] != "France" {
			t.Fatalf("as marie: %v %v", rows, err)
		}
		must(t, a.exec("SET ROLE hq"))
		_, err = proxytest.RoundTrip(t, a.c, &pgproto3.Execute{Portal: "viewer_portal", MaxRows: 1}, &pgproto3.Sync{})
		refusedBy(t, err, "policy_changed")
		must(t, a.exec("ROLLBACK"))
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a name past 63 bytes is the same statement or portal as its first 63 bytes", func(t *testing.T) {
		// PostgreSQL keys statements and portals by their first 63
		// bytes and cuts longer SQL identifiers to them: a red team
		// read hq's rows as marie through the other spelling.
		long, short := strings.Repeat("p", 64), strings.Repeat("p", 63)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		rows, err := proxytest.RoundTrip(t, a.c,
			&pgproto3.Parse{Name: "", Query: "SELECT country FROM responses ORDER BY id"},
			&pgproto3.Bind{DestinationPortal: long},
			&pgproto3.Execute{Portal: long, MaxRows: 1},
			&pgproto3.Sync{})
		if err != nil || len(rows) != 1 {
			t.Fatalf("as hq: %v %v", rows, err)
		}
		must(t, a.exec("SET ROLE marie"))
		refusedBy(t, a.exec("FETCH 2 FROM "+short), "policy_changed")
		must(t, a.exec("ROLLBACK"))

		long, short = strings.Repeat("s", 64), strings.Repeat("s", 63)
		must(t, a.exec("SET ROLE hq"))
		_, err = proxytest.RoundTrip(t, a.c, &pgproto3.Parse{Name: long, Query: "SELECT count(*) FROM responses"}, &pgproto3.Sync{})
		must(t, err)
		must(t, a.exec("SET ROLE marie"))
		refusedBy(t, a.exec("EXECUTE "+short), "policy_changed")
		must(t, a.exec("DEALLOCATE "+short))
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a statement named past 63 bytes inside a character is prepared again under its own name", func(t *testing.T) {
		// Cut at 63 bytes, "é"×40 ends inside a character: PostgreSQL
		// refused the Close and Parse pgveil sent under the cut name
		// (22021), at every Bind after a switch.
		name := strings.Repeat("é", 40)
		must(t, a.exec("SET ROLE hq"))
		_, err := proxytest.RoundTrip(t, a.c, &pgproto3.Parse{Name: name, Query: "SELECT count(*) FROM responses"}, &pgproto3.Sync{})
		must(t, err)
		must(t, a.exec("SET ROLE marie"))
		rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if err != nil || len(rows) != 1 || rows[0] != strconv.Itoa(france) {
			t.Fatalf("as marie: %v %v, want %d", rows, err, france)
		}
		_, err = proxytest.RoundTrip(t, a.c, &pgproto3.Close{ObjectType: 'S', Name: name}, &pgproto3.Sync{})
		must(t, err)
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a login that is no service cannot act for anyone", func(t *testing.T) {
		hq := actConn{c: p.Connect(t, "hq")}
		refusedBy(t, hq.exec("SET ROLE marie"), "act_for")
		refusedBy(t, hq.exec("RESET ROLE"), "act_for")
		refusedBy(t, hq.exec("SET ROLE NONE"), "act_for")
		if got := hq.responses(t); got != all {
			t.Fatalf("hq: %d responses", got)
		}
	})
	t.Run("audit records carry the service and the end user", func(t *testing.T) {
		must(t, a.exec("SET ROLE marie"))
		must(t, a.exec("SELECT 'audited as marie' FROM responses LIMIT 1"))
		must(t, a.exec("RESET ROLE"))
		must(t, a.exec("SELECT 'audited as metabase'"))
		a.c.Close(context.Background())
		proxytest.WaitSessions(t, p, 0)
		var asMarie, asService bool
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			switch {
			case strings.Contains(e.SQL, "audited as marie"):
				asMarie = e.User == "metabase" && e.ActingFor == "marie" && e.Decision == "rewritten"
			case strings.Contains(e.SQL, "audited as metabase"):
				asService = e.User == "metabase" && e.ActingFor == ""
			case e.SQL == "SET ROLE survey_admin" && e.Decision == "denied" && e.Reason != "act_for":
				t.Errorf("refused switch recorded with reason %q", e.Reason)
			}
		}
		if !asMarie || !asService {
			t.Fatalf("records: as marie %v, as the service %v", asMarie, asService)
		}
	})
}

func TestActForJDBCCheckouts(t *testing.T) {
	javac, err1 := exec.LookPath("javac")
	java, err2 := exec.LookPath("java")
	_, err3 := os.Stat(jdbcJar)
	if err1 != nil || err2 != nil || err3 != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("JDBC test needs javac, java and %s: %v %v %v", jdbcJar, err1, err2, err3)
		}
		t.Skip("javac, java or PgJDBC missing")
	}
	p := proxytest.StartDemo(t)
	france, all := directCount(t, proxytest.Scopes["marie"]+" AND nps >= 0"), directCount(t, "nps >= 0")
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	if out, err := exec.CommandContext(ctx, javac, "-cp", jdbcJar, "-d", dir, filepath.Join("testdata", "jdbc", "JdbcImpersonation.java")).CombinedOutput(); err != nil {
		t.Fatalf("javac: %v\n%s", err, out)
	}
	url := "jdbc:postgresql://" + p.Addr + "/" + proxytest.DemoDB + "?sslmode=disable&prepareThreshold=2"
	out, err := exec.CommandContext(ctx, java, "-cp", dir+string(os.PathListSeparator)+jdbcJar, "JdbcImpersonation", url, "metabase", "demo-metabase").CombinedOutput()
	t.Logf("%s", out)
	if err != nil {
		t.Fatalf("JDBC program failed: %v", err)
	}
	var want []string
	for i, v := range []string{"marie", "hq", "marie", "hq", "marie", "hq", "marie", "hq"} {
		n := map[string]int{"marie": france, "hq": all}[v]
		want = append(want, fmt.Sprintf("checkout %d as %s: %d", i, v, n), fmt.Sprintf("checkout %d after: 0", i))
	}
	want = append(want, fmt.Sprintf("in a transaction as marie: %d", france), "refused 42501", "after refusal: 0")
	if got := strings.Split(strings.TrimSpace(string(out)), "\n"); !slices.Equal(got, want) {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestActForFollowsReloads(t *testing.T) {
	p, path, rl := proxytest.ReloadableDemo(t)
	ctx := context.Background()
	a := actConn{c: p.Connect(t, "metabase")}
	must(t, a.exec("SET ROLE marie"))
	if got := a.responses(t); got != directCount(t, proxytest.Scopes["marie"]) {
		t.Fatalf("as marie: %d", got)
	}
	proxytest.EditConfig(t, path, `act_for  = ["hq", "role:country_analyst"]`, `act_for  = ["hq"]`)
	must(t, rl.Reload(ctx))
	t.Run("a viewer taken off the list is no longer served", func(t *testing.T) {
		refusedBy(t, a.exec("SELECT count(*) FROM responses"), "act_for")
	})
	t.Run("RESET ROLE returns to the service, and the viewer cannot be chosen again", func(t *testing.T) {
		must(t, a.exec("RESET ROLE"))
		if got := a.responses(t); got != 0 {
			t.Fatalf("the service sees %d responses", got)
		}
		refusedBy(t, a.exec("SET ROLE marie"), "act_for")
		must(t, a.exec("SET ROLE hq"))
		if got, all := a.responses(t), directCount(t, "true"); got != all {
			t.Fatalf("as hq: %d, want %d", got, all)
		}
	})
}
