package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
)

// TestTransactionPoolDeallocateInFailedBlock holds a DEALLOCATE of a
// statement prepared on another backend, sent in a failed transaction
// block, to PostgreSQL's answer (25P02) and a usable session: the
// placeholder Parse pgveil writes ahead of the Query fails there, and the
// server then skips the Query until a Sync, never answering it.
func TestTransactionPoolDeallocateInFailedBlock(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolDeallocateInFailedBlock)
}

func testTransactionPoolDeallocateInFailedBlock(t *testing.T, relay string) {
	p := startPooled(t, relay, 2, 5*time.Second)
	ctx := context.Background()
	a, b := p.SimpleConn(t, "hq").PgConn(), p.SimpleConn(t, "marie").PgConn()
	exec := func(c *pgconn.PgConn, sql string) error {
		ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_, err := c.Exec(ctx, sql).ReadAll()
		return err
	}
	var pe *pgconn.PgError
	// b takes the backend a prepared on (on goroutines; an event-loop
	// session may find its own again, which has the statement).
	for round := range 4 {
		name := fmt.Sprintf("_PLAN0x%d", round)
		if _, err := a.Prepare(ctx, name, "SELECT count(*) FROM responses", nil); err != nil {
			t.Fatal(err)
		}
		if res := a.ExecPrepared(ctx, name, nil, nil, nil).Read(); res.Err != nil {
			t.Fatal(res.Err)
		}
		must(t, exec(b, "BEGIN"))
		must(t, exec(b, "SELECT 1"))
		must(t, exec(a, "BEGIN"))
		if err := exec(a, "SELECT 1/0"); !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatalf("round %d: SELECT 1/0: %v", round, err)
		}
		err := exec(a, `DEALLOCATE "`+name+`"`)
		if !errors.As(err, &pe) || pe.Code != "25P02" && pe.Code != "0A000" {
			t.Fatalf("round %d: DEALLOCATE in a failed block: want 25P02 (or a refusal), got %v", round, err)
		}
		if err := exec(a, "ROLLBACK"); err != nil {
			t.Fatalf("round %d: ROLLBACK after the DEALLOCATE: %v", round, err)
		}
		// The statement is still the session's, as PostgreSQL kept it.
		if res := a.ExecPrepared(ctx, name, nil, nil, nil).Read(); res.Err != nil {
			t.Fatalf("round %d: the statement after the failed DEALLOCATE: %v", round, res.Err)
		}
		must(t, exec(a, `DEALLOCATE "`+name+`"`))
		if res := a.ExecPrepared(ctx, name, nil, nil, nil).Read(); !errors.As(res.Err, &pe) || pe.Code != "26000" {
			t.Fatalf("round %d: running a statement deallocated: %v", round, res.Err)
		}
		must(t, exec(b, "ROLLBACK"))
		if err := exec(a, "SELECT 1"); err != nil {
			t.Fatalf("round %d: after: %v", round, err)
		}
	}
}

// TestTransactionPoolDeallocateTwiceInOneText: PostgreSQL fails the second
// DEALLOCATE of a statement (26000), naming the client's statement; the
// client never sees the name pgveil gives it upstream.
func TestTransactionPoolDeallocateTwiceInOneText(t *testing.T) {
	p := startPooled(t, "", 2, 5*time.Second)
	ctx := context.Background()
	a := p.SimpleConn(t, "hq").PgConn()
	if _, err := a.Prepare(ctx, "x", "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	var pe *pgconn.PgError
	for _, sql := range []string{`DEALLOCATE x;DEALLOCATE x`, `DEALLOCATE x;DEALLOCATE PREPARE "x"`, `BEGIN;DEALLOCATE x;SAVEPOINT s;DEALLOCATE x`} {
		_, err := a.Exec(ctx, sql).ReadAll()
		if !errors.As(err, &pe) || strings.Contains(pe.Message, "pgveil_") || pe.Code != "26000" && pe.Code != "0A000" {
			t.Fatalf("%s: want 26000 naming x (or a refusal), got %v", sql, err)
		}
		_, _ = a.Exec(ctx, "ROLLBACK").ReadAll()
	}
	// Refused, the text dropped nothing.
	if res := a.ExecPrepared(ctx, "x", nil, nil, nil).Read(); res.Err != nil {
		t.Fatalf("x after the refusals: %v", res.Err)
	}
}

// TestTransactionPoolDeallocateAudited: the audit records the text forwarded in
// the DEALLOCATE's place, which names the statements upstream, as
// rewritten: an auditor matching the trail against the server's log finds
// the statement pgveil sent.
func TestTransactionPoolDeallocateAudited(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p := startPooled(t, "", 2, 5*time.Second, func(o *proxy.Options) { o.Audit = alog })
	ctx := context.Background()
	a := p.SimpleConn(t, "hq").PgConn()
	if _, err := a.Prepare(ctx, "x", "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, `SAVEPOINT s;DEALLOCATE x;RELEASE s`).ReadAll(); err == nil {
		t.Log("outside a block: ran")
	}
	if _, err := a.Prepare(ctx, "y", "SELECT 1", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, `DEALLOCATE y`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	a.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	found := false
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.SQL != "DEALLOCATE y" {
			continue
		}
		found = true
		t.Logf("audit: decision %s, rewritten %q", e.Decision, e.Rewritten)
		if !strings.Contains(e.Rewritten, "pgveil_") {
			t.Fatalf("the audit of DEALLOCATE y records %q as forwarded (decision %s); pgveil sent the statement's name upstream", e.Rewritten, e.Decision)
		}
	}
	if !found {
		t.Fatal("no record of DEALLOCATE y")
	}
}
