package rewrite

import (
	"sync/atomic"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// widenGroupings makes up for the functional dependency on a primary key
// that a governed relation loses once it is a subquery.
//
// PostgreSQL takes a column of a table as grouped when the GROUP BY holds
// every column of the table's primary key (check_functional_grouping):
//
//	SELECT c.code, c.name, count(*) FROM countries c GROUP BY c.code
//
// Through pgveil c is the scoped subquery, which has no key, and the same
// statement fails with 42803. So, in every SELECT with a GROUP BY, for each
// FROM item substitute replaced at that level (not flattened: flatten.go
// reads the table itself, whose key PostgreSQL sees) whose relation's
// primary key (Relation.PrimaryKey) the GROUP BY holds, every column of
// it unmasked for the user, widenGrouping adds to the GROUP BY the
// relation's other columns the SELECT reads above its FROM and WHERE
// (targets, HAVING, ORDER BY, DISTINCT, WINDOW, sublinks among them
// included, * and whole-row references as all the columns), as alias.col,
// in the relation's column order. Each is a function of the key, so the
// groups are the ones PostgreSQL would make on the table; a masked column
// added is the subquery's column, the masked value, itself a function of
// the row.
//
// It leaves PostgreSQL's own 42803 when:
//
//   - a column of the key is masked: grouping by a masked value groups by
//     no key, and the real key must not be read in its place;
//   - a grouping set lacks a column of the key, as PostgreSQL's own rule
//     goes (it reads only the columns every grouping set holds): ROLLUP
//     and CUBE hold the empty set (commonColumns). Where every set holds
//     the key, the columns are added as plain items, which join every
//     set, but for a column some set holds (setColumns): PostgreSQL
//     reads it NULL in the rows of the sets that lack it, which a plain
//     item would undo, and it needs no dependency on the key;
//   - the FROM item renames the columns (AS c(a, b)), or is a table with
//     inheritance children read without ONLY: its key is its own rows'
//     only, the children may repeat it. A partitioned table's key holds
//     over its partitions (it includes the partition key), and a
//     partition's own is its own;
//   - the relation has no primary key: a UNIQUE NOT NULL key, as for
//     PostgreSQL, does not count.
//
// A key column counts in the GROUP BY as alias.col, as a bare col when
// the relation is the SELECT's only FROM item (a bare name in GROUP BY is
// an input column first, and the subquery's columns are the snapshot's),
// or as the position of a target that is one of those.
//
// A column whose type has no equality operator GROUP BY can use (json,
// xml, point, through domains, arrays and composite types:
// Column.Ungroupable) is not added: grouping by it fails (42883). The
// other columns still are: each is a function of the key, so adding some
// changes no group. A statement that reads it in an aggregate only then
// passes as on the table; one that reads it ungrouped fails with
// PostgreSQL's 42803 naming it, where the direct statement passes on the
// key's functional dependency, which the subquery has not: fail closed.
// Leaving the whole relation unwidened would fail the first as well.
//
// NOTE: a masked column added is a function of the row only if its mask
// is: a DBA's mask expression calling a volatile function (random())
// would split the groups. The built-in masks are functions of the value.
//
// A changed statement is deparsed, never spliced (rewriteText), and its
// deparse held to the tree as every other. It reports whether a decision read a constant's value (GROUP BY
// 1, a position): the rewrite then holds for this text only, not for its
// literal shape (Result.constantBound).
func (w *walker) widenGroupings(stmts []*pg_query.RawStmt) (readsConstant bool) {
	if len(w.scoped) == 0 {
		return false
	}
	items := make(map[*pg_query.Node]*scopedRef, len(w.scoped))
	for i := range w.scoped {
		s := &w.scoped[i]
		if !s.flat && len(s.rel.PrimaryKey) > 0 {
			items[s.node] = s
		}
	}
	if len(items) == 0 {
		return false
	}
	for _, raw := range stmts {
		pgtree.Walk(raw.Stmt, func(m proto.Message) bool {
			if sel, ok := m.(*pg_query.SelectStmt); ok && len(sel.GroupClause) > 0 {
				added, positions := widenGrouping(sel, items)
				w.changed = w.changed || added
				readsConstant = readsConstant || positions
			}
			return true
		})
	}
	return readsConstant
}

// widenGrouping widens the GROUP BY of sel for the FROM items of items at
// its level (widenGroupings), and reports whether it added any column,
// and whether it read a position (GROUP BY 1).
func widenGrouping(sel *pg_query.SelectStmt, items map[*pg_query.Node]*scopedRef) (added, positions bool) {
	var level []*scopedRef
	var from func(n *pg_query.Node)
	from = func(n *pg_query.Node) {
		if s := items[n]; s != nil {
			level = append(level, s)
			return
		}
		if j := n.GetJoinExpr(); j != nil && j.Alias == nil {
			from(j.Larg)
			from(j.Rarg)
		}
	}
	for _, n := range sel.FromClause {
		from(n)
	}
	if len(level) == 0 {
		return false, false
	}
	single := len(sel.FromClause) == 1 && len(level) == 1 && level[0].node == sel.FromClause[0]
	// NOTE: read once for every item of the level: walked again for
	// each, 1,000 FROM items grouped by their keys under a target of
	// 20,000 constants took seconds (a red team's).
	var above *refsAbove
	// grouped holds the columns every grouping set of the GROUP BY holds.
	grouped := map[[2]string]bool{}
	// inSets holds the columns some grouping set holds: PostgreSQL reads
	// one NULL in the rows of the sets that lack it, which the column
	// added as a plain item, joining every set, would undo.
	inSets := map[[2]string]bool{}
	for _, g := range sel.GroupClause {
		if c := g.GetAConst(); c != nil && c.GetIval() != nil {
			positions = true
			// NOTE: a position at the top level only, and only before
			// the first target a star expands (targetsExpand): PostgreSQL
			// counts the columns a * stands for, so the raw target at
			// that index is another one.
			if i := int(c.GetIval().Ival); i >= 1 && i <= len(sel.TargetList) && !targetsExpand(sel.TargetList[:i]) {
				g = sel.TargetList[i-1].GetResTarget().GetVal()
			}
		}
		for k := range commonColumns(g, level, single, true) {
			grouped[k] = true
		}
		for k := range setColumns(g, level, single, true) {
			inSets[k] = true
		}
	}
	for _, s := range level {
		alias := s.rs.Alias.GetAliasname()
		if len(s.rs.Alias.GetColnames()) > 0 || s.rel.Kind == 'r' && s.rv.Inh && len(s.rel.Descendants) > 0 {
			continue
		}
		keyed := true
		for _, k := range s.rel.PrimaryKey {
			if _, masked := s.acc.Masks[k]; masked || !grouped[[2]string{alias, k}] {
				keyed = false
				break
			}
		}
		if !keyed {
			continue
		}
		if above == nil {
			above = columnRefsAbove(sel)
		}
		read := above.read(s, single)
		for _, c := range s.rel.Columns {
			if read[c.Name] && !grouped[[2]string{alias, c.Name}] && !inSets[[2]string{alias, c.Name}] && !c.Ungroupable {
				sel.GroupClause = append(sel.GroupClause, qualifiedRef(alias, c.Name))
				added = true
			}
		}
	}
	return added, positions
}

// targetsExpand reports whether one of targets is a star PostgreSQL
// expands to a number of columns (alias.*, *, (expr).*), after which a
// GROUP BY position no longer names the raw target at its index.
func targetsExpand(targets []*pg_query.Node) bool {
	for _, t := range targets {
		switch v := t.GetResTarget().GetVal().GetNode().(type) {
		case *pg_query.Node_ColumnRef:
			if f := v.ColumnRef.Fields; len(f) > 0 && f[len(f)-1].GetAStar() != nil {
				return true
			}
		case *pg_query.Node_AIndirection:
			if ind := v.AIndirection.Indirection; len(ind) > 0 && ind[len(ind)-1].GetAStar() != nil {
				return true
			}
		}
	}
	return false
}

// refsAbove are the column references a SELECT reads after its FROM and
// WHERE: in its targets, HAVING, ORDER BY, DISTINCT ON and WINDOW
// clauses, sublinks included.
//
// NOTE: indexed by their first name (a FROM item's alias, or a bare
// column; "" for a bare *), so that the items of a level each look at
// the references that may name them only: the level may hold 1,000
// items (maxRelations), the clauses 20,000 references.
type refsAbove struct {
	// byFirst holds the references by their first name; all holds them
	// all, in the order read.
	byFirst map[string][]*pg_query.ColumnRef
	all     []*pg_query.ColumnRef
}

// columnRefsAbove returns the column references sel reads after its FROM
// and WHERE (refsAbove).
func columnRefsAbove(sel *pg_query.SelectStmt) *refsAbove {
	r := &refsAbove{byFirst: map[string][]*pg_query.ColumnRef{}}
	walked := 0
	visit := func(m proto.Message) bool {
		walked++
		if cr, ok := m.(*pg_query.ColumnRef); ok {
			first := ""
			if len(cr.Fields) > 0 {
				first = cr.Fields[0].GetString_().GetSval()
			}
			r.byFirst[first] = append(r.byFirst[first], cr)
			r.all = append(r.all, cr)
			return false
		}
		return true
	}
	var parts []*pg_query.Node
	parts = append(parts, sel.TargetList...)
	parts = append(parts, sel.HavingClause)
	parts = append(parts, sel.SortClause...)
	parts = append(parts, sel.DistinctClause...)
	parts = append(parts, sel.WindowClause...)
	for _, p := range parts {
		if p != nil {
			pgtree.Walk(p, visit)
		}
	}
	readAboveWalked.Add(int64(walked))
	return r
}

// readAboveWalked counts the nodes columnRefsAbove visited, for tests
// that hold the widening of a GROUP BY to one walk of its SELECT.
var readAboveWalked atomic.Int64

// read returns the columns of s's relation the references read; "*"
// marks every column.
//
// NOTE: it may say too much (a name a sublink's own FROM item shadows):
// a column added for nothing is still a function of the key.
func (r *refsAbove) read(s *scopedRef, single bool) map[string]bool {
	read := map[string]bool{}
	// A reference names s as alias.col, alias.* or a whole-row alias,
	// all under the alias; as a bare col or * only when s is its
	// SELECT's only FROM item (single).
	refs := r.byFirst[s.rs.Alias.GetAliasname()]
	if single {
		refs = r.all
	}
	for _, cr := range refs {
		if col, ok := refColumn(cr, s, single); ok {
			if col == "" {
				for _, c := range s.rel.Columns {
					read[c.Name] = true
				}
			} else {
				read[col] = true
			}
		}
	}
	return read
}

// refColumn reports whether cr names a column of s's relation, or all of
// them ("" for alias.*, a whole-row alias, or a bare * when single): as
// alias.col, or as a bare col when s is its SELECT's only FROM item.
func refColumn(cr *pg_query.ColumnRef, s *scopedRef, single bool) (string, bool) {
	alias := s.rs.Alias.GetAliasname()
	has := func(name string) bool {
		for _, c := range s.rel.Columns {
			if c.Name == name {
				return true
			}
		}
		return false
	}
	switch len(cr.Fields) {
	case 1:
		f := cr.Fields[0]
		if f.GetAStar() != nil {
			return "", single
		}
		name := f.GetString_().GetSval()
		if single && has(name) {
			return name, true
		}
		if name == alias {
			return "", true
		}
	case 2:
		if cr.Fields[0].GetString_().GetSval() != alias {
			return "", false
		}
		if cr.Fields[1].GetAStar() != nil {
			return "", true
		}
		if name := cr.Fields[1].GetString_().GetSval(); has(name) {
			return name, true
		}
	}
	return "", false
}

// setColumns returns the columns of the relations of level, as (alias,
// column), that some grouping set g stands for holds as a column
// reference (commonColumns' union where it takes the intersection, the
// sets of ROLLUP and CUBE included): PostgreSQL takes a target that is
// one for that grouping column, NULL in the rows of the sets that lack
// it, and needs no functional dependency for it.
func setColumns(g *pg_query.Node, level []*scopedRef, single, toplevel bool) map[[2]string]bool {
	out := map[[2]string]bool{}
	switch {
	case g.GetColumnRef() != nil:
		return commonColumns(g, level, single, toplevel)
	case g.GetRowExpr() != nil && !toplevel && g.GetRowExpr().RowFormat == pg_query.CoercionForm_COERCE_IMPLICIT_CAST:
		for _, a := range g.GetRowExpr().Args {
			for k := range setColumns(a, level, single, false) {
				out[k] = true
			}
		}
	case g.GetGroupingSet() != nil:
		for _, c := range g.GetGroupingSet().Content {
			for k := range setColumns(c, level, single, false) {
				out[k] = true
			}
		}
	}
	return out
}

// commonColumns returns the columns of the relations of level, as (alias,
// column), that every grouping set g stands for holds, as PostgreSQL
// counts them for functional dependency (the intersection of the sets):
// a column reference; the union of an item list; the intersection of the
// sets of GROUPING SETS, a row (a, b) in it being a list; nothing for
// ROLLUP, CUBE and (), which hold the empty set. toplevel: g is an item
// of the GROUP BY itself, where (a, b) is a row value, not a list.
func commonColumns(g *pg_query.Node, level []*scopedRef, single, toplevel bool) map[[2]string]bool {
	out := map[[2]string]bool{}
	switch {
	case g.GetColumnRef() != nil:
		for _, s := range level {
			if col, ok := refColumn(g.GetColumnRef(), s, single); ok && col != "" {
				out[[2]string{s.rs.Alias.GetAliasname(), col}] = true
			}
		}
	case g.GetRowExpr() != nil && !toplevel && g.GetRowExpr().RowFormat == pg_query.CoercionForm_COERCE_IMPLICIT_CAST:
		for _, a := range g.GetRowExpr().Args {
			for k := range commonColumns(a, level, single, false) {
				out[k] = true
			}
		}
	case g.GetGroupingSet() != nil:
		gs := g.GetGroupingSet()
		switch gs.Kind {
		case pg_query.GroupingSetKind_GROUPING_SET_SIMPLE:
			for _, c := range gs.Content {
				for k := range commonColumns(c, level, single, false) {
					out[k] = true
				}
			}
		case pg_query.GroupingSetKind_GROUPING_SET_SETS:
			for i, c := range gs.Content {
				cc := commonColumns(c, level, single, false)
				if i == 0 {
					out = cc
					continue
				}
				for k := range out {
					if !cc[k] {
						delete(out, k)
					}
				}
			}
		}
	}
	return out
}
