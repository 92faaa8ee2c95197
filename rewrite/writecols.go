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
// PostgreSQL would resolve on the write's target rel (named name) but that
// the catalog snapshot does not hold: a column added or renamed upstream
// since the snapshot was read. A SELECT naming one fails upstream, the
// scoped subquery listing the snapshot's columns only; in a write it
// would read the real row, with no mask the policy gives the column (a
// review read a new ssn column so, and copied it into a visible one).
// The error is an UnknownRelationError, on which the engine reads the
// catalog again and retries once: the column is then known, and governed.
//
// It also refuses the target's whole row (r, r.*, *) in SET and RETURNING
// (wholeRow): PostgreSQL expands it with every column, those the
// snapshot lacks included. The WHERE, moved into the scoped subquery,
// finds the masked rows' columns there.
//
// A name is looked up as PostgreSQL does, innermost SELECT first: in the
// columns of that SELECT's FROM items, then in those of the SELECTs
// around it, then on the target. A FROM item whose columns pgveil does
// not know (a set-returning function without a column list, a subquery
// reading *) makes a name found nowhere else ambiguous: it is refused
// unless the target's snapshot has it.
func (w *walker) staleColumns(exprs []*pg_query.Node, rel *Relation, name string, wholeRow bool) error {
	c := &colCheck{w: w, rel: rel, wholeRow: wholeRow}
	target := colLevel{cols: map[string]bool{}, rtes: map[string]bool{name: true}, target: true}
	for _, col := range rel.Columns {
		target.cols[col.Name] = true
	}
	for n := range systemColumns {
		// Refused on their own (readsSystem, fenceWriteWhere).
		target.cols[n] = true
	}
	for _, e := range exprs {
		if e != nil && c.err == nil {
			c.visit(e, []colLevel{target}, nil)
		}
	}
	return c.err
}

// colLevel is what a column name may resolve to at one level of the
// statement: the write's target, or a SELECT's FROM items.
type colLevel struct {
	// cols are the columns of the level's FROM items; rtes their names
	// (aliases, or relation names).
	cols, rtes map[string]bool
	// opaque reports a FROM item whose columns are not known.
	opaque bool
	// target reports the write's own level.
	target bool
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
	if c.err != nil {
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

// selectStmt visits a SELECT with a level of its own.
func (c *colCheck) selectStmt(s *pg_query.SelectStmt, levels []colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	if s.WithClause != nil {
		scope := map[string]*pg_query.CommonTableExpr{}
		for _, n := range s.WithClause.Ctes {
			if cte := n.GetCommonTableExpr(); cte != nil {
				scope[cte.Ctename] = cte
			}
		}
		ctes = append(ctes[:len(ctes):len(ctes)], scope)
		for _, n := range s.WithClause.Ctes {
			c.visit(n, levels, ctes)
		}
	}
	if s.Op != pg_query.SetOperation_SETOP_NONE {
		if s.Larg != nil {
			c.selectStmt(s.Larg, levels, ctes)
		}
		if s.Rarg != nil {
			c.selectStmt(s.Rarg, levels, ctes)
		}
		// ORDER BY and LIMIT of a set operation read its output.
		return
	}
	lvl := colLevel{cols: map[string]bool{}, rtes: map[string]bool{}}
	for _, f := range s.FromClause {
		c.fromItem(f, &lvl, ctes)
	}
	inner := append(levels[:len(levels):len(levels)], lvl)
	for _, f := range s.FromClause {
		c.visitFrom(f, levels, inner, ctes)
	}
	for _, n := range s.TargetList {
		c.visit(n, inner, ctes)
	}
	for _, list := range [][]*pg_query.Node{{s.WhereClause, s.HavingClause, s.LimitCount, s.LimitOffset}, s.GroupClause, s.SortClause, s.DistinctClause, s.WindowClause, s.ValuesLists} {
		for _, n := range list {
			if n != nil {
				c.visit(n, inner, ctes)
			}
		}
	}
}

// visitFrom visits the expressions of a FROM item: a subquery that is not
// LATERAL sees the levels around its SELECT only, the rest (join
// conditions, LATERAL subqueries, function arguments) the SELECT's own
// level too, as an approximation.
func (c *colCheck) visitFrom(n *pg_query.Node, outer, inner []colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	switch v := n.Node.(type) {
	case *pg_query.Node_RangeSubselect:
		lv := inner
		if !v.RangeSubselect.Lateral {
			lv = outer
		}
		c.visit(v.RangeSubselect.Subquery, lv, ctes)
	case *pg_query.Node_JoinExpr:
		if v.JoinExpr.Larg != nil {
			c.visitFrom(v.JoinExpr.Larg, outer, inner, ctes)
		}
		if v.JoinExpr.Rarg != nil {
			c.visitFrom(v.JoinExpr.Rarg, outer, inner, ctes)
		}
		if v.JoinExpr.Quals != nil {
			c.visit(v.JoinExpr.Quals, inner, ctes)
		}
	case *pg_query.Node_RangeVar:
	default:
		c.visit(n, inner, ctes)
	}
}

// fromItem adds the names and columns a FROM item gives to lvl.
func (c *colCheck) fromItem(n *pg_query.Node, lvl *colLevel, ctes []map[string]*pg_query.CommonTableExpr) {
	addAlias := func(a *pg_query.Alias) bool {
		if a == nil {
			return false
		}
		lvl.rtes[a.Aliasname] = true
		for _, cn := range a.Colnames {
			if s := cn.GetString_(); s != nil {
				lvl.cols[s.Sval] = true
			}
		}
		return len(a.Colnames) > 0
	}
	switch v := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		rv := v.RangeVar
		if rv.Alias != nil {
			lvl.rtes[rv.Alias.Aliasname] = true
		} else {
			lvl.rtes[rv.Relname] = true
		}
		renamed := rv.Alias != nil && len(rv.Alias.Colnames) > 0
		addAlias(rv.Alias)
		if rv.Schemaname == "" {
			for i := len(ctes) - 1; i >= 0; i-- {
				if cte := ctes[i][rv.Relname]; cte != nil {
					if !renamed && !outputNames(cte.Aliascolnames, cte.Ctequery, lvl.cols) {
						lvl.opaque = true
					}
					return
				}
			}
			if c.w.isCTE(rv.Relname) {
				// One of the write's own WITH, checked by the walker.
				lvl.opaque = true
				return
			}
		}
		rel := c.w.lookup(rv)
		if rel == nil {
			lvl.opaque = true
			return
		}
		for _, col := range rel.Columns {
			lvl.cols[col.Name] = true
		}
		for s := range systemColumns {
			lvl.cols[s] = true
		}
	case *pg_query.Node_RangeSubselect:
		if !addAlias(v.RangeSubselect.Alias) && !outputNames(nil, v.RangeSubselect.Subquery, lvl.cols) {
			lvl.opaque = true
		}
	case *pg_query.Node_JoinExpr:
		if v.JoinExpr.Larg != nil {
			c.fromItem(v.JoinExpr.Larg, lvl, ctes)
		}
		if v.JoinExpr.Rarg != nil {
			c.fromItem(v.JoinExpr.Rarg, lvl, ctes)
		}
		addAlias(v.JoinExpr.Alias)
	case *pg_query.Node_RangeFunction:
		rf := v.RangeFunction
		known := addAlias(rf.Alias)
		for _, d := range rf.Coldeflist {
			if cd := d.GetColumnDef(); cd != nil {
				lvl.cols[cd.Colname] = true
				known = true
			}
		}
		if rf.Alias != nil && !known {
			// A function returning a scalar names its column after
			// the alias; one returning a row, after its fields.
			lvl.cols[rf.Alias.Aliasname] = true
		}
		if !known {
			lvl.opaque = true
		}
	case *pg_query.Node_RangeTableSample:
		c.fromItem(v.RangeTableSample.Relation, lvl, ctes)
	case *pg_query.Node_RangeTableFunc:
		addAlias(v.RangeTableFunc.Alias)
		for _, col := range v.RangeTableFunc.Columns {
			if tc := col.GetRangeTableFuncCol(); tc != nil {
				lvl.cols[tc.Colname] = true
			}
		}
	default:
		lvl.opaque = true
	}
}

// outputNames adds the names of the columns a CTE or subquery gives
// (aliases, else its SELECT's output names) to into, and reports whether
// it knew them all.
func outputNames(aliases []*pg_query.Node, query *pg_query.Node, into map[string]bool) bool {
	if len(aliases) > 0 {
		for _, a := range aliases {
			if s := a.GetString_(); s != nil {
				into[s.Sval] = true
			}
		}
		// NOTE: columns past the aliases keep their own names.
	}
	s := query.GetSelectStmt()
	for s != nil && s.Op != pg_query.SetOperation_SETOP_NONE {
		s = s.Larg
	}
	if s == nil {
		return len(aliases) > 0
	}
	if len(s.ValuesLists) > 0 {
		return len(aliases) > 0
	}
	all := true
	for _, t := range s.TargetList {
		rt := t.GetResTarget()
		switch {
		case rt == nil:
			all = false
		case rt.Name != "":
			into[rt.Name] = true
		case rt.Val.GetColumnRef() != nil:
			f := rt.Val.GetColumnRef().Fields
			if s := f[len(f)-1].GetString_(); s != nil {
				into[s.Sval] = true
			} else {
				all = false // *
			}
		case rt.Val.GetFuncCall() != nil:
			fn := rt.Val.GetFuncCall().Funcname
			if s := fn[len(fn)-1].GetString_(); s != nil {
				into[s.Sval] = true
			}
		}
	}
	return all
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
	switch {
	case len(names) == 0 && star:
		// *: the FROM items of the innermost level.
		if levels[len(levels)-1].target && c.wholeRow {
			c.err = deny("write_governed", "* may not be read in SET or RETURNING of a write on the governed table %s: name the columns", c.rel.QName)
		}
	case len(names) == 1 && !star:
		// NOTE: as PostgreSQL: a column of any level first, innermost
		// first; only then the whole row of a FROM item of that name.
		name := names[0]
		opaque := false
		for i := len(levels) - 1; i >= 0; i-- {
			if levels[i].cols[name] {
				return
			}
			opaque = opaque || levels[i].opaque
		}
		for i := len(levels) - 1; i >= 0; i-- {
			switch {
			case !levels[i].rtes[name]:
				continue
			case !levels[i].target:
				// NOTE: PostgreSQL would take a column of that name of
				// the real target, one the snapshot may lack, over an
				// inner item's whole row.
				c.err = deny("write_governed", "in a write on %s, write %s.* for the whole row of %s: pgveil cannot tell the bare name from a column of the table", c.rel.QName, name, name)
			case c.wholeRow:
				c.err = deny("write_governed", "the whole row of the governed table %s may not be read in SET or RETURNING of a write: name the columns", c.rel.QName)
			}
			return
		}
		if opaque {
			c.err = deny("write_governed", "pgveil cannot tell which relation the column %s belongs to in this write on %s: qualify it with its table's name or alias", name, c.rel.QName)
			return
		}
		c.err = &UnknownRelationError{Name: name, Kind: KindColumn}
	default:
		// rel.col, rel.*, schema.rel.col…: the nearest level with an
		// item of that name.
		qual, col := names[len(names)-1], ""
		if !star {
			qual, col = names[len(names)-2], names[len(names)-1]
		}
		for i := len(levels) - 1; i >= 0; i-- {
			lv := levels[i]
			if !lv.rtes[qual] {
				continue
			}
			if !lv.target {
				return
			}
			switch {
			case star && c.wholeRow:
				c.err = deny("write_governed", "the whole row of the governed table %s may not be read in SET or RETURNING of a write: name the columns", c.rel.QName)
			case !star && !lv.cols[col]:
				c.err = &UnknownRelationError{Name: col, Kind: KindColumn}
			}
			return
		}
	}
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
