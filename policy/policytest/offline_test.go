package policytest_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/policy/policytest"
	"github.com/pgveil/pgveil/rewrite"
)

func TestOfflineCatalogHoldsTheColumnsOfFollows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, []byte(`
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
}
table "public.orders" {
  team_column = "team"
}
table "public.lines" {
  follows = { table = "public.orders", column = "order_id", key = "id" }
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := policy.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cat := policytest.OfflineCatalog(cfg, []string{"public"})
	for _, c := range []struct {
		table, column string
	}{{"orders", "id"}, {"orders", "team"}, {"lines", "order_id"}} {
		rel := cat.Relations[rewrite.QName{Schema: "public", Name: c.table}]
		if rel == nil || !slices.ContainsFunc(rel.Columns, func(col rewrite.Column) bool { return col.Name == c.column }) {
			t.Errorf("the offline public.%s lacks the column %s", c.table, c.column)
		}
	}
}

func TestOfflineCatalogHoldsTheColumnsRulesAndMasksRead(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, []byte(`
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
}
role "order_entry" { statements = ["select", "update"] }
table "shop.orders" {
  column "note" {
    class      = "notes"
    mask       = "expression"
    expression = "CASE WHEN status = 'open' THEN note END"
  }
}
table "shop.stores" {
  reference = true
}
rule "own_store" {
  tables = ["shop.orders"]
  roles  = ["order_entry"]
  where  = "store_id = me.store AND placed_at > now() - interval '2160 hours'"
}
rule "every_table" {
  tables = ["shop.*"]
  roles  = ["order_entry"]
  where  = "region = me.region"
}
user "app" {
  password   = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$Yk5bX0oQxq7g1jm4MBGzkTrhyq5Q8pDQHnw/Y2bqk04=:Yk5bX0oQxq7g1jm4MBGzkTrhyq5Q8pDQHnw/Y2bqk04="
  roles      = ["order_entry"]
  attributes = { store = 2, region = "north" }
}
test "the app may not move an order to another store" {
  user   = "app"
  query  = "UPDATE shop.orders SET store_id = 1 WHERE id = 4"
  denied = true
  rule   = "write_scope"
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := policy.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	cat := policytest.OfflineCatalog(cfg, []string{"shop"})
	has := func(table, column string) bool {
		rel := cat.Relations[rewrite.QName{Schema: "shop", Name: table}]
		return rel != nil && slices.ContainsFunc(rel.Columns, func(col rewrite.Column) bool { return col.Name == column })
	}
	t.Run("the columns of a rule naming the table exactly and of its masks exist", func(t *testing.T) {
		for _, c := range []string{"store_id", "placed_at", "status", "note"} {
			if !has("orders", c) {
				t.Errorf("the offline shop.orders lacks the column %s", c)
			}
		}
	})
	t.Run("a pattern rule's columns are not assumed of every table it matches", func(t *testing.T) {
		if has("orders", "region") || has("stores", "region") {
			t.Error("the offline catalog took region, read by a pattern's rule, for a column")
		}
	})
	t.Run("an UPDATE of a column the rule reads is refused offline as upstream", func(t *testing.T) {
		o := policytest.Offline(cfg, []string{"shop"}).Run(context.Background(), cfg.Tests[0])
		if o.Status != policytest.Pass {
			t.Errorf("%s", o.String(cfg.Tests[0].Name))
		}
	})
}

// TestSwitchesAreCheckedAsServeChecksThem: the rewriter accepts any SET
// ROLE and leaves the act_for check to the proxy, so pgveil test (and
// explain) check it themselves; before, a test expecting a BI service's
// switch to a login it may not act for to be refused failed ("accepted"),
// although serve refuses it.
func TestSwitchesAreCheckedAsServeChecksThem(t *testing.T) {
	const verifier = "SCRAM-SHA-256$4096:c2FsdHNhbHRzYWx0c2FsdA==$Yk5bX0oQxq7g1jm4MBGzkTrhyq5Q8pDQHnw/Y2bqk04=:Yk5bX0oQxq7g1jm4MBGzkTrhyq5Q8pDQHnw/Y2bqk04="
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, []byte(`
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
}
role "viewer" { statements = ["select"] }
role "bi"     { statements = ["select"] }
user "metabase" {
  password = "`+verifier+`"
  roles    = ["bi"]
  act_for  = ["role:viewer"]
}
user "marie" {
  password = "`+verifier+`"
  roles    = ["viewer"]
}
user "hr" {
  password = "`+verifier+`"
  roles    = ["bi"]
}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, diags := policy.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	env := policytest.Offline(cfg, []string{"public"})
	for _, c := range []struct {
		user, query string
		refused     bool
		why         string
	}{
		{"metabase", "SET ROLE marie", false, ""},
		{"metabase", "RESET ROLE", false, ""},
		{"metabase", "SET ROLE metabase", false, ""},
		{"metabase", "SET ROLE hr", true, "metabase may not act for hr"},
		{"metabase", "SET ROLE postgres", true, `metabase may not act for "postgres"`},
		{"metabase", "SET pgveil.act_for = 'postgres'", true, `metabase may not act for "postgres"`},
		{"marie", "SET ROLE metabase", true, "marie is not a BI service"},
		{"marie", "RESET ROLE", true, "marie is not a BI service"},
	} {
		denied := c.refused
		got := env.Run(context.Background(), &policy.Test{User: c.user, Query: c.query, Denied: &denied, Rule: map[bool]string{true: "act_for"}[c.refused]})
		if got.Status != policytest.Pass {
			t.Errorf("%s %q (refused %v): %v %s", c.user, c.query, c.refused, got.Status, got.Reason)
		}
		if c.refused {
			// The refusal's text, as a test expecting rows shows it.
			got = env.Run(context.Background(), &policy.Test{User: c.user, Query: c.query, ExpectMasked: true, Masked: []string{}})
			if got.Status != policytest.Fail || !strings.Contains(got.Reason, c.why) || !strings.Contains(got.Reason, "act_for") {
				t.Errorf("%s %q: %v %s, want a failure naming act_for and %q", c.user, c.query, got.Status, got.Reason, c.why)
			}
		}
	}
}
