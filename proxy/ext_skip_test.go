package proxy_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// failingExecute is an extended batch's beginning whose Bind fails
// (PostgreSQL folds 1/0 when it plans the unnamed statement).
func failingExecute() []pgproto3.FrontendMessage {
	return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{}}
}

// After an error in an extended-protocol message, PostgreSQL skips every
// message up to Sync, a Query or a FunctionCall included, and answers
// the Sync alone: one ReadyForQuery where pgveil counted two batches.
// The trail must stay in step: every later statement's record carries
// its own rows and errors, on every relay, and a pooled backend goes
// back to the pool.
func TestAuditFollowsAQueryAFailedExtendedBatchSkips(t *testing.T) {
	open := func(t *testing.T) (*audit.Log, string, func(*proxy.Options)) {
		path := filepath.Join(t.TempDir(), "audit.log")
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		return alog, path, func(o *proxy.Options) { o.Audit = alog }
	}
	for _, relay := range []string{policy.RelayEventLoop, policy.RelayGoroutines} {
		t.Run("session mode "+relay, func(t *testing.T) {
			alog, path, opt := open(t)
			p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay }, opt)
			auditSkippedQuery(t, p, alog, path, false)
		})
		t.Run("transaction pool "+relay, func(t *testing.T) {
			alog, path, opt := open(t)
			// One backend: the session must give it back for another
			// to run.
			p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 2 * time.Second, IdleTimeout: time.Minute}, opt)
			auditSkippedQuery(t, p, alog, path, true)
		})
	}
}

func auditSkippedQuery(t *testing.T, p *proxytest.Proxy, alog *audit.Log, path string, pooled bool) {
	ctx := context.Background()
	c := p.Connect(t, "hq")
	fe := c.PgConn().Frontend()
	const (
		skipped  = "SELECT 'skipped by the server'"
		denied   = "SELECT pg_catalog.pg_read_file('/etc/passwd')"
		read10   = "SELECT id, email FROM responses ORDER BY id LIMIT 10"
		fails    = "SELECT 1/0 AS second"
		read5    = "SELECT id, email FROM responses ORDER BY id LIMIT 5"
		read7    = "SELECT id, email FROM responses ORDER BY id DESC LIMIT 7"
		ownError = "SELECT 1/0 AS own_error"
		read3    = "SELECT id, email FROM responses ORDER BY id LIMIT 3"
	)
	// A failed Execute, then a Query, a Query pgveil refuses (its marker
	// skipped as well), and a FunctionCall, then Sync.
	batch := append(failingExecute(), &pgproto3.Query{String: skipped}, &pgproto3.Query{String: denied},
		&pgproto3.FunctionCall{Function: 1299}, &pgproto3.Sync{})
	if rows, codes := proxytest.SendBatch(t, fe, batch...); rows != 0 || len(codes) != 1 || codes[0] != "22012" {
		t.Fatalf("failed batch: rows %d errors %v", rows, codes)
	}
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: read10}); rows != 10 || len(codes) != 0 {
		t.Fatalf("read: rows %d errors %v", rows, codes)
	}
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: fails}); rows != 0 || len(codes) != 1 {
		t.Fatalf("second: rows %d errors %v", rows, codes)
	}
	// Two reads in one extended batch.
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Query: read5}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: read7}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); rows != 12 || len(codes) != 0 {
		t.Fatalf("extended batch: rows %d errors %v", rows, codes)
	}
	// A Query that fails itself inside an extended batch starts no
	// skipping: it gets its ReadyForQuery, and the Sync its own.
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: ownError}); rows != 1 || len(codes) != 1 {
		t.Fatalf("own error: rows %d errors %v", rows, codes)
	}
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Sync{}); rows != 0 || len(codes) != 0 {
		t.Fatalf("its Sync: rows %d errors %v", rows, codes)
	}
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: read3}); rows != 3 || len(codes) != 0 {
		t.Fatalf("last read: rows %d errors %v", rows, codes)
	}
	if pooled {
		// The session holds no backend between its transactions: the
		// pool's only one serves another session.
		other := p.Connect(t, "marie")
		if _, err := one(ctx, other, "SELECT 'another session'"); err != nil {
			t.Errorf("another session found no backend: %v", err)
		}
		other.Close(ctx)
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	seen := map[string]bool{}
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event != "statement" || e.User != "hq" {
			continue
		}
		seen[e.SQL] = true
		bad := false
		switch e.SQL {
		case skipped:
			bad = e.Rows != 0 || e.Message != "not executed: an earlier message of its batch failed"
		case denied:
			bad = e.Decision != "denied"
		case read10:
			bad = e.Rows != 10 || e.SQLState != "" || e.Message != ""
		case read5, read7, read3:
			bad = e.Rows == 0 || e.SQLState != "" || e.Message != ""
		case fails, ownError:
			bad = e.SQLState != "22012" || e.Message != ""
		}
		if bad {
			t.Errorf("seq %d %q: the trail says rows=%d decision=%s sqlstate=%q message=%q",
				e.Seq, e.SQL, e.Rows, e.Decision, e.SQLState, e.Message)
		}
	}
	for _, s := range []string{skipped, denied, read10, fails, read5, read7, ownError, read3} {
		if !seen[s] {
			t.Errorf("no record of %q", s)
		}
	}
}

// The same with a FunctionCall, which pgveil refuses with a marker
// Query in its place, inside a failed batch.
func TestAuditFollowsAFunctionCallAFailedExtendedBatchSkips(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	ctx := context.Background()
	c := p.Connect(t, "hq")
	fe := c.PgConn().Frontend()
	proxytest.SendBatch(t, fe, append(failingExecute(), &pgproto3.FunctionCall{Function: 1299}, &pgproto3.Sync{})...)
	const read4 = "SELECT id, email FROM responses ORDER BY id LIMIT 4"
	if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: read4}); rows != 4 || len(codes) != 0 {
		t.Fatalf("rows %d codes %v", rows, codes)
	}
	proxytest.SendBatch(t, fe, &pgproto3.Query{String: "SELECT 'next'"})
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	found := false
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == "statement" && e.SQL == read4 {
			found = true
			if e.Rows != 4 || e.Message != "" {
				t.Errorf("the read returned 4 rows; its record says rows=%d message=%q", e.Rows, e.Message)
			}
		}
	}
	if !found {
		t.Error("no record of the read")
	}
}

// A session that neither audits nor reloads its policies has no tracker,
// and an event loop streams its large Bind messages upstream as they
// come: the Queries a failed batch skips are counted all the same, and
// the session is idle after it, so a graceful shutdown does not wait for
// it.
func TestShutdownDoesNotWaitForQueriesAFailedExtendedBatchSkipped(t *testing.T) {
	for _, relay := range []string{policy.RelayEventLoop, policy.RelayGoroutines} {
		t.Run(relay, func(t *testing.T) {
			p := proxytest.StartProxy(t, proxytest.WithRewriter(&wordRewriter{}), func(c *policy.Config, _ *proxy.Options) { c.Listen.Relay = relay })
			ctx := context.Background()
			c := p.Connect(t, "alice")
			fe := c.PgConn().Frontend()
			big := []byte(strings.Repeat("x", 600<<10))
			for _, b := range [][]pgproto3.FrontendMessage{
				// A Bind larger than a read, streamed, and an Execute
				// that fails after its BindComplete.
				{&pgproto3.Parse{Query: "SELECT length($1::text) / floor(random())::int"}, &pgproto3.Bind{Parameters: [][]byte{big}},
					&pgproto3.Execute{}, &pgproto3.Query{String: "SELECT 'skipped'"}, &pgproto3.Sync{}},
				// A Parse pgveil refuses: its marker fails upstream.
				{&pgproto3.Parse{Query: "SELECT 'forbidden'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
					&pgproto3.Query{String: "SELECT 'skipped'"}, &pgproto3.Query{String: "SELECT 'skipped too'"}, &pgproto3.Sync{}},
				append(failingExecute(), &pgproto3.Query{String: "SELECT 'forbidden'"}, &pgproto3.Sync{}),
				append(failingExecute(), &pgproto3.FunctionCall{Function: 1299}, &pgproto3.Sync{}),
			} {
				if _, codes := proxytest.SendBatch(t, fe, b...); len(codes) != 1 {
					t.Fatalf("errors %v", codes)
				}
			}
			if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: "SELECT 'after'"}); rows != 1 || len(codes) != 0 {
				t.Fatalf("rows %d errors %v", rows, codes)
			}
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			if err := p.Server.Shutdown(sctx); err != nil {
				t.Fatalf("shutdown waited for an idle session: %v", err)
			}
			_, err := c.Exec(ctx, "SELECT 1")
			var pgErr *pgconn.PgError
			if err == nil || errors.As(err, &pgErr) && pgErr.Code != "57P01" {
				t.Fatalf("want 57P01, got %v", err)
			}
		})
	}
}
