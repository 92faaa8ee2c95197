package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// TestActFor17 holds the red team's findings on acting for users.
func TestActFor17(t *testing.T) {
	proxytest.OnEveryRelay(t, actFor17ResetAll)
}

// actFor17ResetAll checks RESET ALL while acting for a user, on relay.
func actFor17ResetAll(t *testing.T, relay string) {
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
	a := actConn{c: p.Connect(t, "metabase")}
	all, service := directCount(t, "true"), a.responses(t)
	show := func(t *testing.T) string {
		t.Helper()
		rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "SHOW pgveil.act_for"})
		if err != nil || len(rows) != 1 {
			t.Fatalf("SHOW pgveil.act_for: %v %v", rows, err)
		}
		return rows[0]
	}
	// PostgreSQL's RESET ALL resets pgveil.act_for, the setting pgveil
	// forwards in place of every switch: the tool, the upstream and
	// SHOW pgveil.act_for all say the session acts for no one, so pgveil
	// must not go on serving the previous viewer's rows.
	for _, reset := range []struct{ name, sql string }{
		{"alone", "RESET ALL"},
		{"as asyncpg's pool resets a connection", "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"},
	} {
		t.Run("RESET ALL "+reset.name+" ends acting for the viewer, as SHOW pgveil.act_for then says", func(t *testing.T) {
			must(t, a.exec("SET pgveil.act_for = 'hq'"))
			if got := a.responses(t); got != all {
				t.Fatalf("acting for hq: %d responses, want %d", got, all)
			}
			must(t, a.exec(reset.sql))
			if got := show(t); got != "" {
				t.Fatalf("after RESET ALL SHOW pgveil.act_for says %q", got)
			}
			if got := a.responses(t); got != service {
				t.Fatalf("after RESET ALL the session still read %d responses (hq's), want the service's %d", got, service)
			}
		})
	}
	t.Run("RESET ALL with the extended protocol ends it too", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		must(t, a.execExtended("RESET ALL"))
		if got, n := show(t), a.responses(t); got != "" || n != service {
			t.Fatalf("after RESET ALL: SHOW says %q, %d responses", got, n)
		}
	})
	t.Run("RESET ALL rolled back with its transaction keeps the viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("BEGIN"))
		must(t, a.exec("RESET ALL"))
		must(t, a.exec("ROLLBACK"))
		if got, n := show(t), a.responses(t); got != "hq" || n != all {
			t.Fatalf("after ROLLBACK: SHOW says %q, %d responses", got, n)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("RESET ALL pipelined after another statement is refused while acting", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		_, err := proxytest.RoundTrip(t, a.c,
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "RESET ALL"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{})
		refusedBy(t, err, "act_for")
		if got, n := show(t), a.responses(t); got != "hq" || n != all {
			t.Fatalf("after the refusal: SHOW says %q, %d responses", got, n)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("a statement after RESET ALL in its text is refused while acting: it was checked for the viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "RESET ALL; SELECT count(*) FROM responses"})
		refusedBy(t, err, "act_for")
		if len(rows) > 0 {
			t.Fatalf("read %v after RESET ALL", rows)
		}
		if got, n := show(t), a.responses(t); got != "hq" || n != all {
			t.Fatalf("after the refusal: SHOW says %q, %d responses", got, n)
		}
		must(t, a.exec("RESET ROLE"))
	})
	t.Run("RESET ALL of a login acting for no one changes nothing", func(t *testing.T) {
		must(t, a.exec("RESET ALL"))
		m := actConn{c: p.Connect(t, "marie")}
		must(t, m.exec("RESET ALL"))
		if got := m.responses(t); got != directCount(t, proxytest.Scopes["marie"]) {
			t.Fatalf("marie after RESET ALL: %d responses", got)
		}
	})
}

func TestActFor17Pooled(t *testing.T) {
	p, _ := proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 2))
	a := actConn{c: p.Connect(t, "metabase")}
	b := actConn{c: p.Connect(t, "metabase")}
	all, service := directCount(t, "true"), a.responses(t)
	t.Run("in transaction pooling RESET ALL ends acting for the viewer, and another session of the service stays as it is", func(t *testing.T) {
		must(t, a.exec("SET pgveil.act_for = 'hq'"))
		must(t, b.exec("SET ROLE marie"))
		must(t, a.exec("SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"))
		if got := a.responses(t); got != service {
			t.Fatalf("after RESET ALL: %d responses, want the service's %d (hq's: %d)", got, service, all)
		}
		if got, want := b.responses(t), directCount(t, proxytest.Scopes["marie"]); got != want {
			t.Fatalf("the other session: %d responses, want marie's %d", got, want)
		}
	})
}

func TestActFor17ServiceLostOnReload(t *testing.T) {
	p, path, rl := proxytest.ReloadableDemo(t)
	a := actConn{c: p.Connect(t, "metabase")}
	must(t, a.exec("SET ROLE marie"))
	proxytest.EditConfig(t, path, `act_for  = ["hq", "role:country_analyst"]`, ``)
	if err := rl.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Run("a session acting for a user when its login stops being a service is refused, and RESET ROLE still returns to the login", func(t *testing.T) {
		_, err := a.c.Exec(context.Background(), "SELECT count(*) FROM responses")
		refusedBy(t, err, "act_for")
		must(t, a.exec("RESET ROLE"))
		if got := a.responses(t); got != 0 {
			t.Fatalf("as the login: %d responses", got)
		}
	})
	t.Run("then, not a service any more, it can act for no one, nor RESET ROLE", func(t *testing.T) {
		refusedBy(t, a.exec("SET ROLE marie"), "act_for")
		refusedBy(t, a.exec("RESET ROLE"), "act_for")
	})
}
