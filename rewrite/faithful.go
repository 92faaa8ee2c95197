package rewrite

import (
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// deparsedFaithfully reports whether out, the deparse of tree, parses
// back into tree, locations aside: what reaches the upstream is the
// statement the rewriter checked and built. pg_query's deparser is not
// faithful to every tree (0 LIKE (0 = 0) is deparsed 0 LIKE 0 = 0, which
// reads otherwise): such a statement is refused.
//
// NOTE: tree's locations are cleared. It costs a parse of the output:
// the engine deparses only what it cannot splice (writes, COPY, a few
// catalog forms) and statement templates when it makes them.
func deparsedFaithfully(out string, tree *pg_query.ParseResult) bool {
	if !utf8.ValidString(out) {
		return false
	}
	back, err := pg_query.Parse(out)
	if err != nil {
		return false
	}
	clearLocations(back)
	clearLocations(tree)
	return proto.Equal(back, tree)
}

// clearLocations zeroes every location field below m: where a node
// was in its text, not what it is.
func clearLocations(m proto.Message) {
	pgtree.Walk(m, func(m proto.Message) bool {
		r := m.ProtoReflect()
		fields := r.Descriptor().Fields()
		for _, name := range locationFields {
			if f := fields.ByName(name); f != nil && f.Kind() == protoreflect.Int32Kind {
				r.Clear(f)
			}
		}
		return true
	})
}

// locationFields are the fields of pg_query's messages that say where in
// its text a node was.
var locationFields = []protoreflect.Name{"location", "stmt_location", "stmt_len"}
