package adversarial_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestRev21aColumnTypesRunDomainChecks: a value the user writes becomes
// the type of a column it meets without the statement naming that type:
// array_position(ARRAY[tag], 'x') reads 'x' as a value of tag's domain,
// tags @> '{x}' reads '{x}' as an array of it, a UNION reads ARRAY['x']
// as the column's type, and a parameter PostgreSQL infers from the
// column is read so by Bind. Each runs the domain's CHECK, and the
// function it calls as the service account: a statement reading a
// relation with a column of a type made of such a domain counts those
// functions, as a cast to the column's type does.
func TestRev21aColumnTypesRunDomainChecks(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP SCHEMA IF EXISTS rev21a CASCADE; DROP FUNCTION IF EXISTS public.rev21a_known(text)`
	for _, sql := range []string{drop,
		`CREATE FUNCTION public.rev21a_known(x text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS
		  $$BEGIN IF x IS NULL OR x LIKE 'ok%' THEN RETURN true; END IF;
		  RAISE EXCEPTION 'MARKER %', (SELECT string_agg(email, ',') FROM public.responses); END$$`,
		`CREATE SCHEMA rev21a`,
		`CREATE DOMAIN rev21a.okd AS text CHECK (public.rev21a_known(VALUE))`,
		`CREATE TABLE rev21a.tagged (id int, tag rev21a.okd, tags rev21a.okd[])`,
		`CREATE TABLE rev21a.plain (id int, note text)`,
		`INSERT INTO rev21a.tagged VALUES (1, 'ok1', '{ok2}')`,
		`INSERT INTO rev21a.plain VALUES (1, 'x')`,
		`CREATE VIEW rev21a.tagged_view AS SELECT id, tags FROM rev21a.tagged`,
		`CREATE FUNCTION rev21a.all_tagged() RETURNS SETOF rev21a.tagged LANGUAGE sql STABLE AS 'SELECT * FROM rev21a.tagged'`,
		`GRANT EXECUTE ON FUNCTION rev21a.all_tagged() TO pgveil_svc`,
		`GRANT USAGE ON SCHEMA rev21a TO pgveil_svc`,
		`GRANT SELECT, UPDATE ON rev21a.tagged, rev21a.plain TO pgveil_svc; GRANT SELECT ON rev21a.tagged_view TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	schema := func(cfg *policy.Config) {
		cfg.Schemas["rev21a"] = &policy.Schema{Name: "rev21a", Allow: true}
	}
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, schema)
	conn := p.Connect(t, "marie").PgConn()
	refused := func(t *testing.T, got, sql string) {
		t.Helper()
		if len(got) > 120 {
			got = got[:120] + "…"
		}
		if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
			t.Fatalf("%s\n  => %s\nwant a refusal (42501): the CHECK reads every row as the service account", sql, got)
		}
	}
	for _, c := range []struct{ name, sql string }{
		{"a literal read as the element of an array of the domain column is refused", `SELECT array_position(ARRAY[tag], 'x') FROM rev21a.tagged`},
		{"a literal compared with an array column of the domain is refused", `SELECT tags @> '{x}' FROM rev21a.tagged`},
		{"a typed array united with an array column of the domain is refused", `SELECT tags FROM rev21a.tagged UNION SELECT ARRAY['x']`},
		{"the column in a sublink is refused", `SELECT (SELECT array_agg(tag) FROM rev21a.tagged) @> '{x}'`},
		{"the column in a CTE is refused", `WITH c AS (SELECT tags FROM rev21a.tagged) SELECT coalesce(tags, '{x}') FROM c`},
		{"a view's column of the domain's array is refused", `SELECT tags @> '{x}' FROM rev21a.tagged_view`},
		{"domain_in quoted is refused", `SELECT "domain_in"('x', 'rev21a.okd'::regtype, -1)`},
		{"domain_in in upper case, qualified, is refused", `SELECT PG_CATALOG.DOMAIN_IN('x', 'rev21a.okd'::regtype, -1)`},
		{"domain_in in a LATERAL is refused", `SELECT * FROM rev21a.plain, LATERAL (SELECT domain_in('x', 'rev21a.okd'::regtype, -1)) l`},
	} {
		t.Run(c.name, func(t *testing.T) { refused(t, proxytest.Answer(ctx, conn, c.sql), c.sql) })
	}
	t.Run("a parameter whose type PostgreSQL infers from the column is refused", func(t *testing.T) {
		sql := `SELECT array_position(tags, $1) FROM rev21a.tagged`
		res := conn.ExecParams(ctx, sql, [][]byte{[]byte("x")}, nil, nil, nil).Read()
		got := "rows"
		var pe *pgconn.PgError
		if errors.As(res.Err, &pe) {
			got = "error " + pe.Code + " " + pe.Message
		}
		refused(t, got, sql)
	})
	t.Run("domain_in of a type given by a parameter is refused", func(t *testing.T) {
		sql := `SELECT domain_in($1, $2::oid, -1)`
		res := conn.ExecParams(ctx, sql, [][]byte{[]byte("x"), []byte("rev21a.okd")}, nil, nil, nil).Read()
		got := "rows"
		var pe *pgconn.PgError
		if errors.As(res.Err, &pe) {
			got = "error " + pe.Code + " " + pe.Message
		}
		refused(t, got, sql)
	})
	t.Run("a write whose target has the column is refused", func(t *testing.T) {
		p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(cfg *policy.Config) {
			schema(cfg)
			cfg.Roles["country_analyst"].Statements = append(cfg.Roles["country_analyst"].Statements, rewrite.KindUpdate)
		})
		sql := `UPDATE rev21a.tagged SET id = id WHERE tags @> '{x}'`
		refused(t, proxytest.Answer(ctx, p.Connect(t, "marie").PgConn(), sql), sql)
	})
	t.Run("pg_input_is_valid, missing on PostgreSQL 15, is refused or unknown", func(t *testing.T) {
		sql := `SELECT pg_input_is_valid('1', 'int4')`
		got := proxytest.Answer(ctx, conn, sql)
		if !strings.HasPrefix(got, "error 42501") && !strings.HasPrefix(got, "error 42883") && !strings.HasPrefix(got, "[\"t\"]") {
			t.Fatalf("%s => %s", sql, got)
		}
		t.Logf("%s => %s", sql, got)
	})
	t.Run("a relation without such a column still reads", func(t *testing.T) {
		sql := `SELECT array_position(ARRAY[note], 'x') FROM rev21a.plain`
		if got := proxytest.Answer(ctx, conn, sql); got != "[\"1\"]\n" {
			t.Fatalf("%s => %s", sql, got)
		}
	})
	t.Run("a listed function returning rows of the table is refused", func(t *testing.T) {
		// Listing all_tagged lets its body run, not the domain's CHECK
		// on the 'x' the statement writes beside its rows.
		p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(cfg *policy.Config) {
			schema(cfg)
			cfg.Roles["country_analyst"].Functions = append(cfg.Roles["country_analyst"].Functions, "rev21a.all_tagged")
		})
		conn := p.Connect(t, "marie").PgConn()
		for _, sql := range []string{
			`SELECT tags @> '{x}' FROM rev21a.all_tagged()`,
			`SELECT array_position(ARRAY[r.tag], 'x') FROM ROWS FROM (rev21a.all_tagged()) r`,
		} {
			refused(t, proxytest.Answer(ctx, conn, sql), sql)
		}
	})
	t.Run("the column reads where the role may call the CHECK's function", func(t *testing.T) {
		p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(cfg *policy.Config) {
			schema(cfg)
			cfg.Roles["country_analyst"].Functions = append(cfg.Roles["country_analyst"].Functions, "public.rev21a_known")
		})
		sql := `SELECT tag, tags FROM rev21a.tagged`
		if got := proxytest.Answer(ctx, p.Connect(t, "marie").PgConn(), sql); got != "[\"ok1\" \"{ok2}\"]\n" {
			t.Fatalf("%s => %s", sql, got)
		}
	})
}
