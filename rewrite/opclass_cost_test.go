package rewrite_test

import (
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// planNodes calls f with every node of an EXPLAIN (FORMAT JSON) plan.
func planNodes(n map[string]any, f func(map[string]any)) {
	f(n)
	plans, _ := n["Plans"].([]any)
	for _, p := range plans {
		if m, ok := p.(map[string]any); ok {
			planNodes(m, f)
		}
	}
}

// TestCatalogCallsCost: catalogCallsSQL runs at every catalog read. The
// operator classes' functions are kept to those outside pg_catalog
// before they are spread over the types made of them (every catalog's
// row type is made of types with classes), and the chains of
// commutators and negators are joined by equality, not by an OR each
// operator is tried against (a second on a bare catalog, three with two
// hundred DBA types, before).
// NOTE: the test counts rows, not time.
func TestCatalogCallsCost(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// A DBA's operator with a negator and a commutator, for the chains.
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE FUNCTION public.rev21h_eq(text, text) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT $1 = $2';
CREATE FUNCTION public.rev21h_ne(text, text) RETURNS boolean IMMUTABLE LANGUAGE sql AS 'SELECT $1 <> $2';
CREATE OPERATOR public.#=# (leftarg = text, rightarg = text, function = public.rev21h_eq, commutator = #=#, negator = #<>#);
CREATE OPERATOR public.#<># (leftarg = text, rightarg = text, function = public.rev21h_ne)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	res, err := conn.Exec(ctx, "EXPLAIN (ANALYZE, FORMAT JSON) "+rewrite.CatalogCallsSQL).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	var plan []struct {
		Plan map[string]any
	}
	if err := json.Unmarshal(res[0].Rows[0][0], &plan); err != nil {
		t.Fatal(err)
	}
	res, err = conn.Exec(ctx, `SELECT (SELECT count(*) FROM pg_catalog.pg_operator), (SELECT count(*) FROM (`+rewrite.CatalogCallsSQL+`) r)`).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	operators, _ := strconv.ParseFloat(string(res[0].Rows[0][0]), 64)
	listed, _ := strconv.ParseFloat(string(res[0].Rows[0][1]), 64)
	num := func(n map[string]any, k string) float64 { f, _ := n[k].(float64); return f }
	planNodes(plan[0].Plan, func(n map[string]any) {
		loops := max(num(n, "Actual Loops"), 1)
		if n["CTE Name"] == "classed" && num(n, "Actual Rows") > listed {
			t.Errorf("the classes' functions hold %.0f rows, more than the %.0f listed: pg_catalog's are spread over every type before they are dropped", num(n, "Actual Rows"), listed)
		}
		if f, _ := n["Join Filter"].(string); strings.Contains(f, "oprcom") {
			t.Errorf("a %v joins commutators by a filter, trying every operator (%.0f) at each step: %s", n["Node Type"], operators*loops, f)
		}
	})
}

// TestCatalogReadPutsJITBack: the catalog read turns jit off for
// catalogCallsSQL (compiling its over-estimated plan took seconds) and
// puts the session's setting back.
func TestCatalogReadPutsJITBack(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, jit := range []string{"on", "off"} {
		t.Run("jit "+jit+" stays "+jit, func(t *testing.T) {
			if _, err := conn.Exec(ctx, "SET jit = "+jit).ReadAll(); err != nil {
				t.Fatal(err)
			}
			if _, err := rewrite.LoadCatalog(ctx, conn, []string{"public"}); err != nil {
				t.Fatal(err)
			}
			res, err := conn.Exec(ctx, "SHOW jit").ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			if got := string(res[0].Rows[0][0]); got != jit {
				t.Errorf("jit is %s after the catalog read, want %s", got, jit)
			}
		})
	}
}
