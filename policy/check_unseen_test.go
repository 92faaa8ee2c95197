package policy

import (
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

func TestCheckUnseenCalls(t *testing.T) {
	cfg := &Config{Roles: map[string]*Role{
		"analyst": {Name: "analyst"},
		"auditor": {Name: "auditor", Functions: []string{"public.tohidden", "public.known"}},
		"ops":     {Name: "ops", Functions: []string{"public.known"}},
	}}
	cat := &rewrite.Catalog{UnseenCalls: []rewrite.UnseenCall{
		{Kind: 'c', Source: "integer", Target: "hidden", Function: rewrite.QName{Schema: "public", Name: "tohidden"}},
		{Kind: 'd', Target: "known_email", Function: rewrite.QName{Schema: "public", Name: "known"}},
	}}
	diags := cfg.CheckUnseenCalls(cat)

	t.Run("an implicit cast warns, naming every role that may not call its function", func(t *testing.T) {
		if len(diags) != 2 || diags[0].Severity != hcl.DiagWarning || diags[0].Summary != "Implicit cast calls a function" {
			t.Fatalf("diagnostics = %v", diags)
		}
		for _, want := range []string{"from integer to hidden", "public.tohidden", `roles "analyst", "ops"`, "AS IMPLICIT"} {
			if !strings.Contains(diags[0].Detail, want) {
				t.Errorf("detail %q lacks %q", diags[0].Detail, want)
			}
		}
	})
	t.Run("a domain's CHECK warns for the roles that may not call it", func(t *testing.T) {
		if diags[1].Summary != "Domain check calls a function" || !strings.Contains(diags[1].Detail, `role "analyst" may not`) ||
			!strings.Contains(diags[1].Detail, "known_email") {
			t.Fatalf("diagnostic = %v", diags[1])
		}
	})
	t.Run("a domain's CHECK names the relations its roles cannot read", func(t *testing.T) {
		col := func(name string, typ ...string) rewrite.Column {
			tn := &pg_query.TypeName{}
			for _, n := range typ {
				tn.Names = append(tn.Names, pg_query.MakeStrNode(n))
			}
			return rewrite.Column{Name: name, TypeName: tn}
		}
		people := rewrite.QName{Schema: "crm", Name: "people"}
		plain := rewrite.QName{Schema: "crm", Name: "plain"}
		cat := &rewrite.Catalog{
			UnseenCalls: cat.UnseenCalls[1:],
			CheckCalls:  map[string][]rewrite.ImplicitCall{"known_email": {{Function: rewrite.QName{Schema: "public", Name: "known"}}}},
			Relations: map[rewrite.QName]*rewrite.Relation{
				people: {QName: people, Columns: []rewrite.Column{col("id", "pg_catalog", "int4"), col("emails", "public", "known_email")}},
				plain:  {QName: plain, Columns: []rewrite.Column{col("id", "pg_catalog", "int4")}},
			},
		}
		d := cfg.CheckUnseenCalls(cat)
		if len(d) != 1 || !strings.Contains(d[0].Detail, "reads or writes crm.people,") || strings.Contains(d[0].Detail, "crm.plain") {
			t.Fatalf("diagnostics = %v", d)
		}
	})
	t.Run("an operator class's or a range's function names the relations its roles cannot read and the functions key to list it under", func(t *testing.T) {
		col := func(name, typ string) rewrite.Column {
			return rewrite.Column{Name: name, Type: typ, TypeName: &pg_query.TypeName{Names: []*pg_query.Node{pg_query.MakeStrNode("app"), pg_query.MakeStrNode(typ)}}}
		}
		tenants := rewrite.QName{Schema: "app", Name: "tenants"}
		subs := rewrite.QName{Schema: "Billing", Name: "Subscriptions"}
		plain := rewrite.QName{Schema: "app", Name: "plain"}
		cmp := rewrite.QName{Schema: "app", Name: "plan_cmp"}
		diff := rewrite.QName{Schema: "app", Name: "seat_diff"}
		cat := &rewrite.Catalog{
			CheckCalls: map[string][]rewrite.ImplicitCall{
				"plan_kind":  {{Function: cmp, Via: "its default btree operator class plan_ops"}},
				"seat_range": {{Function: diff, Via: "its range functions"}},
			},
			Relations: map[rewrite.QName]*rewrite.Relation{
				tenants: {QName: tenants, Columns: []rewrite.Column{col("id", "int4"), col("plan", "plan_kind")}},
				subs:    {QName: subs, Columns: []rewrite.Column{col("plan", "plan_kind"), col("seats", "seat_range")}},
				plain:   {QName: plain, Columns: []rewrite.Column{col("id", "int4")}},
			},
		}
		d := cfg.CheckUnseenCalls(cat)
		if len(d) != 2 || d[0].Summary != "Operator class calls a function" || d[1].Summary != "Operator class calls a function" {
			t.Fatalf("diagnostics = %v", d)
		}
		for _, want := range []string{
			"The type plan_kind, through its default btree operator class plan_ops, calls app.plan_cmp, which roles \"analyst\", \"auditor\", \"ops\" may not call.",
			"reads or writes Billing.Subscriptions, app.tenants, whose columns",
			`functions = ["app.plan_cmp"] in roles "analyst", "auditor", "ops"`,
		} {
			if !strings.Contains(d[0].Detail, want) {
				t.Errorf("detail %q lacks %q", d[0].Detail, want)
			}
		}
		if strings.Contains(d[0].Detail, "app.plain") || !strings.Contains(d[1].Detail, "The type seat_range, through its range functions, calls app.seat_diff") ||
			!strings.Contains(d[1].Detail, "reads or writes Billing.Subscriptions, whose") {
			t.Errorf("diagnostics = %v", d)
		}
		cfg.Roles["ops"].Functions = append(cfg.Roles["ops"].Functions, "app.plan_cmp")
		defer func() { cfg.Roles["ops"].Functions = cfg.Roles["ops"].Functions[:len(cfg.Roles["ops"].Functions)-1] }()
		if d := cfg.CheckUnseenCalls(cat); len(d) != 2 || !strings.Contains(d[0].Detail, `roles "analyst", "auditor" may not`) {
			t.Errorf("a role listing the function is not named: %v", d)
		}
	})
	t.Run("a function every role may call warns no one", func(t *testing.T) {
		cfg.Roles["analyst"].Functions = []string{"public.known", "public.tohidden"}
		cfg.Roles["ops"].Functions = []string{"public.known", "public.tohidden"}
		if d := cfg.CheckUnseenCalls(cat); len(d) != 0 {
			t.Fatalf("diagnostics = %v", d)
		}
	})
}
