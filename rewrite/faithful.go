package rewrite

import (
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
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
	clearLocations(back.ProtoReflect())
	clearLocations(tree.ProtoReflect())
	return proto.Equal(back, tree)
}

// clearLocations zeroes every location field below m: where a node
// was in its text, not what it is.
func clearLocations(m protoreflect.Message) {
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		switch {
		case fd.Kind() == protoreflect.Int32Kind && (fd.Name() == "location" || fd.Name() == "stmt_location" || fd.Name() == "stmt_len"):
			m.Clear(fd)
		case fd.Kind() != protoreflect.MessageKind:
		case fd.IsList():
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				clearLocations(l.Get(i).Message())
			}
		default:
			clearLocations(v.Message())
		}
		return true
	})
}
