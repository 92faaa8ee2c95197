package proxy_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditParamsPipelinedBinds checks that each execution is recorded
// with the values of the Bind it ran, when a batch binds the unnamed
// portal several times before and between its Executes, binds a named
// portal in between, and has a Bind fail: the values of a Bind that
// replaced the portal before any Execute are those it runs with.
func TestAuditParamsPipelinedBinds(t *testing.T) {
	const sql = "SELECT id FROM responses WHERE id > $1::int LIMIT 1"
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		path := t.TempDir() + "/audit.log"
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay }, func(po *proxy.Options) {
			po.Audit, po.AuditParameters = alog, 256
		})
		c := p.Connect(t, "marie")
		fe := c.PgConn().Frontend()
		v := func(s string) [][]byte { return [][]byte{[]byte(s)} }
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "s", Query: sql}, &pgproto3.Sync{}); len(codes) != 0 {
			t.Fatalf("parse: %v", codes)
		}
		if _, codes := proxytest.SendBatch(t, fe,
			&pgproto3.Bind{PreparedStatement: "s", Parameters: v("1")},
			&pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "s", Parameters: v("2")},
			&pgproto3.Bind{DestinationPortal: "n", PreparedStatement: "s", Parameters: v("3")},
			&pgproto3.Bind{PreparedStatement: "s", Parameters: v("4")},
			&pgproto3.Execute{Portal: "n"},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		); len(codes) != 0 {
			t.Fatalf("batch: %v", codes)
		}
		// A failing Bind, then a good one after the Sync.
		if _, codes := proxytest.SendBatch(t, fe,
			&pgproto3.Bind{PreparedStatement: "s", Parameters: v("not a number")},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "s", Parameters: v("5")},
			&pgproto3.Execute{},
			&pgproto3.Sync{},
		); !slices.Equal(codes, []string{"22P02"}) {
			t.Fatalf("failing batch: %v", codes)
		}
		c.Close(context.Background())
		proxytest.WaitSessions(t, p, 0)
		var got []string
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == audit.EventStatement && e.SQL == sql {
				got = append(got, e.Params+" "+e.SQLState)
			}
		}
		t.Logf("params of the executions: %q", got)
		// The Execute skipped after the failed Bind is recorded, if at
		// all, with the values of that Bind, never with a good one's.
		want := []string{"$1 = '1' ", "$1 = '3' ", "$1 = '4' ", "$1 = '5' "}
		if !slices.Equal(got, want) && !slices.Equal(got, []string{"$1 = '1' ", "$1 = '3' ", "$1 = '4' ", "$1 = 'not a number' 22P02", "$1 = '5' "}) {
			t.Errorf("params of the executions: %q, want %q", got, want)
		}
	})
}
