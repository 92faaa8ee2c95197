package policy

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// catalogSchema is the schema every operator of a compiled policy
// expression is resolved in.
const catalogSchema = "pg_catalog"

// qualifiedOp returns the operator name pg_catalog.op, as
// OPERATOR(pg_catalog.op) is parsed.
func qualifiedOp(op string) []*pg_query.Node {
	return []*pg_query.Node{pg_query.MakeStrNode(catalogSchema), pg_query.MakeStrNode(op)}
}

// opProblem is an operator form qualifyOperators cannot qualify, at a
// parser location.
type opProblem struct {
	loc    int32
	detail string
}

// qualifyOperators rewrites n in place so that every operator it applies
// is pg_catalog's, whatever the search_path: a plain operator a op b
// becomes a OPERATOR(pg_catalog.op) b (ANY/ALL, and IN or op ANY/ALL
// over a subquery, alike); LIKE, ILIKE and SIMILAR TO, which are their
// operators ~~, ~~*, ~ in disguise, become those operators qualified; IN
// (list) becomes the OR of qualified = (NOT IN the AND of <>), and BETWEEN
// the AND of >= and <= (NOT BETWEEN the OR of < and >), which is how
// PostgreSQL defines them. It returns the forms that have no qualified
// spelling: IS [NOT] DISTINCT FROM, NULLIF, BETWEEN SYMMETRIC and the
// simple CASE x WHEN v, whose implicit = PostgreSQL looks up along the
// search_path.
//
// NOTE: an unqualified operator is looked up along the pinned
// search_path, before pg_catalog when pg_catalog is listed after a schema
// (or when a schema there defines a better-matching operator for the
// operand types): anyone with CREATE on such a schema could make a policy
// run their function on every row, hidden ones included. Qualifying at
// load time closes that; a name already qualified with another schema is
// refused by exprChecker.operator.
func qualifyOperators(n *pg_query.Node) []opProblem {
	var problems []opProblem
	walkNodes(n, func(x *pg_query.Node) {
		switch v := x.Node.(type) {
		case *pg_query.Node_AExpr:
			if p := qualifyAExpr(x, v.AExpr); p != "" {
				problems = append(problems, opProblem{v.AExpr.Location, p})
			}
		case *pg_query.Node_SubLink:
			s := v.SubLink
			switch {
			case s.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && len(s.OperName) == 0:
				s.OperName = qualifiedOp("=") // x IN (SELECT …)
			case len(s.OperName) == 1:
				s.OperName = qualifiedOp(s.OperName[0].GetString_().GetSval())
			}
		case *pg_query.Node_CaseExpr:
			if v.CaseExpr.Arg != nil {
				problems = append(problems, opProblem{v.CaseExpr.Location,
					"CASE x WHEN v compares with an = looked up along the search_path: write CASE WHEN x = v THEN r END"})
			}
		}
	})
	return problems
}

// qualifyAExpr qualifies the operator of e, the content of x, replacing
// x's content when the form changes; it returns why it cannot.
func qualifyAExpr(x *pg_query.Node, e *pg_query.A_Expr) string {
	op := ""
	if len(e.Name) == 1 {
		op = e.Name[0].GetString_().GetSval()
	}
	switch e.Kind {
	case pg_query.A_Expr_Kind_AEXPR_OP, pg_query.A_Expr_Kind_AEXPR_OP_ANY, pg_query.A_Expr_Kind_AEXPR_OP_ALL:
		if op != "" {
			e.Name = qualifiedOp(op)
		}
	case pg_query.A_Expr_Kind_AEXPR_LIKE, pg_query.A_Expr_Kind_AEXPR_ILIKE, pg_query.A_Expr_Kind_AEXPR_SIMILAR:
		// NOTE: PostgreSQL analyses these kinds as the plain operator
		// (the ESCAPE clause is already a pg_catalog function call on the
		// pattern): only the spelling changes.
		e.Kind, e.Name = pg_query.A_Expr_Kind_AEXPR_OP, qualifiedOp(op)
	case pg_query.A_Expr_Kind_AEXPR_IN:
		items := e.Rexpr.GetList().GetItems()
		if len(items) == 0 || (op != "=" && op != "<>") {
			return "this IN form cannot be qualified: write x = ANY(ARRAY[…])"
		}
		parts := make([]*pg_query.Node, len(items))
		for i, it := range items {
			parts[i] = qualifiedExpr(op, proto.Clone(e.Lexpr).(*pg_query.Node), it, e.Location)
		}
		if op == "=" {
			x.Node = boolExprOf(pg_query.BoolExprType_OR_EXPR, parts, e.Location).Node
		} else {
			x.Node = boolExprOf(pg_query.BoolExprType_AND_EXPR, parts, e.Location).Node
		}
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN:
		bounds := e.Rexpr.GetList().GetItems()
		if len(bounds) != 2 {
			return "this BETWEEN form cannot be qualified: write x >= a AND x <= b"
		}
		lo, hi := bounds[0], bounds[1]
		if e.Kind == pg_query.A_Expr_Kind_AEXPR_BETWEEN {
			x.Node = boolExprOf(pg_query.BoolExprType_AND_EXPR, []*pg_query.Node{
				qualifiedExpr(">=", e.Lexpr, lo, e.Location),
				qualifiedExpr("<=", proto.Clone(e.Lexpr).(*pg_query.Node), hi, e.Location),
			}, e.Location).Node
		} else {
			x.Node = boolExprOf(pg_query.BoolExprType_OR_EXPR, []*pg_query.Node{
				qualifiedExpr("<", e.Lexpr, lo, e.Location),
				qualifiedExpr(">", proto.Clone(e.Lexpr).(*pg_query.Node), hi, e.Location),
			}, e.Location).Node
		}
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		return "BETWEEN SYMMETRIC compares with operators looked up along the search_path: write it with >= and <= (or LEAST and GREATEST)"
	case pg_query.A_Expr_Kind_AEXPR_DISTINCT, pg_query.A_Expr_Kind_AEXPR_NOT_DISTINCT:
		return "IS [NOT] DISTINCT FROM compares with an = looked up along the search_path: write it with IS NULL and =, e.g. (a IS NULL AND b IS NULL) OR a = b"
	case pg_query.A_Expr_Kind_AEXPR_NULLIF:
		return "NULLIF compares with an = looked up along the search_path: write CASE WHEN a = b THEN NULL ELSE a END"
	default:
		return "this operator form cannot be qualified with pg_catalog"
	}
	return ""
}

// qualifiedExpr returns l OPERATOR(pg_catalog.op) r.
func qualifiedExpr(op string, l, r *pg_query.Node, loc int32) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{
		Kind: pg_query.A_Expr_Kind_AEXPR_OP, Name: qualifiedOp(op), Lexpr: l, Rexpr: r, Location: loc,
	}}}
}

// boolExprOf returns the AND or OR of args, at loc.
func boolExprOf(op pg_query.BoolExprType, args []*pg_query.Node, loc int32) *pg_query.Node {
	if len(args) == 1 {
		return args[0]
	}
	return pg_query.MakeBoolExprNode(op, args, loc)
}
