package policy

import (
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestSuggestionForColumnsOfPolicyExpressions: the column suggested for
// a name a rule's where reads is shown as SQL must spell it.
func TestSuggestionForColumnsOfPolicyExpressions(t *testing.T) {
	rel := &rewrite.Relation{QName: rewrite.QName{Schema: "public", Name: "tickets"}, Kind: 'r', Columns: []rewrite.Column{
		{Name: "id"}, {Name: "Region"}, {Name: "agent_id"}, {Name: "created at"},
	}}
	for _, c := range []struct{ name, column, want string }{
		{"a lower-case near miss is suggested as it is", "agent_ld", ` (did you mean "agent_id"?)`},
		{"a mixed-case column read unquoted is suggested quoted, as SQL and HCL need it",
			"region", ` (did you mean "Region"? SQL reads that name only quoted (it folds unquoted names to lower case): write "Region", which is \"Region\" inside an HCL string)`},
		{"a column with a space is suggested quoted", "created_at", ` (did you mean "created at"? SQL reads that name only quoted (it folds unquoted names to lower case): write "created at", which is \"created at\" inside an HCL string)`},
		{"a name close to nothing gets no suggestion", "sentiment", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := suggestionFor(c.column, rel); got != c.want {
				t.Errorf("suggestionFor(%q) = %q, want %q", c.column, got, c.want)
			}
		})
	}
}
