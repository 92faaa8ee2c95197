package policy

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/rewrite"
)

// TestInheritanceLattice: a lattice of inheritance, every relation of a
// level a child of every relation of the level above, has exponentially
// many lines from its bottom to its top; tableFor follows each relation
// once (lineOf's memo), so a deep and wide lattice compiles. The time is
// logged, not asserted.
func TestInheritanceLattice(t *testing.T) {
	cfg := loadPolicy(t, users+`
table "public.top0" {
  column "email" {
    class = "pii"
    mask  = "redact"
  }
}
table "public.*" {}
rule "everything" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "all"
}
`)
	p, err := cfg.compile("marie", cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	for _, shape := range []struct{ levels, width int }{{20, 2}, {40, 2}, {20, 8}} {
		t.Run(fmt.Sprintf("a lattice %d deep and %d wide compiles", shape.levels, shape.width), func(t *testing.T) {
			var above, all []*rewrite.Relation
			for l := 0; l < shape.levels; l++ {
				var level []*rewrite.Relation
				for w := 0; w < shape.width; w++ {
					name := fmt.Sprintf("l%dw%d", l, w)
					if l == 0 {
						name = fmt.Sprintf("top%d", w)
					}
					r := relation("public", name, []string{"email"})
					r.Parents = above
					level = append(level, r)
				}
				above, all = level, append(all, level...)
			}
			// Ancestors and Descendants, as LoadCatalog would (breadth-first).
			for i, r := range all {
				seen := map[*rewrite.Relation]bool{}
				queue := append([]*rewrite.Relation(nil), r.Parents...)
				for len(queue) > 0 {
					a := queue[0]
					queue = queue[1:]
					if seen[a] {
						continue
					}
					seen[a] = true
					r.Ancestors = append(r.Ancestors, a.QName)
					queue = append(queue, a.Parents...)
				}
				all[i].OID = uint32(i + 1)
			}
			for i, r := range all {
				for _, d := range all[i+1:] {
					for _, a := range d.Ancestors {
						if a == r.QName {
							r.Descendants = append(r.Descendants, d)
							break
						}
					}
				}
			}
			start := time.Now()
			for _, r := range all {
				p.Relation(r)
			}
			t.Logf("%d relations compiled in %v", len(all), time.Since(start))
			bottom := all[len(all)-1]
			if got := accessSQL(t, bottom, p.Relation(bottom)); got[:7] == "denied:" {
				t.Errorf("the bottom, inheriting top0's block and public.*'s by two lines, is denied: %s (top0's exact block beats public.*)", got)
			}
		})
	}
}

// TestCompileAmbiguousParentLine: a parent matched by two equally
// specific blocks is ambiguous, and so is its child on that line alone;
// a second parent governed by one of the two blocks does not settle it,
// whichever order pg_inherits lists the parents in.
func TestCompileAmbiguousParentLine(t *testing.T) {
	cfg := loadPolicy(t, users+`
table "public.p*" {}
table "public.*b" {
  column "email" {
    class = "pii"
    mask  = "redact"
  }
}
rule "everything" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "all"
}
`)
	p, err := cfg.compile("marie", cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	rel := func(name string, parents ...*rewrite.Relation) *rewrite.Relation {
		r := relation("public", name, []string{"email"})
		r.Parents = parents
		for _, p := range parents {
			r.Ancestors = append(r.Ancestors, p.QName)
		}
		return r
	}
	pa, pb := rel("pa"), rel("pb")
	for _, tc := range []struct {
		name string
		rel  *rewrite.Relation
	}{
		{"a child of the ambiguous parent alone is denied", rel("c", pb)},
		{"a child of the ambiguous parent listed first is denied", rel("c", pb, pa)},
		{"a child of the ambiguous parent listed second is denied", rel("c", pa, pb)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := accessSQL(t, tc.rel, p.Relation(tc.rel)); !strings.HasPrefix(got, "denied:") {
				t.Errorf("got %s; want denied: public.pb's rows are matched by public.p* and public.*b alike", got)
			}
		})
	}
}

// TestCompileParentOfAmbiguousChild: a scan of a parent reads its
// descendants' rows under its own block, so a parent one of whose
// children is ambiguous (two lines of inheritance governed otherwise) is
// denied, as the rewriter would otherwise read the child's rows past the
// other line's block.
func TestCompileParentOfAmbiguousChild(t *testing.T) {
	cfg := loadPolicy(t, users+`
table "public.pa" {}
table "public.pb" {
  column "email" {
    class = "pii"
    mask  = "redact"
  }
}
rule "everything" {
  tables = ["public.pa", "public.pb"]
  roles  = ["analyst"]
  scope  = "all"
}
`)
	p, err := cfg.compile("marie", cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	pa, pb := relation("public", "pa", []string{"email"}), relation("public", "pb", []string{"email"})
	pa.OID, pb.OID = 1, 2
	c := relation("public", "c", []string{"email"}, pa.QName, pb.QName)
	c.OID, c.Parents = 3, []*rewrite.Relation{pa, pb}
	pa.Descendants, pb.Descendants = []*rewrite.Relation{c}, []*rewrite.Relation{c}
	for _, r := range []*rewrite.Relation{c, pa, pb} {
		t.Run(r.Name+" is denied", func(t *testing.T) {
			if got := accessSQL(t, r, p.Relation(r)); !strings.HasPrefix(got, "denied:") {
				t.Errorf("got %s; want denied: public.c's rows are pa's and pb's", got)
			}
		})
	}
}
