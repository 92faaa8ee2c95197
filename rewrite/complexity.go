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
	_, err := measure(sql)
	return err
}

// measure is guard, with the counts of a text it passes.
func measure(sql string) (sqlguard.Counts, error) {
	c, why, syntax := sqlguard.Measure(sql)
	switch {
	case why == "":
		return c, nil
	case syntax:
		return c, denySyntax("%s", why)
	}
	return c, deny("complexity", "%s", why)
}

// maxEarlyNormalize bounds the operators and nesting of a text the engine
// normalises before its rewrite has checked the parsed tree's depth:
// pg_query's normalisation walks the tree in C, once per level.
const maxEarlyNormalize = 1000

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
