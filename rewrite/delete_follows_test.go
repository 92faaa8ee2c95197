package rewrite_test

import (
	"errors"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestDeleteOfAFollowedParent holds when a DELETE of a parent may reach a
// child that follows it (Access.Follows) by a foreign key: only when
// every child row the key's check or cascade reaches is one the user
// sees.
func TestDeleteOfAFollowedParent(t *testing.T) {
	base := demoCatalog(t)
	parent := rewrite.QName{Schema: "public", Name: "responses"}
	childName := rewrite.QName{Schema: "public", Name: "response_comments"}
	follows := &rewrite.Follow{Parent: parent, Column: "response_id", Key: "id"}
	cases := []struct {
		name string
		// follows is the child's Access.Follows; child adjusts a copy of
		// the child's relation.
		follows *rewrite.Follow
		child   func(*rewrite.Relation)
		refused bool
	}{
		{name: "a child following the parent on the foreign key is reached only where the user sees it", follows: follows},
		{name: "a child that does not follow in full (a restrictive rule of its own) is refused", refused: true},
		{name: "a child following another table is refused", follows: &rewrite.Follow{Parent: rewrite.QName{Schema: "public", Name: "surveys"}, Column: "response_id", Key: "id"}, refused: true},
		{name: "a child following the parent on another key is refused", follows: &rewrite.Follow{Parent: parent, Column: "response_id", Key: "survey_id"}, refused: true},
		{name: "a child whose foreign key sets NULL or a default on a delete is refused", follows: follows, refused: true,
			child: func(r *rewrite.Relation) { r.SettingReferences = map[string][]rewrite.QName{"response_id": {parent}} }},
		{name: "a child with a second foreign key to the parent, of another column, is refused", follows: follows, refused: true,
			child: func(r *rewrite.Relation) {
				r.References = map[string][]rewrite.QName{"response_id": {parent}, "id": {parent}}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat := *base
			cat.Relations = map[rewrite.QName]*rewrite.Relation{}
			for q, r := range base.Relations {
				cat.Relations[q] = r
			}
			child := *base.Relations[childName]
			if c.child != nil {
				c.child(&child)
			}
			cat.Relations[childName] = &child
			p := marie(t)
			p.kinds[rewrite.KindDelete] = true
			p.access["public.response_comments"] = rewrite.Access{Mode: rewrite.Governed, Filter: expr(t, "response_id = 2"), Follows: c.follows}
			_, err := rewrite.Rewrite("DELETE FROM responses WHERE id = 2", &cat, p)
			var r *rewrite.Refused
			switch {
			case c.refused && (!errors.As(err, &r) || r.Rule != "write_key"):
				t.Fatalf("want a refusal by rule write_key, got %v", err)
			case !c.refused && err != nil:
				t.Fatalf("refused: %v", err)
			}
		})
	}
}
