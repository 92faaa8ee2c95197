package rewrite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestOwnDefaultClassWinsOverCoercible: GetDefaultOpClass takes a type's
// own default class first and a class of a type it is binary coercible
// to only when it has none: a DBA's text-like type with its own default
// btree class and an implicit binary cast from text to it does not sort
// text by the DBA's function, and text columns must not be refused.
func TestOwnDefaultClassWinsOverCoercible(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE TYPE public.rev22a_txt;
CREATE FUNCTION public.rev22a_txt_in(cstring) RETURNS public.rev22a_txt LANGUAGE internal IMMUTABLE STRICT AS 'textin';
CREATE FUNCTION public.rev22a_txt_out(public.rev22a_txt) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';
CREATE TYPE public.rev22a_txt (input = public.rev22a_txt_in, output = public.rev22a_txt_out, like = text);
CREATE CAST (text AS public.rev22a_txt) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION public.rev22a_tcmp(public.rev22a_txt, public.rev22a_txt) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev22a_tcmp ran''; END';
CREATE FUNCTION public.rev22a_teq(public.rev22a_txt, public.rev22a_txt) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.=% (leftarg = public.rev22a_txt, rightarg = public.rev22a_txt, function = public.rev22a_teq);
CREATE OPERATOR CLASS public.rev22a_tops DEFAULT FOR TYPE public.rev22a_txt USING btree AS
  OPERATOR 3 public.=%, FUNCTION 1 public.rev22a_tcmp(public.rev22a_txt, public.rev22a_txt)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT name FROM countries ORDER BY name",
		"SELECT DISTINCT code || name FROM countries",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL sorts text by text's own class for "+sql, func(t *testing.T) {
			if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pgveil rewrites them with no function listed", func(t *testing.T) {
		for _, sql := range stmts {
			if _, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	t.Run("a cast to the DBA's type still counts its class", func(t *testing.T) {
		_, err := rewrite.Rewrite("SELECT DISTINCT name::rev22a_txt FROM countries", cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22a_tops") {
			t.Errorf("want a refusal by rule function naming rev22a_tops, got %v", err)
		}
	})
}

// TestPolymorphicDefaultClassCounts: a type with no default class of its
// own takes one whose type is a pseudo-type it is coercible to (anything
// is to anyelement): a DBA's default btree class FOR TYPE anyelement
// sorts json and points by the DBA's function (here, an error that it
// cannot resolve its argument's type says it was called).
func TestPolymorphicDefaultClassCounts(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev22a_acmp(anyelement, anyelement) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN 0; END';
CREATE FUNCTION public.rev22a_alt(anyelement, anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.<<% (leftarg = anyelement, rightarg = anyelement, function = public.rev22a_alt);
CREATE OPERATOR public.=%% (leftarg = anyelement, rightarg = anyelement, function = public.rev22a_alt);
CREATE OPERATOR CLASS public.rev22a_aops DEFAULT FOR TYPE anyelement USING btree AS
  OPERATOR 1 public.<<%, OPERATOR 3 public.=%%, FUNCTION 1 public.rev22a_acmp(anyelement, anyelement)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		`SELECT DISTINCT j FROM (VALUES ('{"a":1}'::json), ('{"b":2}'::json)) v (j)`,
		"SELECT p FROM (VALUES (point '(1,2)'), (point '(3,4)')) v (p) ORDER BY p",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL calls the DBA's function for "+sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
			if err == nil || !strings.Contains(err.Error(), `polymorphic function "rev22a_acmp"`) {
				t.Errorf("want rev22a_acmp called, got %v", err)
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
	t.Run("pgveil refuses each unless the role may call it", func(t *testing.T) {
		for _, sql := range stmts {
			_, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22a_aops") {
				t.Errorf("%s: want a refusal by rule function naming rev22a_aops, got %v", sql, err)
			}
		}
	})
	t.Run("text keeps its own class", func(t *testing.T) {
		if _, err := rewrite.Rewrite("SELECT name FROM countries ORDER BY name", cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}); err != nil {
			t.Error(err)
		}
	})
}

// TestFixedLengthElementClassesCount: subscripting a box or an lseg
// gives a point, with no cast, function or operator naming point: a
// DBA's default btree class over point sorts it.
func TestFixedLengthElementClassesCount(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev22a_pcmp(point, point) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev22a_pcmp read %'', (SELECT string_agg(name, '','') FROM public.countries); END';
CREATE FUNCTION public.rev22a_plt(point, point) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1[0] < $2[0]';
CREATE OPERATOR public.<^^ (leftarg = point, rightarg = point, function = public.rev22a_plt);
CREATE OPERATOR CLASS public.rev22a_point DEFAULT FOR TYPE point USING btree AS
  OPERATOR 1 public.<^^, OPERATOR 3 pg_catalog.~=, FUNCTION 1 public.rev22a_pcmp(point, point)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT DISTINCT (b::box)[0] FROM (VALUES ('(1,0),(0,0)'), ('(2,0),(0,0)')) v (b)",
		"SELECT (b::lseg)[1] FROM (VALUES ('[(1,0),(0,0)]'), ('[(2,0),(0,0)]')) v (b) ORDER BY 1",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL runs the class's function for "+sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
			if err == nil || !strings.Contains(err.Error(), "rev22a_pcmp read France") {
				t.Errorf("want rev22a_pcmp to read the countries, got %v", err)
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
	t.Run("pgveil refuses each unless the role may call it", func(t *testing.T) {
		for _, sql := range stmts {
			_, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{"public.rev22a_plt": true}})
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22a_point") {
				t.Errorf("%s: want a refusal by rule function naming rev22a_point, got %v", sql, err)
			}
		}
	})
}

// TestPolymorphicDefaultClassCountsForPseudoTypedValues: a value of a
// pseudo-type a statement can make (void from pg_sleep, cstring from an
// output function) has no default class of its own and is coercible to
// anyelement: a DBA's default btree class FOR TYPE anyelement sorts it
// by the DBA's function, as it does json.
func TestPolymorphicDefaultClassCountsForPseudoTypedValues(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev22b_acmp(anyelement, anyelement) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN 0; END';
CREATE FUNCTION public.rev22b_alt(anyelement, anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.<<% (leftarg = anyelement, rightarg = anyelement, function = public.rev22b_alt);
CREATE OPERATOR public.=%% (leftarg = anyelement, rightarg = anyelement, function = public.rev22b_alt);
CREATE OPERATOR CLASS public.rev22b_aops DEFAULT FOR TYPE anyelement USING btree AS
  OPERATOR 1 public.<<%, OPERATOR 3 public.=%%, FUNCTION 1 public.rev22b_acmp(anyelement, anyelement)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT DISTINCT pg_sleep(0) FROM generate_series(1, 2)",
		"SELECT DISTINCT textout(name) FROM countries",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL calls the DBA's function for "+sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, "SAVEPOINT s; "+sql).ReadAll()
			if err == nil || !strings.Contains(err.Error(), `polymorphic function "rev22b_acmp"`) {
				t.Errorf("want rev22b_acmp called, got %v", err)
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
	t.Run("pgveil refuses each unless the role may call it", func(t *testing.T) {
		for _, sql := range stmts {
			_, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22b_aops") {
				t.Errorf("%s: want a refusal by rule function naming rev22b_aops, got %v", sql, err)
			}
		}
	})
}

// TestPreferredCoercibleClassWinsOverDBAs: with no default class of its
// own, a type takes the one class of a preferred type of its category it
// is binary coercible to (varchar text's, cidr inet's) before any other
// it is coercible to: a DBA's class FOR TYPE anyelement, or over a
// DBA's type varchar casts to, does not sort varchar or cidr, and they
// must not be refused.
func TestPreferredCoercibleClassWinsOverDBAs(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev22b_acmp(anyelement, anyelement) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev22b_acmp ran''; END';
CREATE FUNCTION public.rev22b_alt(anyelement, anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.<<% (leftarg = anyelement, rightarg = anyelement, function = public.rev22b_alt);
CREATE OPERATOR public.=%% (leftarg = anyelement, rightarg = anyelement, function = public.rev22b_alt);
CREATE OPERATOR CLASS public.rev22b_aops DEFAULT FOR TYPE anyelement USING btree AS
  OPERATOR 1 public.<<%, OPERATOR 3 public.=%%, FUNCTION 1 public.rev22b_acmp(anyelement, anyelement);
CREATE TYPE public.rev22b_txt;
CREATE FUNCTION public.rev22b_txt_in(cstring) RETURNS public.rev22b_txt LANGUAGE internal IMMUTABLE STRICT AS 'textin';
CREATE FUNCTION public.rev22b_txt_out(public.rev22b_txt) RETURNS cstring LANGUAGE internal IMMUTABLE STRICT AS 'textout';
CREATE TYPE public.rev22b_txt (input = public.rev22b_txt_in, output = public.rev22b_txt_out, like = text);
CREATE CAST (varchar AS public.rev22b_txt) WITHOUT FUNCTION AS IMPLICIT;
CREATE FUNCTION public.rev22b_tcmp(public.rev22b_txt, public.rev22b_txt) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev22b_tcmp ran''; END';
CREATE FUNCTION public.rev22b_teq(public.rev22b_txt, public.rev22b_txt) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.=% (leftarg = public.rev22b_txt, rightarg = public.rev22b_txt, function = public.rev22b_teq);
CREATE OPERATOR CLASS public.rev22b_tops DEFAULT FOR TYPE public.rev22b_txt USING btree AS
  OPERATOR 3 public.=%, FUNCTION 1 public.rev22b_tcmp(public.rev22b_txt, public.rev22b_txt)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT v FROM (VALUES ('b'::varchar), ('a')) x (v) ORDER BY v",
		"SELECT DISTINCT v FROM (VALUES ('10.0.0.0/8'::cidr), ('11.0.0.0/8')) x (v)",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL sorts by pg_catalog's class for "+sql, func(t *testing.T) {
			if _, err := conn.Exec(ctx, "SET LOCAL enable_hashagg = off; "+sql).ReadAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pgveil rewrites them with no function listed", func(t *testing.T) {
		for _, sql := range stmts {
			if _, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	t.Run("json, with no preferred class to take, still counts the DBA's", func(t *testing.T) {
		_, err := rewrite.Rewrite(`SELECT DISTINCT j FROM (VALUES ('{}'::json)) v (j)`, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22b_aops") {
			t.Errorf("want a refusal by rule function naming rev22b_aops, got %v", err)
		}
	})
}

// TestPolymorphicDefaultClassLosesToAnotherCandidate: GetDefaultOpClass
// takes a class reached by coercion only when it is the one candidate:
// an array is coercible to anyarray (array_ops) and a range to anyrange
// (range_ops) as well as to anyelement, so a DBA's default btree class
// FOR TYPE anyelement gives them no default btree class at all
// (DISTINCT hashes them by pg_catalog's hash classes) and never runs the
// DBA's function; pgveil must not refuse them, and json, with no other
// candidate, still counts it.
func TestPolymorphicDefaultClassLosesToAnotherCandidate(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev22d_acmp(anyelement, anyelement) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RAISE EXCEPTION ''rev22d_acmp ran''; END';
CREATE FUNCTION public.rev22d_alt(anyelement, anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.<<% (leftarg = anyelement, rightarg = anyelement, function = public.rev22d_alt);
CREATE OPERATOR public.=%% (leftarg = anyelement, rightarg = anyelement, function = public.rev22d_alt);
CREATE OPERATOR CLASS public.rev22d_aops DEFAULT FOR TYPE anyelement USING btree AS
  OPERATOR 1 public.<<%, OPERATOR 3 public.=%%, FUNCTION 1 public.rev22d_acmp(anyelement, anyelement)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	stmts := []string{
		"SELECT DISTINCT a FROM (VALUES (ARRAY[1]), (ARRAY[2])) v (a)",
		"SELECT DISTINCT r FROM (VALUES (int4range(1, 2)), (int4range(2, 3))) v (r)",
	}
	for _, sql := range stmts {
		t.Run("PostgreSQL runs no DBA function for "+sql, func(t *testing.T) {
			if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
				t.Fatal(err)
			}
		})
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("pgveil rewrites them with no function listed", func(t *testing.T) {
		for _, sql := range stmts {
			if _, err := rewrite.Rewrite(sql, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
	t.Run("json, the class's one candidate, still counts it", func(t *testing.T) {
		_, err := rewrite.Rewrite(`SELECT DISTINCT j FROM (VALUES ('{}'::json)) v (j)`, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22d_aops") {
			t.Errorf("want a refusal by rule function naming rev22d_aops, got %v", err)
		}
	})
}

// TestCatalogReadsBesidePolymorphicBtreeAndHashClasses: with a DBA's
// default btree and hash classes FOR TYPE anyelement, oid[] has neither
// (array_ops is a second candidate for both), so the catalog read must
// not sort or hash an array: its DISTINCT over opr_chain's path failed
// ("could not identify an equality operator for type oid[]") and no
// catalog could be read.
func TestCatalogReadsBesidePolymorphicBtreeAndHashClasses(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev22d_acmp(anyelement, anyelement) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN 0; END';
CREATE FUNCTION public.rev22d_ahash(anyelement) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN 0; END';
CREATE FUNCTION public.rev22d_alt(anyelement, anyelement) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT false';
CREATE OPERATOR public.<<% (leftarg = anyelement, rightarg = anyelement, function = public.rev22d_alt);
CREATE OPERATOR public.=%% (leftarg = anyelement, rightarg = anyelement, function = public.rev22d_alt);
CREATE OPERATOR CLASS public.rev22d_aops DEFAULT FOR TYPE anyelement USING btree AS
  OPERATOR 1 public.<<%, OPERATOR 3 public.=%%, FUNCTION 1 public.rev22d_acmp(anyelement, anyelement);
CREATE OPERATOR CLASS public.rev22d_hops DEFAULT FOR TYPE anyelement USING hash AS
  OPERATOR 1 public.=%%, FUNCTION 1 public.rev22d_ahash(anyelement)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("and json still counts both classes", func(t *testing.T) {
		_, err := rewrite.Rewrite(`SELECT DISTINCT j FROM (VALUES ('{}'::json)) v (j)`, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22d_") {
			t.Errorf("want a refusal by rule function naming a rev22d class, got %v", err)
		}
	})
}
