package adversarial_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestAdversarial20DomainRowFunction: PostgreSQL reads r.f as f(r) when
// r has no column f, coercing the row implicitly to the function's
// argument type, a domain over the row's composite type included, or
// into the array of a function whose one argument is VARIADIC; and it
// reads (x).f as f(x) for x of any type, a text column's value too, and
// g.f as f(g) where g is a scalar function's FROM item, of its type. Such
// a function, outside every role's list, must be refused through
// attribute notation as it is when called by name: a SQL function
// running as the service account reads every row of the table.
func TestAdversarial20DomainRowFunction(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	proxytest.SeedMarkers(t)
	drop := `DROP DOMAIN IF EXISTS public.adv20_row, public.adv20_row2 CASCADE; DROP FUNCTION IF EXISTS public.adv20_leakv, public.adv20_text(text), public.adv20_big(bigint)`
	for _, sql := range []string{drop,
		`CREATE DOMAIN public.adv20_row AS public.responses`,
		`CREATE DOMAIN public.adv20_row2 AS public.adv20_row`,
		`CREATE FUNCTION public.adv20_leak(r public.adv20_row) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
		`CREATE FUNCTION public.adv20_leakv(VARIADIC r public.responses[]) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
		`CREATE FUNCTION public.adv20_text(x text) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
		`CREATE FUNCTION public.adv20_big(x bigint) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
		`CREATE FUNCTION public.adv20_leak2(r public.adv20_row2) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"a function of a domain over the row's type is refused as r.f", "SELECT r.adv20_leak FROM responses r WHERE id = 1"},
		{"a function of a domain over the row's type is refused as (r).f", "SELECT (r).adv20_leak FROM responses r WHERE id = 1"},
		{"a function of a domain over such a domain is refused as r.f", "SELECT r.adv20_leak2 FROM responses r WHERE id = 1"},
		{"a variadic function of the row's type is refused as r.f", "SELECT r.adv20_leakv FROM responses r WHERE id = 1"},
		{"a function of a column's type is refused as a field selection", "SELECT (r.comment).adv20_text FROM responses r WHERE id = 1"},
		{"a function of a type a column casts to implicitly is refused as a field selection", "SELECT (r.id).adv20_big FROM responses r WHERE id = 1"},
		{"a function of a scalar is refused as a field selection of an expression", "SELECT (r.country || '').adv20_text FROM responses r WHERE id = 1"},
		{"a function of a scalar function's row is refused as g.f", "SELECT g.adv20_big FROM generate_series(1, 1) g"},
		{"a function of an unaliased scalar function's row is refused as f.g", "SELECT generate_series.adv20_big FROM generate_series(1, 1)"},
		{"a function of an unnested column's row is refused as u.f", "SELECT u.adv20_text FROM responses r, unnest(ARRAY[r.comment]) u WHERE r.id = 1"},
		{"a function of a domain over the row's type is refused by name", "SELECT adv20_leak(r) FROM responses r WHERE id = 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501): the function reads every row as the service account", c.sql, got)
			}
		})
	}
}

// TestAdversarial20NamesHeld holds the angles of the twentieth red team
// on names that pgveil and PostgreSQL resolve alike: identifiers cut at
// NAMEDATALEN (63 bytes, at a UTF-8 character boundary), quoted,
// Unicode-escaped and case-folded spellings, three-part names, ONLY and
// *, whole rows and field selections, CTEs named like governed tables,
// and names in strings. Each runs as marie (France rows only; the masked
// columns NULL): it either answers without a marker of a hidden row or a
// masked value, or is refused with 42501.
func TestAdversarial20NamesHeld(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	proxytest.SeedMarkers(t)
	// tab is 63 bytes, ending in a two-byte character; short is 60 bytes,
	// what PostgreSQL keeps of a name whose four-byte character crosses
	// byte 63; col, 63 bytes, is masked.
	tab := "adv20_" + strings.Repeat("x", 55) + "é"
	short := "adv20_" + strings.Repeat("x", 54)
	col := "s" + strings.Repeat("y", 60) + "é"
	drop := `DROP TABLE IF EXISTS public."` + tab + `", public."` + short + `"`
	for _, sql := range []string{drop,
		`CREATE TABLE public."` + tab + `" (id int, country text, "` + col + `" text)`,
		`CREATE TABLE public."` + short + `" (id int, country text, "` + col + `" text)`,
		`INSERT INTO public."` + tab + `" VALUES (1, 'France', 'MARKER-MASKED-T'), (2, 'USA', 'MARKER-HIDDEN-ROW-T')`,
		`INSERT INTO public."` + short + `" VALUES (1, 'France', 'MARKER-MASKED-S'), (2, 'USA', 'MARKER-HIDDEN-ROW-S')`,
		`GRANT SELECT ON public."` + tab + `", public."` + short + `" TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	raw, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	extra := ""
	for _, n := range []string{tab, short} {
		extra += fmt.Sprintf(`
table "public.%s" {
  column "%s" { class = "pii" }
}
rule "adv20_%d" {
  tables = ["public.%s"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`, n, col, len(n), n)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	conn := p.Connect(t, "marie").PgConn()

	const ids = " WHERE id IN (1, 2, 990001)"
	longTab := tab + "zzz"   // PostgreSQL reads tab
	quadTab := short + "😀zz" // the emoji crosses byte 63: short
	longCol := col + "zzz"
	uTab := `U&"` + strings.TrimSuffix(tab, "é") + `\00e9zzz"`
	uCol := `U&"!0073` + strings.TrimPrefix(strings.TrimSuffix(col, "é"), "s") + `!00e9" UESCAPE '!'`
	const ok, refused = "answers", "refused"
	cases := []struct{ name, sql, want string }{
		{"a table named past 63 bytes is the governed table its first 63 bytes name", "SELECT " + longCol + " FROM " + longTab + ids, ok},
		{"a quoted spelling past 63 bytes is cut at the same character", `SELECT "` + longCol + `" FROM "` + longTab + `"` + ids, ok},
		{"a four-byte character across byte 63 is dropped whole", "SELECT " + longCol + " FROM " + quadTab + ids, ok},
		{"a Unicode-escaped spelling is cut after unescaping", "SELECT " + uCol + " FROM " + uTab + ids, ok},
		{"a Unicode-escaped four-byte character across byte 63 is dropped whole", "SELECT " + longCol + ` FROM U&"` + short + `\+01F600zz"` + ids, ok},
		{"a long alias reads the same masked column", "SELECT a" + strings.Repeat("b", 70) + "." + longCol + " FROM " + longTab + " a" + strings.Repeat("b", 80) + ids, ok},
		{"a CTE named by a long spelling shadows the table only where PostgreSQL's does",
			"WITH " + longTab + " AS (SELECT * FROM public." + tab + ids + ") SELECT " + col + " FROM " + tab, ok},
		{"a non-recursive CTE's own body reads the governed table", "WITH " + tab + " AS (SELECT * FROM " + longTab + ids + ") SELECT " + col + " FROM " + tab, ok},
		{"a whole row of a long-named table is masked", "SELECT t::text FROM " + longTab + " t" + ids, ok},
		{"the current database's name qualifies a governed table", "SELECT email FROM feedback.public.responses" + ids, ok},
		{"an upper-case three-part name folds as PostgreSQL folds it", "SELECT EMAIL FROM FEEDBACK.PUBLIC.RESPONSES" + ids, ok},
		{"another database's name is refused", "SELECT email FROM postgres.public.responses" + ids, refused},
		{"ONLY reads the governed table", "SELECT email FROM ONLY responses" + ids, ok},
		{"a star after the name reads the governed table", "SELECT email FROM responses *" + ids, ok},
		{"quoted schema and table read the governed table", `SELECT "email" FROM "public"."responses"` + ids, ok},
		{"Unicode escapes with UESCAPE name the governed table and column", `SELECT U&"!0065mail" UESCAPE '!' FROM U&"r\0065sponses"` + ids, ok},
		{"a quoted upper-case name is another, unknown, relation", `SELECT email FROM "Responses"` + ids, "error 42P01"},
		{"TABLE reads the governed table", "TABLE responses", ok},
		{"a quoted name holding a dot is one unknown relation", `SELECT email FROM "public.responses"` + ids, "error 42P01"},
		{"a quoted name holding a space is another unknown relation", `SELECT email FROM "responses "` + ids, "error 42P01"},
		{"columns renamed by an alias list stay masked", "SELECT r.a, r.b FROM responses AS r(x, y, a, b) WHERE x IN (1, 2, 990001)", ok},
		{"a table's columns beside a function's FROM item are read as columns", "SELECT r.email, g FROM responses r, generate_series(1, 1) g" + ids, ok},
		{"a function's FROM item named like the governed table reads nothing of it", "SELECT responses FROM generate_series(1, 1) responses", ok},
		{"a field of the whole row is masked", "SELECT (r).email, (r.*).email, r.email FROM responses r" + ids, ok},
		{"row_to_json of the alias is masked", "SELECT row_to_json(r)::text FROM responses r" + ids, ok},
		{"the table's own name as a whole row is masked", "SELECT responses::text, (responses).email FROM responses" + ids, ok},
		{"a field of a row rebuilt with a cast is masked", "SELECT (ROW(r.*)::responses).email FROM responses r" + ids, ok},
		{"a field of a row passed through a subquery is masked", "SELECT (x).email FROM (SELECT r FROM responses r) s(x) WHERE (x).id IN (1, 2, 990001)", ok},
		{"function-call notation for a column is refused, not run", "SELECT email(r) FROM responses r" + ids, refused},
		{"a CTE named like the governed table shadows it", "WITH responses AS (SELECT 'cte' AS email) SELECT email FROM responses", ok},
		{"a CTE in one arm of a UNION does not shadow the table in the other",
			"(WITH responses AS (SELECT 0 AS id, 'cte' AS email) SELECT email FROM responses) UNION ALL SELECT email FROM responses" + ids, ok},
		{"a CTE in a subquery does not shadow the table outside it",
			"SELECT r.email FROM (WITH responses AS (SELECT 1 AS id) SELECT id FROM responses) s, responses r WHERE r.id = s.id OR r.id IN (2, 990001)", ok},
		{"keywords and user functions as aliases read the same table", `SELECT "user".email, "current_user".email FROM responses "user", responses "current_user" WHERE "user".id IN (1, 2, 990001) AND "current_user".id = "user".id`, ok},
		{"a temporary schema's relation is refused", "SELECT * FROM pg_temp.responses", refused},
		{"a regclass literal resolves but reads nothing", "SELECT 'responses'::regclass::text, to_regclass('public.responses')::text", ok},
		{"table_to_xml reading a table by name is refused", "SELECT table_to_xml('responses', true, false, '')::text", refused},
		{"query_to_xml running a query from text is refused", "SELECT query_to_xml('select email from responses', true, false, '')::text", refused},
		{"cursor_to_xml is refused", "SELECT cursor_to_xml('c', 1, true, false, '')::text", refused},
		{"schema_to_xml is refused", "SELECT schema_to_xml('public', true, false, '')::text", refused},
		{"database_to_xml is refused", "SELECT database_to_xml(true, false, '')::text", refused},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") {
				t.Fatalf("%s\n  => %s\nleaks a hidden row or a masked value", c.sql, got)
			}
			switch c.want {
			case ok:
				if strings.HasPrefix(got, "error") {
					t.Fatalf("%s\n  => %s, want an answer", c.sql, got)
				}
			case refused:
				if !strings.HasPrefix(got, "error 42501") {
					t.Fatalf("%s\n  => %s, want a refusal (42501)", c.sql, got)
				}
			default:
				if !strings.HasPrefix(got, c.want) {
					t.Fatalf("%s\n  => %s, want %s", c.sql, got, c.want)
				}
			}
		})
	}
}
