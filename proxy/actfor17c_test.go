package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// TestActFor17cResetAllText holds review rev17c's findings on the texts
// a RESET ALL ends acting for a user in: the switch tracker reads a
// switch's transaction from the tags after it, and the SETs after it
// were checked for the viewer.
func TestActFor17cResetAllText(t *testing.T) {
	proxytest.OnEveryRelay(t, actFor17cResetAllText)
}

// actFor17cResetAllText checks the texts of a RESET ALL on relay.
func actFor17cResetAllText(t *testing.T, relay string) {
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
	a := actConn{c: p.Connect(t, "metabase")}
	all, service := directCount(t, "true"), a.responses(t)
	show := func(t *testing.T, setting string) string {
		t.Helper()
		rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "SHOW " + setting})
		if err != nil || len(rows) != 1 {
			t.Fatalf("SHOW %s: %v %v", setting, rows, err)
		}
		return rows[0]
	}
	// consistent fails the test unless pgveil serves the rows of whom
	// SHOW pgveil.act_for says the session acts for.
	consistent := func(t *testing.T) {
		t.Helper()
		got, n := show(t, "pgveil.act_for"), a.responses(t)
		if got == "hq" && n != all || got == "" && n != service {
			t.Fatalf("SHOW pgveil.act_for says %q but the session read %d responses (hq's: %d, the service's: %d)", got, n, all, service)
		}
	}
	for _, c := range []struct{ text, then string }{
		{"COMMIT; BEGIN; RESET ALL", "ROLLBACK"},
		{"ROLLBACK; BEGIN; RESET ALL", "COMMIT"},
		{"SAVEPOINT s; ROLLBACK TO SAVEPOINT s; RESET ALL", "COMMIT"},
	} {
		t.Run("while acting, RESET ALL after a COMMIT or ROLLBACK in its text is refused, or followed: "+c.text, func(t *testing.T) {
			must(t, a.exec("SET ROLE hq"))
			must(t, a.exec("BEGIN"))
			_ = a.exec(c.text)
			_ = a.exec(c.then)
			_ = a.exec("ROLLBACK")
			consistent(t)
			must(t, a.exec("RESET ROLE"))
		})
	}
	t.Run("while acting, a SET after RESET ALL in its text is refused: application_name would name the viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		_ = a.exec("RESET ALL; SET application_name = 'x'")
		if got := show(t, "application_name"); strings.Contains(got, ":hq:") && show(t, "pgveil.act_for") == "" {
			t.Fatalf("acting for the service, the session is named %q", got)
		}
		consistent(t)
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a RESET ALL the server skips after an earlier error of its text leaves the viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		if err := a.exec("SELECT 1/0; RESET ALL"); err == nil {
			t.Fatal("1/0 did not fail")
		}
		if got := show(t, "pgveil.act_for"); got != "hq" {
			t.Fatalf("SHOW pgveil.act_for says %q", got)
		}
		consistent(t)
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a ROLLBACK TO SAVEPOINT after RESET ALL leaves whom the session acts for unknown, and refused", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT s"))
		must(t, a.exec("RESET ALL"))
		must(t, a.exec("ROLLBACK TO SAVEPOINT s"))
		_, err := a.c.Exec(context.Background(), "SELECT count(*) FROM responses")
		refusedBy(t, err, "act_for")
		must(t, a.exec("ROLLBACK"))
		consistent(t)
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("asyncpg's reset and a RESET ALL in a block still end acting for the viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"))
		if n := a.responses(t); n != service {
			t.Fatalf("after asyncpg's reset: %d responses", n)
		}
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("BEGIN; RESET ALL"))
		must(t, a.exec("COMMIT"))
		if n := a.responses(t); n != service {
			t.Fatalf("after BEGIN; RESET ALL: %d responses", n)
		}
	})
}
