package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestRev20bAttributeNotation: PostgreSQL reads r.f as f(r) coercing the
// row implicitly to f's argument type, which an implicit cast a DBA
// created from the row's composite type reaches too (CREATE CAST
// (open AS text) WITH INOUT AS IMPLICIT makes o.f call f(text), o a
// table the policy leaves as written);
// it calls aggregates that way as well ((x).count, r.count). Each such
// function, outside every role's list, must be refused through attribute
// notation as it is when called by name: a SQL function running as the
// service account reads every row of the table.
func TestRev20bAttributeNotation(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	proxytest.SeedMarkers(t)
	const body = `AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`
	drop := `DROP CAST IF EXISTS (rev20b.open AS text); DROP SCHEMA IF EXISTS rev20b CASCADE;
	  DROP AGGREGATE IF EXISTS public.rev20b_agg(text), public.rev20b_agga(anyelement);
	  DROP FUNCTION IF EXISTS public.rev20b_text(text), public.rev20b_dom(public.rev20b_txt), public.rev20b_sf(text, text), public.rev20b_sfa(text, anyelement);
	  DROP DOMAIN IF EXISTS public.rev20b_txt`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.rev20b_text(x text) RETURNS text LANGUAGE sql STABLE ` + body,
		`CREATE DOMAIN public.rev20b_txt AS text`,
		`CREATE FUNCTION public.rev20b_dom(x public.rev20b_txt) RETURNS text LANGUAGE sql STABLE ` + body,
		`CREATE SCHEMA rev20b`,
		`CREATE TABLE rev20b.open (id int)`,
		`INSERT INTO rev20b.open VALUES (1)`,
		`GRANT USAGE ON SCHEMA rev20b TO pgveil_svc`,
		`GRANT SELECT ON rev20b.open TO pgveil_svc`,
		`CREATE CAST (rev20b.open AS text) WITH INOUT AS IMPLICIT`,
		`CREATE FUNCTION public.rev20b_sf(s text, x text) RETURNS text LANGUAGE sql STABLE ` + body,
		`CREATE AGGREGATE public.rev20b_agg(text) (sfunc = public.rev20b_sf, stype = text)`,
		`CREATE FUNCTION public.rev20b_sfa(s text, x anyelement) RETURNS text LANGUAGE sql STABLE ` + body,
		`CREATE AGGREGATE public.rev20b_agga(anyelement) (sfunc = public.rev20b_sfa, stype = text)`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(cfg *policy.Config) {
		cfg.Schemas["rev20b"] = &policy.Schema{Name: "rev20b", Allow: true}
	})
	conn := p.Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"a function of a type the row casts to implicitly is refused as o.f", "SELECT o.rev20b_text FROM rev20b.open o"},
		{"a function of a domain over such a type is refused as o.f", "SELECT o.rev20b_dom FROM rev20b.open o"},
		{"a function of such a type is refused as open.f", "SELECT open.rev20b_text FROM rev20b.open"},
		{"an aggregate of a column's type is refused as a field selection", "SELECT (r.comment).rev20b_agg FROM responses r"},
		{"a polymorphic aggregate is refused as r.f", "SELECT r.rev20b_agga FROM responses r"},
		{"a function of an ordinality row is refused as g.f", "SELECT g.rev20b_text FROM responses r, LATERAL unnest(ARRAY[r.comment]) WITH ORDINALITY g WHERE r.id = 1"},
		{"a function of a ROWS FROM row is refused as g.f", "SELECT g.rev20b_text FROM ROWS FROM (unnest(ARRAY['a'])) g"},
		{"a function of an unaliased ROWS FROM row is refused as unnest.f", "SELECT unnest.rev20b_text FROM ROWS FROM (unnest(ARRAY['a']))"},
		{"a function of a function's row aliased with a column is refused as g.f", "SELECT g.rev20b_text FROM unnest(ARRAY['a']) g(a)"},
		{"a function of an inner function item named like the outer table is refused", "SELECT (SELECT r.rev20b_text FROM unnest(ARRAY['a']) r) FROM responses r WHERE r.id = 1"},
		{"a function of a function item whose alias PostgreSQL cuts at 63 bytes is refused as g.f", "SELECT " + strings.Repeat("g", 63) + "b.rev20b_text FROM unnest(ARRAY['a']) AS " + strings.Repeat("g", 63) + "a"},
		{"a function of a function item whose alias is quoted with upper case is refused as g.f", `SELECT "G".rev20b_text FROM unnest(ARRAY['a']) AS "G"`},
		{"a function of a subquery's row of a function is refused as (x).f", "SELECT (s.x).rev20b_text FROM (SELECT comment AS x FROM responses) s"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501): the function reads every row as the service account", c.sql, got)
			}
		})
	}
}

// TestRev20bFunctionItemColumns: g.c, where g is a function's FROM item
// given column names (g(c), AS g(c text)), reads the column c: PostgreSQL
// looks for a column before a function, so a DBA's function named like
// the column (country, id) is not called, and the statement is answered.
func TestRev20bFunctionItemColumns(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP FUNCTION IF EXISTS public.country(text), public.id(int)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.country(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'MARKER-CALLED'$$`,
		`CREATE FUNCTION public.id(x int) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'MARKER-CALLED'$$`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql, want string }{
		{"a column of a column definition list is read", `SELECT x.country FROM json_to_recordset('[{"country": "France"}]') AS x(country text)`, "[\"France\"]\n"},
		{"a column of an alias's column names is read", `SELECT u.id FROM unnest(ARRAY[7]) AS u(id)`, "[\"7\"]\n"},
		{"a column of an item named in two scopes alike is read", `SELECT u.id, (SELECT v.id FROM unnest(ARRAY[8]) v(id)) FROM unnest(ARRAY[7]) u(id)`, "[\"7\" \"8\"]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := proxytest.Answer(ctx, conn, c.sql); got != c.want {
				t.Fatalf("%s\n  => %s\nwant %s", c.sql, got, c.want)
			}
		})
	}
	for _, c := range []struct{ name, sql string }{
		{"a function of an item's row is still refused where the item lacks the column", `SELECT u.id FROM unnest(ARRAY[7]) AS u(n)`},
		{"a function is still refused where another item of that name lacks the column", `SELECT (SELECT u.id FROM unnest(ARRAY[8]) u) FROM unnest(ARRAY[7]) u(id)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501)", c.sql, got)
			}
		})
	}
}

// TestRev20bProcedureNamedLikeAField: PostgreSQL never calls a procedure
// through attribute notation (only CALL runs one), so a field named like
// a DBA's procedure is read as the field.
func TestRev20bProcedureNamedLikeAField(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP PROCEDURE IF EXISTS public.country(text); DROP TYPE IF EXISTS public.rev20b_addr`
	for _, sql := range []string{drop,
		`CREATE PROCEDURE public.country(x text) LANGUAGE sql AS $$SELECT 1$$`,
		`CREATE TYPE public.rev20b_addr AS (country text)`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	const q = `SELECT (s.a).country FROM (SELECT ROW('France')::public.rev20b_addr AS a) s`
	if got, want := proxytest.Answer(ctx, conn, q), "[\"France\"]\n"; got != want {
		t.Fatalf("%s\n  => %s\nwant %s", q, got, want)
	}
}
