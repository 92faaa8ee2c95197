package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestSearchPathUserSchema: upstream.search_path = "$user", public
// (PostgreSQL's default) makes PostgreSQL search the service account's
// own schema, pgveil_svc; pgveil read "$user" as a schema of that
// literal name, so a function there was never checked against the
// policy, and won over pg_catalog's for a better-matching argument type
// (a red team's case: marie read the emails of every country).
func TestSearchPathUserSchema(t *testing.T) {
	setupDemo(t)
	direct(t, `CREATE SCHEMA pgveil_svc`)
	t.Cleanup(func() { direct(t, `DROP SCHEMA pgveil_svc CASCADE`) })
	direct(t, `GRANT USAGE ON SCHEMA pgveil_svc TO pgveil_svc`)
	direct(t, `CREATE FUNCTION pgveil_svc.upper(s character varying) RETURNS text LANGUAGE sql STABLE
		AS $$ SELECT string_agg(email, ';') FROM public.responses WHERE country <> 'France' $$`)
	p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.SearchPath = `"$user", public` })
	c := p.connect(t, "marie")
	var got string
	err := c.QueryRow(context.Background(), "SELECT upper('x'::varchar)").Scan(&got)
	if err == nil && strings.Contains(got, "@") {
		t.Fatalf("marie called pgveil_svc.upper, a function no role may call, and read emails of other countries: %.80s…", got)
	}
	refusedBy(t, err, "function")
}
