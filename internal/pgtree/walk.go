package pgtree

import "google.golang.org/protobuf/proto"

// Walk calls visit on m and, depth first, on every message below it;
// when visit returns false, the messages below that one are skipped.
func Walk(m proto.Message, visit func(proto.Message) bool) {
	if !visit(m) {
		return
	}
	Children(m, func(c proto.Message) { Walk(c, visit) })
}
