package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSetRoleNoneIsTransactional: SET ROLE NONE and SET ROLE TO DEFAULT,
// now forwarded as SET pgveil.act_for TO DEFAULT, are undone with their
// transaction as RESET ROLE is, on pgveil's side as upstream: in a block
// rolled back, in a JDBC-style batch, in an implicit transaction an
// error ends, in session and in transaction pooling.
func TestSetRoleNoneIsTransactional(t *testing.T) {
	for _, pooled := range []bool{false, true} {
		t.Run(map[bool]string{false: "session", true: "transaction pooling"}[pooled], func(t *testing.T) {
			var p *proxytest.Proxy
			if pooled {
				p, _ = proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 2))
			} else {
				p = proxytest.StartDemo(t)
			}
			a := actConn{c: p.Connect(t, "metabase")}
			france := directCount(t, proxytest.Scopes["marie"])
			ctx := context.Background()
			acting := func(t *testing.T, want int, wantSetting string) {
				t.Helper()
				if got := a.responses(t); got != want {
					t.Fatalf("%d responses, want %d", got, want)
				}
				var setting string
				if err := a.c.QueryRow(ctx, "SELECT current_setting('pgveil.act_for', true)").Scan(&setting); err != nil {
					t.Fatal(err)
				}
				if setting != wantSetting {
					t.Fatalf("pgveil.act_for upstream %q, want %q", setting, wantSetting)
				}
			}
			batch := func(t *testing.T, queries ...string) string {
				t.Helper()
				fe := a.c.PgConn().Frontend()
				for _, q := range queries {
					fe.Send(&pgproto3.Parse{Query: q})
					fe.Send(&pgproto3.Bind{})
					fe.Send(&pgproto3.Execute{})
				}
				fe.Send(&pgproto3.Sync{})
				must(t, fe.Flush())
				code := ""
				for {
					m, err := fe.Receive()
					must(t, err)
					switch m := m.(type) {
					case *pgproto3.ErrorResponse:
						if code == "" {
							code = m.Code
						}
					case *pgproto3.ReadyForQuery:
						return code
					}
				}
			}
			for _, none := range []string{"SET ROLE NONE", "SET ROLE TO DEFAULT", "SET pgveil.act_for TO DEFAULT"} {
				t.Run(none, func(t *testing.T) {
					must(t, a.exec("SET ROLE marie"))
					acting(t, france, "marie")
					// A block rolled back.
					must(t, a.exec("BEGIN"))
					must(t, a.exec(none))
					acting(t, 0, "")
					must(t, a.exec("ROLLBACK"))
					acting(t, france, "marie")
					// A JDBC batch: BEGIN and the switch, then a ROLLBACK.
					if code := batch(t, "BEGIN", none); code != "" {
						t.Fatalf("BEGIN; %s: %s", none, code)
					}
					acting(t, 0, "")
					if code := batch(t, "ROLLBACK"); code != "" {
						t.Fatalf("ROLLBACK: %s", code)
					}
					acting(t, france, "marie")
					// An implicit transaction an error ends.
					if code := batch(t, none, "SELECT 1/(SELECT 0)"); code != "22012" {
						t.Fatalf("%s; SELECT 1/0: %q, want 22012", none, code)
					}
					acting(t, france, "marie")
					// And one that commits.
					if code := batch(t, none); code != "" {
						t.Fatalf("%s: %s", none, code)
					}
					acting(t, 0, "")
				})
			}
		})
	}
}
