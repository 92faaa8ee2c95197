package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"
)

// substitute replaces the FROM item n (a reference rv to the governed
// relation rel) with
//
//	(SELECT col, CAST(mask AS type) AS col, … FROM [ONLY] schema.rel
//	 WHERE <scope> [AND <pushed predicates>] OFFSET 0) AS alias
//
// The column list repeats the relation's columns in order, so SELECT *,
// whole-row references and clients' metadata keep the same shape. OFFSET
// 0 keeps the planner from flattening the subquery: no predicate of the
// user's runs on a row the scope removes, except the leak-proof
// comparisons pushDown copies inside so indexes stay usable.
func (w *walker) substitute(n *pg_query.Node, rv *pg_query.RangeVar, rel *Relation, acc Access) {
	// Catalog relations the firewall filters itself (pg_class, the
	// pg_stat_*_tables views: maskedCatalogRelations) are not governed
	// data: they do not count as such for EXPLAIN or the audit.
	system := rel.Schema == "pg_catalog"
	if !system {
		w.governedSeen = true
		w.tables[rel.QName.String()] = true
	}
	for _, r := range acc.Rules {
		w.rules[r] = true
	}
	alias := rv.Alias
	if alias == nil {
		alias = &pg_query.Alias{Aliasname: rv.Relname}
		w.unqualifyColumnRefs(rel.Schema, rv.Relname)
	}
	if !system {
		w.relNames[alias.Aliasname] = true
		w.relNames[rv.Relname] = true
	}
	inner := w.scopedSelect(rel, acc, rv.Inh, false, w.pushDown(alias, rel, acc))
	n.Node = &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
		Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: inner}},
		Alias:    alias,
	}}
	w.changed = true
}

// scopedSelect builds the SELECT that stands for rel: its columns in
// order, masked ones cast back to their type, the scope and the pushed
// conditions as WHERE, OFFSET 0 as the fence. With rowID, the row's
// tableoid and ctid come first as pgveil_tableoid and pgveil_ctid, for
// UPDATE and DELETE to find the rows again.
func (w *walker) scopedSelect(rel *Relation, acc Access, inh, rowID bool, pushed []*pg_query.Node) *pg_query.SelectStmt {
	system := rel.Schema == "pg_catalog"
	targets := make([]*pg_query.Node, 0, len(rel.Columns)+2)
	if rowID {
		targets = append(targets, resTarget(rowIDTableOID, columnRef("tableoid")), resTarget(rowIDCtid, columnRef("ctid")))
	}
	for _, col := range rel.Columns {
		mask, masked := acc.Masks[col.Name]
		if !masked {
			if !system {
				w.visible[rel.QName.String()+"."+col.Name] = true
			}
			targets = append(targets, resTarget("", columnRef(col.Name)))
			continue
		}
		if !system {
			w.masked[rel.QName.String()+"."+col.Name] = true
		}
		var val *pg_query.Node
		if mask == nil {
			val = nullConst()
		} else {
			val = clone(mask)
		}
		if col.TypeName == nil {
			panic("rewrite: catalog column " + rel.QName.String() + "." + col.Name + " has no TypeName")
		}
		val = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
			Arg: val, TypeName: proto.Clone(col.TypeName).(*pg_query.TypeName), Location: -1,
		}}}
		targets = append(targets, resTarget(col.Name, val))
	}
	var conds []*pg_query.Node
	if acc.Filter != nil {
		conds = append(conds, clone(acc.Filter))
	}
	conds = append(conds, pushed...)
	return &pg_query.SelectStmt{
		TargetList: targets,
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Schemaname: rel.Schema, Relname: rel.Name, Inh: inh, Relpersistence: "p", Location: -1,
		}}}},
		WhereClause: and(conds),
		LimitOffset: &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
			Val: &pg_query.A_Const_Ival{Ival: &pg_query.Integer{Ival: 0}}, Location: -1,
		}}},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_COUNT,
	}
}

// Names of the row identity columns scopedSelect adds for writes.
const (
	rowIDTableOID = "pgveil_tableoid"
	rowIDCtid     = "pgveil_ctid"
)

// pushableTypes are column types whose comparison operators with a
// constant of the same type are leak-proof in PostgreSQL: they cannot
// fail or signal anything about the value they compare.
var pushableTypes = map[string]bool{
	"integer": true, "bigint": true, "smallint": true, "text": true, "boolean": true,
	"date": true, "uuid": true, "oid": true, "name": true, "character varying": true,
	"timestamp without time zone": true, "timestamp with time zone": true,
}

// comparisonOps are the strict comparison operators pushDown may copy.
var comparisonOps = map[string]bool{"=": true, "<": true, ">": true, "<=": true, ">=": true, "<>": true}

// pushDown returns copies of the conjuncts of the enclosing SELECT's
// WHERE that compare one visible column of this relation with a constant
// or a parameter using a leak-proof operator. Running them inside the
// subquery lets PostgreSQL use an index for them; they stay in the outer
// WHERE too, so the result does not change. They are strict, so copying
// them into the nullable side of an outer join is sound.
func (w *walker) pushDown(alias *pg_query.Alias, rel *Relation, acc Access) []*pg_query.Node {
	if len(w.selects) == 0 || len(alias.Colnames) > 0 {
		return nil
	}
	sel := w.selects[len(w.selects)-1]
	if sel.WhereClause == nil || !fromHolds(sel.FromClause, alias.Aliasname) {
		return nil
	}
	single := len(sel.FromClause) == 1 && sel.FromClause[0].GetRangeVar() != nil
	var out []*pg_query.Node
	for _, c := range conjuncts(sel.WhereClause) {
		e := c.GetAExpr()
		if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) != 1 ||
			!comparisonOps[e.Name[0].GetString_().GetSval()] {
			continue
		}
		col, other := e.Lexpr, e.Rexpr
		if !isConstOrParam(other) {
			col, other = e.Rexpr, e.Lexpr
			if !isConstOrParam(other) {
				continue
			}
		}
		name, ok := columnOf(col, alias.Aliasname, single)
		if !ok {
			continue
		}
		if _, masked := acc.Masks[name]; masked {
			continue
		}
		typ := ""
		for _, rc := range rel.Columns {
			if rc.Name == name {
				typ = rc.Type
			}
		}
		if !pushableTypes[typ] {
			continue
		}
		cp := proto.Clone(e).(*pg_query.A_Expr)
		if col == e.Lexpr {
			cp.Lexpr = columnRef(name)
		} else {
			cp.Rexpr = columnRef(name)
		}
		out = append(out, &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: cp}})
	}
	return out
}

// fromHolds reports whether the FROM list names alias directly or in a
// join tree (not inside a subquery).
func fromHolds(from []*pg_query.Node, alias string) bool {
	for _, f := range from {
		switch v := f.Node.(type) {
		case *pg_query.Node_RangeVar:
			name := v.RangeVar.Relname
			if v.RangeVar.Alias != nil {
				name = v.RangeVar.Alias.Aliasname
			}
			if name == alias {
				return true
			}
		case *pg_query.Node_JoinExpr:
			if v.JoinExpr.Alias == nil && fromHolds([]*pg_query.Node{v.JoinExpr.Larg, v.JoinExpr.Rarg}, alias) {
				return true
			}
		}
	}
	return false
}

// conjuncts splits an AND tree.
func conjuncts(n *pg_query.Node) []*pg_query.Node {
	if b := n.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
		var out []*pg_query.Node
		for _, a := range b.Args {
			out = append(out, conjuncts(a)...)
		}
		return out
	}
	return []*pg_query.Node{n}
}

func isConstOrParam(n *pg_query.Node) bool {
	if c := n.GetAConst(); c != nil {
		return !c.Isnull
	}
	return n.GetParamRef() != nil
}

// columnOf returns the column a ColumnRef names when it is alias.col, or
// a bare col when the FROM list holds just this relation.
func columnOf(n *pg_query.Node, alias string, single bool) (string, bool) {
	cr := n.GetColumnRef()
	if cr == nil {
		return "", false
	}
	switch len(cr.Fields) {
	case 1:
		if s := cr.Fields[0].GetString_(); s != nil && single {
			return s.Sval, true
		}
	case 2:
		a, c := cr.Fields[0].GetString_(), cr.Fields[1].GetString_()
		if a != nil && c != nil && a.Sval == alias {
			return c.Sval, true
		}
	}
	return "", false
}

func clone(n *pg_query.Node) *pg_query.Node { return proto.Clone(n).(*pg_query.Node) }

func columnRef(name string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
		Fields: []*pg_query.Node{pg_query.MakeStrNode(name)}, Location: -1,
	}}}
}

func resTarget(name string, val *pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Name: name, Val: val, Location: -1}}}
}

func nullConst() *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true, Location: -1}}}
}

// and combines conditions with AND; nil when there are none.
func and(conds []*pg_query.Node) *pg_query.Node {
	switch len(conds) {
	case 0:
		return nil
	case 1:
		return conds[0]
	}
	return &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{
		Boolop: pg_query.BoolExprType_AND_EXPR, Args: conds, Location: -1,
	}}}
}
