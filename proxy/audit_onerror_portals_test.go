package proxy_test

import (
	"context"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditOnErrorRefusePortals checks audit.on_error = "refuse" on what
// TestAuditOnErrorRefuse does not send, in session mode and in a
// transaction pool, on every relay: a portal suspended before the trail
// failed, resumed after; a cursor declared with SQL, fetched through
// the protocol's Execute; each is refused 58030 while the trail fails,
// COMMIT through the extended protocol still ends the transaction, and
// the session reads again once the trail recovers.
func TestAuditOnErrorRefusePortals(t *testing.T) {
	for _, mode := range []string{"session", "transaction pool"} {
		t.Run(mode, func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
				var failing atomic.Bool
				alog, err := audit.Open(audit.Options{File: t.TempDir() + "/audit.log", Key: proxytest.AuditKey})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = alog.Close() })
				opt := func(po *proxy.Options) { po.Audit, po.AuditFailing = alog, failing.Load }
				var p *proxytest.Proxy
				if mode == "session" {
					p, _ = proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay }, opt)
				} else {
					p = startPooled(t, relay, 2, 5*time.Second, opt)
				}
				c := p.Connect(t, "marie")
				defer c.Close(context.Background())
				fe := c.PgConn().Frontend()
				rows, codes := proxytest.SendBatch(t, fe,
					&pgproto3.Query{String: "BEGIN"},
				)
				if len(codes) != 0 {
					t.Fatalf("BEGIN: %v", codes)
				}
				rows, codes = proxytest.SendBatch(t, fe,
					&pgproto3.Query{String: "DECLARE c CURSOR FOR SELECT id FROM responses"},
				)
				if len(codes) != 0 {
					t.Fatalf("DECLARE: %v", codes)
				}
				rows, codes = proxytest.SendBatch(t, fe,
					&pgproto3.Parse{Name: "s", Query: "SELECT id FROM responses"},
					&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"},
					&pgproto3.Execute{Portal: "p", MaxRows: 1},
					&pgproto3.Sync{},
				)
				if rows != 1 || len(codes) != 0 {
					t.Fatalf("first row of p: %d rows, %v", rows, codes)
				}
				failing.Store(true)
				for _, portal := range []string{"p", "c"} {
					rows, codes = proxytest.SendBatch(t, fe, &pgproto3.Execute{Portal: portal, MaxRows: 1}, &pgproto3.Sync{})
					if rows != 0 || !slices.Equal(codes, []string{"58030"}) {
						t.Errorf("Execute of %s while the trail fails: %d rows, errors %v", portal, rows, codes)
					}
				}
				rows, codes = proxytest.SendBatch(t, fe,
					&pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				if len(codes) != 0 {
					t.Fatalf("COMMIT while the trail fails: %v", codes)
				}
				failing.Store(false)
				rows, codes = proxytest.SendBatch(t, fe, &pgproto3.Query{String: "SELECT id FROM responses LIMIT 1"})
				if rows != 1 || len(codes) != 0 {
					t.Fatalf("after the trail recovered: %d rows, %v", rows, codes)
				}
			})
		})
	}
}
