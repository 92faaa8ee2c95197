package proxy_test

import (
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// showActFor returns what SHOW pgveil.act_for says on a's session.
func showActFor(t *testing.T, a actConn) string {
	t.Helper()
	rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "SHOW pgveil.act_for"})
	if err != nil || len(rows) != 1 {
		t.Fatalf("SHOW pgveil.act_for: %v %v", rows, err)
	}
	return rows[0]
}

// TestActFor23SetRoleOwnLogin checks that SET ROLE <the service's own
// login> is forwarded as SET pgveil.act_for TO DEFAULT, as SET ROLE NONE
// is: the upstream then says the session acts for no one.
func TestActFor23SetRoleOwnLogin(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
		a := actConn{c: p.Connect(t, "metabase")}
		service := a.responses(t)
		for _, c := range []struct{ name, sql string }{
			{"SET ROLE", "SET ROLE metabase"},
			{"SET pgveil.act_for", "SET pgveil.act_for = 'metabase'"},
			{"SET ROLE after BEGIN in its text", "BEGIN; SET ROLE metabase"},
		} {
			t.Run(c.name+" to the service's own login acts as the service, and SHOW pgveil.act_for says no one", func(t *testing.T) {
				must(t, a.exec("SET ROLE hq"))
				must(t, a.exec(c.sql))
				must(t, a.exec("COMMIT")) // a warning outside a block
				if got, n := showActFor(t, a), a.responses(t); got != "" || n != service {
					t.Fatalf("SHOW pgveil.act_for says %q, %d responses (want \"\", %d)", got, n, service)
				}
			})
		}
		t.Run("with the extended protocol too", func(t *testing.T) {
			must(t, a.exec("SET ROLE hq"))
			must(t, a.execExtended("SET ROLE metabase"))
			if got := showActFor(t, a); got != "" {
				t.Fatalf("SHOW pgveil.act_for says %q", got)
			}
		})
	})
}

func TestActFor23SetRoleOwnLoginPooled(t *testing.T) {
	p, _ := proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 2))
	a := actConn{c: p.Connect(t, "metabase")}
	t.Run("in transaction pooling SET ROLE to the service's own login is not replayed as a viewer", func(t *testing.T) {
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("SET ROLE metabase"))
		if got := showActFor(t, a); got != "" {
			t.Fatalf("SHOW pgveil.act_for says %q", got)
		}
	})
}
