package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
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

// Limits on what the rewrite of one statement may cost, checked on the
// parsed tree before the walk (maxRelations, maxSelects) and on its
// output (maxRewritten). Each reference to a governed relation becomes a
// scoped subquery, some 14 times its text, which the rewrite builds, the
// engine may cache and PostgreSQL parses again: a red team's FROM list of
// 100,000 references (1.8 MB) became 24 MB of SQL in 1.6 s and 143 MiB,
// and 40,000 scalar subqueries 10.7 MB in 2.6 s. The largest statements
// of the BI query sets (internal/compat/testdata/bi) and of the golden
// inputs name 7 relations in 7 SELECTs and rewrite to 4.5 KiB; a
// statement at these limits takes a few tens of milliseconds.
const (
	// maxRelations bounds the relation references of a text (tables,
	// views and CTE names, each RangeVar of its tree).
	maxRelations = 1000
	// maxSelects bounds its SELECTs: subqueries, the arms of set
	// operations, CTEs and VALUES lists.
	maxSelects = 1000
)

// maxRewritten bounds the length of a rewritten text: four times the
// longest text the guard passes (sqlguard's maxText). A variable for
// tests only.
var maxRewritten = 4 << 20

// treeSize returns the refusal of a parsed text that references more
// relations, or holds more SELECTs, than the rewrite may take on, or nil.
// tree's depth must have been checked (treeDepth).
func treeSize(tree *pg_query.ParseResult) *Refused {
	relations, selects := 0, 0
	over := false
	pgtree.Walk(tree, func(m proto.Message) bool {
		switch m.(type) {
		case *pg_query.RangeVar:
			relations++
		case *pg_query.SelectStmt:
			selects++
		}
		over = over || relations > maxRelations || selects > maxSelects
		return !over
	})
	switch {
	case relations > maxRelations:
		return deny("complexity", "the statement references more than %d relations", maxRelations)
	case selects > maxSelects:
		return deny("complexity", "the statement has more than %d SELECTs (subqueries, set operations, CTEs, VALUES lists)", maxSelects)
	}
	return nil
}

// tooLong returns the refusal of a rewritten text longer than
// maxRewritten, or nil.
func tooLong(out string) *Refused {
	if len(out) > maxRewritten {
		return deny("complexity", "the rewritten statement would be longer than %d bytes", maxRewritten)
	}
	return nil
}
