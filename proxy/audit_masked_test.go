package proxy_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// auditedRun runs script as marie through a demo proxy auditing to a
// fresh trail, with opt applied to the proxy's options, and returns the
// statement records by their text (the last of each).
func auditedRun(t *testing.T, opt func(*proxy.Options), script func(ctx context.Context, c *pgx.Conn)) map[string]*audit.Entry {
	t.Helper()
	return auditedRunOn(t, policy.RelayEventLoop, opt, script)
}

// auditedRunOn is auditedRun with plaintext sessions relayed as relay
// says (policy.RelayEventLoop or policy.RelayGoroutines).
func auditedRunOn(t *testing.T, relay string, opt func(*proxy.Options), script func(ctx context.Context, c *pgx.Conn)) map[string]*audit.Entry {
	t.Helper()
	path := t.TempDir() + "/audit.log"
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay }, func(po *proxy.Options) {
		po.Audit = alog
		if opt != nil {
			opt(po)
		}
	})
	ctx := context.Background()
	c := p.Connect(t, "marie")
	script(ctx, c)
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	bySQL := map[string]*audit.Entry{}
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == audit.EventStatement {
			bySQL[e.SQL] = e
		}
	}
	return bySQL
}

// simpleExec runs sql with the simple protocol and fails on an error.
func simpleExec(ctx context.Context, t *testing.T, c *pgx.Conn, sql string) {
	t.Helper()
	if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// recordOf returns the record of sql in bySQL.
func recordOf(t *testing.T, bySQL map[string]*audit.Entry, sql string) *audit.Entry {
	t.Helper()
	e := bySQL[sql]
	if e == nil {
		t.Fatalf("no record of %q", sql)
	}
	return e
}

// TestAuditMaskedRead checks that masked lists the masked columns a
// statement could read, as columns lists the unmasked ones: a count(*)
// read no email, and an auditor searching --masked-column email must not
// find it.
func TestAuditMaskedRead(t *testing.T) {
	recs := auditedRun(t, nil, func(ctx context.Context, c *pgx.Conn) {
		for _, sql := range []string{
			"SELECT count(*) FROM responses",
			"SELECT id, email FROM responses LIMIT 1",
			"SELECT * FROM responses LIMIT 1",
			"SELECT count(*) FROM responses r WHERE r IS NOT NULL",
		} {
			simpleExec(ctx, t, c, sql)
		}
	})
	all := []string{"public.responses.contact", "public.responses.email", "public.responses.score"}
	for sql, want := range map[string]struct{ masked, columns []string }{
		"SELECT count(*) FROM responses":          {nil, nil},
		"SELECT id, email FROM responses LIMIT 1": {[]string{"public.responses.email"}, []string{"public.responses.id"}},
		"SELECT * FROM responses LIMIT 1":         {all, nil},
		// A whole-row reference reads every column.
		"SELECT count(*) FROM responses r WHERE r IS NOT NULL": {all, nil},
	} {
		e := recordOf(t, recs, sql)
		if !slices.Equal(e.Masked, want.masked) || want.columns != nil && !slices.Equal(e.Columns, want.columns) {
			t.Errorf("%s: masked %q columns %q; want masked %q columns %q", sql, e.Masked, e.Columns, want.masked, want.columns)
		}
	}
}
