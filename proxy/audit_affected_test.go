package proxy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestAuditAffectedRows checks that the record of a write says how many
// rows it changed (affected), as its CommandComplete tag says: an
// auditor asked who deleted 5,000 rows, and when, must find it in the
// trail, where rows (the DataRows the client read) says 0. In the simple
// and the extended protocol, pipelined, in a transaction block rolled
// back (the count is what the statement did), a COPY FROM STDIN, an
// EXECUTE of a prepared write, a Query of several writes (their sum); a
// SELECT's record keeps its DataRow count, a COPY TO's the rows its tag
// counts (a HEADER line, a binary trailer are no row). On both relays, in a transaction pool, with redact_literals.
func TestAuditAffectedRows(t *testing.T) {
	proxytest.SetupDemo(t)
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS audit_w",
		"CREATE TABLE IF NOT EXISTS audit_w.items (id int, note text)",
		"GRANT USAGE ON SCHEMA audit_w TO pgveil_svc",
		"GRANT SELECT, INSERT, UPDATE, DELETE ON audit_w.items TO pgveil_svc",
	} {
		proxytest.Direct(t, q)
	}
	pooled := policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 20 * time.Second, IdleTimeout: time.Minute}
	for _, c := range []struct {
		name   string
		relay  string
		pool   policy.Pool
		redact bool
	}{
		{"on event loops", policy.RelayEventLoop, policy.Pool{}, false},
		{"on goroutines", policy.RelayGoroutines, policy.Pool{}, false},
		{"with redact_literals", policy.RelayEventLoop, policy.Pool{}, true},
		{"in a transaction pool on event loops", policy.RelayEventLoop, pooled, true},
		{"in a transaction pool on goroutines", policy.RelayGoroutines, pooled, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			proxytest.Direct(t, "TRUNCATE audit_w.items")
			path := filepath.Join(t.TempDir(), "audit.log")
			alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey, RedactLiterals: c.redact})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = alog.Close() })
			p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(cfg *policy.Config) {
				cfg.Upstream.Pool = c.pool
				cfg.Listen.Relay = c.relay
				cfg.Schemas["audit_w"] = &policy.Schema{Name: "audit_w", Allow: true}
				cfg.Roles["central_analyst"].Statements = append(cfg.Roles["central_analyst"].Statements,
					rewrite.KindInsert, rewrite.KindUpdate, rewrite.KindDelete)
			}, func(po *proxy.Options) { po.Audit = alog })
			ctx := context.Background()
			s := p.SimpleConn(t, "hq")
			x := p.Connect(t, "hq")
			run := func(sql string) {
				t.Helper()
				if _, err := s.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			run("INSERT INTO audit_w.items SELECT g, 'n' FROM generate_series(1, 5000) g")
			run("UPDATE audit_w.items SET note = 'm' WHERE id <= 12")
			run("SELECT id FROM audit_w.items WHERE id <= 7")
			if _, err := x.Exec(ctx, "DELETE FROM audit_w.items WHERE id > $1", 4990); err != nil {
				t.Fatal(err)
			}
			run("BEGIN")
			run("DELETE FROM audit_w.items WHERE id <= 3")
			run("ROLLBACK")
			run("UPDATE audit_w.items SET note = 'a' WHERE id = 1; DELETE FROM audit_w.items WHERE id = 2")
			if _, err := s.PgConn().CopyFrom(ctx, strings.NewReader("6001\tc\n6002\tc\n6003\tc\n"), "COPY audit_w.items FROM STDIN"); err != nil {
				t.Fatal(err)
			}
			var out strings.Builder
			if _, err := s.PgConn().CopyTo(ctx, &out, "COPY (SELECT id FROM audit_w.items WHERE id <= 4) TO STDOUT"); err != nil {
				t.Fatal(err)
			}
			// A HEADER line, and a binary trailer, are CopyData of no
			// row: the record counts the rows, as the COPY's tag does.
			for _, opts := range []string{"CSV HEADER", "(FORMAT binary)"} {
				out.Reset()
				if _, err := s.PgConn().CopyTo(ctx, &out, "COPY (SELECT id FROM audit_w.items WHERE id <= 4) TO STDOUT "+opts); err != nil {
					t.Fatal(err)
				}
			}
			if c.pool.Mode == "" {
				// SQL PREPARE is refused in transaction pooling.
				run("BEGIN")
				run("PREPARE del AS DELETE FROM audit_w.items WHERE id > 6000")
				run("EXECUTE del")
				run("COMMIT")
			}
			// Pipelined: two Executes of one batch, each with its count.
			_, codes, _ := proxytest.PipelineBatches(t, x, 1,
				&pgproto3.Parse{Query: "UPDATE audit_w.items SET note = 'p' WHERE id <= 20"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Parse{Query: "DELETE FROM audit_w.items WHERE id BETWEEN 21 AND 29"}, &pgproto3.Bind{}, &pgproto3.Execute{},
				&pgproto3.Sync{})
			if slices.ContainsFunc(codes, func(c string) bool { return c != "" }) {
				t.Fatalf("pipeline: %q", codes)
			}
			s.Close(ctx)
			x.Close(ctx)
			proxytest.WaitSessions(t, p, 0)
			var got []string
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event == audit.EventStatement && e.User == "hq" && e.Kind != "transaction" {
					got = append(got, fmt.Sprintf("%s rows %d affected %d", e.Kind, e.Rows, e.Affected))
				}
			}
			want := []string{
				"insert rows 0 affected 5000",
				"update rows 0 affected 12",
				"select rows 7 affected 0",
				"delete rows 0 affected 10",
				"delete rows 0 affected 3",
				"update,delete rows 0 affected 2",
				"copy rows 0 affected 3",
				// id 2 is gone, id 3's DELETE was rolled back.
				"copy rows 3 affected 0",
				"copy rows 3 affected 0",
				"copy rows 3 affected 0",
				"prepare rows 0 affected 0",
				"execute rows 0 affected 3",
				"update rows 0 affected 19",
				"delete rows 0 affected 9",
			}
			if c.pool.Mode != "" {
				want = slices.Delete(want, 10, 12)
			}
			if !slices.Equal(got, want) {
				t.Errorf("records\n%q\nwant\n%q", got, want)
			}
		})
	}
}
