package pgtree

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// Walk calls visit on m and, depth first, on every message below it;
// when visit returns false, the messages below that one are skipped.
func Walk(m proto.Message, visit func(proto.Message) bool) {
	if !visit(m) {
		return
	}
	Children(m, func(c proto.Message) { Walk(c, visit) })
}

// Equal reports whether a and b are the same syntax tree, where each
// node was in its text aside (the location, stmt_location and stmt_len
// fields): what proto.Equal reports once their locations are cleared.
func Equal(a, b *pg_query.ParseResult) bool { return eqParseResult(a, b) }
