package policytest_test

import (
	"os"
	"path/filepath"
	"slices"
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
