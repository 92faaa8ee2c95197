package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// KindColumn is the Kind of an UnknownRelationError for a column of a
// write's target the snapshot does not hold.
const KindColumn = "column"

// staleColumns refuses the column references of exprs, a governed write's
// SET values (with their targets' subscripts), RETURNING or WHERE, that
// PostgreSQL could resolve on the write's target rel (the RangeVar
// target) while the catalog snapshot does not hold them: a
// column added or renamed upstream since the snapshot was read. A SELECT
// naming one fails upstream, the scoped subquery listing the snapshot's
// columns only; in a write it would read the real row, with no mask the
// policy gives the column yet (a review read a new ssn column so). The
// error is an UnknownRelationError, on which the engine reads the catalog
// again and retries once: the column is then known, and governed. wc is
// the write's own WITH, whose queries the statement's names may read.
//
// With wholeRow (SET and RETURNING), the target's whole row is refused
// too: PostgreSQL expands it with every column of the real table.
//
// NOTE: names are looked up as PostgreSQL does (parse_relation.c): a bare
// name as a column of any level, innermost first, before a FROM item's
// whole row; q.col on the nearest FROM item named q, or q read as a
// column when none is; s.q.col on an unaliased relation. The model of
// what each FROM item gives may know fewer names than PostgreSQL, never
// more: a name it does not know goes outward, to the target, and is
// refused there; a name it cannot place at all (a FROM item whose
// columns it does not know) is refused as ambiguous. Two reviews found
// names the first model gave to inner items PostgreSQL did not.
func (w *walker) staleColumns(exprs []*pg_query.Node, rel *Relation, target *pg_query.RangeVar, wc *pg_query.WithClause, wholeRow bool) error {
	c := &colCheck{w: w, rel: rel, wholeRow: wholeRow}
	lvl := newLevel()
	lvl.target = true
	for _, col := range rel.Columns {
		lvl.cols[col.Name] = true
	}
	for n := range systemColumns {
		// Refused on their own (readsSystem, fenceWriteWhere).
		lvl.cols[n] = true
	}
	lvl.rtes[targetName(target)] = true
	if target.Alias == nil {
		lvl.plain[plainKey(rel.QName.Schema, rel.QName.Name)] = true
	}
	var ctes []map[string]*pg_query.CommonTableExpr
	if wc != nil {
		scope := map[string]*pg_query.CommonTableExpr{}
		for _, n := range wc.Ctes {
			if cte := n.GetCommonTableExpr(); cte != nil {
				scope[cte.Ctename] = cte
			}
		}
		ctes = append(ctes, scope)
	}
	for _, e := range exprs {
		if e != nil && c.err == nil {
			c.visit(e, []colLevel{lvl}, ctes)
		}
	}
	return c.err
}

// colLevel is what a name may resolve to at one level of the statement:
// the write's target, or a SELECT's FROM items.
type colLevel struct {
	// cols are the names a bare column reference finds: the columns of
	// the level's FROM items.
	cols map[string]bool
	// rtes are the names a qualified reference (q.col, q.*) finds: the
	// items' aliases, or relation names; plain the relations named
	// without an alias, as schema.name, which s.q.col finds.
	rtes, plain map[string]bool
	// opaque reports a FROM item whose columns are not all known.
	opaque bool
	// target reports the write's own level.
	target bool
}

func newLevel() colLevel {
	return colLevel{cols: map[string]bool{}, rtes: map[string]bool{}, plain: map[string]bool{}}
}

// merge adds what o gives to l.
func (l *colLevel) merge(o colLevel) {
	for _, m := range [][2]map[string]bool{{l.cols, o.cols}, {l.rtes, o.rtes}, {l.plain, o.plain}} {
		for k := range m[1] {
			m[0][k] = true
		}
	}
	l.opaque = l.opaque || o.opaque
}

// addNames adds the known names of an item's columns.
func (l *colLevel) addNames(names []string, known bool) {
	for _, n := range names {
		if n != "" {
			l.cols[n] = true
		}
	}
	l.opaque = l.opaque || !known
}

// with returns levels and l after them, in a new slice.
func with(levels []colLevel, l colLevel) []colLevel {
	return append(levels[:len(levels):len(levels)], l)
}

// colCheck is the state of staleColumns.
type colCheck struct {
	w        *walker
	rel      *Relation
	wholeRow bool
	err      error
}

// visit checks the column references below m, at levels (innermost
// last), with the CTEs of ctes in scope (innermost last).
func (c *colCheck) visit(m proto.Message, levels []colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	if c.err != nil || m == nil {
		return
	}
	if n, ok := m.(*pg_query.Node); ok && (n == nil || n.Node == nil) {
		return
	}
	switch v := m.(type) {
	case *pg_query.ColumnRef:
		c.check(v, levels)
		return
	case *pg_query.SelectStmt:
		c.selectStmt(v, levels, ctes)
		return
	}
	pgtree.Children(m, func(ch proto.Message) { c.visit(ch, levels, ctes) })
}

// withScope visits the queries of a WITH, each seeing the CTEs before it
// (all of them when RECURSIVE), and returns the scope of the query after.
func (c *colCheck) withScope(wc *pg_query.WithClause, levels []colLevel, ctes []map[string]*pg_query.CommonTableExpr) []map[string]*pg_query.CommonTableExpr {
	if wc == nil {
		return ctes
	}
	scope := map[string]*pg_query.CommonTableExpr{}
	ctes = append(ctes[:len(ctes):len(ctes)], scope)
	var list []*pg_query.CommonTableExpr
	for _, n := range wc.Ctes {
		if cte := n.GetCommonTableExpr(); cte != nil {
			list = append(list, cte)
			if wc.Recursive {
				scope[cte.Ctename] = cte
			}
		}
	}
	for _, cte := range list {
		c.visit(cte.Ctequery, levels, ctes)
		scope[cte.Ctename] = cte
	}
	return ctes
}

// selectStmt visits a SELECT with a level of its own.
func (c *colCheck) selectStmt(s *pg_query.SelectStmt, levels []colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	ctes = c.withScope(s.WithClause, levels, ctes)
	if s.Op != pg_query.SetOperation_SETOP_NONE {
		if s.Larg != nil {
			c.selectStmt(s.Larg, levels, ctes)
		}
		if s.Rarg != nil {
			c.selectStmt(s.Rarg, levels, ctes)
		}
		// ORDER BY of a set operation reads its output; its LIMIT and
		// OFFSET do not (a review read a column through OFFSET).
		out := newLevel()
		out.addNames(outputNames(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: s}}))
		for _, n := range s.SortClause {
			c.visit(n, with(levels, out), ctes)
		}
		c.visit(s.LimitCount, levels, ctes)
		c.visit(s.LimitOffset, levels, ctes)
		return
	}
	lvl := newLevel()
	for _, f := range s.FromClause {
		c.fromItem(f, &lvl, levels, nil, ctes)
	}
	inner := with(levels, lvl)
	var exprs []*pg_query.Node
	exprs = append(exprs, s.TargetList...)
	exprs = append(exprs, s.WhereClause, s.HavingClause, s.LimitCount, s.LimitOffset)
	exprs = append(exprs, s.WindowClause...)
	exprs = append(exprs, s.ValuesLists...)
	for _, n := range exprs {
		c.visit(n, inner, ctes)
	}
	// ORDER BY, GROUP BY and DISTINCT ON items that are a bare name may
	// name an output column; anything else reads the FROM items.
	outputs := map[string]bool{}
	for _, t := range s.TargetList {
		if rt := t.GetResTarget(); rt != nil && rt.Name != "" {
			outputs[rt.Name] = true
		}
	}
	var items []*pg_query.Node
	for _, n := range s.SortClause {
		if sb := n.GetSortBy(); sb != nil {
			items = append(items, sb.Node)
		} else {
			items = append(items, n)
		}
	}
	items = append(append(items, s.GroupClause...), s.DistinctClause...)
	for _, n := range items {
		if cr := n.GetColumnRef(); cr != nil && len(cr.Fields) == 1 && outputs[cr.Fields[0].GetString_().GetSval()] {
			continue
		}
		c.visit(n, inner, ctes)
	}
}

// fromItem visits a FROM item's expressions and adds what it gives to
// lvl. outer are the levels around the SELECT, which a subquery sees;
// seen, the items before this one (lvl when nil), which a LATERAL item
// and a function's arguments see too.
func (c *colCheck) fromItem(n *pg_query.Node, lvl *colLevel, outer []colLevel, seen *colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	if seen == nil {
		seen = lvl
	}
	left := func() []colLevel { return with(outer, *seen) }
	switch v := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		c.relation(v.RangeVar, lvl, ctes)
	case *pg_query.Node_RangeTableSample:
		// NOTE: TABLESAMPLE's arguments are not LATERAL: they see the
		// levels around the SELECT only (a review read a column so).
		for _, a := range append(v.RangeTableSample.Args, v.RangeTableSample.Repeatable) {
			c.visit(a, outer, ctes)
		}
		if rv := v.RangeTableSample.Relation.GetRangeVar(); rv != nil {
			c.relation(rv, lvl, ctes)
		} else {
			lvl.opaque = true
		}
	case *pg_query.Node_RangeSubselect:
		rs := v.RangeSubselect
		if rs.Lateral {
			c.visit(rs.Subquery, left(), ctes)
		} else {
			c.visit(rs.Subquery, outer, ctes)
		}
		names, known := outputNames(rs.Subquery)
		lvl.addNames(aliasNames(names, known, rs.Alias))
		if rs.Alias != nil {
			lvl.rtes[rs.Alias.Aliasname] = true
		}
	case *pg_query.Node_JoinExpr:
		j := v.JoinExpr
		// NOTE: the items of a join see what is left of them inside it,
		// and what is left of the join; its ON, only its two sides.
		jl := newLevel()
		for _, side := range []*pg_query.Node{j.Larg, j.Rarg} {
			if side == nil {
				continue
			}
			before := newLevel()
			before.merge(*seen)
			before.merge(jl)
			c.fromItem(side, &jl, outer, &before, ctes)
		}
		c.visit(j.Quals, with(outer, jl), ctes)
		if j.Alias == nil {
			lvl.merge(jl)
			return
		}
		// An alias hides the names inside the join; a column list
		// renames its columns in an order the model does not follow.
		lvl.rtes[j.Alias.Aliasname] = true
		if len(j.Alias.Colnames) > 0 {
			lvl.addNames(aliasNames(nil, false, j.Alias))
			return
		}
		lvl.addNames(keysOf(jl.cols), !jl.opaque)
	case *pg_query.Node_RangeFunction:
		rf := v.RangeFunction
		for _, f := range rf.Functions {
			c.visit(f, left(), ctes)
		}
		if rf.Alias != nil {
			lvl.rtes[rf.Alias.Aliasname] = true
		} else {
			// Without an alias, a function is known by its name.
			if l := rf.Functions; len(l) == 1 {
				if items := l[0].GetList().GetItems(); len(items) > 0 {
					if fc := items[0].GetFuncCall(); fc != nil {
						lvl.rtes[fc.Funcname[len(fc.Funcname)-1].GetString_().GetSval()] = true
					}
				}
			}
		}
		// NOTE: whether a function returns a row (columns named after
		// its fields) or a scalar (a column named after the alias) is
		// not known: only a column definition list names every column.
		var names []string
		known := false
		for _, d := range rf.Coldeflist {
			if cd := d.GetColumnDef(); cd != nil {
				names = append(names, cd.Colname)
				known = true
			}
		}
		if rf.Ordinality {
			names = append(names, "ordinality")
		}
		lvl.addNames(aliasNames(names, known && !rf.IsRowsfrom, rf.Alias))
	case *pg_query.Node_RangeTableFunc:
		tf := v.RangeTableFunc
		var names []string
		for _, col := range tf.Columns {
			if tc := col.GetRangeTableFuncCol(); tc != nil {
				names = append(names, tc.Colname)
				c.visit(tc.Colexpr, left(), ctes)
				c.visit(tc.Coldefexpr, left(), ctes)
			}
		}
		c.visit(tf.Docexpr, left(), ctes)
		c.visit(tf.Rowexpr, left(), ctes)
		for _, ns := range tf.Namespaces {
			c.visit(ns, left(), ctes)
		}
		lvl.addNames(aliasNames(names, true, tf.Alias))
		if tf.Alias != nil {
			lvl.rtes[tf.Alias.Aliasname] = true
		}
	default:
		// JSON_TABLE and what else the grammar may add: names unknown.
		c.visit(n, left(), ctes)
		lvl.opaque = true
	}
}

// relation adds a relation or CTE reference to lvl.
func (c *colCheck) relation(rv *pg_query.RangeVar, lvl *colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	name := rv.Relname
	if rv.Alias != nil {
		name = rv.Alias.Aliasname
	}
	lvl.rtes[name] = true
	if rv.Schemaname == "" && rv.Catalogname == "" {
		for i := len(ctes) - 1; i >= 0; i-- {
			if cte := ctes[i][rv.Relname]; cte != nil {
				names, known := outputNames(cte.Ctequery)
				names, known = aliasNames(names, known, &pg_query.Alias{Colnames: cte.Aliascolnames})
				lvl.addNames(aliasNames(names, known, rv.Alias))
				return
			}
		}
		if c.w.isCTE(rv.Relname) {
			lvl.opaque = true
			return
		}
	}
	rel := c.w.lookup(rv)
	if rel == nil {
		lvl.opaque = true
		return
	}
	names := make([]string, len(rel.Columns))
	for i, col := range rel.Columns {
		names[i] = col.Name
	}
	lvl.addNames(aliasNames(names, true, rv.Alias))
	for s := range systemColumns {
		lvl.cols[s] = true
	}
	if rv.Alias == nil {
		lvl.plain[plainKey(rel.QName.Schema, rel.QName.Name)] = true
	}
}

// plainKey is the key of a relation of schema and name in a colLevel's
// plain. NOTE: a NUL apart, which no name holds: "a.b".c and a."b.c" are
// two relations.
func plainKey(schema, name string) string { return schema + "\x00" + name }

// aliasNames applies an alias's column list to the names of an item's
// columns, in order (known reports that names are all of them): the list
// renames the first columns, the others keep their names. When the names
// are not all known, only the list's are.
func aliasNames(names []string, known bool, a *pg_query.Alias) ([]string, bool) {
	if a == nil || len(a.Colnames) == 0 {
		return names, known
	}
	var out []string
	for _, cn := range a.Colnames {
		out = append(out, cn.GetString_().GetSval())
	}
	if !known || len(out) > len(names) {
		return out, false
	}
	return append(out, names[len(out):]...), true
}

// outputNames returns the names of the columns a query gives, in order
// ("" where not known), and whether they are all known: a SELECT's
// labels, or what PostgreSQL names an unlabelled expression after
// (FigureColname), "?column?" for the kinds the model does not follow,
// which no reference names; VALUES' column1, column2….
func outputNames(query *pg_query.Node) ([]string, bool) {
	s := query.GetSelectStmt()
	for s != nil && s.Op != pg_query.SetOperation_SETOP_NONE {
		s = s.Larg
	}
	if s == nil {
		return nil, false
	}
	if len(s.ValuesLists) > 0 {
		n := len(s.ValuesLists[0].GetList().GetItems())
		names := make([]string, n)
		for i := range names {
			names[i] = "column" + itoa(i+1)
		}
		return names, true
	}
	var names []string
	known := true
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		if rt == nil {
			return names, false
		}
		if rt.Name != "" {
			names = append(names, rt.Name)
			continue
		}
		n, _, ok := figureName(rt.Val)
		if !ok {
			// Not known; a * even gives an unknown number of columns.
			known = false
			if expands(rt.Val) {
				return names, false
			}
		}
		names = append(names, n)
	}
	return names, known
}

// figureName is the name PostgreSQL gives an unlabelled output
// expression (FigureColnameInternal), with its strength there (2 a name
// of the expression's own, 1 a type's name, 0 "?column?"), for the kinds
// the model follows exactly; false for the others and for a *, whose
// names are then not known.
func figureName(n *pg_query.Node) (string, int, bool) {
	switch v := n.Node.(type) {
	case *pg_query.Node_ColumnRef:
		last := v.ColumnRef.Fields[len(v.ColumnRef.Fields)-1]
		if s := last.GetString_(); s != nil {
			return s.Sval, 2, true
		}
	case *pg_query.Node_FuncCall:
		return v.FuncCall.Funcname[len(v.FuncCall.Funcname)-1].GetString_().GetSval(), 2, true
	case *pg_query.Node_AIndirection:
		// The last field name of the list, subscripts aside.
		name := ""
		for _, i := range v.AIndirection.Indirection {
			if s := i.GetString_(); s != nil {
				name = s.Sval
			} else if i.GetAStar() != nil {
				return "", 0, false
			}
		}
		if name != "" {
			return name, 2, true
		}
		return figureName(v.AIndirection.Arg)
	case *pg_query.Node_TypeCast:
		name, strength, ok := figureName(v.TypeCast.Arg)
		if !ok || strength == 2 {
			return name, strength, ok
		}
		if names := v.TypeCast.TypeName.GetNames(); len(names) > 0 {
			return names[len(names)-1].GetString_().GetSval(), 1, true
		}
	case *pg_query.Node_AConst, *pg_query.Node_ParamRef:
		return "?column?", 0, true
	}
	// NOTE: PostgreSQL names many other kinds (a sublink after its
	// column, coalesce, array, row, case after its ELSE…); a guess here
	// could give a name PostgreSQL does not, which would keep a name from
	// going outward: unknown instead (a review named a cast of a sublink
	// after its type).
	return "", 0, false
}

// expands reports whether an output expression is a * (t.*, (x).*),
// which gives a number of columns the model does not know.
func expands(n *pg_query.Node) bool {
	if cr := n.GetColumnRef(); cr != nil {
		return cr.Fields[len(cr.Fields)-1].GetAStar() != nil
	}
	if ind := n.GetAIndirection(); ind != nil {
		for _, i := range ind.Indirection {
			if i.GetAStar() != nil {
				return true
			}
		}
	}
	return false
}

func itoa(i int) string {
	const digits = "0123456789"
	if i < 10 {
		return digits[i : i+1]
	}
	return itoa(i/10) + digits[i%10:i%10+1]
}

func keysOf(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}

// check checks one column reference against levels.
func (c *colCheck) check(ref *pg_query.ColumnRef, levels []colLevel) {
	var names []string
	star := false
	for _, f := range ref.Fields {
		if s := f.GetString_(); s != nil {
			names = append(names, s.Sval)
		} else if f.GetAStar() != nil {
			star = true
		}
	}
	if len(names) == 0 {
		// *: the FROM items of the innermost level.
		if star && levels[len(levels)-1].target && c.wholeRow {
			c.err = c.wholeRowRefused()
		}
		return
	}
	// The longest prefix naming a relation, as PostgreSQL tries them:
	// db.schema.rel, schema.rel, then rel (an alias or a relation's name).
	type try struct {
		at  func(colLevel) bool
		col int // index of the column in names
	}
	var tries []try
	// NOTE: a relation needs a column after it, or a *: a.b is a
	// column of a (or field b of column a), never schema a's relation b.
	if (len(names) >= 4 || len(names) == 3 && star) && names[0] == c.w.cat.Database {
		q := plainKey(names[1], names[2])
		tries = append(tries, try{func(l colLevel) bool { return l.plain[q] }, 3})
	}
	if len(names) >= 3 || len(names) == 2 && star {
		q := plainKey(names[0], names[1])
		tries = append(tries, try{func(l colLevel) bool { return l.plain[q] }, 2})
	}
	if len(names) >= 2 || star {
		q := names[0]
		tries = append(tries, try{func(l colLevel) bool { return l.rtes[q] }, 1})
	}
	for _, t := range tries {
		for i := len(levels) - 1; i >= 0; i-- {
			if !t.at(levels[i]) {
				continue
			}
			if !levels[i].target {
				return // PostgreSQL errs when the item lacks the column
			}
			if t.col >= len(names) {
				if c.wholeRow {
					c.err = c.wholeRowRefused()
				}
				return
			}
			if !levels[i].cols[names[t.col]] {
				c.err = &UnknownRelationError{Name: names[t.col], Kind: KindColumn}
			}
			return
		}
	}
	if len(names) >= 3 && !c.wholeRow {
		// NOTE: the message scopedRows' fence gives the WHERE's
		// references of a database or a schema it does not answer to.
		c.err = deny("write_governed", "a column of the WHERE of a write on %s names a schema or a database: write table.column or column", c.rel.QName)
		return
	}
	// No relation: the first name is a column (the rest its fields).
	c.bare(names[0], levels)
}

// bare checks a bare name: a column of any level, innermost first, then
// the whole row of a FROM item of that name.
func (c *colCheck) bare(name string, levels []colLevel) {
	opaque := false
	for i := len(levels) - 1; i >= 0; i-- {
		if levels[i].cols[name] {
			return
		}
		opaque = opaque || levels[i].opaque
	}
	if opaque {
		c.err = deny("write_governed", "pgveil cannot tell which relation the column %s belongs to in this write on %s: qualify it with its table's name or alias", name, c.rel.QName)
		return
	}
	for i := len(levels) - 1; i >= 0; i-- {
		switch {
		case !levels[i].rtes[name]:
			continue
		case !levels[i].target:
			// NOTE: PostgreSQL would take a column of that name of the
			// real target, one the snapshot may lack, over an inner
			// item's whole row.
			c.err = deny("write_governed", "in a write on %s, write %s.* for the whole row of %s: pgveil cannot tell the bare name from a column of the table", c.rel.QName, name, name)
		case c.wholeRow:
			c.err = c.wholeRowRefused()
		}
		return
	}
	c.err = &UnknownRelationError{Name: name, Kind: KindColumn}
}

func (c *colCheck) wholeRowRefused() error {
	return deny("write_governed", "the whole row of the governed table %s may not be read in SET or RETURNING of a write: name the columns", c.rel.QName)
}

// lookup finds the catalog relation rv names, as resolve does, without
// refusing anything: nil when there is none.
func (w *walker) lookup(rv *pg_query.RangeVar) *Relation {
	if rv.Catalogname != "" && rv.Catalogname != w.cat.Database {
		return nil
	}
	if rv.Schemaname != "" {
		return w.cat.Relations[QName{rv.Schemaname, rv.Relname}]
	}
	for _, schema := range w.path {
		if rel := w.cat.Relations[QName{schema, rv.Relname}]; rel != nil {
			return rel
		}
	}
	return nil
}
