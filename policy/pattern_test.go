package policy

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

func TestPatternMatch(t *testing.T) {
	cases := []struct {
		name, pattern string
		rel           rewrite.QName
		want          bool
	}{
		{"an exact name matches its relation", "public.responses", rewrite.QName{Schema: "public", Name: "responses"}, true},
		{"an exact name matches no other relation", "public.responses", rewrite.QName{Schema: "public", Name: "responses_2025"}, false},
		{"an exact name is case-sensitive, as the catalog", "public.Responses", rewrite.QName{Schema: "public", Name: "responses"}, false},
		{"a star matches any run of characters", "public.resp*", rewrite.QName{Schema: "public", Name: "responses"}, true},
		{"a star matches no character", "public.responses*", rewrite.QName{Schema: "public", Name: "responses"}, true},
		{"a star alone matches every name", "public.*", rewrite.QName{Schema: "public", Name: "x"}, true},
		{"stars may surround a word", "public.*_2025_*", rewrite.QName{Schema: "public", Name: "responses_2025_q1"}, true},
		{"stars keep the literal parts in order", "public.a*b*c", rewrite.QName{Schema: "public", Name: "acb"}, false},
		{"a suffix must not overlap the prefix", "public.ab*ba", rewrite.QName{Schema: "public", Name: "aba"}, false},
		{"a star in the schema matches every schema", "*.audit", rewrite.QName{Schema: "sales", Name: "audit"}, true},
		{"a star in the schema never matches pg_catalog", "*.*", rewrite.QName{Schema: "pg_catalog", Name: "pg_class"}, false},
		{"a star in the schema never matches information_schema", "*.tables", rewrite.QName{Schema: "information_schema", Name: "tables"}, false},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p, problem := parsePattern(tt.pattern)
			if problem != "" {
				t.Fatal(problem)
			}
			if got := p.Match(tt.rel); got != tt.want {
				t.Errorf("%s matches %s: %v, want %v", tt.pattern, tt.rel, got, tt.want)
			}
		})
	}
}

func TestPatternSpecificity(t *testing.T) {
	order := []string{"public.responses", "public.responses_*", "public.resp*", "public.*", "*.resp*", "*.*"}
	for i := 1; i < len(order); i++ {
		a, _ := parsePattern(order[i-1])
		b, _ := parsePattern(order[i])
		if a.specificity() <= b.specificity() {
			t.Errorf("%s should be more specific than %s", a, b)
		}
	}
}

func TestQuotedTableNamesSuggestTheCatalogName(t *testing.T) {
	for _, c := range []struct {
		name, pattern, suggestion string
	}{
		{"a name quoted as in SQL suggests it unquoted", `"Billing"."Subscriptions"`, `Did you mean "Billing.Subscriptions"?`},
		{"a quoted table of a plain schema suggests it unquoted", `app."Events"`, `Did you mean "app.Events"?`},
		{"a name with a space suggests nothing", `app.daily active`, ""},
		{"a quoted name that stays invalid unquoted suggests nothing", `"app".`, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, problem := parsePattern(c.pattern)
			if problem == "" {
				t.Fatalf("%s is accepted", c.pattern)
			}
			if c.suggestion == "" {
				if strings.Contains(problem, "Did you mean") {
					t.Fatalf("problem suggests a name: %s", problem)
				}
				return
			}
			if !strings.Contains(problem, c.suggestion) {
				t.Fatalf("problem lacks %q: %s", c.suggestion, problem)
			}
		})
	}
}
