package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestSearchPathUserSchema: upstream.search_path = "$user", public
// (PostgreSQL's default) makes PostgreSQL search the service account's
// own schema, pgveil_svc; pgveil read "$user" as a schema of that
// literal name, so a function there was never checked against the
// policy, and won over pg_catalog's for a better-matching argument type
// (a red team's case: marie read the emails of every country).
func TestSearchPathUserSchema(t *testing.T) {
	proxytest.SetupDemo(t)
	proxytest.Direct(t, `CREATE SCHEMA pgveil_svc`)
	t.Cleanup(func() { proxytest.Direct(t, `DROP SCHEMA pgveil_svc CASCADE`) })
	proxytest.Direct(t, `GRANT USAGE ON SCHEMA pgveil_svc TO pgveil_svc`)
	proxytest.Direct(t, `CREATE FUNCTION pgveil_svc.upper(s character varying) RETURNS text LANGUAGE sql STABLE
		AS $$ SELECT string_agg(email, ';') FROM public.responses WHERE country <> 'France' $$`)
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.SearchPath = `"$user", public` })
	c := p.Connect(t, "marie")
	var got string
	err := c.QueryRow(context.Background(), "SELECT upper('x'::varchar)").Scan(&got)
	if err == nil && strings.Contains(got, "@") {
		t.Fatalf("marie called pgveil_svc.upper, a function no role may call, and read emails of other countries: %.80s…", got)
	}
	refusedBy(t, err, "function")
}
