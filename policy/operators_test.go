package policy

import (
	"path/filepath"
	"strings"
	"testing"
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
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	writeFile(t, path, []byte(`
listen {
  address = "127.0.0.1:6432"
}
upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
`+strings.ReplaceAll(policy, "VERIFIER", testVerifier)))
	l := NewLoader()
	_, diags := l.Load(path)
	var out strings.Builder
	_ = WriteDiagnostics(&out, l.Files(), diags)
	return out.String(), diags.HasErrors()
}
