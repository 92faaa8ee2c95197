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

// parenthesizeOperands wraps, everywhere in tree, the operand the
// deparser prints without the parentheses its precedence needs in a node
// it prints with them, whose value is the operand's:
//
//   - an operand of boolean type by the grammar alone (AND, OR, NOT, IS
//     [NOT] NULL, IS [NOT] TRUE and the like, IS [NOT] DISTINCT FROM,
//     [NOT] IN, [NOT] BETWEEN, op ANY/ALL, a row comparison, EXISTS and
//     op ANY/ALL (subquery), IS JSON, IS DOCUMENT) is cast to
//     pg_catalog.bool, as castBoolTestArgs does: a cast of a value to its
//     own type is no cast once analysed;
//   - an SQL-syntax call (a AT TIME ZONE b, a AT LOCAL, a IS NORMALIZED)
//     is written as the call it stands for, pg_catalog.timezone(b, a):
//     the grammar builds the same FuncCall, the form is only how it is
//     printed;
//   - an operator (a = b, a || b), LIKE, ILIKE or SIMILAR TO, whose type
//     depends on the operator the catalog resolves, becomes COALESCE(x):
//     of one argument, it has the argument's type, typmod, collation and
//     value (select_common_type of one expression is its type, domains
//     included); so does a boolean the deparser prints bare under a cast
//     too (op ANY (subquery), EXISTS, IS JSON, IS DOCUMENT);
//   - a COLLATE clause becomes COALESCE(x COLLATE c) too: the explicit
//     collation goes up through COALESCE as through any expression.
//
// The operands it considers are those the deparser prints bare: both
// sides of an operator, LIKE, ILIKE, SIMILAR TO and IS [NOT] DISTINCT
// FROM, the tested value of IN, op ANY/ALL (array or subquery) and
// BETWEEN and its bounds, the operand of NOT, IS [NOT] NULL, IS TRUE and
// the like, IS JSON, IS DOCUMENT, COLLATE, AT TIME ZONE, of a cast and of
// a subscript or field. Left as they are, so that the deparse stays
// unfaithful and the statement refused: a COLLATE over a value whose type
// may be unknown (mayBeUnknown: a literal, a parameter, a cast to unknown,
// a COLLATE of one; COALESCE would resolve it to text where the client's
// COLLATE leaves it to the operator around it),
// and under a subscript or field (which the deparser prints with
// parentheses only around a few node kinds, COALESCE not among them) a
// CASE, a COLLATE, a negative number, or a boolean the cast does not
// cover (none of them has subscripts or fields but the CASE and the
// COLLATE, whose type is the catalog's to tell). It returns whether it
// changed anything.
//
// NOTE: PostgreSQL refuses a set-returning function in COALESCE: an
// operator over one, written where its parentheses were needed, errors
// upstream rather than return its rows (fail closed).
//
// NOTE: the rewriter applies it only to a tree whose deparse came back
// unfaithful, and holds the new deparse to the changed tree
// (deparsedFaithfully): a statement the deparser prints right is
// forwarded as before.
//
// NOTE: it changes nothing, and the statement stays refused, when it
// would wrap, in a COALESCE or a cast, an operand that names an output
// column (outputNamePaths): PostgreSQL names a column of no alias after
// what is under its COLLATE, cast, subscript or CASE's ELSE, and COALESCE
// or a cast would rename it (coalesce, bool), which a client, a NATURAL
// or USING join over a derived table and ORDER BY name read. Leaving that
// one operand alone would not do: the same expression wrapped elsewhere
// (GROUP BY, DISTINCT ON) would no longer match it. The AT TIME ZONE and
// IS NORMALIZED calls keep their names.
func parenthesizeOperands(tree *pg_query.ParseResult) bool {
	if _, blocked := wrapOperands(tree, outputNamePaths(tree), true); blocked {
		return false
	}
	changed, _ := wrapOperands(tree, nil, false)
	return changed
}

// wrapOperands is parenthesizeOperands' walk. With dry, it changes
// nothing and reports whether it would wrap a node of naming (blocked).
//
// NOTE: a dry walk meets the nodes the other one does: a wrap only puts
// a COALESCE or a cast, which the walk does not wrap into, over the node
// it then goes down into.
func wrapOperands(tree *pg_query.ParseResult, naming map[*pg_query.Node]bool, dry bool) (changed, blocked bool) {
	wrap := func(arg **pg_query.Node, indirection bool) {
		a := *arg
		if a == nil {
			return
		}
		if fc := a.GetFuncCall(); fc != nil {
			if fc.Funcformat == pg_query.CoercionForm_COERCE_SQL_SYNTAX && sqlSyntaxInfix(fc) {
				if !dry {
					fc.Funcformat = pg_query.CoercionForm_COERCE_EXPLICIT_CALL
				}
				changed = true
			}
			return
		}
		if booleanByGrammar(a) && parenthesizedUnderCast(a) {
			switch {
			case naming[a]:
				blocked = true
			case !dry:
				*arg = castToBool(a)
			}
			changed = true
			return
		}
		if indirection {
			return
		}
		coalesce := booleanByGrammar(a)
		if c := a.GetCollateClause(); c != nil {
			// NOTE: not over a value whose type may be unknown
			// (mayBeUnknown): COALESCE would resolve it to text, where
			// the client's COLLATE leaves it to the operator around it.
			coalesce = !mayBeUnknown(c.Arg)
		}
		if e := a.GetAExpr(); e != nil {
			switch e.Kind {
			case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_LIKE,
				pg_query.A_Expr_Kind_AEXPR_ILIKE, pg_query.A_Expr_Kind_AEXPR_SIMILAR:
				coalesce = true
			}
		}
		if coalesce {
			switch {
			case naming[a]:
				blocked = true
			case !dry:
				*arg = &pg_query.Node{Node: &pg_query.Node_CoalesceExpr{CoalesceExpr: &pg_query.CoalesceExpr{
					Args: []*pg_query.Node{a}, Location: -1,
				}}}
			}
			changed = true
		}
	}
	var visit func(m proto.Message)
	visit = func(m proto.Message) {
		switch v := m.(type) {
		case *pg_query.A_Expr:
			wrap(&v.Lexpr, false)
			switch v.Kind {
			case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_DISTINCT,
				pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT, pg_query.A_Expr_Kind_AEXPR_LIKE,
				pg_query.A_Expr_Kind_AEXPR_ILIKE:
				wrap(&v.Rexpr, false)
			case pg_query.A_Expr_Kind_AEXPR_SIMILAR:
				if fc := v.Rexpr.GetFuncCall(); fc != nil {
					for i := range fc.Args {
						wrap(&fc.Args[i], false)
					}
				}
			case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
				pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
				if l := v.Rexpr.GetList(); l != nil {
					for i := range l.Items {
						wrap(&l.Items[i], false)
					}
				}
			}
		case *pg_query.BoolExpr:
			if v.Boolop == pg_query.BoolExprType_NOT_EXPR && len(v.Args) == 1 {
				wrap(&v.Args[0], false)
			}
		case *pg_query.NullTest:
			wrap(&v.Arg, false)
		case *pg_query.BooleanTest:
			wrap(&v.Arg, false)
		case *pg_query.JsonIsPredicate:
			wrap(&v.Expr, false)
		case *pg_query.XmlExpr:
			if v.Op == pg_query.XmlExprOp_IS_DOCUMENT {
				for i := range v.Args {
					wrap(&v.Args[i], false)
				}
			}
		case *pg_query.CollateClause:
			wrap(&v.Arg, false)
		case *pg_query.TypeCast:
			// NOTE: the deparser prints an AND, OR, NOT, IS NULL, IS
			// TRUE or operator under a cast with its parentheses; a
			// cast of one to boolean here would be wrapped again, and
			// again, as the walk goes down into the new cast.
			if !parenthesizedUnderCast(v.Arg) {
				wrap(&v.Arg, false)
			}
		case *pg_query.A_Indirection:
			wrap(&v.Arg, true)
		case *pg_query.SubLink:
			switch v.SubLinkType {
			case pg_query.SubLinkType_ANY_SUBLINK, pg_query.SubLinkType_ALL_SUBLINK:
				wrap(&v.Testexpr, false)
			}
		case *pg_query.FuncCall:
			if v.Funcformat == pg_query.CoercionForm_COERCE_SQL_SYNTAX && sqlSyntaxInfix(v) {
				for i := range v.Args {
					wrap(&v.Args[i], false)
				}
			}
		}
		pgtree.Children(m, visit)
	}
	for _, st := range tree.GetStmts() {
		if st.GetStmt() != nil {
			visit(st.GetStmt())
		}
	}
	return changed, blocked
}

// outputNamePaths returns the nodes of tree that PostgreSQL reads to
// name an output column (FigureColname): the value of each target of no
// alias (a SELECT's, a RETURNING's), and below it, as long as it is one,
// the operand of a COLLATE, of a cast, of a subscript with no field name
// after it, and the ELSE of a CASE. Wrapping one of them in COALESCE or
// a cast renames the column: SELECT name COLLATE "C" COLLATE "C" names
// it name, SELECT COALESCE(name COLLATE "C") COLLATE "C" coalesce.
//
// NOTE: it may hold more than FigureColname reads (a cast of a named
// operand takes the operand's name, not the type's): that only refuses a
// statement parenthesizeOperands would have wrapped such a node of.
func outputNamePaths(tree *pg_query.ParseResult) map[*pg_query.Node]bool {
	out := map[*pg_query.Node]bool{}
	var path func(n *pg_query.Node)
	path = func(n *pg_query.Node) {
		for n != nil {
			out[n] = true
			switch v := n.GetNode().(type) {
			case *pg_query.Node_TypeCast:
				n = v.TypeCast.Arg
			case *pg_query.Node_CollateClause:
				n = v.CollateClause.Arg
			case *pg_query.Node_CaseExpr:
				n = v.CaseExpr.Defresult
			case *pg_query.Node_AIndirection:
				for _, i := range v.AIndirection.Indirection {
					if i.GetString_() != nil {
						return
					}
				}
				n = v.AIndirection.Arg
			default:
				return
			}
		}
	}
	var visit func(m proto.Message)
	visit = func(m proto.Message) {
		if rt, ok := m.(*pg_query.ResTarget); ok && rt.Name == "" {
			path(rt.Val)
		}
		pgtree.Children(m, visit)
	}
	for _, st := range tree.GetStmts() {
		if st.GetStmt() != nil {
			visit(st.GetStmt())
		}
	}
	return out
}

// mayBeUnknown reports whether n, the operand of a COLLATE, may have
// the type unknown once analysed, which a COLLATE keeps (PostgreSQL's
// transformCollateClause lets it through) and leaves for the operator or
// column around it to resolve: a literal, a parameter, a cast to unknown
// ('ab '::unknown, $1::unknown) and a COLLATE of one of these. COALESCE
// over it resolves it to text instead: c = COALESCE('ab '::unknown
// COLLATE "C") compares a char(3) c as text, with the trailing blank,
// and infers text for a parameter the client's text infers char for.
//
// NOTE: every other expression has a type of its own: PostgreSQL
// resolves an unknown output of a subquery, a CASE or a COALESCE to
// text, and no SQL function returns unknown.
func mayBeUnknown(n *pg_query.Node) bool {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_AConst, *pg_query.Node_ParamRef:
		return true
	case *pg_query.Node_TypeCast:
		names := v.TypeCast.GetTypeName().GetNames()
		return len(names) > 0 && names[len(names)-1].GetString_().GetSval() == "unknown"
	case *pg_query.Node_CollateClause:
		return mayBeUnknown(v.CollateClause.Arg)
	}
	return false
}

// sqlSyntaxInfix reports whether fc is a call the grammar builds from an
// infix or postfix form the deparser prints as such: AT TIME ZONE and AT
// LOCAL (pg_catalog.timezone), IS [NOT] NORMALIZED
// (pg_catalog.is_normalized).
func sqlSyntaxInfix(fc *pg_query.FuncCall) bool {
	if len(fc.Funcname) != 2 || fc.Funcname[0].GetString_().GetSval() != "pg_catalog" {
		return false
	}
	switch fc.Funcname[1].GetString_().GetSval() {
	case "timezone", "is_normalized":
		return true
	}
	return false
}

// booleanByGrammar reports whether PostgreSQL gives n the type boolean
// whatever its operands: AND, OR and NOT coerce their arguments to
// boolean and yield it; IS [NOT] NULL, IS [NOT] TRUE and the like, IS
// JSON and IS DOCUMENT yield it; IS [NOT] DISTINCT FROM, [NOT] IN, op
// ANY/ALL (array or subquery) and row comparisons require the operator
// they use to yield it ("must return type boolean"); BETWEEN is an AND
// or OR of comparisons; EXISTS yields it.
func booleanByGrammar(n *pg_query.Node) bool {
	switch v := n.GetNode().(type) {
	case *pg_query.Node_BoolExpr, *pg_query.Node_NullTest, *pg_query.Node_BooleanTest,
		*pg_query.Node_JsonIsPredicate:
		return true
	case *pg_query.Node_XmlExpr:
		return v.XmlExpr.Op == pg_query.XmlExprOp_IS_DOCUMENT
	case *pg_query.Node_SubLink:
		switch v.SubLink.SubLinkType {
		case pg_query.SubLinkType_EXISTS_SUBLINK, pg_query.SubLinkType_ANY_SUBLINK,
			pg_query.SubLinkType_ALL_SUBLINK, pg_query.SubLinkType_ROWCOMPARE_SUBLINK:
			return true
		}
	case *pg_query.Node_AExpr:
		switch v.AExpr.Kind {
		case pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT,
			pg_query.A_Expr_Kind_AEXPR_IN, pg_query.A_Expr_Kind_AEXPR_OP_ANY,
			pg_query.A_Expr_Kind_AEXPR_OP_ALL, pg_query.A_Expr_Kind_AEXPR_BETWEEN,
			pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN, pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM,
			pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
			return true
		case pg_query.A_Expr_Kind_AEXPR_OP:
			return v.AExpr.Lexpr.GetRowExpr() != nil && v.AExpr.Rexpr.GetRowExpr() != nil
		}
	}
	return false
}

// castToBool returns CAST(n AS pg_catalog.bool).
func castToBool(n *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
		Arg: n,
		TypeName: &pg_query.TypeName{
			Names:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("bool")},
			Typemod: -1, Location: -1,
		},
		Location: -1,
	}}}
}

// parenthesizedUnderCast reports whether the deparser prints n between
// parentheses as the operand of a cast (needsParensAsBExpr in its
// source): an AND, OR or NOT, IS [NOT] NULL, IS [NOT] TRUE and the like,
// and any A_Expr.
func parenthesizedUnderCast(n *pg_query.Node) bool {
	return n.GetBoolExpr() != nil || n.GetNullTest() != nil || n.GetBooleanTest() != nil || n.GetAExpr() != nil
}
