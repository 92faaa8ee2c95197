package rewrite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// rev21gSetup: a DBA enum type whose default btree and hash operator
// classes, and a range type whose subtype operator class, call SQL
// functions that raise an error naming the value they read.
const rev21gSetup = `BEGIN;
CREATE TYPE public.rev21g_mood AS ENUM ('calm', 'cross');
CREATE FUNCTION public.rev21g_cmp(public.rev21g_mood, public.rev21g_mood) RETURNS int LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''rev21g_cmp read %'', (SELECT string_agg(name, '','') FROM public.countries); END';
CREATE FUNCTION public.rev21g_hash(public.rev21g_mood) RETURNS int LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''rev21g_hash read %'', (SELECT string_agg(name, '','') FROM public.countries); END';
CREATE FUNCTION public.rev21g_eq(public.rev21g_mood, public.rev21g_mood) RETURNS boolean LANGUAGE sql AS 'SELECT $1::text = $2::text';
CREATE FUNCTION public.rev21g_lt(public.rev21g_mood, public.rev21g_mood) RETURNS boolean LANGUAGE sql AS 'SELECT $1::text < $2::text';
CREATE OPERATOR public.<<~ (leftarg = public.rev21g_mood, rightarg = public.rev21g_mood, function = public.rev21g_lt);
CREATE OPERATOR public.=~ (leftarg = public.rev21g_mood, rightarg = public.rev21g_mood, function = public.rev21g_eq, hashes, merges);
CREATE OPERATOR CLASS public.rev21g_btree DEFAULT FOR TYPE public.rev21g_mood USING btree AS
  OPERATOR 1 public.<<~, OPERATOR 3 public.=~,
  FUNCTION 1 public.rev21g_cmp(public.rev21g_mood, public.rev21g_mood);
CREATE OPERATOR CLASS public.rev21g_hash DEFAULT FOR TYPE public.rev21g_mood USING hash AS
  OPERATOR 1 public.=~, FUNCTION 1 public.rev21g_hash(public.rev21g_mood);
CREATE FUNCTION public.rev21g_tcmp(text, text) RETURNS int LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''rev21g_tcmp read %'', $1; END';
CREATE OPERATOR CLASS public.rev21g_text FOR TYPE text USING btree AS
  OPERATOR 1 pg_catalog.<, OPERATOR 3 pg_catalog.=, FUNCTION 1 public.rev21g_tcmp(text, text);
CREATE TYPE public.rev21g_span AS RANGE (subtype = text, subtype_opclass = public.rev21g_text);
ALTER TABLE public.countries ADD COLUMN rev21g_m public.rev21g_mood DEFAULT 'calm';
ALTER TABLE public.countries ADD COLUMN rev21g_s public.rev21g_span`

// TestOperatorClassesCount: PostgreSQL sorts, groups, hashes and
// compares a value by its type's default btree and hash operator
// classes (a range by its subtype's operator class, also when it builds
// one), with no operator in the statement: a DBA's class over an enum
// or a range type runs the DBA's functions as the service account. A
// relation with a column of such a type, a cast to it and a function
// returning it count them.
func TestOperatorClassesCount(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, rev21gSetup).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	for _, tc := range []struct{ sql, runs, refuses string }{
		{"SELECT rev21g_m FROM countries ORDER BY rev21g_m", "rev21g_cmp read France", "operator class public.rev21g_btree"},
		{"SELECT DISTINCT rev21g_m FROM countries", "rev21g_hash read France", "operator class public.rev21g_"},
		{"SELECT rev21g_m FROM countries GROUP BY rev21g_m", "rev21g_hash read France", "operator class public.rev21g_"},
		{"SELECT rev21g_m FROM countries UNION SELECT rev21g_m FROM countries", "rev21g_hash read France", "operator class public.rev21g_"},
		{"SELECT array_agg(rev21g_m ORDER BY rev21g_m) FROM countries", "rev21g_cmp read France", "operator class public.rev21g_"},
		{"SELECT count(*) OVER (PARTITION BY rev21g_m) FROM countries", "rev21g_cmp read France", "operator class public.rev21g_"},
		{"SELECT '[a,b]'::rev21g_span", "rev21g_tcmp read a", "subtype operator class public.rev21g_text"},
		{"SELECT x FROM (VALUES ('calm'::rev21g_mood), ('cross')) v (x) ORDER BY 1", "rev21g_cmp read France", "a cast to rev21g_mood"},
	} {
		t.Run("PostgreSQL runs the class's function for "+tc.sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, "SAVEPOINT s; "+tc.sql).ReadAll()
			if err == nil || !strings.Contains(err.Error(), tc.runs) {
				t.Errorf("want %q, got %v", tc.runs, err)
			}
			if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s").ReadAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	stmts := []string{
		"SELECT rev21g_m FROM countries ORDER BY rev21g_m",
		"SELECT DISTINCT rev21g_m FROM countries",
		"SELECT count(*) OVER (PARTITION BY rev21g_m) FROM countries",
		"SELECT '[a,b]'::rev21g_span",
		"SELECT x FROM (VALUES ('calm'::rev21g_mood), ('cross')) v (x) ORDER BY 1",
		"SELECT rev21g_span('a', 'b')",
	}
	t.Run("with the classes' functions not listed, pgveil refuses", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{
			"public.rev21g_lt": true, "public.rev21g_eq": true, "public.rev21g_span": true}}
		for _, sql := range stmts {
			_, err := rewrite.Rewrite(sql, cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "operator class") {
				t.Errorf("%s: want a refusal by rule function naming the operator class, got %v", sql, err)
			}
		}
	})
	t.Run("with every function listed, pgveil rewrites", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}
		for _, f := range []string{"lt", "eq", "cmp", "hash", "tcmp", "span"} {
			p.allowed["public.rev21g_"+f] = true
		}
		for _, sql := range stmts {
			if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
}

// TestOperatorsChainsCount: the planner rewrites NOT (a op b) to op's
// negator, then commutes that to put a hash join's sides in place: the
// negator's commutator's function runs, and the hash function of the
// operator family that makes it hashable, though the statement names
// only op. The function policy counts the chain and the families.
func TestOperatorsChainsCount(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev21g_ne(text, text) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS 'BEGIN RETURN $1 <> $2; END';
CREATE FUNCTION public.rev21g_eq2(text, text) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS 'BEGIN RETURN $1 = $2; END';
CREATE FUNCTION public.rev21g_com(text, text) RETURNS boolean IMMUTABLE LANGUAGE plpgsql AS 'BEGIN RAISE EXCEPTION ''rev21g_com read % %'', $1, $2; END';
CREATE FUNCTION public.rev21g_h(text) RETURNS int IMMUTABLE LANGUAGE plpgsql AS 'BEGIN RETURN hashtext($1); END';
CREATE OPERATOR public.#==# (leftarg = text, rightarg = text, function = public.rev21g_com);
CREATE OPERATOR public.#=# (leftarg = text, rightarg = text, function = public.rev21g_eq2, commutator = #==#, hashes);
CREATE OPERATOR public.#<># (leftarg = text, rightarg = text, function = public.rev21g_ne, negator = #=#);
CREATE OPERATOR CLASS public.rev21g_th FOR TYPE text USING hash AS OPERATOR 1 public.#=#, FUNCTION 1 public.rev21g_h(text);
CREATE OPERATOR CLASS public.rev21g_th2 FOR TYPE text USING hash AS OPERATOR 1 public.#==#, FUNCTION 1 pg_catalog.hashtext(text);
SET LOCAL enable_nestloop = off; SET LOCAL enable_mergejoin = off`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	const sql = "SELECT count(*) FROM countries a JOIN countries b ON NOT (b.name #<># a.name)"
	t.Run("PostgreSQL runs the negator's commutator's function", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "rev21g_com read") {
			t.Errorf("want the negator's commutator's function to run, got %v", err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	all := []string{"public.rev21g_ne", "public.rev21g_eq2", "public.rev21g_com", "public.rev21g_h"}
	for _, tc := range []struct {
		name    string
		missing string
		refuses string
	}{
		{"with the negator's commutator's function not listed, the operator is refused", "public.rev21g_com", "the negator #=#'s commutator #==#"},
		{"with the negator's hash family's function not listed, the operator is refused", "public.rev21g_h", "the operator family rev21g_th of the negator #=#"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}
			for _, f := range all {
				p.allowed[f] = f != tc.missing
			}
			_, err := rewrite.Rewrite(sql, cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), tc.refuses) {
				t.Errorf("want a refusal by rule function naming %s, got %v", tc.refuses, err)
			}
		})
	}
	t.Run("a pg_catalog operator given a DBA's negator counts it, qualified or not", func(t *testing.T) {
		if _, err := conn.Exec(ctx, `SAVEPOINT q;
CREATE OPERATOR public.#^# (leftarg = text, rightarg = text, function = public.rev21g_com, negator = OPERATOR(pg_catalog.^@))`).ReadAll(); err != nil {
			t.Fatal(err)
		}
		defer func() { _, _ = conn.Exec(ctx, "ROLLBACK TO SAVEPOINT q").ReadAll() }()
		for _, sql := range []string{"SELECT 1 FROM countries WHERE NOT (name ^@ 'F')", "SELECT 1 FROM countries WHERE NOT (name OPERATOR(pg_catalog.^@) 'F')"} {
			if _, err := conn.Exec(ctx, "SAVEPOINT r; "+sql).ReadAll(); err == nil || !strings.Contains(err.Error(), "rev21g_com read") {
				t.Errorf("%s: want the negator's function to run, got %v", sql, err)
			}
			if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT r").ReadAll(); err != nil {
				t.Fatal(err)
			}
		}
		cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
		if err != nil {
			t.Fatal(err)
		}
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}
		for _, sql := range []string{"SELECT 1 FROM countries WHERE NOT (name ^@ 'F')", "SELECT 1 FROM countries WHERE NOT (name OPERATOR(pg_catalog.^@) 'F')"} {
			_, err := rewrite.Rewrite(sql, cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "the negator #^#") {
				t.Errorf("%s: want a refusal by rule function naming the negator #^#, got %v", sql, err)
			}
		}
	})
	t.Run("with every function listed, the operator runs", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}
		for _, f := range all {
			p.allowed[f] = true
		}
		if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
			t.Error(err)
		}
	})
}

// TestOperatorResultClassesCount: a value no column, cast or function
// names may come from an operator, pg_catalog's among them: @@ returns
// a box's center as a point, which has no default btree class until a
// DBA gives it one, and DISTINCT or ORDER BY on it then runs the DBA's
// support function as the service account. The operator counts the
// classes of the type it returns.
func TestOperatorResultClassesCount(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev21h_pcmp(point, point) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev21h_pcmp read %'', (SELECT string_agg(name, '','') FROM public.countries); END';
CREATE FUNCTION public.rev21h_plt(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1[0] < $2[0]';
CREATE OPERATOR public.<^^ (leftarg = point, rightarg = point, function = public.rev21h_plt);
CREATE OPERATOR CLASS public.rev21h_point DEFAULT FOR TYPE point USING btree AS
  OPERATOR 1 public.<^^, OPERATOR 3 pg_catalog.~=, FUNCTION 1 public.rev21h_pcmp(point, point)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT DISTINCT @@ (b::box) FROM (VALUES ('(1,0),(0,0)'), ('(2,0),(0,0)')) v (b)",
		"SELECT b FROM (VALUES ('(1,0),(0,0)'), ('(2,0),(0,0)')) v (b) ORDER BY @@ (b::box)",
		"SELECT DISTINCT ROW(@@ (b::box)) FROM (VALUES ('(1,0),(0,0)'), ('(2,0),(0,0)')) v (b)",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL runs the class's function for "+sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
			if err == nil || !strings.Contains(err.Error(), "rev21h_pcmp read France") {
				t.Errorf("want rev21h_pcmp to read the countries, got %v", err)
			}
			if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s").ReadAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("with the class's function not listed, pgveil refuses", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{"public.rev21h_plt": true}}
		for _, sql := range stmts {
			_, err := rewrite.Rewrite(sql, cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "whose result is of the type point, through its default btree operator class public.rev21h_point") {
				t.Errorf("%s: want a refusal by rule function naming @@'s result's class, got %v", sql, err)
			}
		}
	})
	t.Run("with it listed, pgveil rewrites", func(t *testing.T) {
		p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{"public.rev21h_plt": true, "public.rev21h_pcmp": true}}
		for _, sql := range stmts {
			if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
}

// TestInSubqueryCountsEquals: x IN (SELECT …) names no operator (its
// SubLink has no operator name) but compares with =, which the search
// path resolves to a DBA's = over the two sides' types: its function
// counts as x = ANY (SELECT …) counts it.
func TestInSubqueryCountsEquals(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev21h_ieq(int, text) RETURNS boolean LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev21h_ieq read %'', (SELECT string_agg(name, '','') FROM public.countries); END';
CREATE OPERATOR public.= (leftarg = int, rightarg = text, function = public.rev21h_ieq)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT 1 WHERE 1 IN (SELECT 'x'::text)",
		"SELECT 1 WHERE 1 NOT IN (SELECT 'x'::text)",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL runs the DBA's = for "+sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
			if err == nil || !strings.Contains(err.Error(), "rev21h_ieq read France") {
				t.Errorf("want rev21h_ieq to read the countries, got %v", err)
			}
			if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s").ReadAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pgveil refuses each unless the role may call the function", func(t *testing.T) {
		for _, sql := range stmts {
			_, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "the operator public.=") {
				t.Errorf("%s: want a refusal by rule function naming public.=, got %v", sql, err)
			}
			ok := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{"public.rev21h_ieq": true}}
			if _, err := rewrite.Rewrite(sql, cat, ok); err != nil {
				t.Errorf("%s with the function listed: %v", sql, err)
			}
		}
	})
}

// TestBinaryCoercibleDefaultClassCounts: PostgreSQL takes, for a type
// with no default class of its own, the default class of a type it is
// binary coercible to by an implicit cast (GetDefaultOpClass): a DBA's
// CREATE CAST (point AS t) WITHOUT FUNCTION AS IMPLICIT and a default
// btree class over t sort every point by the DBA's function.
func TestBinaryCoercibleDefaultClassCounts(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE TYPE public.rev21h_bpt;
CREATE FUNCTION public.rev21h_bpt_in(cstring) RETURNS public.rev21h_bpt LANGUAGE internal IMMUTABLE STRICT AS 'point_in';
CREATE FUNCTION public.rev21h_bpt_out(public.rev21h_bpt) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'point_out';
CREATE TYPE public.rev21h_bpt (input = public.rev21h_bpt_in, output = public.rev21h_bpt_out, like = point);
CREATE CAST (point AS public.rev21h_bpt) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION public.rev21h_bcmp(public.rev21h_bpt, public.rev21h_bpt) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev21h_bcmp read %'', (SELECT string_agg(name, '','') FROM public.countries); END';
CREATE FUNCTION public.rev21h_beq(public.rev21h_bpt, public.rev21h_bpt) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.=% (leftarg = public.rev21h_bpt, rightarg = public.rev21h_bpt, function = public.rev21h_beq);
CREATE OPERATOR public.<% (leftarg = public.rev21h_bpt, rightarg = public.rev21h_bpt, function = public.rev21h_beq);
CREATE OPERATOR CLASS public.rev21h_bops DEFAULT FOR TYPE public.rev21h_bpt USING btree AS
  OPERATOR 1 public.<%, OPERATOR 3 public.=%, FUNCTION 1 public.rev21h_bcmp(public.rev21h_bpt, public.rev21h_bpt)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	const sql = "SELECT DISTINCT p FROM (VALUES (point '(1,2)'), (point '(3,4)')) v (p)"
	t.Run("PostgreSQL sorts the points by the DBA's class", func(t *testing.T) {
		_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
		if err == nil || !strings.Contains(err.Error(), "rev21h_bcmp read France") {
			t.Errorf("want rev21h_bcmp to read the countries, got %v", err)
		}
		if _, err := conn.Exec(ctx, "ROLLBACK TO SAVEPOINT s").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pgveil refuses a cast to point unless the role may call it", func(t *testing.T) {
		_, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "operator class public.rev21h_bops") {
			t.Errorf("want a refusal by rule function naming rev21h_bops, got %v", err)
		}
		ok := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{"public.rev21h_bcmp": true, "public.rev21h_beq": true}}
		if _, err := rewrite.Rewrite(sql, cat, ok); err != nil {
			t.Errorf("with the functions listed: %v", err)
		}
	})
}
