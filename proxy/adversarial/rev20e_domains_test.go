package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestRev20eDomainChecksThroughTypes: a cast to a domain over a domain,
// to an array of a domain, or to a range of one runs the inner domain's
// CHECK, and with it any function the CHECK calls as the service account;
// written x::t or as attribute notation (x).t, through pgveil it is
// refused as x::d is for the domain itself.
func TestRev20eDomainChecksThroughTypes(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP TYPE IF EXISTS public.rev20e_range; DROP DOMAIN IF EXISTS public.rev20e_outer, public.rev20e_list, public.rev20e_inner;
	  DROP FUNCTION IF EXISTS public.rev20e_known(text)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.rev20e_known(x text) RETURNS boolean LANGUAGE plpgsql STABLE AS
		  $$BEGIN RAISE EXCEPTION 'MARKER %', (SELECT string_agg(email, ',') FROM public.responses); END$$`,
		`CREATE DOMAIN public.rev20e_inner AS text CHECK (public.rev20e_known(VALUE))`,
		`CREATE DOMAIN public.rev20e_outer AS public.rev20e_inner`,
		`CREATE DOMAIN public.rev20e_list AS public.rev20e_inner[]`,
		`CREATE TYPE public.rev20e_range AS RANGE (subtype = public.rev20e_inner)`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"a domain over the domain is refused as (x).d", "SELECT (r.comment).rev20e_outer FROM responses r"},
		{"a domain over the domain is refused as x::d", "SELECT comment::rev20e_outer FROM responses"},
		{"the domain's array type is refused as (x).d", "SELECT (r.comment)._rev20e_inner FROM responses r"},
		{"a domain over its array is refused", "SELECT ARRAY[comment]::rev20e_list FROM responses"},
		{"a range of it is refused", "SELECT '[a,b]'::rev20e_range"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501): the CHECK reads every row as the service account", c.sql, got)
			}
		})
	}
}
