package proxy_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestAnExecuteRolledBackByALaterExecutesErrorIsRecordedRolledBack: an
// INSERT's Execute completes, then a later Bind of the same batch
// fails (as a lazily prepared statement's Parse does, in its Bind's
// place): PostgreSQL rolls back the batch's implicit transaction, the
// INSERT with it. Its record must not say it inserted a row.
func TestAnExecuteRolledBackByALaterExecutesErrorIsRecordedRolledBack(t *testing.T) {
	proxytest.SetupUpstream(t)
	ctx := context.Background()
	if err := proxytest.Cluster.Exec(ctx, proxytest.TestDB, `
DROP TABLE IF EXISTS rolled_back_ins;
CREATE TABLE rolled_back_ins (id int);
GRANT SELECT, INSERT ON rolled_back_ins TO `+proxytest.SvcUser+`;`); err != nil {
		t.Fatal(err)
	}
	for _, relay := range []string{policy.RelayEventLoop, policy.RelayGoroutines} {
		t.Run(relay, func(t *testing.T) {
			if err := proxytest.Cluster.Exec(ctx, proxytest.TestDB, "TRUNCATE rolled_back_ins"); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(t.TempDir(), "audit.log")
			alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = alog.Close() })
			p := proxytest.StartProxy(t, func(c *policy.Config, o *proxy.Options) { o.Audit = alog; c.Listen.Relay = relay })
			c := p.Connect(t, "alice")
			const ins = "INSERT INTO rolled_back_ins VALUES (1)"
			_, codes, _ := proxytest.PipelineBatches(t, c, 1,
				&pgproto3.Parse{Name: "ins", Query: ins}, &pgproto3.Bind{PreparedStatement: "ins"}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if codes[0] != "22012" {
				t.Fatalf("batch: %q", codes)
			}
			if v, err := one(ctx, c, "SELECT count(*)::text FROM rolled_back_ins"); err != nil || v != "0" {
				t.Fatalf("rolled_back_ins holds %q rows (%v), want 0: rolled back", v, err)
			}
			c.Close(ctx)
			proxytest.WaitSessions(t, p, 0)
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event != "statement" || e.SQL != ins {
					continue
				}
				t.Logf("record: rows=%d sqlstate=%q upstream=%q message=%q", e.Rows, e.SQLState, e.UpstreamError, e.Message)
				if e.SQLState == "" && !strings.HasPrefix(e.Message, "rolled back") {
					t.Errorf("the INSERT was rolled back by the batch's 22012; its record says rows=%d sqlstate=%q message=%q", e.Rows, e.SQLState, e.Message)
				}
			}
		})
	}
}
