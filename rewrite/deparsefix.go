package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// subscriptArraySublinks rewrites, everywhere in tree, a subscript or
// field of an ARRAY(subquery) — (ARRAY(SELECT …))[1] — into the same
// subscript of a scalar subquery returning that array:
// (SELECT ARRAY(SELECT …))[1].
//
// pg_query's deparser prints the first ARRAY(SELECT …)[1], without the
// parentheses the grammar needs, and the deparse is refused as
// unfaithful (firewall rule rewrite); it prints the second with them.
// The value is the same: a scalar subquery of one row holding the array,
// with the same correlation (a reference to an outer query stays one).
// It returns whether it changed anything.
//
// NOTE: run on the tree that is deparsed, before deparsedFaithfully
// compares the output with it: the check holds the output to this tree.
func subscriptArraySublinks(tree *pg_query.ParseResult) bool {
	changed := false
	var visit func(m proto.Message)
	visit = func(m proto.Message) {
		if ind, ok := m.(*pg_query.A_Indirection); ok {
			if sl := ind.GetArg().GetSubLink(); sl != nil && sl.SubLinkType == pg_query.SubLinkType_ARRAY_SUBLINK {
				ind.Arg = &pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: &pg_query.SubLink{
					SubLinkType: pg_query.SubLinkType_EXPR_SUBLINK,
					Subselect: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
						TargetList: []*pg_query.Node{{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{
							Val: ind.Arg, Location: -1,
						}}}},
						LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
						Op:          pg_query.SetOperation_SETOP_NONE,
					}}},
					Location: -1,
				}}}
				changed = true
			}
		}
		pgtree.Children(m, visit)
	}
	for _, st := range tree.GetStmts() {
		if st.GetStmt() != nil {
			visit(st.GetStmt())
		}
	}
	return changed
}
