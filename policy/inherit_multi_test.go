package policy

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestCompileMultipleInheritance: a table inheriting, by more than one
// line, from relations governed by different, equally specific table
// blocks holds rows each line's scan reads under its own block; governed
// by one of them, reading it by name would pass the other's masks and
// rules, so it is denied until a block names it. The blocks may sit at
// different distances: a parent's own block and a grandparent's reached
// through the other parent (or through both, a diamond). A single line of
// inheritance is governed by its nearest block, as before.
func TestCompileMultipleInheritance(t *testing.T) {
	policy := users + `
table "public.pa" {
  column "email" {
    class = "pii"
    mask  = "redact"
  }
}
table "public.pb" {}
table "public.named" {}
table "public.*" {
  column "email" {
    class = "pii"
    mask  = "redact"
    value = "pattern"
  }
}
schema "open" { default = "allow" }
rule "everything" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "all"
}
`
	cfg := loadPolicy(t, policy)
	p, err := cfg.compile("marie", cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(cfg.Files[0]) + string(filepath.Separator)
	// rel is a relation of public with the given parents.
	rel := func(name string, parents ...*rewrite.Relation) *rewrite.Relation {
		r := relation("public", name, []string{"email", "country"})
		r.Parents = parents
		for _, p := range parents {
			r.Ancestors = append(r.Ancestors, p.QName)
		}
		return r
	}
	open := func(parents ...*rewrite.Relation) *rewrite.Relation {
		r := rel("x", parents...)
		r.QName = rewrite.QName{Schema: "open", Name: "o"}
		return r
	}
	pa, pb := rel("pa"), rel("pb")
	const (
		masked    = "SELECT '***' AS email, country FROM public.c"
		unmasked  = "SELECT email, country FROM public.c"
		ambiguous = "denied: table public.c inherits from "
	)
	for _, tc := range []struct {
		name string
		rel  *rewrite.Relation
		want string
	}{
		{"a child of two parents governed by equally specific blocks is denied",
			rel("c", pa, pb), ambiguous + "public.pa and public.pb"},
		{"a child of a governed parent and of an open one's child of another block is denied",
			rel("c", pa, open(pb)), ambiguous + "public.pa and public.pb"},
		{"a child of a diamond whose top and one side are governed otherwise is denied",
			rel("c", open(pb), rel("pa", pb)), ambiguous + "public.pb and public.pa"},
		{"a child of an open parent and of a governed one whose parent another block governs is governed by the nearer",
			rel("c", open(), rel("named", pb)), "SELECT email, country FROM public.c"},
		{"a child of a governed parent and an open one is governed by the governed one's block",
			rel("c", pa, open()), masked},
		{"a child of two parents one block governs is governed by it",
			rel("c", rel("y", pa), open(pa)), masked},
		{"a child of a diamond governed at its top only is governed by it",
			rel("c", open(pa), open(pa)), masked},
		{"an exact block on one parent beats the pattern governing the other",
			rel("c", pb, rel("other")), unmasked},
		{"a single line of inheritance is governed by its nearest block",
			rel("c", rel("pa", pb)), masked},
		{"an ambiguous parent makes its child ambiguous",
			rel("c", rel("d", pa, pb)), "denied: table public.c inherits from public.pa and public.pb"},
		{"a single line without parents is governed by its nearest block",
			relation("public", "c", []string{"email", "country"}, pb.QName, pa.QName), unmasked},
		{"a block naming the child settles the ambiguity", func() *rewrite.Relation {
			r := rel("named", pa, pb)
			return r
		}(), "SELECT email, country FROM public.named"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := strings.ReplaceAll(accessSQL(t, tc.rel, p.Relation(tc.rel)), dir, "")
			if !strings.HasPrefix(got, tc.want) {
				t.Errorf("\n got: %s\nwant: %s…", got, tc.want)
			}
		})
	}
}
