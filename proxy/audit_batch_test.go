package proxy_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Outside a transaction block PostgreSQL commits an extended batch's
// implicit transaction at its Sync: a deferred constraint fails there,
// after the Execute's CommandComplete, and the insert is rolled back.
// The Execute's record must say so, not "allowed" with no error; a
// simple Query's record, which ends at its ReadyForQuery, sees the error
// of its own commit.
func TestAuditRecordsAnErrorAtTheImplicitCommitOfASync(t *testing.T) {
	proxytest.SetupUpstream(t)
	ctx := context.Background()
	if err := proxytest.Cluster.Exec(ctx, proxytest.TestDB, `
DROP TABLE IF EXISTS audit_deferred;
CREATE TABLE audit_deferred (id int, CONSTRAINT audit_deferred_u UNIQUE (id) DEFERRABLE INITIALLY DEFERRED);
GRANT SELECT, INSERT ON audit_deferred TO `+proxytest.SvcUser+`;`); err != nil {
		t.Fatal(err)
	}
	for _, relay := range []string{policy.RelayEventLoop, policy.RelayGoroutines} {
		t.Run(relay, func(t *testing.T) {
			if err := proxytest.Cluster.Exec(ctx, proxytest.TestDB, "TRUNCATE audit_deferred"); err != nil {
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
			const (
				extended = "INSERT INTO audit_deferred VALUES ($1), ($1)"
				simple   = "INSERT INTO audit_deferred VALUES (8), (8)"
				ok       = "INSERT INTO audit_deferred VALUES ($1)"
			)
			// pgx sends Parse/Describe/Sync, then Bind/Describe/Execute/Sync:
			// autocommit.
			if _, err := c.Exec(ctx, extended, 7); err == nil || !strings.Contains(err.Error(), "23505") {
				t.Fatalf("the deferred constraint did not fail at the Sync: %v", err)
			}
			if _, err := c.Exec(ctx, simple, pgx.QueryExecModeSimpleProtocol); err == nil || !strings.Contains(err.Error(), "23505") {
				t.Fatalf("the deferred constraint did not fail at the Query's commit: %v", err)
			}
			if _, err := c.Exec(ctx, ok, 9); err != nil {
				t.Fatal(err)
			}
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM audit_deferred").Scan(&n); err != nil || n != 1 {
				t.Fatalf("rows in the table: %d %v", n, err)
			}
			c.Close(ctx)
			proxytest.WaitSessions(t, p, 0)
			seen := map[string]bool{}
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event != "statement" || !strings.HasPrefix(e.SQL, "INSERT") {
					continue
				}
				seen[e.SQL] = true
				switch e.SQL {
				case extended:
					if e.SQLState != "23505" || !strings.HasPrefix(e.UpstreamError, "23505: ") || !strings.HasPrefix(e.Message, "rolled back: ") || e.Rows != 0 {
						t.Errorf("the INSERT was rolled back with 23505 at the Sync; its record says rows=%d sqlstate=%q upstream_error=%q message=%q",
							e.Rows, e.SQLState, e.UpstreamError, e.Message)
					}
				case simple:
					if e.SQLState != "23505" {
						t.Errorf("the Query failed with 23505 at its commit; its record says sqlstate=%q upstream_error=%q", e.SQLState, e.UpstreamError)
					}
				case ok:
					if e.SQLState != "" || e.Message != "" {
						t.Errorf("the INSERT committed; its record says sqlstate=%q message=%q", e.SQLState, e.Message)
					}
				}
			}
			for _, s := range []string{extended, simple, ok} {
				if !seen[s] {
					t.Errorf("no record of %q", s)
				}
			}
		})
	}
}
