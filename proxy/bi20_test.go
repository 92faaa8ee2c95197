package proxy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestBI20Introspection runs, as governed users, the catalog queries BI
// tools and psql send to describe the database, and checks that each is
// answered as it is upstream where nothing of it is hidden, and that
// what stays refused says what to do.
func TestBI20Introspection(t *testing.T) {
	p := proxytest.StartDemo(t)

	t.Run("psql's \\db lists the tablespaces, their locations unknown", func(t *testing.T) {
		// psql's \db, as psql -E prints it; DBeaver's and pgAdmin's
		// tablespace lists read pg_tablespace_location too.
		const q = `SELECT spcname AS "Name",
  pg_catalog.pg_get_userbyid(spcowner) AS "Owner",
  pg_catalog.pg_tablespace_location(oid) AS "Location"
FROM pg_catalog.pg_tablespace
ORDER BY 1`
		want := proxytest.Direct(t, `SELECT spcname, pg_catalog.pg_get_userbyid(spcowner), NULL FROM pg_catalog.pg_tablespace ORDER BY 1`)
		for _, user := range []string{"marie", "tom", "bank_app"} {
			got := proxytest.Through(t, p.Connect(t, user), q)
			for i := range want {
				want[i][2] = "NULL"
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %v, want %v", user, got, want)
			}
		}
	})

	t.Run("a tablespace's location is answered NULL as text, whatever it is compared with", func(t *testing.T) {
		c := p.Connect(t, "marie")
		got := proxytest.Through(t, c, `SELECT pg_typeof(pg_tablespace_location(oid))::text, pg_tablespace_location(oid) IS NULL, coalesce(pg_catalog.pg_tablespace_location(oid), 'unknown') FROM pg_tablespace WHERE spcname = 'pg_default'`)
		if want := [][]string{{"text", "t", "unknown"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("psql's \\deu is refused with a hint that names user mappings", func(t *testing.T) {
		c := p.Connect(t, "marie")
		err := c.PgConn().Exec(context.Background(), `SELECT um.srvname AS "Server",
  um.usename AS "User name"
FROM pg_catalog.pg_user_mappings um
ORDER BY 1, 2`).Close()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("got %v, want a 42501 refusal: the service account's mappings hold its credentials", err)
		}
		if !strings.Contains(pgErr.Hint, "user mappings") {
			t.Errorf("the hint %q does not say why user mappings are hidden", pgErr.Hint)
		}
	})

	t.Run("each refusal an introspecting user meets says what to do in its hint", func(t *testing.T) {
		c := p.Connect(t, "marie")
		for _, tc := range []struct{ name, sql string }{
			{"a file function", "SELECT pg_ls_dir('.')"},
			{"psql's \\dl", `SELECT oid as "ID", pg_catalog.pg_get_userbyid(lomowner) as "Owner", pg_catalog.obj_description(oid, 'pg_largeobject') as "Description" FROM pg_catalog.pg_largeobject_metadata ORDER BY oid`},
			{"a row count through query_to_xml", `SELECT query_to_xml('SELECT count(*) FROM responses', false, true, '')`},
		} {
			err := c.PgConn().Exec(context.Background(), tc.sql).Close()
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Errorf("%s: got %v, want a 42501 refusal", tc.name, err)
				continue
			}
			if pgErr.Hint == "" {
				t.Errorf("%s: the refusal %q has no hint", tc.name, pgErr.Message)
			}
		}
	})
}

// TestBI20MissingValue: a column added with a default that is not
// volatile is not written to the rows already there; PostgreSQL keeps
// the default's value, computed once by the ALTER TABLE, in
// pg_attribute.attmissingval, and reads it as the column's value of
// those rows. Where the column is masked, attmissingval is the real
// value of every such row, which pg_attrdef's expression
// (current_setting(…)) does not tell: pg_attribute serves it NULL.
func TestBI20MissingValue(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP TABLE IF EXISTS public.bi20_staff`
	for _, sql := range []string{drop,
		`CREATE TABLE public.bi20_staff (id int, country text)`,
		`INSERT INTO public.bi20_staff VALUES (1, 'France'), (2, 'USA')`,
		`SET app.bonus = '4242'; ALTER TABLE public.bi20_staff ADD COLUMN bonus int DEFAULT current_setting('app.bonus')::int`,
		`GRANT SELECT ON public.bi20_staff TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	if got := proxytest.Direct(t, `SELECT attmissingval::text FROM pg_attribute WHERE attrelid = 'public.bi20_staff'::regclass AND attname = 'bonus'`); !reflect.DeepEqual(got, [][]string{{"{4242}"}}) {
		t.Fatalf("upstream, attmissingval is %v, want {4242}: the test proves nothing", got)
	}
	raw, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.bi20_staff" {
  column "bonus" { class = "pii" }
}
rule "bi20_own_country" {
  tables = ["public.bi20_staff"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	marie := p.Connect(t, "marie")

	t.Run("the masked column reads NULL", func(t *testing.T) {
		if got := proxytest.Through(t, marie, `SELECT id, bonus FROM bi20_staff`); !reflect.DeepEqual(got, [][]string{{"1", "NULL"}}) {
			t.Fatalf("got %v", got)
		}
	})
	t.Run("pg_attribute does not tell the masked column's value of the rows older than it", func(t *testing.T) {
		for _, q := range []string{
			`SELECT attmissingval::text FROM pg_attribute WHERE attrelid = 'public.bi20_staff'::regclass AND attname = 'bonus'`,
			`SELECT a.attmissingval::text FROM pg_catalog.pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE c.relname = 'bi20_staff' AND a.attname = 'bonus'`,
			`SELECT (to_jsonb(a) ->> 'attmissingval') FROM pg_attribute a WHERE attrelid = 'public.bi20_staff'::regclass AND attname = 'bonus'`,
		} {
			if got := proxytest.Through(t, marie, q); !reflect.DeepEqual(got, [][]string{{"NULL"}}) {
				t.Errorf("%s: got %v, the real bonus of the rows older than the column", q, got)
			}
		}
	})
	t.Run("the rest of pg_attribute is served as upstream", func(t *testing.T) {
		const q = `SELECT attname, atttypid::regtype::text, attnum, attnotnull, atthasdef, atthasmissing, attisdropped FROM pg_attribute WHERE attrelid = 'public.bi20_staff'::regclass ORDER BY attnum`
		if got, want := proxytest.Through(t, marie, q), proxytest.Direct(t, q); !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})
}
