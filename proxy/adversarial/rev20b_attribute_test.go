package adversarial_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestRev20bMissingValueAngles: pg_attribute.attmissingval is the real
// value of a masked column in the rows older than it; every way of
// reading pg_attribute (qualified or not, ONLY, *, a CTE, TABLE, a
// sublink, a predicate, a whole row, a cursor, COPY) must serve it NULL,
// or be refused.
func TestRev20bMissingValueAngles(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP TABLE IF EXISTS public.rev20b_staff`
	for _, sql := range []string{drop,
		`CREATE TABLE public.rev20b_staff (id int, country text)`,
		`INSERT INTO public.rev20b_staff VALUES (1, 'France'), (2, 'USA')`,
		`SET app.rev20b = 'MARKER-MISSING'; ALTER TABLE public.rev20b_staff ADD COLUMN secret text DEFAULT current_setting('app.rev20b')`,
		`GRANT SELECT ON public.rev20b_staff TO pgveil_svc`,
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
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.rev20b_staff" {
  column "secret" { class = "pii" }
}
rule "rev20b_own_country" {
  tables = ["public.rev20b_staff"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	conn := p.Connect(t, "marie").PgConn()
	const rel = `attrelid = 'public.rev20b_staff'::regclass`
	for _, c := range []struct{ name, sql string }{
		{"unqualified", `SELECT attmissingval::text FROM pg_attribute WHERE ` + rel},
		{"quoted and upper-case", `SELECT "attmissingval"::text FROM PG_CATALOG."pg_attribute" WHERE ` + rel},
		{"with ONLY", `SELECT attmissingval::text FROM ONLY pg_catalog.pg_attribute WHERE ` + rel},
		{"with an inheritance star", `SELECT attmissingval::text FROM pg_catalog.pg_attribute * WHERE ` + rel},
		{"through a CTE", `WITH x AS (SELECT * FROM pg_attribute) SELECT attmissingval::text FROM x WHERE ` + rel},
		{"through TABLE", `SELECT attmissingval::text FROM (TABLE pg_attribute) x WHERE ` + rel},
		{"in a sublink", `SELECT (SELECT max(attmissingval::text) FROM pg_attribute WHERE ` + rel + `)`},
		{"in a predicate", `SELECT 'MARKER-PREDICATE' FROM pg_attribute WHERE ` + rel + ` AND attmissingval::text LIKE '%MARKER-MISSING%'`},
		{"in an EXISTS", `SELECT 'MARKER-EXISTS' WHERE EXISTS (SELECT FROM pg_attribute WHERE attmissingval::text LIKE '%MARKER-MISSING%')`},
		{"in a join condition", `SELECT 'MARKER-JOIN' FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attmissingval::text LIKE '%MARKER-MISSING%'`},
		{"as a whole row to JSON", `SELECT row_to_json(a)::text FROM pg_attribute a WHERE ` + rel},
		{"as a whole row to text", `SELECT a::text FROM pg_attribute a WHERE ` + rel},
		{"as a field of the whole row", `SELECT (a).attmissingval::text FROM pg_attribute a WHERE ` + rel},
		{"qualified by the relation's name", `SELECT pg_attribute.attmissingval::text FROM pg_catalog.pg_attribute WHERE ` + rel},
		{"through LATERAL", `SELECT x.v FROM pg_class c, LATERAL (SELECT attmissingval::text v FROM pg_attribute a WHERE a.attrelid = c.oid) x WHERE c.relname = 'rev20b_staff'`},
		{"through a cursor", `BEGIN; DECLARE cu CURSOR FOR SELECT attmissingval::text FROM pg_attribute WHERE ` + rel + `; FETCH ALL cu; COMMIT`},
		{"through a set operation", `SELECT attmissingval::text FROM pg_attribute WHERE ` + rel + ` UNION ALL SELECT NULL`},
		{"through information_schema.columns", `SELECT column_default FROM information_schema.columns WHERE table_name = 'rev20b_staff'`},
		{"through the system column xmin", `SELECT a.xmin IS NOT NULL, a.attmissingval::text FROM pg_attribute a WHERE ` + rel},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || strings.HasPrefix(got, "error") && !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant no missing value (or a 42501 refusal)", c.sql, got)
			}
		})
	}
	for _, q := range []string{
		`COPY (SELECT attmissingval::text FROM pg_attribute WHERE ` + rel + `) TO STDOUT`,
		`COPY pg_catalog.pg_attribute TO STDOUT`,
		`COPY pg_attribute (attrelid, attmissingval) TO STDOUT`,
	} {
		t.Run("through "+q, func(t *testing.T) {
			var b bytes.Buffer
			_, err := conn.CopyTo(ctx, &b, q)
			if strings.Contains(b.String(), "MARKER") {
				t.Fatalf("COPY gave the missing value (%v)", err)
			}
			t.Logf("%d bytes, %v", b.Len(), err)
		})
	}
}

// TestRev20bAttributeSystemColumns: the IDEs read the xmin of catalogs
// (DataGrip's change detection); pg_attribute, served through pgveil's
// subquery, still gives it.
func TestRev20bAttributeSystemColumns(t *testing.T) {
	ctx := context.Background()
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	for _, q := range []string{
		`SELECT a.attname, a.xmin IS NOT NULL FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'public.responses'::regclass AND a.attnum = 1`,
		`SELECT attname, xmin IS NOT NULL FROM pg_attribute WHERE attrelid = 'public.responses'::regclass AND attnum = 1`,
	} {
		t.Run(q, func(t *testing.T) {
			if got := proxytest.Answer(ctx, conn, q); strings.HasPrefix(got, "error") {
				t.Errorf("%s\n  => %s", q, got)
			}
		})
	}
	t.Run("pg_tablespace_location through attribute notation is refused, not run", func(t *testing.T) {
		// Only a call pgveil sees as one is answered NULL::text.
		const q = `SELECT (oid).pg_tablespace_location FROM pg_tablespace`
		if got := proxytest.Answer(ctx, conn, q); !strings.HasPrefix(got, "error 42501") {
			t.Errorf("%s\n  => %s, want a refusal (42501)", q, got)
		}
	})
}
