package proxy_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditNamesTheBackend checks that a statement's record names the
// upstream backend that ran it, so that an auditor can find it in
// PostgreSQL's own log and pg_stat_activity: in transaction-pool mode a
// session's statements run on backends other sessions share.
func TestAuditNamesTheBackend(t *testing.T) {
	for _, mode := range []struct {
		name string
		pool policy.Pool
	}{
		{"in session mode, a statement names its session's backend", policy.Pool{}},
		{"in transaction-pool mode, a statement names the backend it ran on", policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Second, IdleTimeout: time.Minute}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = alog.Close() })
			p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.Pool = mode.pool },
				func(po *proxy.Options) { po.Audit = alog })
			ctx := context.Background()
			c := p.Connect(t, "marie")
			// NOTE: pg_backend_pid is refused (server_state): the
			// backend is found by the statement it ran last.
			backendOf := func(marker string) string {
				t.Helper()
				rows := proxytest.Direct(t, "SELECT pid::text FROM pg_stat_activity WHERE query LIKE '%"+marker+"%' AND pid <> pg_backend_pid()")
				if len(rows) != 1 {
					t.Fatalf("%d backends ran %s", len(rows), marker)
				}
				return rows[0][0]
			}
			if _, err := c.PgConn().Exec(ctx, "SELECT 'audit-simple' AS m").ReadAll(); err != nil {
				t.Fatal(err)
			}
			simple := backendOf("audit-simple")
			var m string
			if err := c.QueryRow(ctx, "SELECT $1::text || '-extended' AS m", "audit").Scan(&m); err != nil {
				t.Fatal(err)
			}
			extended := backendOf("-extended")
			_, _ = c.Exec(ctx, "SELECT * FROM employees")
			c.Close(ctx)
			proxytest.WaitSessions(t, p, 0)
			want := map[string]string{
				"SELECT 'audit-simple' AS m":          simple,
				"SELECT $1::text || '-extended' AS m": extended,
				"SELECT * FROM employees":             "0",
			}
			seen := 0
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if w, ok := want[e.SQL]; ok && e.Event == audit.EventStatement {
					seen++
					if got := strconv.FormatUint(uint64(e.BackendPID), 10); got != w {
						t.Errorf("%s: backend_pid %s, want %s", e.SQL, got, w)
					}
				}
			}
			if seen != len(want) {
				t.Fatalf("%d records, want %d", seen, len(want))
			}
		})
	}
}
