package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditOnErrorRefuse checks audit.on_error = "refuse": while the
// trail cannot be written, statements are refused (58030) rather than
// run unrecorded, transaction control still runs, the session stays
// usable, and the refusals are recorded once the trail is written again.
func TestAuditOnErrorRefuse(t *testing.T) {
	var failing atomic.Bool
	path := t.TempDir() + "/audit.log"
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p := proxytest.StartDemo(t, func(po *proxy.Options) { po.Audit, po.AuditFailing = alog, failing.Load })
	ctx := context.Background()
	c := p.Connect(t, "marie")
	code := func(err error) string {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Code
		}
		return fmt.Sprint(err)
	}
	if _, err := c.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	failing.Store(true)
	if _, err := c.PgConn().Exec(ctx, "SELECT count(*) FROM responses").ReadAll(); code(err) != "58030" {
		t.Fatalf("simple query while failing: %v", err)
	}
	if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatalf("ROLLBACK while failing: %v", err)
	}
	var n int
	if err := c.QueryRow(ctx, "SELECT count(*) FROM responses WHERE nps > $1", 5).Scan(&n); code(err) != "58030" {
		t.Fatalf("extended query while failing: %v", err)
	}
	failing.Store(false)
	if err := c.QueryRow(ctx, "SELECT count(*) FROM responses WHERE nps > $1", 5).Scan(&n); err != nil {
		t.Fatalf("after the trail recovered: %v", err)
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	var denied []string
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == audit.EventStatement && e.Decision == audit.DecisionDenied {
			if e.Reason != "audit_unavailable" || e.SQLState != "58030" {
				t.Errorf("denial %+v", e)
			}
			denied = append(denied, e.SQL)
		}
	}
	if !slices.Equal(denied, []string{"SELECT count(*) FROM responses", "SELECT count(*) FROM responses WHERE nps > $1"}) {
		t.Fatalf("denied %q", denied)
	}
}
