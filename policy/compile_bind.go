package policy

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// bind returns a copy of e's tree in which every me.<name> is the literal
// of attr(name), NULL for a missing attribute.
//
// NOTE: compileUser binds no expression reading an attribute the user
// lacks (UserPolicy.lacksAttribute): NULL does not fail closed past a
// call or CASE that reads it (concat, COALESCE, an ELSE). The catalog
// checks bind NULL only to type the expression.
//
// NOTE: literal builds A_Const / A_ArrayExpr nodes; attribute values
// never pass through SQL text, so no value can change the statement's
// shape.
func bind(e *sqlExpr, attr func(name string) Value) *pg_query.Node {
	n := proto.Clone(e.node).(*pg_query.Node)
	walkNodes(n, func(x *pg_query.Node) {
		if a := x.GetAExpr(); a != nil && (a.Kind == pg_query.A_Expr_Kind_AEXPR_OP_ANY || a.Kind == pg_query.A_Expr_Kind_AEXPR_OP_ALL) {
			// NOTE: = ANY(me.x) with a string or a number: the one value,
			// not a literal PostgreSQL would parse as an array ('{France,
			// Germany}' is two), as a one-valued directory or identity
			// attribute often is.
			if name, ok := attributeRef(a.Rexpr); ok {
				if v := attr(name); v.kind == kindString || v.kind == kindNumber {
					a.Rexpr = literal(Value{kind: kindList, list: []Value{v}, elem: v.kind})
				}
			}
		}
		if name, ok := attributeRef(x); ok {
			x.Node = literal(attr(name)).Node
		}
	})
	return n
}

// attributeRef reports whether n is me.<name>, and returns name.
func attributeRef(n *pg_query.Node) (string, bool) {
	ref := n.GetColumnRef()
	if ref == nil || len(ref.Fields) != 2 || ref.Fields[0].GetString_().GetSval() != attrRoot {
		return "", false
	}
	s := ref.Fields[1].GetString_()
	if s == nil {
		return "", false
	}
	return s.Sval, true
}
