package rewrite_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestValuesReadAsATypeNoNameShowsRunItsDomainsChecks: a Parse may
// declare, by OID, any type made of a checked domain (a composite type
// with a field of it, its array, a range or multirange over it, a domain
// over such a row), and pg_catalog's typed input functions take the type
// as an argument: each reads the user's text through the domain's
// CHECK, which counts as a call of the functions it calls. Ordinary
// declared types (pgjdbc's, an unknown OID, an extension's) pass.
func TestValuesReadAsATypeNoNameShowsRunItsDomainsChecks(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.known(text) RETURNS boolean LANGUAGE sql AS 'SELECT EXISTS (SELECT FROM public.responses WHERE email = $1)';
CREATE DOMAIN public.known_email AS text CHECK (public.known(VALUE));
CREATE TYPE public.email_pair AS (e public.known_email);
CREATE DOMAIN public.pair_dom AS public.email_pair;
CREATE TYPE public.erange AS RANGE (subtype = public.known_email);
ALTER TABLE public.countries ADD COLUMN rev21a_tags public.known_email[];
ALTER TABLE public.countries ADD COLUMN rev21a_pair public.email_pair;
CREATE FUNCTION public.rev21d_rows() RETURNS SETOF public.countries LANGUAGE sql AS 'SELECT * FROM public.countries';
CREATE FUNCTION public.rev21d_tags() RETURNS public.known_email[] LANGUAGE sql AS 'SELECT NULL::public.known_email[]';
CREATE FUNCTION public.rev21d_table() RETURNS TABLE (n int, e public.known_email) LANGUAGE sql AS 'SELECT 1, NULL::public.known_email';
CREATE FUNCTION public.rev21e_any() RETURNS SETOF record LANGUAGE sql AS 'SELECT NULL::text[]';
CREATE FUNCTION public.rev21e_op(text, text) RETURNS public.known_email[] LANGUAGE sql AS 'SELECT NULL::public.known_email[]';
CREATE OPERATOR public.### (leftarg = text, rightarg = text, function = public.rev21e_op);
CREATE SCHEMA rev21e;
CREATE FUNCTION rev21e.rev21d_tags(int) RETURNS int LANGUAGE sql AS 'SELECT $1'`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	oid := func(n string) uint32 {
		r := conn.ExecParams(ctx, "SELECT '"+n+"'::regtype::oid", nil, nil, nil, nil).Read()
		if r.Err != nil {
			t.Fatal(r.Err)
		}
		v, err := strconv.ParseUint(string(r.Rows[0][0]), 10, 32)
		if err != nil {
			t.Fatal(err)
		}
		return uint32(v)
	}
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	refused := func(t *testing.T, what string, err error) {
		t.Helper()
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" {
			t.Errorf("%s: want a refusal by rule function, got %v", what, err)
		}
	}
	t.Run("a Parse declaring a type made of the domain is refused", func(t *testing.T) {
		for _, n := range []string{"known_email", "email_pair", "_known_email", "_email_pair", "pair_dom", "_pair_dom", "erange", "_erange", "emultirange", "_emultirange"} {
			_, err := e.RewriteParse(ctx, "marie", "SELECT 1", []uint32{0, oid(n)})
			refused(t, "declared "+n, err)
		}
	})
	t.Run("a Parse declaring ordinary, unknown or unused OIDs passes", func(t *testing.T) {
		for _, types := range [][]uint32{{1043, 23, 1184, 0, 1007, 1009}, {99999}, {16385, 20000}, {705, 25}, {20, 1700, 16, 17, 1114, 2950, 3802}} {
			if _, err := e.RewriteParse(ctx, "marie", "SELECT count(*) FROM responses WHERE email = $1", types); err != nil {
				t.Errorf("declared %v: %v", types, err)
			}
		}
	})
	t.Run("a typed input function is refused", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT record_in('(x)', 'email_pair'::regtype, -1)",
			"SELECT domain_in('x', 'known_email'::regtype, -1)",
			"SELECT array_in('{x}', 'known_email'::regtype, -1)",
			"SELECT range_in('[x,y]', 'erange'::regtype, -1)",
			"SELECT multirange_in('{[x,y]}', 'emultirange'::regtype, -1)",
			"SELECT pg_catalog.record_in('(x)'::cstring, 'email_pair'::regtype::oid, -1)",
			"SELECT pg_input_is_valid('x', 'known_email')",
			"SELECT * FROM pg_input_error_info('x', 'known_email')",
		} {
			_, err := rewrite.Rewrite(sql, cat, p)
			refused(t, sql, err)
		}
	})
	t.Run("type names in sublinks, CTEs, LATERAL and ROWS FROM are refused", func(t *testing.T) {
		for _, sql := range []string{
			`SELECT (SELECT e FROM json_to_record('{"e":"x"}') AS x(e known_email))`,
			`WITH c AS (SELECT * FROM json_to_record('{"e":"x"}') AS x(e known_email)) SELECT * FROM c`,
			`SELECT * FROM countries, LATERAL json_to_record('{"e":"x"}') AS x(e known_email)`,
			`SELECT * FROM ROWS FROM (json_to_record('{"e":"x"}') AS (e known_email), generate_series(1,2))`,
			`SELECT * FROM json_to_record('{"e":"x"}') AS x(e erange)`,
			`SELECT jsonb_populate_record(base => NULL::countries, from_json => '{}')`,
			`SELECT jsonb_populate_record(NULL::pair_dom, '{"e":"x"}')`,
			`DECLARE c CURSOR FOR SELECT * FROM json_to_record('{"e":"x"}') AS x(e known_email)`,
			`EXPLAIN SELECT * FROM json_to_record('{"e":"x"}') AS x(e known_email)`,
			`COPY (SELECT * FROM json_to_record('{"e":"x"}') AS x(e known_email)) TO STDOUT`,
			`PREPARE pp(known_email[]) AS SELECT 1`,
		} {
			_, err := rewrite.Rewrite(sql, cat, p)
			refused(t, sql, err)
		}
	})
	t.Run("a relation with a column of a type made of the domain is refused", func(t *testing.T) {
		// PostgreSQL gives 'x' the type of the column it meets: the
		// domain's CHECK runs on it with no type name in the statement.
		_, err := rewrite.Rewrite("SELECT rev21a_tags FROM countries", cat, p)
		if err == nil || !strings.Contains(err.Error(), "of the type known_email[] whose") || !strings.Contains(err.Error(), "public.known") {
			t.Errorf("the refusal names neither the column's type nor the function to list: %v", err)
		}
		for _, sql := range []string{
			"SELECT array_position(rev21a_tags, 'x') FROM countries",
			"SELECT (SELECT count(*) FROM countries c WHERE c.rev21a_tags @> '{x}')",
			"WITH c AS (SELECT rev21a_tags FROM countries) SELECT coalesce(rev21a_tags, '{x}') FROM c",
			"SELECT coalesce(rev21a_pair, '(x)') FROM countries",
		} {
			_, err := rewrite.Rewrite(sql, cat, p)
			refused(t, sql, err)
		}
	})
	t.Run("a function whose result is of a type made of the domain is refused, listed or not", func(t *testing.T) {
		// Listing rev21d_rows lets its body run, not the domain's
		// CHECK on the 'x' the statement writes beside its result.
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{
			"public.rev21d_rows": true, "public.rev21d_tags": true, "public.rev21d_table": true}}
		for _, sql := range []string{
			"SELECT array_position(rev21a_tags, 'x') FROM rev21d_rows()",
			"SELECT r.rev21a_tags @> '{x}' FROM ROWS FROM (public.rev21d_rows()) r",
			"SELECT array_position(rev21d_tags(), 'x')",
			"SELECT coalesce(e, 'x') FROM rev21d_table()",
		} {
			_, err := rewrite.Rewrite(sql, cat, p)
			refused(t, sql, err)
		}
		p.allowed["public.known"] = true
		for _, sql := range []string{
			"SELECT array_position(rev21a_tags, 'x') FROM rev21d_rows()",
			"SELECT coalesce(e, 'x') FROM rev21d_table()",
		} {
			if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	t.Run("a value of the domain by a column definition list or an operator's function is refused", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{
			"public.rev21e_any": true, "public.rev21e_op": true, "rev21e.rev21d_tags": true}}
		for _, sql := range []string{
			"SELECT array_position(x.t, 'x') FROM rev21e_any() AS x(t public.known_email[])",
			"SELECT array_position(x.t, 'x') FROM ROWS FROM (rev21e_any() AS (t known_email[])) x",
			"SELECT array_position('a' ### 'b', 'x')",
			"SELECT rev21e.rev21d_tags(1)",
		} {
			_, err := rewrite.Rewrite(sql, cat, p)
			refused(t, sql, err)
		}
	})
	t.Run("with the function allowed, they run", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{"public.known": true}}
		for _, sql := range []string{
			"SELECT domain_in('x', 'known_email'::regtype, -1)",
			"SELECT record_in('(x)', 'email_pair'::regtype, -1)",
			"SELECT array_position(rev21a_tags, 'x') FROM countries",
		} {
			if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
}

// TestOperatorsCommutatorsAndNegatorsCount: the planner runs a DBA
// operator's negator in its place for NOT (a op b), and may commute
// a op b to match an index or a join: their functions are called as the
// service account although the statement names only op. The function
// policy counts them as the operator's own.
func TestOperatorsCommutatorsAndNegatorsCount(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev21f_lt(text, text) RETURNS boolean LANGUAGE plpgsql AS 'BEGIN RETURN $1 < $2; END';
CREATE FUNCTION public.rev21f_ge(text, text) RETURNS boolean LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''rev21f_ge read %'', $1; END';
CREATE FUNCTION public.rev21f_gt(text, text) RETURNS boolean LANGUAGE plpgsql AS 'BEGIN RETURN $1 > $2; END';
CREATE OPERATOR public.#<# (leftarg = text, rightarg = text, function = public.rev21f_lt, negator = #>=#, commutator = #>#);
CREATE OPERATOR public.#>=# (leftarg = text, rightarg = text, function = public.rev21f_ge);
CREATE OPERATOR public.#># (leftarg = text, rightarg = text, function = public.rev21f_gt)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()

	t.Run("PostgreSQL runs the negator's function for NOT", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SAVEPOINT s; SELECT 1 FROM countries WHERE NOT (name #<# 'b')").ReadAll()
		if err == nil || !strings.Contains(err.Error(), "rev21f_ge read") {
			t.Errorf("want the negator's function to run, got %v", err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})

	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		"SELECT 1 FROM countries WHERE NOT (name #<# 'b')",
		"SELECT NOT ('a' #<# 'b')",
		"SELECT 'a' #<# 'b'",
	}
	for _, tc := range []struct {
		name    string
		allowed []string
		refuses string
	}{
		{"with the negator's function not listed, the operator is refused", []string{"public.rev21f_lt", "public.rev21f_gt"}, "the negator #>=#"},
		{"with the commutator's function not listed, the operator is refused", []string{"public.rev21f_lt", "public.rev21f_ge"}, "the commutator #>#"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}
			for _, f := range tc.allowed {
				p.allowed[f] = true
			}
			for _, sql := range stmts {
				_, err := rewrite.Rewrite(sql, cat, p)
				var r *rewrite.Refused
				if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), tc.refuses) {
					t.Errorf("%s: want a refusal by rule function naming %s, got %v", sql, tc.refuses, err)
				}
			}
		})
	}
	t.Run("with the three functions listed, the operator runs", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{
			"public.rev21f_lt": true, "public.rev21f_ge": true, "public.rev21f_gt": true}}
		for _, sql := range stmts {
			if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
}
