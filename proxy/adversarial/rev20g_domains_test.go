package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestRev20gInputFunctionsRunDomainChecks: the input functions of
// pg_catalog that take the type to read as an argument (domain_in,
// record_in, array_in, range_in, multirange_in) read the user's text as
// a value of that type, running the CHECKs of the domains it is made of,
// and the functions they call as the service account, with no type name
// in the statement: 'd'::regtype is a cast to regtype. Through pgveil
// each is refused as x::d is; an ordinary type still reads.
func TestRev20gInputFunctionsRunDomainChecks(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP TYPE IF EXISTS public.rev20g_range; DROP TYPE IF EXISTS public.rev20g_pair; DROP DOMAIN IF EXISTS public.rev20g_inner; DROP FUNCTION IF EXISTS public.rev20g_known(text)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.rev20g_known(x text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
		  $$BEGIN RAISE EXCEPTION 'MARKER %', (SELECT string_agg(email, ',') FROM public.responses); END$$`,
		`CREATE DOMAIN public.rev20g_inner AS text CHECK (public.rev20g_known(VALUE))`,
		`CREATE TYPE public.rev20g_pair AS (e public.rev20g_inner)`,
		`CREATE TYPE public.rev20g_range AS RANGE (subtype = public.rev20g_inner)`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"domain_in of the domain is refused", "SELECT domain_in('x', 'rev20g_inner'::regtype, -1)"},
		{"record_in of a row type with a field of the domain is refused", "SELECT record_in('(x)', 'rev20g_pair'::regtype, -1)"},
		{"array_in of the domain's elements is refused", "SELECT array_in('{x}', 'rev20g_inner'::regtype::oid, -1)"},
		{"range_in of a range over the domain is refused", "SELECT range_in('[x,y]', 'rev20g_range'::regtype, -1)"},
		{"multirange_in of a multirange over the domain is refused", "SELECT multirange_in('{[x,y]}', 'rev20g_multirange'::regtype, -1)"},
		{"a qualified input function in a sublink is refused", "SELECT (SELECT pg_catalog.domain_in('x'::cstring, t.oid, -1) FROM pg_type t WHERE t.typname = 'rev20g_inner')"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501): the CHECK reads every row as the service account", c.sql, got)
			}
		})
	}
	t.Run("an input function of an ordinary type still reads", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT array_in('{1,2}', 'int4'::regtype, -1)::text",
			"SELECT domain_in('1', 'int4'::regtype, -1)::text",
		} {
			// NOTE: with the function allowed by no role, every input
			// function taking a type counts it while such a domain exists.
			if got := proxytest.Answer(ctx, conn, sql); strings.Contains(got, "MARKER") {
				t.Fatalf("%s => %s", sql, got)
			}
		}
	})
}
