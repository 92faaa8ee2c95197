package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"

	"github.com/jackc/pgx/v5/pgproto3"
)

// terminatePoolBackends closes the pool's backends upstream.
func terminatePoolBackends(t *testing.T, p *proxytest.Proxy) {
	t.Helper()
	proxytest.Direct(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND backend_start >= '"+p.Started+"'")
	proxytest.Eventually(t, 5*time.Second, "the pool's backend is gone", func() bool { return p.PoolBackends(t) == 0 })
}

// TestAPipelinedBindRunsAfterAnEarlierBatchSkippedItsLazyParse: a client
// pipelines two batches on a backend that lacks S1. The first fails
// before the Parse pgveil adds ahead of its Bind of S1, which the server
// skips; the second binds S1 again, written before the first's answers
// came. It runs, as in PostgreSQL: while the earlier Parse is
// unanswered, the second batch closes S1 and prepares it again.
func TestAPipelinedBindRunsAfterAnEarlierBatchSkippedItsLazyParse(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p := startPooled(t, relay, 1, 5*time.Second)
		c := p.SimpleConn(t, "marie")
		if _, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Parse{Name: "s1", Query: "SELECT 41::int + 1"}, &pgproto3.Sync{}); codes[0] != "" {
			t.Fatalf("prepare: %s %s", codes[0], errs[0])
		}
		terminatePoolBackends(t, p)
		vals, codes, errs := proxytest.PipelineBatches(t, c, 2,
			&pgproto3.Parse{Query: "SELEC 1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if codes[0] != "42601" {
			t.Fatalf("first batch: %q %s", codes[0], errs[0])
		}
		if codes[1] != "" || vals[1] != "42" {
			t.Fatalf("second batch, pipelined: got %q (%s %s), want 42", vals[1], codes[1], errs[1])
		}
	})
}

// TestAPipelinedParseOfAHeldNameFailsAfterAnEarlierBatchSkippedItsLazyParse:
// the same skipped Parse, then a pipelined Parse of the name the session
// holds. PostgreSQL answers 42P05 "already exists", and so does pgveil,
// the backend given S1's first text again ahead of it: S1 keeps its
// first text there and on a new backend alike.
func TestAPipelinedParseOfAHeldNameFailsAfterAnEarlierBatchSkippedItsLazyParse(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		path := filepath.Join(t.TempDir(), "audit.log")
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p := startPooled(t, relay, 1, 5*time.Second, func(o *proxy.Options) { o.Audit = alog })
		c := p.Connect(t, "marie")
		if _, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Parse{Name: "s1", Query: "SELECT 'old text'"}, &pgproto3.Sync{}); codes[0] != "" {
			t.Fatalf("prepare: %s %s", codes[0], errs[0])
		}
		terminatePoolBackends(t, p)
		_, codes, errs := proxytest.PipelineBatches(t, c, 2,
			&pgproto3.Parse{Query: "SELEC 1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "s1", Query: "SELECT 'new text'"}, &pgproto3.Sync{})
		t.Logf("pipelined: %q %q", codes, errs)
		run := func() string {
			vals, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if codes[0] != "" {
				return codes[0] + " " + errs[0]
			}
			return vals[0]
		}
		here := []string{run(), run(), run()}
		terminatePoolBackends(t, p)
		there := run()
		t.Logf("s1 on the backend of the pipelined batches: %q; on a new backend: %q", here, there)
		c.Close(context.Background())
		proxytest.WaitSessions(t, p, 0)
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == "statement" {
				t.Logf("record %d: sql=%q decision=%s rows=%d sqlstate=%q msg=%q", e.Seq, e.SQL, e.Decision, e.Rows, e.SQLState, e.Message)
			}
		}
		if codes[1] != "42P05" || here[2] != "old text" {
			t.Errorf("a Parse of a name the session holds got %q (want 42P05), and s1 then ran %q on that backend", codes[1], here)
		}
	})
}

// TestALazyParseThatFailsBeforeAQueryGivesTheBackendBack: a statement
// prepared lazily fails (a type it names dropped since),
// after another Execute of the same batch ran, and a Query follows in
// the batch: the server skips the Query and answers one ReadyForQuery.
// The pool's only backend must go back, and the records must say what
// happened.
func TestALazyParseThatFailsBeforeAQueryGivesTheBackendBack(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		ctx := context.Background()
		path := filepath.Join(t.TempDir(), "audit.log")
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p := startPooled(t, relay, 1, 2*time.Second, func(o *proxy.Options) { o.Audit = alog })
		proxytest.Direct(t, "DROP DOMAIN IF EXISTS lazy_dom")
		proxytest.Direct(t, "CREATE DOMAIN lazy_dom AS int")
		c := p.Connect(t, "hq")
		const (
			ok    = "SELECT id FROM responses ORDER BY id LIMIT 2"
			gone  = "SELECT 1::lazy_dom AS v"
			query = "SELECT 'skipped query'"
		)
		_, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Parse{Name: "ok", Query: ok}, &pgproto3.Parse{Name: "gone", Query: gone}, &pgproto3.Sync{})
		if codes[0] != "" {
			t.Fatalf("prepare: %s %s", codes[0], errs[0])
		}
		terminatePoolBackends(t, p)
		proxytest.Direct(t, "DROP DOMAIN lazy_dom")
		_, codes, errs = proxytest.PipelineBatches(t, c, 1,
			&pgproto3.Bind{PreparedStatement: "ok"}, &pgproto3.Execute{},
			&pgproto3.Bind{PreparedStatement: "gone"}, &pgproto3.Execute{},
			&pgproto3.Query{String: query}, &pgproto3.Sync{})
		t.Logf("batch: %q %q", codes, errs)
		if codes[0] != "42704" {
			t.Fatalf("batch: %s %s, want 42704", codes[0], errs[0])
		}
		other := p.Connect(t, "marie")
		if _, err := one(ctx, other, "SELECT 'another session'"); err != nil {
			t.Errorf("another session found no backend: %v", err)
		}
		other.Close(ctx)
		if v, err := one(ctx, c, "SELECT 'after'"); err != nil || v != "after" {
			t.Errorf("after: %q %v", v, err)
		}
		c.Close(ctx)
		proxytest.WaitSessions(t, p, 0)
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event != "statement" {
				continue
			}
			t.Logf("record %d: sql=%q decision=%s rows=%d sqlstate=%q upstream=%q msg=%q", e.Seq, e.SQL, e.Decision, e.Rows, e.SQLState, e.UpstreamError, e.Message)
			switch e.SQL {
			case gone:
				if e.SQLState != "42704" && !strings.HasPrefix(e.Message, "not executed") {
					t.Errorf("gone: sqlstate=%q message=%q", e.SQLState, e.Message)
				}
			case query:
				if e.Message != "not executed: an earlier message of its batch failed" {
					t.Errorf("skipped query: rows=%d sqlstate=%q message=%q", e.Rows, e.SQLState, e.Message)
				}
			}
		}
	})
}

// TestAStatementWhoseReprepareWasSkippedRunsWhenThePolicyComesBack: a
// statement prepared under policy version V is bound after a reload (V2)
// in a batch that fails first: the tracker's re-prepare (Close, then
// Parse under the new text) is skipped by the server, so the backend
// still holds the V statement, as the tracker knows (held(): a skipped
// Close leaves the earlier statement). The policy goes back to V (a
// reload undone, or a drift refusal lifted: the "+refusing-…" tag
// dropped), and the next Bind, plain, runs in session and transaction
// pooling alike: the pool forgets a closed statement at its
// CloseComplete, and holds it again when the server skips the Close.
func TestAStatementWhoseReprepareWasSkippedRunsWhenThePolicyComesBack(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run(mode, func(t *testing.T) {
			src, err := os.ReadFile("../configs/demo.hcl")
			if err != nil {
				t.Fatal(err)
			}
			cfg := string(src)
			if mode == "transaction" {
				cfg = strings.Replace(cfg, "upstream {", "upstream {\n  pool {\n    mode = \"transaction\"\n    size = 1\n  }", 1)
			}
			path := filepath.Join(t.TempDir(), "demo.hcl")
			if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
				t.Fatal(err)
			}
			var po proxy.Options
			p, pols := proxytest.StartDemoFrom(t, path, func(o *proxy.Options) { po = *o })
			rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
				Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
			ctx := context.Background()
			c := p.Connect(t, "marie")
			const q = "SELECT count(*)::text FROM responses"
			if _, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Parse{Name: "s1", Query: q}, &pgproto3.Sync{}); codes[0] != "" {
				t.Fatalf("prepare: %s %s", codes[0], errs[0])
			}
			v0 := pols.Current().Version
			proxytest.EditConfig(t, path, `  where  = "country = me.country"`, "  where  = \"country = me.country\"\n  enabled = false")
			if err := rl.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			v1 := pols.Current().Version
			_, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Parse{Query: "SELEC 1"}, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if codes[0] != "42601" {
				t.Fatalf("failed batch: %s %s", codes[0], errs[0])
			}
			proxytest.EditConfig(t, path, "  where  = \"country = me.country\"\n  enabled = false", `  where  = "country = me.country"`)
			if err := rl.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("versions %s -> %s -> %s", v0, v1, pols.Current().Version)
			vals, codes, errs := proxytest.PipelineBatches(t, c, 1, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
			if codes[0] != "" {
				t.Fatalf("bind after the policy came back: %s %s", codes[0], errs[0])
			}
			t.Logf("value %s", vals[0])
		})
	}
}
