package rewrite

import (
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// deparsedFaithfully reports whether out, the deparse of tree, parses
// back into tree, locations aside: what reaches the upstream is the
// statement the rewriter checked and built. pg_query's deparser is not
// faithful to every tree (0 LIKE (0 = 0) is deparsed 0 LIKE 0 = 0, which
// reads otherwise): such a statement is refused, unless wrapping the
// operand (parenthesizeOperands) makes its deparse faithful.
//
// NOTE: it costs a parse of the output: the engine deparses only what it
// cannot splice (writes, COPY, a few catalog forms) and statement
// templates when it makes them.
func deparsedFaithfully(out string, tree *pg_query.ParseResult) bool {
	if !utf8.ValidString(out) {
		return false
	}
	back, err := pg_query.Parse(out)
	return err == nil && pgtree.Equal(back, tree)
}
