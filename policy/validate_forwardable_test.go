package policy

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// TestUnforwardableExpressionsAreErrorsOffline: a rule's where or a mask
// expression pgveil's deparser cannot print as its tree would make the
// rewriter refuse every statement on its tables; loading the
// configuration says so at the expression, once, without an upstream.
// Expressions it prints faithfully, whatever kind the attributes they
// read take, load without it.
func TestUnforwardableExpressionsAreErrorsOffline(t *testing.T) {
	for _, c := range []struct {
		name string
		// edits replace, in order, the first occurrence of each old text
		// of mistakesBase with its new text.
		edits [][2]string
		// want are texts the printed diagnostics hold; none when empty.
		want []string
	}{
		{
			name:  "a where subscripting a CASE is an error at the where",
			edits: [][2]string{{`where  = "country = me.country"`, `where  = "(CASE WHEN agent_login = me.login THEN ARRAY[country] END)[1] IS NOT NULL"`}},
			want:  []string{`pgveil.hcl:19:12: error: Expression pgveil cannot forward`, `the where of rule "france_only"`, "refuses every statement"},
		},
		{
			name: "a where covering two tables is reported once",
			edits: [][2]string{
				{`tables = ["public.responses"]`, `tables = ["public.responses", "public.archive"]`},
				{`role "country_analyst"`, "table \"public.archive\" {}\nrole \"country_analyst\""},
				{`where  = "country = me.country"`, `where  = "(CASE WHEN country = me.country THEN ARRAY[country] END)[1] IS NOT NULL"`},
			},
			want: []string{`pgveil.hcl:20:12: error: Expression pgveil cannot forward`},
		},
		{
			name:  "a mask expression subscripting a CASE is an error at the expression",
			edits: [][2]string{{`mask  = "partial"`, "mask  = \"expression\"\n    expression = \"(CASE WHEN email = '' THEN ARRAY[email] END)[1]\""}},
			want:  []string{`pgveil.hcl:13:18: error: Expression pgveil cannot forward`, `the expression mask of column email`},
		},
		{
			name:  "a mask expression reading an attribute and subscripting a CASE is an error",
			edits: [][2]string{{`mask  = "partial"`, "mask  = \"expression\"\n    expression = \"(CASE WHEN me.country = 'France' THEN ARRAY[email] END)[1]\""}},
			want:  []string{`pgveil.hcl:13:18: error: Expression pgveil cannot forward`},
		},
		{
			name:  "a where subscripting a COLLATE is an error",
			edits: [][2]string{{`where  = "country = me.country"`, `where  = "(ARRAY[country] COLLATE \"C\")[1] = me.country"`}},
			want:  []string{`pgveil.hcl:19:12: error: Expression pgveil cannot forward`},
		},
		{
			name: "an attribute identity rows supply is bound as every kind, and none prints the CASE's subscript",
			edits: [][2]string{
				{`role "country_analyst"`, "identity \"staff\" {\n  query = \"SELECT login, region FROM public.staff\"\n}\nrole \"country_analyst\""},
				{`where  = "country = me.country"`, `where  = "(CASE WHEN country = me.region THEN ARRAY[country] END)[1] IS NOT NULL"`},
			},
			want: []string{`pgveil.hcl:22:12: error: Expression pgveil cannot forward`},
		},
		{
			name: "an attribute identity rows supply loads in an ordinary where",
			edits: [][2]string{
				{`role "country_analyst"`, "identity \"staff\" {\n  query = \"SELECT login, region FROM public.staff\"\n}\nrole \"country_analyst\""},
				{`where  = "country = me.country"`, `where  = "country = me.region OR country = ANY(me.region)"`},
			},
		},
		{
			name:  "an ordinary where loads",
			edits: [][2]string{{`where  = "country = me.country"`, `where  = "country = me.country AND (agent_login = me.login OR me.team > 2) AND 'x' = ANY(me.groups)"`}},
		},
		{
			name:  "a subscript of a function call loads",
			edits: [][2]string{{`where  = "country = me.country"`, `where  = "(pg_catalog.string_to_array(country, ','))[1] = me.country"`}},
		},
		{
			name: "a list attribute loads",
			edits: [][2]string{
				{`attributes = { country = "France" }`, `attributes = { country = "France", countries = ["France"] }`},
				{`where  = "country = me.country"`, `where  = "country = ANY(me.countries) AND NOT me.countries @> ARRAY[agent_login]"`},
			},
		},
		{
			name:  "a CASE mask expression loads",
			edits: [][2]string{{`mask  = "partial"`, "mask  = \"expression\"\n    expression = \"CASE WHEN me.country = 'France' THEN email END\""}},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
			src := strings.ReplaceAll(mistakesBase, "VERIFIER", testVerifier)
			for _, e := range c.edits {
				if !strings.Contains(src, e[0]) {
					t.Fatalf("the base has no %q", e[0])
				}
				src = strings.Replace(src, e[0], e[1], 1)
			}
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(src))
			t.Chdir(dir)
			l := NewLoader()
			cfg, diags := l.Load("pgveil.hcl")
			var out bytes.Buffer
			if err := WriteDiagnostics(&out, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			n := 0
			for _, d := range diags {
				if d.Summary == UnforwardableSummary {
					n++
				}
			}
			if len(c.want) == 0 {
				if n != 0 || cfg == nil {
					t.Fatalf("the configuration does not load:\n%s", out.String())
				}
				return
			}
			if n != 1 || cfg != nil {
				t.Errorf("want one %q error and no configuration, got %d:\n%s", UnforwardableSummary, n, out.String())
			}
			got := strings.Join(strings.Fields(out.String()), " ")
			for _, w := range c.want {
				if !strings.Contains(got, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("diagnostics lack %q:\n%s", w, out.String())
				}
			}
		})
	}
}

// TestTypeCheckReportsAnUnforwardableExpressionOnce: upstream, a where
// bound for a user whose values make it unprintable is reported by
// typeCheck itself, once for every relation it covers, with the detail
// loading gives, and never sent to the server (the checker has none).
func TestTypeCheckReportsAnUnforwardableExpressionOnce(t *testing.T) {
	tree, err := pg_query.Parse("SELECT (CASE WHEN owner = 'ann' THEN ARRAY[owner] END)[1] IS NOT NULL")
	if err != nil {
		t.Fatal(err)
	}
	pred := tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget().Val
	rng := &hcl.Range{Filename: "pgveil.hcl", Start: hcl.Pos{Line: 10, Column: 12}, End: hcl.Pos{Line: 10, Column: 40}}
	ck := &catalogChecker{}
	for _, name := range []string{"a", "b"} {
		rel := &rewrite.Relation{QName: rewrite.QName{Schema: "public", Name: name}, Kind: 'r'}
		problem, ok := ck.typeCheck(rng, `the where of rule "r"`, explainSelect(pg_query.MakeAConstIntNode(1, -1), rel, pred))
		if problem != "" || !ok {
			t.Fatalf("typeCheck on %s = %q, %v; want \"\", true", name, problem, ok)
		}
	}
	if len(ck.diags) != 1 || ck.diags[0].Summary != UnforwardableSummary || ck.diags[0].Detail != unforwardableDetail(`the where of rule "r"`) {
		t.Fatalf("want one %q diagnostic, got %v", UnforwardableSummary, ck.diags)
	}
}
