package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// flatten decides, for each FROM item substitute replaced, whether the
// relation may be read directly where the client named it: the
// statement's top-level SELECT reads the relation itself, schema
// qualified, with the scope and the pushed comparisons as its whole
// WHERE,
//
//	SELECT … FROM schema.rel AS alias WHERE <scope> AND <pushed comparisons>
//
// rather than through the fenced subquery of substitute. PostgreSQL
// parses and plans that in about two thirds of the time (a subquery scan
// it may not flatten, and each of the client's comparisons twice), which
// is most of what a governed statement costs upstream in simple protocol.
//
// It is the same statement, and as safe, only when nothing of the
// client's can run on a row the scope removes, or read a column the
// subquery would not give; so every one of these must hold (flattenable):
//
//   - no column is masked for the user (a masked column's value is the
//     subquery's expression, never the column), and the policy allows
//     pushed comparisons (not NoPushdown);
//   - the SELECT is the top-level statement itself: no outer query can
//     pull it up and put conditions of its own on the scan, as one can
//     with a derived table, a CTE or a sublink; and not a set-operation
//     arm, DECLARE, EXPLAIN or PREPARE;
//   - the relation is its only FROM item, with no column aliases: there
//     is no join whose conditions the planner could move onto the scan;
//   - no HAVING (the planner moves a HAVING without aggregates into
//     WHERE), no WITH, no FOR UPDATE/SHARE, no INTO;
//   - every conjunct of the WHERE is one pushDown copied with constants
//     (a comparison, BETWEEN, IN), and the copies replace them: a copy
//     compares the column with the client's own constant through
//     pg_catalog's leak-proof operator of that pair of types, which is
//     the operator the client's comparison resolves to, so it selects
//     the same rows. No parameter in the SELECT: a comparison with one is
//     never replaced (its copy may be looser, and its type is the
//     client's to declare);
//   - no sublink anywhere in the SELECT, and every column reference is
//     a column of the relation in the catalog snapshot, bare or
//     qualified by the FROM item's name: no *, no whole-row reference, no
//     system column, no column added upstream since the snapshot (the
//     subquery lists the snapshot's columns; a direct read would not).
//     An ORDER BY item may also be the bare name of an output column
//     (outputNameSorts).
//
// The target list, GROUP BY, window functions, ORDER BY and LIMIT run on
// the rows the scan returns, after its WHERE. The scope's own conditions
// are the policy's, as in the subquery.
//
// NOTE: a flattened statement is deparsed (changed), never spliced:
// splice only replaces names. So the engine reads directly only through
// templates, for shapes it sees again (rewriteText).
//
// flatten does the same for a top-level UPDATE or DELETE on a governed
// relation (flattenableWrite): rather than finding its rows through the
// row-identity subquery of scopedRows, a semi-join on (tableoid, ctid)
// that costs PostgreSQL about twice the write itself, it names the
// relation with the scope and the pushed comparisons as its whole WHERE,
//
//	UPDATE schema.rel AS alias SET … WHERE <scope> AND <pushed comparisons>
//
// It reports whether it flattened one.
func (w *walker) flatten() bool {
	done := false
	for i := range w.scoped {
		s := &w.scoped[i]
		if s.root != nil && flattenable(s) {
			s.flat = true
			w.changed = true
			done = true
		}
	}
	for i := range w.writes {
		wr := &w.writes[i]
		if flattenableWrite(wr) {
			wr.flat = true
			w.changed = true
			done = true
		}
	}
	return done
}

// scopedWrite is a top-level UPDATE or DELETE whose target is a governed
// relation, as scopedRows found it.
type scopedWrite struct {
	// stmt is the UpdateStmt or DeleteStmt, target its target as the
	// client named it and where the client's WHERE (nil for none).
	// NOTE: the statement's WHERE is scopedRows's by then; where is
	// the tree the walker checked, never put back.
	stmt   *pg_query.Node
	target *pg_query.RangeVar
	where  *pg_query.Node
	rel    *Relation
	acc    Access
	// pushed are the copies of the client's comparisons scopedRows put
	// in the row-identity subquery; pushedAll reports that every
	// conjunct of where has its copies there.
	pushed    []*pg_query.Node
	pushedAll bool
	// flat reports that flatten found the rows may be found directly.
	flat bool
}

// flattenableWrite reports whether the write wr may find its rows
// directly (see flatten). The rows it changes are the rows the
// row-identity subquery gives exactly when, as for a direct read, no
// column is masked (the user's WHERE would compare masked values, SET
// and RETURNING read the real row either way), the policy allows pushed
// comparisons, and the client's WHERE is only comparisons pushDown's
// copies replace (none: every row in scope). The SET values and
// RETURNING run on the rows found, in both forms. And nothing else of
// the client's may run where PostgreSQL could move it: no WITH (a
// data-modifying one sees its own snapshot), no FROM or USING (refused
// anyway), no sublink, no parameter, and every column reference one of
// the relation's columns, bare or qualified by its name, as for a read.
//
// NOTE: under READ COMMITTED, a row changed by a concurrent transaction
// is checked again, scope included, on its newest version; the
// row-identity subquery checks its ctid only.
func flattenableWrite(wr *scopedWrite) bool {
	if wr.rel.Schema == "pg_catalog" || len(wr.acc.Masks) > 0 || wr.acc.NoPushdown || !wr.pushedAll {
		return false
	}
	var exprs []*pg_query.Node
	switch s := wr.stmt.Node.(type) {
	case *pg_query.Node_UpdateStmt:
		u := s.UpdateStmt
		if u.WithClause != nil || len(u.FromClause) > 0 {
			return false
		}
		exprs = append(append(exprs, u.TargetList...), u.ReturningList...)
	case *pg_query.Node_DeleteStmt:
		d := s.DeleteStmt
		if d.WithClause != nil || len(d.UsingClause) > 0 {
			return false
		}
		exprs = append(exprs, d.ReturningList...)
	default:
		return false
	}
	if wr.where != nil {
		exprs = append(exprs, wr.where)
	}
	cols := columnSet(wr.rel)
	alias := wr.target.Relname
	if wr.target.Alias != nil {
		alias = wr.target.Alias.Aliasname
	}
	for _, e := range exprs {
		if !readsOnlyColumns(e, alias, cols, nil) {
			return false
		}
	}
	return true
}

// materializeWrite puts the relation, schema qualified, as wr's target
// and the scope and the pushed comparisons as its WHERE.
func materializeWrite(wr *scopedWrite) {
	if wr.target.Alias == nil {
		wr.target.Alias = &pg_query.Alias{Aliasname: wr.target.Relname}
	}
	wr.target.Catalogname, wr.target.Schemaname = "", wr.rel.Schema
	// The scope's columns are qualified by the target's name, as in the
	// scoped subquery (buildScopedSelect).
	where := scopeWhere(wr.acc, wr.pushed, wr.target.Alias.Aliasname)
	switch s := wr.stmt.Node.(type) {
	case *pg_query.Node_UpdateStmt:
		s.UpdateStmt.WhereClause = where
	case *pg_query.Node_DeleteStmt:
		s.DeleteStmt.WhereClause = where
	}
}

// flattenable reports whether s may be read directly (see flatten).
func flattenable(s *scopedRef) bool {
	sel, acc := s.root, s.acc
	if s.rel.Schema == "pg_catalog" || len(acc.Masks) > 0 || acc.NoPushdown || len(s.rs.Alias.GetColnames()) > 0 {
		return false
	}
	if sel.Op != pg_query.SetOperation_SETOP_NONE || sel.IntoClause != nil || sel.WithClause != nil ||
		sel.HavingClause != nil || len(sel.LockingClause) > 0 ||
		len(sel.FromClause) != 1 || sel.FromClause[0] != s.node {
		return false
	}
	if !s.pushedAll {
		return false
	}
	// NOTE: only the WHERE's parameters matter, but parameters elsewhere
	// are rare.
	return readsOnlyColumns(sel, s.rs.Alias.GetAliasname(), columnSet(s.rel), outputNameSorts(sel))
}

// readsOnlyColumns reports whether m holds no sublink and no parameter,
// and names no column but rel's columns cols, bare or qualified by
// alias; the ORDER BY items of skip are not looked into.
func readsOnlyColumns(m proto.Message, alias string, cols map[string]bool, skip map[*pg_query.SortBy]bool) bool {
	ok := true
	pgtree.Walk(m, func(m proto.Message) bool {
		switch v := m.(type) {
		case *pg_query.SortBy:
			if skip[v] {
				return false
			}
		case *pg_query.SubLink, *pg_query.ParamRef:
			ok = false
		case *pg_query.ColumnRef:
			ok = ok && columnOfRelation(v, alias, cols)
			return false
		}
		return ok
	})
	return ok
}

// columnSet returns the names of rel's columns.
func columnSet(rel *Relation) map[string]bool {
	cols := make(map[string]bool, len(rel.Columns))
	for _, c := range rel.Columns {
		cols[c.Name] = true
	}
	return cols
}

// outputNameSorts returns the items of sel's ORDER BY that are a bare
// name of one of its output columns (ORDER BY n, after count(*) AS n),
// which PostgreSQL reads as that output column, never as one of the
// relation's: they read nothing the target list does not.
//
// NOTE: ORDER BY only. GROUP BY prefers an input column of that name,
// which a column added upstream since the catalog snapshot could be;
// the ORDER BY of a window or an aggregate knows no output names.
func outputNameSorts(sel *pg_query.SelectStmt) map[*pg_query.SortBy]bool {
	var out map[*pg_query.SortBy]bool
	for _, n := range sel.SortClause {
		sb := n.GetSortBy()
		cr := sb.GetNode().GetColumnRef()
		if cr == nil || len(cr.Fields) != 1 || cr.Fields[0].GetString_() == nil {
			continue
		}
		name := cr.Fields[0].GetString_().Sval
		for _, t := range sel.TargetList {
			if rt := t.GetResTarget(); rt != nil && rt.Name == name {
				if out == nil {
					out = map[*pg_query.SortBy]bool{}
				}
				out[sb] = true
				break
			}
		}
	}
	return out
}

// columnOfRelation reports whether cr is col or alias.col for a column
// col of cols.
func columnOfRelation(cr *pg_query.ColumnRef, alias string, cols map[string]bool) bool {
	names := make([]string, 0, 2)
	for _, f := range cr.Fields {
		s := f.GetString_()
		if s == nil {
			return false // *
		}
		names = append(names, s.Sval)
	}
	switch len(names) {
	case 1:
		return cols[names[0]]
	case 2:
		return names[0] == alias && cols[names[1]]
	}
	return false
}
