package policy

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// ruleOn returns users plus a rule for analyst on public.responses with
// the given where.
func ruleOn(where string) string {
	return users + `
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "` + where + `"
}`
}

func TestCompiledOperatorsResolveInPgCatalog(t *testing.T) {
	cases := []struct{ name, where, want string }{
		{"a plain operator is qualified", "id < 10", "id OPERATOR(pg_catalog.<) 10"},
		{"an operator already in pg_catalog stays", "id OPERATOR(pg_catalog.<) 10", "id OPERATOR(pg_catalog.<) 10"},
		{"= ANY is qualified", "country = ANY(ARRAY['a'])", "country OPERATOR(pg_catalog.=) ANY(ARRAY['a'])"},
		{"<> ALL is qualified", "country <> ALL(ARRAY['a'])", "country OPERATOR(pg_catalog.<>) ALL(ARRAY['a'])"},
		{"IN a list becomes an OR of qualified =", "country IN ('a', 'b')",
			"country OPERATOR(pg_catalog.=) 'a' OR country OPERATOR(pg_catalog.=) 'b'"},
		{"NOT IN a list becomes an AND of qualified <>", "country NOT IN ('a', 'b')",
			"country OPERATOR(pg_catalog.<>) 'a' AND country OPERATOR(pg_catalog.<>) 'b'"},
		{"IN inside a larger condition keeps its grouping", "id > 0 AND country IN ('a', 'b')",
			"id OPERATOR(pg_catalog.>) 0 AND (country OPERATOR(pg_catalog.=) 'a' OR country OPERATOR(pg_catalog.=) 'b')"},
		{"IN a subquery is a qualified = ANY", "id IN (SELECT x.id FROM public.x x)",
			"id OPERATOR(pg_catalog.=) ANY (SELECT x.id FROM public.x x)"},
		{"NOT IN a subquery is NOT of a qualified = ANY", "id NOT IN (SELECT x.id FROM public.x x)",
			"NOT id OPERATOR(pg_catalog.=) ANY (SELECT x.id FROM public.x x)"},
		{"an operator over a subquery is qualified", "id >= ALL (SELECT x.id FROM public.x x)",
			"id OPERATOR(pg_catalog.>=) ALL (SELECT x.id FROM public.x x)"},
		{"BETWEEN becomes qualified >= and <=", "id BETWEEN 1 AND 9",
			"id OPERATOR(pg_catalog.>=) 1 AND id OPERATOR(pg_catalog.<=) 9"},
		{"NOT BETWEEN becomes qualified < or >", "id NOT BETWEEN 1 AND 9",
			"id OPERATOR(pg_catalog.<) 1 OR id OPERATOR(pg_catalog.>) 9"},
		{"LIKE is the qualified ~~ operator", "comment LIKE 'a%'", "comment OPERATOR(pg_catalog.~~) 'a%'"},
		{"NOT LIKE with ESCAPE is the qualified !~~ operator", "comment NOT LIKE 'a!%' ESCAPE '!'",
			"comment OPERATOR(pg_catalog.!~~) pg_catalog.like_escape('a!%', '!')"},
		{"ILIKE is the qualified ~~* operator", "comment ILIKE 'a%'", "comment OPERATOR(pg_catalog.~~*) 'a%'"},
		{"SIMILAR TO is the qualified ~ operator", "comment SIMILAR TO 'a%'",
			"comment OPERATOR(pg_catalog.~) pg_catalog.similar_to_escape('a%')"},
		{"operators inside functions, casts and CASE are qualified", "CASE WHEN id + 1 > 2 THEN (id * 2)::text = 'x' END",
			"CASE WHEN (id OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog.>) 2 THEN (id OPERATOR(pg_catalog.*) 2)::text OPERATOR(pg_catalog.=) 'x' END"},
	}
	rel := relation("public", "responses", []string{"id", "country", "comment", "agent_login"})
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, ruleOn(tt.where), "marie")
			if got := whereOf(t, rel, p.Relation(rel)); got != tt.want {
				t.Errorf("filter\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
	t.Run("built-in scopes compare with pg_catalog's operators", func(t *testing.T) {
		p := compile(t, users+`
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "self"
}`, "marie")
		if got, want := whereOf(t, rel, p.Relation(rel)), "agent_login OPERATOR(pg_catalog.=) 'marie'"; got != want {
			t.Errorf("filter\n got: %s\nwant: %s", got, want)
		}
	})
}

func TestOperatorsWithoutQualifiedSpellingAreRefused(t *testing.T) {
	cases := []struct{ name, where, want string }{
		{"IS DISTINCT FROM is refused", "country IS DISTINCT FROM 'a'", "IS [NOT] DISTINCT FROM"},
		{"IS NOT DISTINCT FROM is refused", "country IS NOT DISTINCT FROM 'a'", "IS [NOT] DISTINCT FROM"},
		{"NULLIF is refused", "NULLIF(country, 'a') IS NULL", "NULLIF compares"},
		{"BETWEEN SYMMETRIC is refused", "id BETWEEN SYMMETRIC 1 AND 9", "BETWEEN SYMMETRIC"},
		{"a simple CASE is refused", "CASE country WHEN 'a' THEN true END", "CASE x WHEN v"},
		{"an operator of another schema is refused", "id OPERATOR(public.=) 1", "Operator outside pg_catalog"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			out, failed := loadErrors(t, ruleOn(tt.where))
			if !failed || !strings.Contains(out, tt.want) {
				t.Errorf("diagnostics do not say %q:\n%s", tt.want, out)
			}
		})
	}
}

// loadErrors loads the listen and upstream blocks followed by policy (as
// loadPolicy) and returns the diagnostics, and whether they hold errors.
func loadErrors(t *testing.T, policy string) (string, bool) {
	t.Helper()
	path := writePolicy(t, policy)
	l := NewLoader()
	_, diags := l.Load(path)
	var out strings.Builder
	_ = WriteDiagnostics(&out, l.Files(), diags)
	return out.String(), diags.HasErrors()
}

// TestQualifiedOperatorsDeparseToTheSameTree checks that the deparser
// parenthesises qualified operators, whose precedence differs from the
// plain ones', so that the text sent upstream parses back to the tree
// pgveil built.
func TestQualifiedOperatorsDeparseToTheSameTree(t *testing.T) {
	for _, e := range []string{
		"a + 1 < b * 2",
		"a = 1 IS TRUE",
		"NOT a = b",
		"a IS NULL = b IS NULL",
		"-a < 2 AND a ^ 2 >= 3",
		"a || b || c = 'x'",
		"(a < b) = (c > d)",
		"a BETWEEN b + 1 AND c",
		"a LIKE b || '%' ESCAPE '!'",
		"a IN (1 + 2, b - 1)",
		"a::text = 'x' COLLATE \"C\"",
		"ARRAY[a, b] @> ARRAY[1] AND a = ANY(ARRAY[1, 2] || 3)",
		"(a, b) < (1, 2)",
		"a = (SELECT x.b FROM public.x x WHERE x.c + 1 = a)",
		"- a = - - b",
		"a % 2 = 0 OR a # 1 <> 0",
	} {
		t.Run(e, func(t *testing.T) {
			n := mustParseExpr(e)
			sql := deparseExpr(n)
			again := mustParseExpr(sql)
			if !proto.Equal(withoutLocations(n), withoutLocations(again)) {
				t.Errorf("%s deparses to %s, which parses to another tree", e, sql)
			}
		})
	}
}

// withoutLocations returns a copy of n with every location -1.
func withoutLocations(n *pg_query.Node) *pg_query.Node {
	c := proto.Clone(n).(*pg_query.Node)
	var clear func(m protoreflect.Message)
	clear = func(m protoreflect.Message) {
		if f := m.Descriptor().Fields().ByName("location"); f != nil && f.Kind() == protoreflect.Int32Kind {
			m.Set(f, protoreflect.ValueOfInt32(-1))
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			switch {
			case fd.Message() == nil || fd.IsMap():
			case fd.IsList():
				for i := 0; i < v.List().Len(); i++ {
					clear(v.List().Get(i).Message())
				}
			default:
				clear(v.Message())
			}
			return true
		})
	}
	clear(c.ProtoReflect())
	return c
}
