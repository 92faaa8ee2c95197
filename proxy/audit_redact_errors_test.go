package proxy_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/audit"
)

// TestAuditRedactsLiteralsInUpstreamErrors checks that a literal the
// trail must not keep does not reach it through the error it caused:
// PostgreSQL quotes the value it could not read ("invalid input syntax
// for type integer: \"…\""), and a record keeps the upstream error (as
// the client got it: values scrubbed).
func TestAuditRedactsLiteralsInUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		redact bool
		run    func(ctx context.Context, t *testing.T, p *proxytest.Proxy)
		secret string
	}{
		{"with redact_literals, a literal of a simple query stays out of its upstream error", true, func(ctx context.Context, t *testing.T, p *proxytest.Proxy) {
			c := p.Connect(t, "marie")
			_, _ = c.PgConn().Exec(ctx, "SELECT 'hunter2'::int").ReadAll()
			c.Close(ctx)
		}, "hunter2"},
		{"with redact_literals, a Bind parameter stays out of its upstream error", true, func(ctx context.Context, t *testing.T, p *proxytest.Proxy) {
			c := p.Connect(t, "marie")
			_, _ = c.Exec(ctx, "SELECT $1::text::int", "hunter3")
			c.Close(ctx)
		}, "hunter3"},
		{"with redact_literals, a literal PostgreSQL quotes in an error of another class stays out", true, func(ctx context.Context, t *testing.T, p *proxytest.Proxy) {
			c := p.Connect(t, "marie")
			_, _ = c.PgConn().Exec(ctx, "SELECT 'hunter6'::regclass").ReadAll()
			c.Close(ctx)
		}, "hunter6"},
		{"with redact_literals, a Bind parameter PostgreSQL quotes in an error stays out", true, func(ctx context.Context, t *testing.T, p *proxytest.Proxy) {
			c := p.Connect(t, "marie")
			_, _ = c.Exec(ctx, "SELECT current_setting($1)", "hunter7")
			c.Close(ctx)
		}, "hunter7"},
		{"with redact_literals, EXECUTE's arguments stay out", true, func(ctx context.Context, t *testing.T, p *proxytest.Proxy) {
			c := p.Connect(t, "marie")
			_, _ = c.PgConn().Exec(ctx, "PREPARE q(text) AS SELECT $1::int").ReadAll()
			_, _ = c.PgConn().Exec(ctx, "EXECUTE q('hunter8')").ReadAll()
			c.Close(ctx)
		}, "hunter8"},
		{"with redact_literals, a literal stays out of the message of a rolled-back batch", true, func(ctx context.Context, t *testing.T, p *proxytest.Proxy) {
			c := p.Connect(t, "marie")
			_, _ = c.PgConn().Exec(ctx, "SELECT 1; SELECT 'hunter5'::int").ReadAll()
			c.Close(ctx)
		}, "hunter5"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{RedactLiterals: tc.redact})
			ctx := context.Background()
			tc.run(ctx, t, p)
			proxytest.WaitSessions(t, p, 0)
			var found bool
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event == audit.EventStatement && e.UpstreamError != "" {
					found = true
				}
			}
			if !found {
				t.Fatal("no statement record with an upstream error")
			}
			b, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(string(b), tc.secret) {
				t.Errorf("the trail holds %q:\n%s", tc.secret, b)
			}
		})
	}
}
