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

// castBoolTestArgs casts, everywhere in tree, the operand of IS [NOT]
// NULL that is an AND, OR or NOT, and the operand of IS [NOT] NULL, IS
// [NOT] TRUE, IS [NOT] FALSE or IS [NOT] UNKNOWN that is an IS [NOT]
// DISTINCT FROM, to pg_catalog.bool: (a OR b) IS NULL becomes
// CAST((a OR b) AS pg_catalog.bool) IS NULL.
//
// pg_query's deparser prints the first a OR b IS NULL, which reads
// a OR (b IS NULL), and (a IS NOT DISTINCT FROM b) IS TRUE as
// a IS NOT DISTINCT FROM b IS TRUE, a syntax error: either deparse is
// refused as unfaithful (firewall rule rewrite). It prints the operand of
// a cast between parentheses. The value is the same: AND, OR and NOT
// yield boolean, and so does IS [NOT] DISTINCT FROM (PostgreSQL requires
// the = operator it uses to), and a cast of a value to its own type is
// no cast at all (coerce_type returns the value as it is): the analysed
// statement, its plan and its errors are those of the client's text. It
// returns whether it changed anything.
//
// NOTE: run on the tree that is deparsed, before deparsedFaithfully
// compares the output with it, as subscriptArraySublinks.
func castBoolTestArgs(tree *pg_query.ParseResult) bool {
	changed := false
	cast := func(arg **pg_query.Node, boolExpr bool) {
		a := *arg
		if a == nil {
			return
		}
		distinct := a.GetAExpr() != nil && (a.GetAExpr().Kind == pg_query.A_Expr_Kind_AEXPR_DISTINCT ||
			a.GetAExpr().Kind == pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT)
		if !distinct && !(boolExpr && a.GetBoolExpr() != nil) {
			return
		}
		*arg = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
			Arg: a,
			TypeName: &pg_query.TypeName{
				Names:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("bool")},
				Typemod: -1, Location: -1,
			},
			Location: -1,
		}}}
		changed = true
	}
	var visit func(m proto.Message)
	visit = func(m proto.Message) {
		switch v := m.(type) {
		case *pg_query.NullTest:
			cast(&v.Arg, true)
		case *pg_query.BooleanTest:
			cast(&v.Arg, false)
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
