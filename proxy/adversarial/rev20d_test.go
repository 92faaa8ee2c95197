package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestRev20dFunctionItemColumnScopes: g.c reads the column c only where
// the item PostgreSQL resolves g to declares it; an item named g in
// another scope (an outer one a function item's arguments see, a later
// one, a table whose row casts implicitly to text) keeps the call c(g)
// checked, so a DBA's function outside every role's list stays refused.
func TestRev20dFunctionItemColumnScopes(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP CAST IF EXISTS (rev20d.open AS text); DROP SCHEMA IF EXISTS rev20d CASCADE;
	  DROP FUNCTION IF EXISTS public.country(text), public.id(int)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.country(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'MARKER-CALLED'$$`,
		`CREATE FUNCTION public.id(x int) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'MARKER-CALLED'$$`,
		`CREATE SCHEMA rev20d`,
		`CREATE TABLE rev20d.open (n int)`,
		`INSERT INTO rev20d.open VALUES (1)`,
		`GRANT USAGE ON SCHEMA rev20d TO pgveil_svc`,
		`GRANT SELECT ON rev20d.open TO pgveil_svc`,
		`CREATE CAST (rev20d.open AS text) WITH INOUT AS IMPLICIT`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(cfg *policy.Config) {
		cfg.Schemas["rev20d"] = &policy.Schema{Name: "rev20d", Allow: true}
	})
	conn := p.Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"an outer item without the column, seen from an inner item beside one of its name, is refused", `SELECT (SELECT q FROM unnest(ARRAY[u.id]) AS q, unnest(ARRAY[1]) AS u(id)) FROM unnest(ARRAY[7]) u`},
		{"an outer item without the column, written after the inner one, is refused", `SELECT (SELECT u.id FROM unnest(ARRAY[8]) AS u(id)), u.id FROM unnest(ARRAY[7]) u`},
		{"an outer table whose row casts to text, seen beside an inner item of its name, is refused", `SELECT (SELECT q FROM unnest(ARRAY[o.country]) AS q, unnest(ARRAY['a']) AS o(country)) FROM rev20d.open o`},
		{"a table whose row casts to text beside a later item of its name is refused", `SELECT o.country, (SELECT o.country FROM unnest(ARRAY['a']) AS o(country)) FROM rev20d.open o`},
		{"a quoted upper-case column name is another name", `SELECT u.id FROM unnest(ARRAY[7]) AS u("ID")`},
		{"an ordinality column named otherwise is refused", `SELECT u.id FROM unnest(ARRAY[7]) WITH ORDINALITY AS u(n)`},
		{"a shorter alias list over a composite leaves the other name a call", `SELECT u.country FROM json_to_record('{"a":1,"country":"F"}') AS u(a int, b text)`},
		{"a ROWS FROM item whose alias names another column is refused", `SELECT u.id FROM ROWS FROM (unnest(ARRAY[7])) AS u(n)`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501)", c.sql, got)
			}
		})
	}
	for _, c := range []struct{ name, sql, want string }{
		{"an ordinality item's declared column is read", `SELECT u.id FROM unnest(ARRAY[7]) WITH ORDINALITY AS u(id, n)`, "[\"7\"]\n"},
		{"a ROWS FROM item's declared column is read", `SELECT u.id FROM ROWS FROM (unnest(ARRAY[7]), unnest(ARRAY[8])) AS u(id)`, "[\"7\"]\n"},
		{"a quoted column is read as quoted", `SELECT u."ID" FROM unnest(ARRAY[7]) AS u("ID")`, "[\"7\"]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := proxytest.Answer(ctx, conn, c.sql); got != c.want {
				t.Fatalf("%s\n  => %s\nwant %s", c.sql, got, c.want)
			}
		})
	}
}

// TestRev20dFunctionItemColumnsCut: PostgreSQL cuts names at 63 bytes, so
// two aliases alike in their first 63 bytes name one item; the columns
// one declares must not make g.c a column of the other.
func TestRev20dFunctionItemColumnsCut(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP FUNCTION IF EXISTS public.country(text)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.country(x text) RETURNS text LANGUAGE sql IMMUTABLE AS $$SELECT 'MARKER-CALLED'$$`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	g := strings.Repeat("g", 63)
	for _, c := range []struct{ name, sql string }{
		{"an alias declaring the column elsewhere, alike in 63 bytes, is refused",
			"WITH x AS (SELECT * FROM unnest(ARRAY['a']) AS " + g + "a(country)) SELECT " + g + "a.country FROM unnest(ARRAY['b']) AS " + g + "b"},
		{"an alias declaring the column elsewhere, alike in 63 bytes, is refused the other way round",
			"WITH x AS (SELECT * FROM unnest(ARRAY['a']) AS " + g + "a(country)) SELECT " + g + ".country FROM unnest(ARRAY['b']) AS " + g + "b"},
		{"a quoted alias declaring the column elsewhere, alike in 63 bytes, is refused",
			`WITH x AS (SELECT * FROM unnest(ARRAY['a']) AS "` + g + `a"(country)) SELECT "` + g + `a".country FROM unnest(ARRAY['b']) AS "` + g + `b"`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501)", c.sql, got)
			}
		})
	}
}
