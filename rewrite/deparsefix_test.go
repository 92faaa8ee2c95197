package rewrite

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// deparseText deparses sql as the rewriter does (deparseHeld), and
// reports whether the output parses back into the tree it printed.
func deparseText(t *testing.T, sql string) (string, bool) {
	t.Helper()
	tree, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("parse %s: %v", sql, err)
	}
	out, faithful, err := deparseHeld(tree, 0)
	if err != nil {
		return "", false
	}
	return out, faithful
}

// operandOuter and operandInner are an operator of every precedence
// level of the grammar, and the forms that print like one: each inner
// one is put, between parentheses, in the place of X of each outer one.
var (
	operandOuter = []string{
		"X OR z", "z OR X", "X AND z", "NOT X", "X IS NULL", "X IS NOT NULL", "X IS TRUE", "X IS UNKNOWN",
		"X IS DISTINCT FROM z", "z IS DISTINCT FROM X", "X IS NOT DISTINCT FROM z", "z IS NOT DISTINCT FROM X",
		"X = z", "z < X", "X LIKE z", "z NOT LIKE X", "X ILIKE z", "X SIMILAR TO z", "z SIMILAR TO X ESCAPE y",
		"X BETWEEN y AND z", "y BETWEEN X AND z", "y NOT BETWEEN SYMMETRIC z AND X",
		"X IN (z)", "z IN (X)", "X NOT IN (SELECT 1)", "X = ANY (z)", "z = ANY (X)", "X < ALL (SELECT 1)",
		"X || z", "z ~ X", "X + z", "z - X", "- X", "X * z", "z ^ X", "@ X",
		"X AT TIME ZONE z", "z AT TIME ZONE X", "X AT LOCAL", "X COLLATE \"C\"", "X::int", "CAST(X AS int)",
		"X OPERATOR(pg_catalog.+) z", "X IS NORMALIZED", "X IS DOCUMENT", "X IS JSON", "X LIKE z ESCAPE y",
		"CASE X WHEN z THEN 1 END", "f(X)", "ARRAY[X]", "ROW(X, z)", "X OVERLAPS z",
	}
	operandInner = []string{
		"a OR b", "a AND b", "NOT a", "a IS NULL", "a IS NOT TRUE", "a IS DISTINCT FROM b", "a IS NOT DISTINCT FROM b",
		"a IS NORMALIZED", "a IS DOCUMENT", "a IS JSON", "a = b", "a < b", "a LIKE b", "a NOT ILIKE b",
		"a SIMILAR TO b", "a BETWEEN b AND c", "a NOT BETWEEN SYMMETRIC b AND c", "a IN (b)", "a NOT IN (b)",
		"a || b", "a ~ b", "a + b", "- a", "a * b", "a ^ b", "a AT TIME ZONE b", "a AT LOCAL", "a COLLATE \"C\"",
		"'x' COLLATE \"C\"", "a::int", "a[1]", "(a).f", "a = ANY (b)", "a < ALL (b)", "a = ANY (SELECT 1)",
		"EXISTS (SELECT 1)", "a IN (SELECT 1)", "a LIKE b ESCAPE c", "a OPERATOR(pg_catalog.+) b",
		"ROW(a, b) = ROW(c, d)", "(a, b) < (c, d)", "CASE WHEN a THEN b END", "-1", "a IS NOT NULL",
	}
)

// TestDeparseOperandsHeldToTheirTree: every operator of every precedence
// level, between parentheses, as the operand of every other, in a target
// list, a WHERE, an INSERT's VALUES and an UPDATE's SET, deparses into
// text that parses back into the tree it printed, but for a COLLATE of a
// literal where the grammar wants parentheses, and a COLLATE of a boolean
// naming an output column, which parenthesizeOperands leaves as they are:
// they stay refused.
func TestDeparseOperandsHeldToTheirTree(t *testing.T) {
	refused := func(place, outer, inner string) bool {
		switch {
		case inner == "'x' COLLATE \"C\"" && (outer == "- X" || outer == "@ X" || outer == "y BETWEEN X AND z"):
			return true
		case place == "SELECT @" && outer == "X COLLATE \"C\"" && (inner == "a OR b" || inner == "a AND b" || inner == "NOT a"):
			// It names the output column: cast to boolean, the column
			// would be named bool (outputNamePaths). PostgreSQL refuses a
			// COLLATE of a boolean anyway.
			return true
		}
		return false
	}
	for _, place := range []string{"SELECT @", "SELECT 1 WHERE @", "INSERT INTO t VALUES (@)", "UPDATE t SET c = @"} {
		for _, o := range operandOuter {
			for _, in := range operandInner {
				e := strings.ReplaceAll(o, "X", "("+in+")")
				sql := strings.ReplaceAll(place, "@", e)
				if _, err := pg_query.Parse(sql); err != nil {
					continue
				}
				out, ok := deparseText(t, sql)
				if !ok && !refused(place, o, in) {
					t.Errorf("%s\n  is deparsed %s", sql, out)
				}
			}
		}
	}
}

// TestDeparseLeavesRefused: the forms no node of the operand's own type
// and value prints with the parentheses they need stay unfaithful: the
// rewriter refuses them (fail closed).
func TestDeparseLeavesRefused(t *testing.T) {
	for _, sql := range []string{
		"SELECT (CASE WHEN a THEN b END)[1]",
		"SELECT (a COLLATE \"C\")[1]",
		"SELECT (a IN (SELECT 1)).f",
		"SELECT (-1)[1]",
		"SELECT y BETWEEN ('x' COLLATE \"C\") AND z",
	} {
		if out, ok := deparseText(t, sql); ok {
			t.Errorf("%s\n  is deparsed, faithfully, %s", sql, out)
		}
	}
}

// TestDeparseKeepsUnknownCollateOperands: a COLLATE over a value of type
// unknown leaves its type to the operator around it (c = ('ab '::unknown
// COLLATE "C") compares as c's char(3)); COALESCE of it would be text,
// another comparison, and another inferred type for a parameter. Such a
// COLLATE is never wrapped, though another operand of the statement is.
func TestDeparseKeepsUnknownCollateOperands(t *testing.T) {
	for _, unknown := range []string{
		`'ab '::unknown COLLATE "C"`,
		`CAST('ab ' AS pg_catalog.unknown) COLLATE "C"`,
		`$1::unknown COLLATE "C"`,
		`('ab ' COLLATE "C") COLLATE "C"`,
		`($1 COLLATE "C") COLLATE "C"`,
		`(NULL::unknown COLLATE "C") COLLATE "C"`,
	} {
		for _, outer := range []string{"c BETWEEN (X) AND 'zz'", "c = (X)", "(X) IS NULL", "c LIKE (X)"} {
			sql := "SELECT " + strings.ReplaceAll(outer, "X", unknown) + ", (a = b) BETWEEN x AND y FROM t"
			t.Run(sql, func(t *testing.T) {
				out, ok := deparseText(t, sql)
				if !ok {
					return // refused: fail closed
				}
				if strings.Contains(out, "COALESCE(a = b)") && strings.Count(out, "COALESCE(") > 1 {
					t.Errorf("the unknown-typed COLLATE is wrapped: %s", out)
				}
			})
		}
	}
}

// TestDeparseKeepsOutputNames: where another operand of the statement
// needs wrapping (the AT TIME ZONE bound of a BETWEEN), an operand that
// names an output column (under a COLLATE, a cast, a subscript or a
// CASE's ELSE, of a target of no alias) and would be wrapped makes the
// deparse unfaithful, and the statement refused: in COALESCE, the column
// would be named coalesce, and ORDER BY name, a NATURAL or USING join over
// the derived table, or the client would read another column; left alone
// while the same expression in GROUP BY is wrapped, it would no longer be
// the grouped one. An alias names the column itself: under it, the
// operand is wrapped; so is an AT TIME ZONE, whose call keeps its name.
func TestDeparseKeepsOutputNames(t *testing.T) {
	const bound = "now() BETWEEN (ts AT TIME ZONE 'UTC') AND now()"
	const printed = "now() BETWEEN pg_catalog.timezone('UTC', ts) AND now()"
	for _, tc := range []struct{ name, expr, tail, want string }{
		{"a COLLATE of a COLLATE", `name COLLATE "C" COLLATE "POSIX"`, "", ""},
		{"a COLLATE of an operator", `(name || 'x') COLLATE "C"`, "", ""},
		{"a COLLATE of an operator, grouped by", `(name || 'x') COLLATE "C"`, ` GROUP BY (name || 'x') COLLATE "C"`, ""},
		{"a cast of EXISTS", `EXISTS (SELECT 1)::int`, "", ""},
		{"a cast of op ANY (subquery)", `(x = ANY (SELECT 1))::int`, "", ""},
		{"a CASE's ELSE", `CASE WHEN x THEN 'z' ELSE name COLLATE "C" COLLATE "C" END`, "", ""},
		{"a subscript", `(a COLLATE "C" COLLATE "C")[1]`, "", ""},
		{"a target of a subquery", `(SELECT name COLLATE "C" COLLATE "C")`, "", ""},
		{"a target of a derived table", `1 FROM (SELECT name COLLATE "C" COLLATE "C") s, t`, "", ""},
		{"an aliased target", `name COLLATE "C" COLLATE "C" AS n`, "", `COALESCE(name COLLATE "C") COLLATE "C" AS n`},
		{"an AT TIME ZONE under a COLLATE", `(ts AT TIME ZONE 'UTC')::text COLLATE "C"`, "", `pg_catalog.timezone('UTC', ts)::text COLLATE "C"`},
		{"an operator under a function", `lower((name || 'x') COLLATE "C")`, "", `lower(COALESCE(name || 'x') COLLATE "C")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sql := "SELECT " + tc.expr + ", " + bound + " FROM t" + tc.tail
			if strings.Contains(tc.expr, " FROM ") {
				sql = "SELECT " + bound + ", " + tc.expr + tc.tail
			}
			out, ok := deparseText(t, sql)
			if tc.want == "" {
				if ok {
					t.Fatalf("%s\n  is deparsed, faithfully, %s", sql, out)
				}
				return
			}
			if want := "SELECT " + tc.want + ", " + printed + " FROM t" + tc.tail; !ok || out != want {
				t.Fatalf("%s\n  is deparsed %s (faithful: %v)\n  want %s", sql, out, ok, want)
			}
		})
	}
}
