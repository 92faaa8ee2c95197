package policy

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestFollowsInFullOnlyWhenNothingNarrowsIt holds Access.Follows, on
// which a DELETE of the parent may cascade into the child (rewrite's
// deleteChecked): set when every child row whose column holds a visible
// parent row's key is visible (rules, ceilings and own rows of the
// child's only add rows), nil when a restrictive rule of the child's
// narrows the follow, or when the follow shows no row.
func TestFollowsInFullOnlyWhenNothingNarrowsIt(t *testing.T) {
	cat, tags := followsCatalog()
	want := &rewrite.Follow{Parent: responses.QName, Column: "response_id", Key: "id"}
	for _, c := range []struct {
		name, extra, login string
		set                bool
	}{
		{"a manager's follow of her subtree", "", "paul", true},
		{"an agent's follow of his own responses", "", "tom", true},
		{"a follow of every response", "", "cora", true},
		{"a rule of the child's adds rows", `
rule "tag_spam" {
  tables = ["public.tags"]
  roles  = ["central"]
  where  = "tag = 'spam'"
}`, "cora", true},
		{"a restrictive rule of the child's narrows the follow", `
rule "no_spam" {
  tables = ["public.tags"]
  roles  = ["central"]
  kind   = "restrictive"
  where  = "tag <> 'spam'"
}`, "cora", false},
		{"a restrictive rule of another role's does not", `
rule "no_spam" {
  tables = ["public.tags"]
  roles  = ["manager"]
  kind   = "restrictive"
  where  = "tag <> 'spam'"
}`, "cora", true},
		{"a restrictive rule reading a column the child lacks narrows it to nothing", `
rule "no_spam" {
  tables = ["public.tags"]
  roles  = ["central"]
  kind   = "restrictive"
  where  = "nope <> 'spam'"
}`, "cora", false},
		{"own rows and a ceiling of the child's", `
role "lead" {
  statements = ["select"]
  scope      = "own_team"
  own_rows   = true
}
user "lea" {
  password = "VERIFIER"
  roles    = ["lead"]
  team     = 2
}
rule "lead_team" {
  tables = ["public.responses"]
  roles  = ["lead"]
  scope  = "own_team"
}`, "lea", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			policy := followsPolicy + c.extra
			if c.login == "lea" {
				policy = strings.Replace(policy, `table "public.tags" {`, `table "public.tags" {
  owner_column = "tag"`, 1)
			}
			acc := compile(t, policy, c.login).RelationIn(cat, tags)
			if where := whereOf(t, tags, acc); c.login == "lea" && !strings.Contains(where, "OR tag OPERATOR(pg_catalog.=) 'lea'") {
				t.Fatalf("lea's filter %s lacks her own rows", where)
			}
			got := acc.Follows
			if c.set && (got == nil || *got != *want) {
				t.Errorf("Follows %+v, want %+v", got, want)
			}
			if !c.set && got != nil {
				t.Errorf("Follows %+v, want nil", got)
			}
		})
	}
	t.Run("no follow without the snapshot, the parent or the column", func(t *testing.T) {
		p := compile(t, followsPolicy, "cora")
		if got := p.Relation(tags).Follows; got != nil {
			t.Errorf("without the snapshot: %+v", got)
		}
		if got := p.RelationIn(&rewrite.Catalog{Relations: map[rewrite.QName]*rewrite.Relation{tags.QName: tags}}, tags).Follows; got != nil {
			t.Errorf("without the parent: %+v", got)
		}
		if got := p.RelationIn(cat, relation("public", "tags", []string{"tag"})).Follows; got != nil {
			t.Errorf("without the column: %+v", got)
		}
	})
}
