package rewrite

import (
	"regexp"
	"slices"
	"strconv"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// substitute replaces the FROM item n (a reference rv to the governed
// relation rel) with
//
//	(SELECT rel.col, CAST(mask AS type) AS col, … FROM [ONLY] schema.rel
//	 WHERE <scope> [AND <pushed predicates>] OFFSET 0) AS alias
//
// The column list repeats the relation's columns in order, so SELECT *,
// whole-row references and clients' metadata keep the same shape. Every
// column of the relation is qualified by its name inside the subquery
// (targets, masks, scope, pushed predicates: buildScopedSelect). OFFSET
// 0 keeps the planner from flattening the subquery: no predicate of the
// user's runs on a row the scope removes, except the leak-proof
// comparisons pushDown copies inside so indexes stay usable. With
// acc.NoPushdown the SELECT is a UNION ALL of that SELECT and an empty
// copy of it, OFFSET 0 on the UNION ALL, which the planner does not look
// through for the table's statistics (fenced).
//
// n becomes the RangeSubselect at once, so the rest of the walk sees the
// FROM item as it will be; its SELECT is built by materialize, only when
// the statement is deparsed: a spliced rewrite (splice.go) takes the
// SELECT's text from a verified template instead.
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
		if len(alias.Colnames) > 0 {
			// Its columns are read under the names the list gives.
			w.star = true
		}
	}
	pushed, pushedAll := w.pushDown(alias, rel, acc)
	w.noteColumns(rel, acc)
	rs := &pg_query.RangeSubselect{Alias: alias}
	n.Node = &pg_query.Node_RangeSubselect{RangeSubselect: rs}
	ref := scopedRef{node: n, rs: rs, rv: rv, rel: rel, acc: acc, pushed: pushed, pushedAll: pushedAll}
	if w.root != nil && len(w.selects) == 1 && w.selects[0] == w.root {
		ref.root = w.root
	}
	w.scoped = append(w.scoped, ref)
}

// scopedRef is a FROM item substitute replaced: the RangeSubselect put in
// its place, whose Subquery materialize fills, and what it is made of.
type scopedRef struct {
	// node is the FROM item, rs its RangeSubselect until flatten
	// decides otherwise.
	node *pg_query.Node
	rs   *pg_query.RangeSubselect
	// rv is the client's reference as parsed: its Location and names
	// say where its text is (splice.go).
	rv     *pg_query.RangeVar
	rel    *Relation
	acc    Access
	pushed []*pg_query.Node
	// pushedAll reports that pushed copies every conjunct of the WHERE
	// of the FROM item's SELECT (pushDown).
	pushedAll bool
	// root is the statement's top-level SELECT when the FROM item is
	// one of its own, nil otherwise; flat reports that flatten found
	// the relation may be read directly there (flatten.go).
	root *pg_query.SelectStmt
	flat bool
	// xmin reports that the statement reads the xmin of a relation of
	// maskedCatalogRelations, which its SELECT then gives (catalogXmin).
	xmin bool
}

// materialize builds the SELECT of every FROM item substitute replaced,
// or, for one flatten chose, puts the relation itself back in its place
// and the scope in its SELECT's WHERE.
func (w *walker) materialize() {
	for i := range w.writes {
		if w.writes[i].flat {
			materializeWrite(&w.writes[i])
		}
	}
	for _, s := range w.scoped {
		if s.flat {
			s.node.Node = &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
				Schemaname: s.rel.Schema, Relname: s.rel.Name, Inh: s.rv.Inh, Relpersistence: "p",
				Alias: s.rs.Alias, Location: -1,
			}}
			s.root.WhereClause = scopeWhere(s.acc, s.pushed, s.rs.Alias.GetAliasname())
			continue
		}
		if s.rs.Subquery == nil {
			var inner *pg_query.SelectStmt
			if s.xmin {
				inner = w.buildScopedArm(s.rel, s.acc, s.rv.Inh, false, s.pushed)
				inner.TargetList = append(inner.TargetList, resTarget("", qualifiedRef(s.rel.Name, "xmin")))
				inner = fenced(inner, s.acc.NoPushdown)
			} else {
				inner = w.buildScopedSelect(s.rel, s.acc, s.rv.Inh, false, s.pushed)
			}
			s.rs.Subquery = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: inner}}
		}
	}
}

// scopedSelect builds the SELECT that stands for rel: its columns in
// order, masked ones cast back to their type, the scope and the pushed
// conditions as WHERE, OFFSET 0 as the fence. With rowID, the row's
// tableoid and ctid come first as pgveil_tableoid and pgveil_ctid, for
// UPDATE and DELETE to find the rows again.
func (w *walker) scopedSelect(rel *Relation, acc Access, inh, rowID bool, pushed []*pg_query.Node) *pg_query.SelectStmt {
	w.noteColumns(rel, acc)
	return w.buildScopedSelect(rel, acc, inh, rowID, pushed)
}

// noteColumns records rel's visible and masked columns for the audit
// (Result.Columns and Result.Masked).
func (w *walker) noteColumns(rel *Relation, acc Access) {
	if rel.Schema == "pg_catalog" {
		return
	}
	for _, col := range rel.Columns {
		if _, masked := acc.Masks[col.Name]; masked {
			w.masked[rel.QName.String()+"."+col.Name] = true
		} else {
			w.visible[rel.QName.String()+"."+col.Name] = true
		}
	}
}

// buildScopedSelect is scopedSelect without the audit's notes: the
// SELECT buildScopedArm builds, behind the planner's statistics fence
// when acc.NoPushdown (fenced).
func (w *walker) buildScopedSelect(rel *Relation, acc Access, inh, rowID bool, pushed []*pg_query.Node) *pg_query.SelectStmt {
	return fenced(w.buildScopedArm(rel, acc, inh, rowID, pushed), acc.NoPushdown)
}

// buildScopedArm builds the SELECT that reads rel: its columns in order,
// masked ones cast back to their type (or to the one Access.MaskTypes
// names: a hash pseudonym's), the scope and the pushed conditions as
// WHERE, OFFSET 0.
//
// Every reference to the relation's columns in it, the targets, the masks,
// the scope and the pushed conditions, is qualified by the relation's name
// (qualifiedCopy), which names the SELECT's only FROM item, at its own
// level: PostgreSQL resolves rel.col there or fails (42703), where a bare
// col the table no longer has (renamed or dropped upstream since the
// catalog snapshot was read) would resolve to a column of the same name of
// the client's enclosing query, and a scope on it would let every row
// through.
func (w *walker) buildScopedArm(rel *Relation, acc Access, inh, rowID bool, pushed []*pg_query.Node) *pg_query.SelectStmt {
	targets := make([]*pg_query.Node, 0, len(rel.Columns)+2)
	q := rel.Name
	if rowID {
		targets = append(targets, resTarget(rowIDTableOID, qualifiedRef(q, "tableoid")), resTarget(rowIDCtid, qualifiedRef(q, "ctid")))
	}
	for _, col := range rel.Columns {
		mask, masked := acc.Masks[col.Name]
		if !masked {
			targets = append(targets, resTarget("", qualifiedRef(q, col.Name)))
			continue
		}
		var val *pg_query.Node
		if mask == nil {
			val = nullConst()
		} else {
			val = qualifiedCopy(mask, q)
		}
		if col.TypeName == nil {
			panic("rewrite: catalog column " + rel.QName.String() + "." + col.Name + " has no TypeName")
		}
		// NOTE: a domain's base type, not the domain: its NOT NULL or
		// CHECK would fail on the masked value (Column.MaskType).
		_, typ := col.MaskCast()
		if t := acc.MaskTypes[col.Name]; t != nil {
			typ = t
		}
		val = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
			Arg: val, TypeName: proto.Clone(typ).(*pg_query.TypeName), Location: -1,
		}}}
		targets = append(targets, resTarget(col.Name, val))
	}
	return &pg_query.SelectStmt{
		Op:         pg_query.SetOperation_SETOP_NONE,
		TargetList: targets,
		// NOTE: no alias: the item is known by the relation's name, which
		// qualifies its columns, so the SELECT's text depends on the
		// relation and the policy only, as subquery templates need
		// (splice.go); its level has no other item that name could find.
		FromClause: []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: &pg_query.RangeVar{
			Schemaname: rel.Schema, Relname: q, Inh: inh, Relpersistence: "p", Location: -1,
		}}}},
		WhereClause: scopeWhere(acc, pushed, q),
		LimitOffset: &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
			Val: &pg_query.A_Const_Ival{Ival: &pg_query.Integer{Ival: 0}}, Location: -1,
		}}},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_COUNT,
	}
}

// fenced returns arm, a SELECT buildScopedArm built, behind a fence
// PostgreSQL's planner does not look through for statistics when fence is
// set (a NoPushdown access), arm itself otherwise:
//
//	<arm without OFFSET 0> UNION ALL <the same, WHERE false> OFFSET 0
//
// PostgreSQL estimates a condition on a column of a subquery from the
// statistics of the column it reads (selfuncs.c, examine_simple_variable,
// looks through a subquery scan, OFFSET 0 or not), that is from the
// most common values and the histogram of every row of the table, hidden
// ones included, on which it runs the client's operator (a regular
// expression, LIKE, <): the estimate picks the plan, and the plan the
// order of the rows, so a client could learn hidden rows' values from the
// order of its own. It gives up on a subquery that is a set operation.
// The second arm reads no row: the planner prunes it as provably empty
// and removes the one-child Append, so the plan is the scoped SELECT's
// own. Its arms are identical, so the columns keep their names, types,
// typmods and collations (a set operation over identical types keeps
// them, domains included).
//
// OFFSET 0 stays the fence, on the set operation: it keeps PostgreSQL
// from pulling the UNION ALL up into the client's query (an appendrel)
// and from pushing the client's conditions down into its arms, beside
// the scope. Each arm is a level of its own whose only FROM item is the
// relation, which its references are qualified by (buildScopedArm): the
// qualified names resolve there or fail, as in the unfenced SELECT.
//
// NOTE: a set operation's unused outputs are not removed
// (remove_unused_subquery_outputs), so PostgreSQL computes every column
// of the rows in scope: no index-only scan behind the fence.
func fenced(arm *pg_query.SelectStmt, fence bool) *pg_query.SelectStmt {
	if !fence {
		return arm
	}
	offset := arm.LimitOffset
	arm.LimitOffset, arm.LimitOption = nil, pg_query.LimitOption_LIMIT_OPTION_DEFAULT
	empty := proto.Clone(arm).(*pg_query.SelectStmt)
	empty.WhereClause = &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
		Val: &pg_query.A_Const_Boolval{Boolval: &pg_query.Boolean{Boolval: false}}, Location: -1,
	}}}
	return &pg_query.SelectStmt{
		Op:          pg_query.SetOperation_SETOP_UNION,
		All:         true,
		Larg:        arm,
		Rarg:        empty,
		LimitOffset: offset,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_COUNT,
	}
}

// scopeWhere returns the scope of acc and the pushed conditions, ANDed,
// with their references to the relation's columns qualified by q, the
// name of the FROM item that reads it (qualifiedCopy); nil when there are
// none.
func scopeWhere(acc Access, pushed []*pg_query.Node, q string) *pg_query.Node {
	conds := make([]*pg_query.Node, 0, len(pushed)+1)
	if acc.Filter != nil {
		conds = append(conds, qualifiedCopy(acc.Filter, q))
	}
	for _, p := range pushed {
		conds = append(conds, qualifiedCopy(p, q))
	}
	return and(conds)
}

// qualifiedCopy returns a copy of n, an expression over a relation's
// columns as a policy writes one (a scope, a mask) or pushDown copies
// one, with every bare column reference col outside its subqueries
// written q.col, q the name of the FROM item that reads the relation.
//
// A policy expression names the governed relation's columns bare, and
// only outside its subqueries; inside one, every column is alias.column
// of that subquery's own FROM (policy/decode_sqlexpr.go, columnRef): a
// subquery's SELECT is left as it is, a sublink's test expression (col IN
// (SELECT …)) is the relation's level and is qualified.
//
// NOTE: qualified, a column the relation no longer has is an error
// (PostgreSQL looks rel.col up on the nearest FROM item named rel only),
// where a bare name goes on to the enclosing query levels, the client's.
func qualifiedCopy(n *pg_query.Node, q string) *pg_query.Node {
	n = clone(n)
	qualifyColumns(n, q)
	return n
}

// QualifiedCopy is qualifiedCopy, for the policy's own compositions: a
// follower's filter holds its parent's scope, whose bare columns must name
// the parent's FROM item in the follow's subquery.
func QualifiedCopy(n *pg_query.Node, q string) *pg_query.Node { return qualifiedCopy(n, q) }

// qualifyColumns is qualifiedCopy in place.
func qualifyColumns(m proto.Message, q string) {
	pgtree.Walk(m, func(m proto.Message) bool {
		switch v := m.(type) {
		case *pg_query.ColumnRef:
			if len(v.Fields) == 1 && v.Fields[0].GetString_() != nil {
				v.Fields = []*pg_query.Node{pg_query.MakeStrNode(q), v.Fields[0]}
			}
			return false
		case *pg_query.SubLink:
			if v.Testexpr != nil {
				qualifyColumns(v.Testexpr, q)
			}
			return false
		case *pg_query.SelectStmt, *pg_query.RangeSubselect:
			return false
		}
		return true
	})
}

// Names of the row identity columns scopedSelect adds for writes.
const (
	rowIDTableOID = "pgveil_tableoid"
	rowIDCtid     = "pgveil_ctid"
)

// pushTypes maps the type of a column, as format_type writes it without
// its modifiers, to the type pushed comparisons compare it as: a
// varchar column compares as text (the relabelling calls no function).
// Columns of other types are never compared inside the scope.
var pushTypes = map[string]string{
	"smallint": "int2", "integer": "int4", "bigint": "int8",
	"text": "text", "character varying": "text", "name": "name",
	"boolean": "bool", "uuid": "uuid", "oid": "oid", "date": "date",
	"timestamp without time zone": "timestamp", "timestamp with time zone": "timestamptz",
}

// typmodRE matches the modifiers of a type name: "(20)", "(5, 2)".
var typmodRE = regexp.MustCompile(`\([0-9, ]*\)`)

// pushComparisons are the comparison operators pushDown may copy.
var pushComparisons = []string{"=", "<>", "<", "<=", ">", ">="}

// leakproofPairs lists, for each (column type, operand type) pair
// pushDown may compare, the pg_catalog functions of the six comparison
// operators, in pushComparisons order. Every one is leak-proof
// (pg_proc.proleakproof) in PostgreSQL: it cannot fail, or signal anything
// about the values it compares. TestLeakproofPairs checks the list
// against the upstream's catalog, so it cannot lie.
var leakproofPairs = map[[2]string][6]string{
	{"int2", "int2"}:               {"int2eq", "int2ne", "int2lt", "int2le", "int2gt", "int2ge"},
	{"int2", "int4"}:               {"int24eq", "int24ne", "int24lt", "int24le", "int24gt", "int24ge"},
	{"int2", "int8"}:               {"int28eq", "int28ne", "int28lt", "int28le", "int28gt", "int28ge"},
	{"int4", "int2"}:               {"int42eq", "int42ne", "int42lt", "int42le", "int42gt", "int42ge"},
	{"int4", "int4"}:               {"int4eq", "int4ne", "int4lt", "int4le", "int4gt", "int4ge"},
	{"int4", "int8"}:               {"int48eq", "int48ne", "int48lt", "int48le", "int48gt", "int48ge"},
	{"int8", "int2"}:               {"int82eq", "int82ne", "int82lt", "int82le", "int82gt", "int82ge"},
	{"int8", "int4"}:               {"int84eq", "int84ne", "int84lt", "int84le", "int84gt", "int84ge"},
	{"int8", "int8"}:               {"int8eq", "int8ne", "int8lt", "int8le", "int8gt", "int8ge"},
	{"text", "text"}:               {"texteq", "textne", "text_lt", "text_le", "text_gt", "text_ge"},
	{"name", "name"}:               {"nameeq", "namene", "namelt", "namele", "namegt", "namege"},
	{"bool", "bool"}:               {"booleq", "boolne", "boollt", "boolle", "boolgt", "boolge"},
	{"uuid", "uuid"}:               {"uuid_eq", "uuid_ne", "uuid_lt", "uuid_le", "uuid_gt", "uuid_ge"},
	{"oid", "oid"}:                 {"oideq", "oidne", "oidlt", "oidle", "oidgt", "oidge"},
	{"date", "date"}:               {"date_eq", "date_ne", "date_lt", "date_le", "date_gt", "date_ge"},
	{"timestamp", "timestamp"}:     {"timestamp_eq", "timestamp_ne", "timestamp_lt", "timestamp_le", "timestamp_gt", "timestamp_ge"},
	{"timestamptz", "timestamptz"}: {"timestamptz_eq", "timestamptz_ne", "timestamptz_lt", "timestamptz_le", "timestamptz_gt", "timestamptz_ge"},
}

// pushDown returns copies of the conjuncts of the enclosing SELECT's
// WHERE that compare one visible column of this relation with a constant
// or a parameter, rewritten so that the only function they run on a row
// is a leak-proof comparison of the column's own type (leakproofPairs).
// Running them inside the subquery lets PostgreSQL use an index for them;
// they stay in the outer WHERE too, so the result does not change. They
// are strict, so copying them into the nullable side of an outer join is
// sound. Nothing is pushed when acc.NoPushdown.
//
// NOTE: the copies run on hidden rows too, so what the copy computes is
// decided here, from what is known before the statement runs (the
// column's type in the catalog snapshot, the constant's syntax), never
// left to PostgreSQL's operator resolution: a parameter the client
// declares as oid in Parse turns id = $1 on a bigint id into (id)::oid =
// $1, an "OID out of range" error on hidden rows with large ids. So:
//
//   - the operator is written OPERATOR(pg_catalog.op): an operator
//     created in a schema of the search_path never runs on hidden rows;
//   - a constant is pushed only when its type follows from its syntax and
//     the pair (column type, constant type) has leak-proof operators: an
//     untyped string is coerced to the column's type itself (its input
//     function runs once, on the client's text, when the statement is
//     parsed), an integer is int4 or int8, true/false bool; anything else
//     (numeric 1.5, a cast, COLLATE) stays outside, but for a typed
//     literal of the column's own type (date '…', '…'::text, CAST('…'
//     AS int8), without modifiers, its type pg_catalog's): its string
//     is copied alone, read as the column's type as the cast reads it;
//   - a parameter the statement does not declare (in Parse or PREPARE;
//     params.go) takes the type PostgreSQL infers, so the copy casts it
//     to the column's type: col OP $n::type. A declared one is copied
//     only where that cannot fail (paramCast): of the column's type, of
//     an integer type compared by a leak-proof cross-type operator, or
//     cast without failure (text to name, timestamp to date). The cast
//     runs on the client's own value, never on a row's: with a custom plan
//     PostgreSQL folds it before the scan; in a generic plan it is the
//     same value on every row, so it fails on the first row the scan
//     reaches or never, which can tell at most that the table holds a row
//     (no more than the time an index probe takes, see configs/README.md).
//     When the client declared another type, the cast can round the value
//     (a timestamp parameter against a date column): < and > are then
//     copied as <= and >=, which a monotone rounding never makes stricter
//     than the client's own comparison; <> is not copied. (The copy only
//     ever needs to be implied by the client's comparison: it is a filter
//     for the index, the client's own stays outside.)
//   - a text column keeps its collation: the copy compares with the
//     column's collation, as the client's comparison does (a COLLATE
//     clause is not a constant, so it is never copied).
//
// Two more forms are copied, as the comparisons they stand for in
// PostgreSQL: col BETWEEN a AND b as col >= a and col <= b (two copies),
// and col IN (a, b, …) as (col = a OR col = b …), one copy, for at most
// maxPushedIn constants or parameters. NOT BETWEEN, BETWEEN SYMMETRIC
// and NOT IN are not.
//
// all reports whether every conjunct was copied.
func (w *walker) pushDown(alias *pg_query.Alias, rel *Relation, acc Access) (out []*pg_query.Node, all bool) {
	if acc.NoPushdown || len(w.selects) == 0 || len(alias.Colnames) > 0 {
		return nil, false
	}
	sel := w.selects[len(w.selects)-1]
	if sel.WhereClause == nil {
		return nil, true
	}
	if !fromHolds(sel.FromClause, alias.Aliasname) {
		return nil, false
	}
	pu := pusher{
		alias: alias.Aliasname, rel: rel, acc: acc,
		single: len(sel.FromClause) == 1 && sel.FromClause[0].GetRangeVar() != nil,
		// An unqualified type name in a typed literal (date '…') names
		// pg_catalog's type only when pg_catalog comes first.
		catalogFirst: len(w.path) > 0 && w.path[0] == "pg_catalog",
		declared:     w.declaredParam,
	}
	return pu.conjuncts(sel.WhereClause)
}

// conjuncts copies the conjuncts of where pu may copy, maxPushed at most;
// all reports whether every one was copied.
func (pu pusher) conjuncts(where *pg_query.Node) (out []*pg_query.Node, all bool) {
	all = true
	for _, c := range conjuncts(where) {
		copies := pu.conjunct(c)
		if copies == nil || len(out)+len(copies) > maxPushed {
			all = false
			continue
		}
		out = append(out, copies...)
	}
	return out, all
}

// maxPushed bounds the comparisons pushDown copies into one scoped
// subquery. Each copy is built, deparsed and parsed again by the rewrite,
// and three times more for the splice's subquery template (sentinel
// probes, splice.go): a WHERE of 10,000 comparisons of a masked column
// (the operator limit of sqlguard) cost 1.4 s of CPU on its first
// sight, twice the rewrite's, with the copies the most of it. A filter
// for an index needs a few; the client's comparisons stay outside.
// NOTE: a conjunct past it is not copied (all is false: flatten leaves
// the reference alone).
const maxPushed = 100

// maxPushedIn is the longest IN list pushDown copies.
const maxPushedIn = 100

// pusher makes pushDown's copies for one FROM item.
type pusher struct {
	alias        string
	rel          *Relation
	acc          Access
	single       bool
	catalogFirst bool
	// declared is walker.declaredParam.
	declared func(int32) string
}

// conjunct returns the copies pushDown makes of the conjunct c, nil when
// it makes none.
func (pu pusher) conjunct(c *pg_query.Node) []*pg_query.Node {
	e := c.GetAExpr()
	if e == nil || len(e.Name) != 1 {
		return nil
	}
	op := e.Name[0].GetString_().GetSval()
	switch e.Kind {
	case pg_query.A_Expr_Kind_AEXPR_OP:
		if pu.operand(e.Rexpr) != nil {
			if p := pu.comparison(e.Lexpr, e.Rexpr, op, true); p != nil {
				return []*pg_query.Node{p}
			}
		} else if pu.operand(e.Lexpr) != nil {
			if p := pu.comparison(e.Rexpr, e.Lexpr, op, false); p != nil {
				return []*pg_query.Node{p}
			}
		}
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN:
		bounds := e.Rexpr.GetList().GetItems()
		if len(bounds) != 2 {
			return nil
		}
		lo := pu.comparison(e.Lexpr, bounds[0], ">=", true)
		hi := pu.comparison(e.Lexpr, bounds[1], "<=", true)
		if lo != nil && hi != nil {
			return []*pg_query.Node{lo, hi}
		}
	case pg_query.A_Expr_Kind_AEXPR_IN:
		items := e.Rexpr.GetList().GetItems()
		if op != "=" || len(items) == 0 || len(items) > maxPushedIn {
			return nil
		}
		eqs := make([]*pg_query.Node, 0, len(items))
		for _, it := range items {
			p := pu.comparison(e.Lexpr, it, "=", true)
			if p == nil {
				return nil
			}
			eqs = append(eqs, p)
		}
		if len(eqs) == 1 {
			return eqs
		}
		return []*pg_query.Node{{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{
			Boolop: pg_query.BoolExprType_OR_EXPR, Args: eqs, Location: -1,
		}}}}
	}
	return nil
}

// operand returns the constant or parameter n stands for as an operand
// pushDown may copy, nil when it is neither. A typed literal, a string
// cast to a type without modifiers (date '2024-01-31', '7'::int8,
// CAST('x' AS text)), stands for its string: comparison checks that its
// type is the column's, when the string, read as the column's type, is
// the same value.
func (pu pusher) operand(n *pg_query.Node) *pg_query.Node {
	if isConstOrParam(n) {
		return n
	}
	tc := n.GetTypeCast()
	if tc == nil || tc.TypeName == nil || len(tc.TypeName.Typmods) > 0 || len(tc.TypeName.ArrayBounds) > 0 ||
		tc.TypeName.Setof || tc.TypeName.PctType {
		return nil
	}
	if c := tc.Arg.GetAConst(); c == nil || c.Isnull || c.GetSval() == nil {
		return nil
	}
	return n
}

// literalTypes maps the names of pg_catalog's types a typed literal may
// name to the type pushTypes compares a column of that type as.
var literalTypes = map[string]string{
	"int2": "int2", "int4": "int4", "int8": "int8", "text": "text", "varchar": "text", "name": "name",
	"bool": "bool", "uuid": "uuid", "oid": "oid", "date": "date", "timestamp": "timestamp", "timestamptz": "timestamptz",
}

// literalType returns the type pushTypes would compare a typed literal's
// type as, "" for another type or a name that may not be pg_catalog's.
func (pu pusher) literalType(tn *pg_query.TypeName) string {
	var schema, name string
	switch len(tn.Names) {
	case 1:
		if !pu.catalogFirst {
			return ""
		}
		schema, name = "pg_catalog", tn.Names[0].GetString_().GetSval()
	case 2:
		schema, name = tn.Names[0].GetString_().GetSval(), tn.Names[1].GetString_().GetSval()
	}
	if schema != "pg_catalog" {
		return ""
	}
	return literalTypes[name]
}

// comparison returns the copy of col op other (other op col unless
// colLeft) that pushDown makes, nil when it makes none.
func (pu pusher) comparison(col, other *pg_query.Node, op string, colLeft bool) *pg_query.Node {
	other = pu.operand(other)
	if other == nil {
		return nil
	}
	name, ok := columnOf(col, pu.alias, pu.single)
	if !ok {
		return nil
	}
	if _, masked := pu.acc.Masks[name]; masked {
		return nil
	}
	typ := ""
	for _, rc := range pu.rel.Columns {
		if rc.Name == name {
			typ = pushTypes[strings.TrimSpace(typmodRE.ReplaceAllString(rc.Type, ""))]
		}
	}
	if typ == "" {
		return nil
	}
	if tc := other.GetTypeCast(); tc != nil {
		// A typed literal of the column's own type: its string, which
		// PostgreSQL reads as the column's type, as the cast does.
		if pu.literalType(tc.TypeName) != typ {
			return nil
		}
		other = tc.Arg
	}
	decl := undeclared
	if pr := other.GetParamRef(); pr != nil && pu.declared != nil {
		decl = pu.declared(pr.Number)
	}
	operand, op, ok := pushOperand(other, typ, op, decl)
	if !ok {
		return nil
	}
	l, r := columnRef(name), operand
	if !colLeft {
		l, r = r, l
	}
	return &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: &pg_query.A_Expr{
		Kind: pg_query.A_Expr_Kind_AEXPR_OP, Name: catalogOp(op), Lexpr: l, Rexpr: r, Location: -1,
	}}}
}

// pushOperand returns the operand and operator a pushed comparison of a
// column compared as typ uses for the client's constant or parameter n
// and operator op, or false when the comparison must stay outside (see
// pushDown). decl is the type the statement declares for the parameter
// n (declaredParam; params.go).
func pushOperand(n *pg_query.Node, typ, op, decl string) (*pg_query.Node, string, bool) {
	if !slices.Contains(pushComparisons, op) {
		return nil, "", false
	}
	if n.GetParamRef() != nil {
		cast, widen, ok := paramCast(typ, decl)
		if !ok {
			return nil, "", false
		}
		if widen {
			switch op {
			case "<>":
				return nil, "", false
			case "<":
				op = "<="
			case ">":
				op = ">="
			}
		}
		return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
			Arg: clone(n), TypeName: catalogType(cast), Location: -1,
		}}}, op, true
	}
	var operand string
	switch c := n.GetAConst(); {
	case c.GetSval() != nil:
		operand = typ
	case c.GetIval() != nil:
		operand = "int4"
	case c.GetFval() != nil:
		// NOTE: PostgreSQL reads a number too long for int4 as int8 when
		// it is an integer that fits, as numeric otherwise.
		if _, err := strconv.ParseInt(c.GetFval().GetFval(), 10, 64); err == nil {
			operand = "int8"
		}
	case c.GetBoolval() != nil:
		operand = "bool"
	}
	if _, ok := leakproofPairs[[2]string{typ, operand}]; !ok {
		return nil, "", false
	}
	return clone(n), op, true
}

// catalogOp returns the operator name pg_catalog.op, as
// OPERATOR(pg_catalog.op) is parsed.
func catalogOp(op string) []*pg_query.Node {
	return []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(op)}
}

// catalogType returns the type name pg_catalog.typ.
func catalogType(typ string) *pg_query.TypeName {
	return &pg_query.TypeName{
		Names:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(typ)},
		Typemod: -1, Location: -1,
	}
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

// and combines conditions with AND; nil when there are none. A condition
// that is itself an AND gives its arguments, as the parser reads a AND b
// AND c: the deparsed rewrite must parse back into this tree
// (deparsedFaithfully).
func and(conds []*pg_query.Node) *pg_query.Node {
	switch len(conds) {
	case 0:
		return nil
	case 1:
		return conds[0]
	}
	flat := make([]*pg_query.Node, 0, len(conds))
	for _, c := range conds {
		if b := c.GetBoolExpr(); b != nil && b.Boolop == pg_query.BoolExprType_AND_EXPR {
			flat = append(flat, b.Args...)
		} else {
			flat = append(flat, c)
		}
	}
	conds = flat
	return &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{
		Boolop: pg_query.BoolExprType_AND_EXPR, Args: conds, Location: -1,
	}}}
}
