package rewrite

import (
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/internal/sqlguard"
)

// guard returns the refusal of sql before it reaches pg_query's parser
// (sqlguard.Check), or nil: too complex to parse safely (complexity), or
// a quote or comment that never ends (syntax).
func guard(sql string) error {
	why, syntax := sqlguard.Check(sql)
	switch {
	case why == "":
		return nil
	case syntax:
		return denySyntax("%s", why)
	}
	return deny("complexity", "%s", why)
}

// identChar reports whether c can continue an identifier
// (sqlguard.IdentChar).
func identChar(c byte) bool { return sqlguard.IdentChar(c) }

// maxTreeDepth bounds the depth of a parsed statement's tree (each
// expression level is two: the Node and its message). pg_query's deparser
// and the walks of its C code recurse once per level; Deparse crashes at
// about 9,800 (4,900 chained +). A statement BI tools write nests a few
// dozen.
const maxTreeDepth = 2000

// treeDepth returns the depth of m's tree below depth d, stopping once it
// passes maxTreeDepth.
func treeDepth(m proto.Message, d int) int {
	deepest := d
	if d > maxTreeDepth {
		return d
	}
	pgtree.Children(m, func(c proto.Message) {
		if deepest <= maxTreeDepth {
			deepest = max(deepest, treeDepth(c, d+1))
		}
	})
	return deepest
}
