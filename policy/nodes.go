package policy

import (
	"fmt"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/rewrite"
)

// walkNodes calls f on m (when it is a Node) and on every *pg_query.Node
// under it, parents before their children. f may replace a node's content
// in place (n.Node = …); the walk then goes on inside the new content.
func walkNodes(m proto.Message, f func(*pg_query.Node)) {
	pgtree.Walk(m, func(m proto.Message) bool {
		if n, ok := m.(*pg_query.Node); ok {
			f(n)
		}
		return true
	})
}

// mustParseExpr parses a SQL expression pgveil itself writes (a template),
// its operators qualified with pg_catalog; a failure is a program bug.
func mustParseExpr(sql string) *pg_query.Node {
	tree, err := pg_query.Parse(exprPrefix + sql)
	if err != nil {
		panic(fmt.Sprintf("policy: template %q: %v", sql, err))
	}
	val, problem := singleExpression(tree)
	if problem != "" {
		panic(fmt.Sprintf("policy: template %q: %s", sql, problem))
	}
	if problems := qualifyOperators(val); len(problems) > 0 {
		panic(fmt.Sprintf("policy: template %q: %s", sql, problems[0].detail))
	}
	return val
}

// substitute returns a copy of template in which every one-field column
// reference named by a key of with is replaced by (a copy of) its node.
//
// NOTE: templates name their placeholders pgveil_*, which no configured
// name replaces by accident: configured names enter the copy as AST
// fields, never as SQL text.
func substitute(template *pg_query.Node, with map[string]*pg_query.Node) *pg_query.Node {
	n := proto.Clone(template).(*pg_query.Node)
	walkNodes(n, func(x *pg_query.Node) {
		ref := x.GetColumnRef()
		if ref == nil || len(ref.Fields) != 1 {
			return
		}
		if repl, ok := with[ref.Fields[0].GetString_().GetSval()]; ok {
			x.Node = proto.Clone(repl).(*pg_query.Node).Node
		}
	})
	return n
}

// rangeVar returns a reference to the relation q, without alias.
//
// NOTE: not pg_query.MakeFullRangeVarNode, which always sets an Alias: an
// empty alias name crashes the deparser (a cgo segfault).
func rangeVar(q rewrite.QName) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
		Schemaname: q.Schema, Relname: q.Name, Inh: true, Relpersistence: "p", Location: -1,
	}}}
}

// columnRef returns a reference to the column name, unqualified.
func columnRef(name string) *pg_query.Node {
	return pg_query.MakeColumnRefNode([]*pg_query.Node{pg_query.MakeStrNode(name)}, -1)
}

// eq returns l OPERATOR(pg_catalog.=) r.
func eq(l, r *pg_query.Node) *pg_query.Node {
	return pg_query.MakeAExprNode(pg_query.A_Expr_Kind_AEXPR_OP, qualifiedOp("="), l, r, -1)
}

// eqAny returns l OPERATOR(pg_catalog.=) ANY(r).
func eqAny(l, r *pg_query.Node) *pg_query.Node {
	return pg_query.MakeAExprNode(pg_query.A_Expr_Kind_AEXPR_OP_ANY, qualifiedOp("="), l, r, -1)
}

// isBoolConst reports whether n is the constant b.
func isBoolConst(n *pg_query.Node, b bool) bool {
	c := n.GetAConst()
	return c != nil && !c.Isnull && c.GetBoolval() != nil && c.GetBoolval().Boolval == b
}

// or returns the disjunction of ns, folding constants: no operand or only
// FALSE gives FALSE, any TRUE gives TRUE.
func or(ns ...*pg_query.Node) *pg_query.Node {
	return boolOp(pg_query.BoolExprType_OR_EXPR, false, ns)
}

// and returns the conjunction of ns, folding constants: no operand or only
// TRUE gives TRUE, any FALSE gives FALSE.
func and(ns ...*pg_query.Node) *pg_query.Node {
	return boolOp(pg_query.BoolExprType_AND_EXPR, true, ns)
}

// flatten returns ns with the operands of each that is a BoolExpr of op
// in its place, so that or or and builds one level where PostgreSQL's
// parser would read one.
func flatten(op pg_query.BoolExprType, ns ...*pg_query.Node) []*pg_query.Node {
	var out []*pg_query.Node
	for _, n := range ns {
		if b := n.GetBoolExpr(); b != nil && b.Boolop == op {
			out = append(out, b.Args...)
			continue
		}
		out = append(out, n)
	}
	return out
}

// boolOp combines ns with op, whose neutral element is unit.
func boolOp(op pg_query.BoolExprType, unit bool, ns []*pg_query.Node) *pg_query.Node {
	var args []*pg_query.Node
	for _, n := range ns {
		switch {
		case isBoolConst(n, unit):
		case isBoolConst(n, !unit):
			return boolConst(!unit)
		default:
			args = append(args, n)
		}
	}
	switch len(args) {
	case 0:
		return boolConst(unit)
	case 1:
		return args[0]
	}
	return pg_query.MakeBoolExprNode(op, args, -1)
}

// deparseStmt renders one statement, held to its tree with the
// rewriter's deparse workarounds (rewrite.DeparseStatement).
//
// NOTE: the type checks send policy expressions upstream through it: a
// deparse that reads otherwise ((team > 1) IN (true) printed
// team > 1 IN (true), which reads team > (1 IN (true))) would check
// another expression than the one the rewriter forwards.
func deparseStmt(stmt *pg_query.Node) (string, error) {
	return rewrite.DeparseStatement(stmt, treeVersion)
}

// treeVersion is the parse-tree version of the linked pg_query (its
// PostgreSQL's server_version_num), which its deparser requires of every
// tree it is given; pg_query exports it only on parse results.
var treeVersion = func() int32 {
	r, err := pg_query.Parse("SELECT")
	if err != nil {
		panic("policy: pg_query cannot parse SELECT: " + err.Error())
	}
	return r.Version
}()
