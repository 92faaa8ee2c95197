package rewrite_test

import (
	"slices"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestCatalogReadBy: each relation knows the views reading it, and a
// partition the views reading its parent, whose rows it holds.
func TestCatalogReadBy(t *testing.T) {
	_, cat := freshCatalog(t, "readby", `
CREATE TABLE base (id int);
CREATE TABLE parted (id int) PARTITION BY RANGE (id);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES FROM (0) TO (10);
CREATE VIEW v AS SELECT b.id FROM base b JOIN parted p USING (id);
CREATE VIEW vv AS SELECT id FROM v;
CREATE MATERIALIZED VIEW mv AS SELECT id FROM base;`)
	names := func(rels []*rewrite.Relation) []string {
		var out []string
		for _, r := range rels {
			out = append(out, r.Name)
		}
		slices.Sort(out)
		return out
	}
	for _, c := range []struct {
		rel  string
		want []string
	}{
		{"base", []string{"mv", "v"}},
		{"parted", []string{"v"}},
		{"parted_1", []string{"v"}},
		{"v", []string{"vv"}},
		{"vv", nil},
	} {
		rel := cat.Relations[rewrite.QName{Schema: "public", Name: c.rel}]
		if rel == nil {
			t.Fatalf("no relation %s", c.rel)
		}
		if got := names(rel.ReadBy); !slices.Equal(got, c.want) {
			t.Errorf("%s is read by %v, want %v", c.rel, got, c.want)
		}
	}
}
