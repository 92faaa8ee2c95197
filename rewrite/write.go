package rewrite

import (
	"maps"
	"slices"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// writeGoverned checks and rewrites INSERT, UPDATE and DELETE whose
// target is the governed relation rel.
//
// UPDATE and DELETE find their rows through the scoped subquery:
//
//	DELETE FROM t AS a WHERE (tableoid, ctid) IN
//	  (SELECT a.pgveil_tableoid, a.pgveil_ctid
//	   FROM (SELECT t.tableoid AS pgveil_tableoid, t.ctid AS pgveil_ctid, <masked cols>
//	         FROM t WHERE <scope> [AND <pushed comparisons>] OFFSET 0) AS a
//	   WHERE <the user's WHERE>)
//
// (every column of t qualified by t inside, as in a SELECT's scoped
// subquery: buildScopedSelect), so the user's predicates see only masked
// values of rows in scope, as in a SELECT, and the leak-proof comparisons pushDown would copy for a
// SELECT are copied inside too (scopedRows). Where a direct read would be
// allowed, the template of a seen shape finds the rows directly instead
// (flattenableWrite). SET values and RETURNING may not read masked columns (they see
// the real row), and no write may set one (writesMasked); SET may not change a column the scope reads (the row
// could leave the scope: WITH CHECK, conservatively); INSERT is allowed
// only where the scope is every row; ON CONFLICT, UPDATE … FROM and
// DELETE … USING on governed tables are refused.
func (w *walker) writeGoverned(k StatementKind, n *pg_query.Node, rel *Relation, acc Access) error {
	if ok, reason := w.pol.AllowStatement(k); !ok {
		return deny("statement_kind", "%s is not allowed: %s", k, reason)
	}
	if clause := writeReads(n); clause != "" {
		if ok, reason := w.pol.AllowStatement(KindSelect); !ok {
			return deny("statement_kind", "%s on %s reads it (%s), which needs select: %s", k, rel.QName, clause, reason)
		}
	}
	w.governedSeen = true
	w.tables[rel.QName.String()] = true
	for _, r := range acc.Rules {
		w.rules[r] = true
	}
	switch s := n.Node.(type) {
	case *pg_query.Node_InsertStmt:
		ins := s.InsertStmt
		if ins.OnConflictClause != nil {
			return deny("write_governed", "INSERT … ON CONFLICT on the governed table %s is not allowed", rel.QName)
		}
		if acc.Filter != nil {
			return deny("write_scope", "INSERT into %s is limited by your row scope, which pgveil cannot check new rows against", rel.QName)
		}
		if err := w.readsMasked(ins.ReturningList, ins.Relation, acc, "RETURNING"); err != nil {
			return err
		}
		if err := readsSystem(ins.ReturningList, rel, "RETURNING"); err != nil {
			return err
		}
		ins.ReturningList = w.expandStar(ins.ReturningList, rel, targetName(ins.Relation))
		if err := w.staleColumns(ins.ReturningList, rel, ins.Relation, ins.WithClause, true); err != nil {
			return err
		}
		// NOTE: DEFAULT VALUES (no SELECT) writes every column's default.
		if err := writesMasked(ins.Cols, rel, acc, "INSERT"); err != nil {
			return err
		}
		if err := w.writeChecked(ins.Cols, rel, acc, "INSERT"); err != nil {
			return err
		}
		w.skipTarget = ins.Relation
		defer func() { w.skipTarget = nil }()
		return w.walk(n)

	case *pg_query.Node_CopyStmt:
		if acc.Filter != nil {
			return deny("write_scope", "COPY into %s is limited by your row scope, which pgveil cannot check new rows against", rel.QName)
		}
		if err := writesMasked(s.CopyStmt.Attlist, rel, acc, "COPY"); err != nil {
			return err
		}
		if err := w.writeChecked(s.CopyStmt.Attlist, rel, acc, "COPY"); err != nil {
			return err
		}
		// NOTE: the WHERE of COPY FROM reads the rows copied in, not the
		// table's, but its functions run as the service account: it is
		// walked like an INSERT's query (a review read every table
		// through query_to_xml there).
		w.skipTarget = s.CopyStmt.Relation
		defer func() { w.skipTarget = nil }()
		return w.walk(n)

	case *pg_query.Node_DeleteStmt:
		del := s.DeleteStmt
		if len(del.UsingClause) > 0 {
			return deny("write_governed", "DELETE … USING on the governed table %s is not allowed", rel.QName)
		}
		if err := w.readsMasked(del.ReturningList, del.Relation, acc, "RETURNING"); err != nil {
			return err
		}
		if err := readsSystem(del.ReturningList, rel, "RETURNING"); err != nil {
			return err
		}
		del.ReturningList = w.expandStar(del.ReturningList, rel, targetName(del.Relation))
		if err := w.staleColumns(del.ReturningList, rel, del.Relation, del.WithClause, true); err != nil {
			return err
		}
		if err := w.staleColumns([]*pg_query.Node{del.WhereClause}, rel, del.Relation, del.WithClause, false); err != nil {
			return err
		}
		if err := w.deleteChecked(rel); err != nil {
			return err
		}
		// The WITH names are in scope for the WHERE and RETURNING, as
		// PostgreSQL resolves them.
		var err error
		w.withScope(del.WithClause, func() {
			var where *pg_query.Node
			if where, err = w.scopedRows(n, del.Relation, del.WhereClause, rel, acc); err != nil {
				return
			}

			del.WhereClause = where
			err = w.walkList(del.ReturningList)
		})
		if w.err != nil {
			return w.err
		}
		return err

	case *pg_query.Node_UpdateStmt:
		upd := s.UpdateStmt
		if len(upd.FromClause) > 0 {
			return deny("write_governed", "UPDATE … FROM on the governed table %s is not allowed", rel.QName)
		}
		if err := w.readsMasked(upd.ReturningList, upd.Relation, acc, "RETURNING"); err != nil {
			return err
		}
		if err := readsSystem(upd.ReturningList, rel, "RETURNING"); err != nil {
			return err
		}
		scopeCols := map[string]bool{}
		if acc.Filter != nil {
			collectColumns(acc.Filter, scopeCols)
			// A followed key decides another relation's rows by the
			// row it is in, as the scope decides this one's.
			for k := range acc.FollowedKeys {
				scopeCols[k] = true
			}
			// A generated column the scope reads changes with the
			// columns it is computed from.
			for g, bases := range rel.Generated {
				if scopeCols[g] {
					for _, b := range bases {
						scopeCols[b] = true
					}
				}
			}
		}
		// values are what SET evaluates on the real row: the values, and
		// the subscripts of the targets (SET tags[expr] = …), which a
		// review used to read the masked email and other tables.
		var values []*pg_query.Node
		for _, t := range upd.TargetList {
			rt := t.GetResTarget()
			if rt == nil {
				return deny("write_governed", "unexpected SET clause")
			}
			if scopeCols[rt.Name] {
				return deny("write_scope", "UPDATE of %s.%s could move rows out of your row scope", rel.QName, rt.Name)
			}
			values = append(values, rt.Val)
			values = append(values, rt.Indirection...)
		}
		if err := w.readsMasked(values, upd.Relation, acc, "SET"); err != nil {
			return err
		}
		if err := readsSystem(values, rel, "SET"); err != nil {
			return err
		}
		name := targetName(upd.Relation)
		upd.ReturningList = w.expandStar(upd.ReturningList, rel, name)
		if err := w.staleColumns(append(values, upd.ReturningList...), rel, upd.Relation, upd.WithClause, true); err != nil {
			return err
		}
		if err := w.staleColumns([]*pg_query.Node{upd.WhereClause}, rel, upd.Relation, upd.WithClause, false); err != nil {
			return err
		}
		if err := writesMasked(upd.TargetList, rel, acc, "UPDATE"); err != nil {
			return err
		}
		if err := w.writeChecked(upd.TargetList, rel, acc, "UPDATE"); err != nil {
			return err
		}
		if err := indexChecked(upd.TargetList, rel, acc, "UPDATE"); err != nil {
			return err
		}
		if err := checkChecked(upd.TargetList, rel, acc, "UPDATE"); err != nil {
			return err
		}
		var err error
		w.withScope(upd.WithClause, func() {
			var where *pg_query.Node
			if where, err = w.scopedRows(n, upd.Relation, upd.WhereClause, rel, acc); err != nil {
				return
			}

			// SET values are walked before the WHERE is replaced by the
			// subquery, which holds rewritten relations already.
			if err = w.walkList(values); err != nil {
				return
			}
			upd.WhereClause = where
			err = w.walkList(upd.ReturningList)
		})
		if w.err != nil {
			return w.err
		}
		return err
	}
	return deny("write_governed", "%s on the governed table %s is not supported", k, rel.QName)
}

// writeReads names the clause of the write n that reads its target, as
// PostgreSQL requires SELECT for: a RETURNING (any, which hands rows
// back), or a column reference in an UPDATE's SET values or subscripts or
// in an UPDATE's or DELETE's WHERE; "" when it reads none.
// NOTE: without select, a role listing update or delete would read
// every row its rules grant: RETURNING * shows them, and the row count of
// DELETE … WHERE email LIKE 'a%', or of an UPDATE rolled back, or an
// error a SET value raises on some rows (1/0), answers any question about
// them. Any column reference counts, one of another relation in a
// subquery too: a false refusal, never a read.
func writeReads(n *pg_query.Node) string {
	var where *pg_query.Node
	var values []*pg_query.Node
	switch s := n.Node.(type) {
	case *pg_query.Node_InsertStmt:
		if len(s.InsertStmt.ReturningList) > 0 {
			return "RETURNING"
		}
		return ""
	case *pg_query.Node_DeleteStmt:
		if len(s.DeleteStmt.ReturningList) > 0 {
			return "RETURNING"
		}
		where = s.DeleteStmt.WhereClause
	case *pg_query.Node_UpdateStmt:
		if len(s.UpdateStmt.ReturningList) > 0 {
			return "RETURNING"
		}
		where = s.UpdateStmt.WhereClause
		for _, t := range s.UpdateStmt.TargetList {
			if rt := t.GetResTarget(); rt != nil {
				values = append(append(values, rt.Val), rt.Indirection...)
			}
		}
	default:
		return ""
	}
	reads := func(e *pg_query.Node) bool {
		found := false
		visitColumnRefs(e, func(*pg_query.ColumnRef) { found = true })
		return found
	}
	for _, v := range values {
		if reads(v) {
			return "SET"
		}
	}
	if reads(where) {
		return "WHERE"
	}
	return ""
}

// scopedRows returns the WHERE of the UPDATE or DELETE n on target: its
// row identities among the scoped, masked rows that satisfy the user's
// where. When n is the top-level statement it also notes the write for
// flatten, which may find its rows directly instead (flatten.go).
func (w *walker) scopedRows(n *pg_query.Node, target *pg_query.RangeVar, where *pg_query.Node, rel *Relation, acc Access) (*pg_query.Node, error) {
	if where.GetCurrentOfExpr() != nil {
		// NOTE: the cursor's row is not among the masked rows' identities
		// by name, and the deparser has no CURRENT OF.
		return nil, deny("write_governed", "WHERE CURRENT OF on the governed table %s is not supported: update or delete by key", rel.QName)
	}
	alias := target.Alias
	if alias == nil {
		alias = &pg_query.Alias{Aliasname: target.Relname}
	}
	// The user's WHERE is checked (functions, nested governed relations)
	// in the scope of a SELECT over the masked rows.
	keys := &pg_query.SelectStmt{
		Op: pg_query.SetOperation_SETOP_NONE,
		TargetList: []*pg_query.Node{
			resTarget("", qualifiedRef(alias.Aliasname, rowIDTableOID)),
			resTarget("", qualifiedRef(alias.Aliasname, rowIDCtid)),
		},
		WhereClause: where,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
	}
	// The user's leak-proof comparisons of the target's columns with
	// constants are copied into the scoped subquery, as for a SELECT
	// (pushDown), so that PostgreSQL finds the rows by index: behind the
	// fence it would otherwise read every row in scope to update one.
	// Only the target can be named by an unqualified column of the
	// WHERE's conjuncts (UPDATE … FROM and DELETE … USING are refused).
	var pushed []*pg_query.Node
	pushedAll := where == nil
	if where != nil && !acc.NoPushdown && len(alias.Colnames) == 0 {
		pu := pusher{alias: alias.Aliasname, rel: rel, acc: acc, single: true,
			catalogFirst: len(w.path) > 0 && w.path[0] == "pg_catalog",
			declared:     w.declaredParam}
		pushed, pushedAll = pu.conjuncts(where)
	}
	if n == w.topWrite {
		w.writes = append(w.writes, scopedWrite{stmt: n, target: target, where: where,
			rel: rel, acc: acc, pushed: pushed, pushedAll: pushedAll})
	}
	if where != nil {
		if err := w.fenceWriteWhere(where, target, rel, keys); err != nil {
			return nil, err
		}
		w.selects = append(w.selects, keys)
		err := w.walk(where)
		w.selects = w.selects[:len(w.selects)-1]
		if err != nil {
			return nil, err
		}
	}
	inner := w.scopedSelect(rel, acc, target.Inh, true, pushed)
	keys.FromClause = []*pg_query.Node{{Node: &pg_query.Node_RangeSubselect{RangeSubselect: &pg_query.RangeSubselect{
		Subquery: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: inner}},
		Alias:    &pg_query.Alias{Aliasname: alias.Aliasname},
	}}}}
	w.changed = true
	row := &pg_query.Node{Node: &pg_query.Node_RowExpr{RowExpr: &pg_query.RowExpr{
		Args:      []*pg_query.Node{columnRef("tableoid"), columnRef("ctid")},
		RowFormat: pg_query.CoercionForm_COERCE_IMPLICIT_CAST,
		Location:  -1,
	}}}
	return &pg_query.Node{Node: &pg_query.Node_SubLink{SubLink: &pg_query.SubLink{
		SubLinkType: pg_query.SubLinkType_ANY_SUBLINK,
		Testexpr:    row,
		Subselect:   &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: keys}},
		Location:    -1,
	}}}, nil
}

// systemColumns are PostgreSQL's system column names, and the names the
// scoped subquery of a write gives the row identities.
var systemColumns = map[string]bool{
	"ctid": true, "xmin": true, "xmax": true, "cmin": true, "cmax": true, "tableoid": true,
	rowIDTableOID: true, rowIDCtid: true,
}

// fenceWriteWhere keeps every column reference of the user's WHERE of a
// scoped write inside the SELECT over the masked rows it moves into
// (keys): a reference that subquery cannot resolve is resolved one level
// out, on the write's target, the real table with every row.
//   - schema.table.column naming the target is shortened to table.column,
//     which the subquery's alias answers, as the SELECT path does
//     (qualified.go);
//   - any other reference of three fields or more (a database or schema
//     the alias does not answer to) is refused;
//   - system columns (ctid, xmin, tableoid…), which the subquery lacks,
//     and the names it gives the row identities, are refused.
func (w *walker) fenceWriteWhere(where *pg_query.Node, target *pg_query.RangeVar, rel *Relation, keys *pg_query.SelectStmt) error {
	if target.Alias == nil {
		cte := false
		for _, level := range w.ctes {
			cte = cte || level[rel.Name]
		}
		w.unqualifyIn(where, rel.Schema, rel.Name, keys, cte || containsCTE(where, rel.Name))
	}
	var err error
	visitColumnRefs(where, func(ref *pg_query.ColumnRef) {
		if err == nil && len(ref.Fields) >= 3 {
			err = deny("write_governed", "a column of the WHERE of a write on %s names a schema or a database: write table.column or column", rel.QName)
		}
	})
	if err != nil {
		return err
	}
	if bad := systemColumnIn([]*pg_query.Node{where}); bad != "" {
		return deny("write_governed", "the WHERE of a write on %s may not read the system column %s", rel.QName, bad)
	}
	return nil
}

// readsMasked refuses expressions that read a masked column of the write
// target, or its whole row, where the real row is visible (SET values,
// RETURNING).
func (w *walker) readsMasked(exprs []*pg_query.Node, target *pg_query.RangeVar, acc Access, clause string) error {
	if len(acc.Masks) == 0 {
		return nil
	}
	alias := target.Relname
	if target.Alias != nil {
		alias = target.Alias.Aliasname
	}
	bad := ""
	for _, e := range exprs {
		visitColumnRefs(e, func(cr *pg_query.ColumnRef) {
			names := make([]string, 0, len(cr.Fields))
			star := false
			for _, f := range cr.Fields {
				if f.GetAStar() != nil {
					star = true
				} else {
					names = append(names, f.GetString_().GetSval())
				}
			}
			switch {
			case star:
				bad = "*"
			case len(names) == 1 && names[0] == alias:
				bad = alias // the whole row
			case clause == "RETURNING" && len(names) >= 1 && (names[0] == "old" || names[0] == "new"):
				// NOTE: PostgreSQL 18 reads RETURNING old and new as
				// the row before and after the write, whole.
				bad = names[0]
			case len(names) >= 1:
				if _, masked := acc.Masks[names[len(names)-1]]; masked {
					bad = names[len(names)-1]
				}
			}
		})
	}
	if bad != "" {
		return deny("masked_write", "%s may not read the masked column %s (%s) of the governed table", clause, bad, target.Relname)
	}
	return nil
}

// expandStar replaces each * (or name.*) of a write's RETURNING list with
// the snapshot's columns of its target, known by name: PostgreSQL would
// expand it with every column of the real table, those added since the
// snapshot was read included, which no mask covers yet (staleColumns).
// A list without * is returned as it is.
func (w *walker) expandStar(list []*pg_query.Node, rel *Relation, name string) []*pg_query.Node {
	var out []*pg_query.Node
	for i, n := range list {
		cr := n.GetResTarget().GetVal().GetColumnRef()
		if cr == nil || cr.Fields[len(cr.Fields)-1].GetAStar() == nil ||
			len(cr.Fields) == 2 && cr.Fields[0].GetString_().GetSval() != name || len(cr.Fields) > 2 {
			if out != nil {
				out = append(out, n)
			}
			continue
		}
		if out == nil {
			out = append([]*pg_query.Node{}, list[:i]...)
		}
		for _, c := range rel.Columns {
			out = append(out, resTarget("", qualifiedRef(name, c.Name)))
		}
		w.changed = true
	}
	if out == nil {
		return list
	}
	return out
}

// targetName is the name a write's target is known by in its statement.
func targetName(rv *pg_query.RangeVar) string {
	if rv.Alias != nil {
		return rv.Alias.Aliasname
	}
	return rv.Relname
}

// readsSystem refuses expressions that read a system column (ctid, xmin…)
// where the real row is visible (SET values, RETURNING): xmin is a
// transaction id, which server_state refuses to give, and a ctid's page
// tells the table's size, hidden rows included. Any reference whose last
// field is such a name counts, conservatively.
func readsSystem(exprs []*pg_query.Node, rel *Relation, clause string) error {
	if bad := systemColumnIn(exprs); bad != "" {
		return deny("write_governed", "%s of a write on %s may not read the system column %s", clause, rel.QName, bad)
	}
	return nil
}

// systemColumnIn returns a system column name exprs read, "" when none:
// as a column reference's last field (ctid, r.ctid), or as a field
// selected from a whole row ((r).ctid, (r.*).xmin), which PostgreSQL
// resolves to the system column too (a review read ctid so).
func systemColumnIn(exprs []*pg_query.Node) string {
	bad := ""
	for _, e := range exprs {
		if e == nil {
			continue
		}
		pgtree.Walk(e, func(m proto.Message) bool {
			var fields []*pg_query.Node
			switch v := m.(type) {
			case *pg_query.ColumnRef:
				fields = v.Fields[len(v.Fields)-1:]
			case *pg_query.A_Indirection:
				fields = v.Indirection
			}
			for _, f := range fields {
				if name := f.GetString_(); name != nil && systemColumns[name.Sval] {
					bad = name.Sval
				}
			}
			return bad == ""
		})
	}
	return bad
}

// writesMasked refuses a write of a masked column: the columns named by
// cols (ResTargets or String nodes; every column of rel when empty).
// A value written there is checked against the real values of other
// rows by the table's constraints (a unique email answers whether
// someone else has it), and replaces a value the user may not see.
func writesMasked(cols []*pg_query.Node, rel *Relation, acc Access, clause string) error {
	if len(acc.Masks) == 0 {
		return nil
	}
	for _, n := range writtenColumns(cols, rel) {
		if _, masked := acc.Masks[n]; masked {
			return deny("masked_write", "%s may not write the masked column %s of the governed table %s", clause, n, rel.QName)
		}
	}
	return nil
}

// writtenColumns returns the names of the columns cols names
// (ResTargets or String nodes), every column of rel when cols is empty.
func writtenColumns(cols []*pg_query.Node, rel *Relation) []string {
	var names []string
	for _, c := range cols {
		if rt := c.GetResTarget(); rt != nil {
			names = append(names, rt.Name)
		} else if sv := c.GetString_(); sv != nil {
			names = append(names, sv.Sval)
		}
	}
	if len(cols) == 0 {
		for _, c := range rel.Columns {
			names = append(names, c.Name)
		}
	}
	return names
}

// writeChecked refuses a write of a column whose constraint PostgreSQL
// checks against rows the user may not see, since the check's failure
// would tell whether such a row holds the value written:
//
//   - under a row scope, a column of a unique index or an exclusion
//     constraint (Relation.Keys): a duplicate key means a hidden row
//     has it;
//   - a column of a foreign key referencing a relation the user reads
//     under a row scope, or may not read (Relation.References): a
//     violation means the referenced row does not exist.
//
// cols are as writtenColumns reads them.
func (w *walker) writeChecked(cols []*pg_query.Node, rel *Relation, acc Access, clause string) error {
	// A view's or a foreign table's constraints are its base tables' or
	// the remote server's, which the snapshot does not know.
	if rel.Kind == 'v' || rel.Kind == 'f' {
		return deny("write_key", "%s of %s is not allowed: the constraints a write of a view or a foreign table meets are not pgveil's to see", clause, rel.QName)
	}
	if len(rel.Keys) == 0 && len(rel.References) == 0 && len(rel.ReferencedBy) == 0 {
		return nil
	}
	// A unique key that reads a masked column compares the value written
	// with masked ones: conservatively, every key column counts then.
	keyMasked := false
	for c := range acc.Masks {
		keyMasked = keyMasked || rel.Keys[c]
	}
	written := writtenColumns(cols, rel)
	if clause == "INSERT" || clause == "COPY" {
		// NOTE: a column the statement does not name gets its default
		// (a sequence's next value): a new key is referenced by no row
		// of a validated foreign key, but an unvalidated one may hold
		// rows referencing it already, which the new row would reach
		// (a follow shows them). The snapshot does not tell such a key
		// from one setting NULL or a default (SettingReferences): every
		// one of those counts.
		for _, c := range rel.Columns {
			if slices.Contains(written, c.Name) {
				continue
			}
			// NOTE: a default is checked by the column's foreign keys
			// as a value written is: whether the INSERT fails tells
			// whether the hidden row it references exists.
			if q, ok := w.notReadable(rel.References[c.Name]); !ok && rel.Defaulted[c.Name] {
				return deny("write_key", "%s of %s is not allowed: its column %s takes its default, which its foreign key checks against %s, of which you may not read every row and column: the check would tell whether a row holds it", clause, rel.QName, c.Name, q)
			}
			for _, q := range rel.ReferencedBy[c.Name] {
				if child := w.cat.Relations[q]; child != nil && !settingReference(child, rel) {
					continue
				}
				if _, ok := w.notReadable([]QName{q}); !ok {
					return deny("write_key", "%s of %s is not allowed: its column %s takes its default, which a foreign key of %s, of which you may not read every row and column, references and may not have validated: a new row would reach rows you may not see", clause, rel.QName, c.Name, q)
				}
			}
		}
	}
	if (clause == "INSERT" || clause == "COPY") && keyMasked {
		// NOTE: a masked column is never written (writesMasked): an
		// INSERT leaves it to its default, which its unique key
		// compares with every row's real value, as it does a column
		// an index holds with it: a duplicate key (23505) would tell
		// whether a row holds the default.
		for _, c := range rel.Columns {
			if !rel.Keys[c.Name] || !rel.Defaulted[c.Name] || slices.Contains(written, c.Name) {
				continue
			}
			peer := c.Name
			if _, masked := acc.Masks[c.Name]; !masked {
				peer = ""
				for _, p := range rel.IndexPeers[c.Name] {
					if _, masked := acc.Masks[p]; masked {
						peer = p
						break
					}
				}
			}
			if peer != "" {
				return deny("write_key", "%s of %s is not allowed: its column %s takes its default, which a unique key compares with the column %s, which you may not read: a duplicate key would tell whether a row holds it", clause, rel.QName, c.Name, peer)
			}
		}
	}
	for _, n := range written {
		if rel.Keys[n] && (acc.Filter != nil || keyMasked) {
			return deny("write_key", "%s of %s.%s is not allowed: a unique key holds the column, and its check would tell whether a row or a value you may not see has it", clause, rel.QName, n)
		}
		if q, ok := w.notReadable(rel.References[n]); !ok {
			return deny("write_key", "%s of %s.%s is not allowed: its foreign key references %s, of which you may not read every row and column, and the key's check would tell whether a row exists", clause, rel.QName, n, q)
		}
		referencing := rel.ReferencedBy[n]
		if clause == "INSERT" || clause == "COPY" {
			// NOTE: a new row is referenced by no row yet: a child that
			// follows rel on the column in full (followsInFull) holds no
			// orphan its key could show, as the foreign key keeps none.
			referencing = nil
			for _, q := range rel.ReferencedBy[n] {
				if child := w.cat.Relations[q]; child == nil || !w.followsInFull(child, rel, n) {
					referencing = append(referencing, q)
				}
			}
		}
		if q, ok := w.notReadable(referencing); !ok {
			return deny("write_key", "%s of %s.%s is not allowed: a foreign key of %s, of which you may not read every row and column, references the column, and its check or cascade would reach rows you may not see", clause, rel.QName, n, q)
		}
		if q, ok := w.readOnly(rel.ReferencedBy[n]); !ok {
			return deny("policy_input", "%s of %s.%s is not allowed: a foreign key of %s references the column, and its cascade would write a table the policy reads", clause, rel.QName, n, q)
		}
		if clause != "INSERT" && clause != "COPY" {
			if err := w.updateCascadeChecked(rel, referencing, clause, map[changedColumn]bool{{rel.QName, n}: true}); err != nil {
				return err
			}
		}
	}
	return nil
}

// settingReference reports whether a foreign key of child that
// references rel is one of its SettingReferences (of several columns,
// setting NULL or a default, or not validated).
func settingReference(child, rel *Relation) bool {
	for _, qs := range child.SettingReferences {
		if slices.Contains(qs, rel.QName) {
			return true
		}
	}
	return false
}

// updateCascadeChecked refuses a change of a key of rel that referencing
// (read in full, as writeChecked found) reference, when an ON UPDATE
// action would carry it on: the foreign key columns of a referencing
// relation that reference rel may change with it (CASCADE, SET NULL,
// SET DEFAULT), and the relations referencing those columns are checked
// or cascaded into in turn, at any depth. seen holds the columns
// already walked (the written one first).
// NOTE: a column, not a relation: a relation reached again by another
// path may change in another column (p cascading into a and b, and
// each into its own column of c), whose keys are checked then.
// NOTE: a key whose ON UPDATE action is NO ACTION or RESTRICT (not in
// UpdateReferences) does not change its column: it only checks whether
// a row of the referencing relation, read in full, holds the old key,
// which the user sees. Its column is not walked on.
func (w *walker) updateCascadeChecked(rel *Relation, referencing []QName, clause string, seen map[changedColumn]bool) error {
	for _, q := range referencing {
		child := w.cat.Relations[q]
		if child == nil {
			continue
		}
		for _, col := range slices.Sorted(maps.Keys(child.References)) {
			if !slices.Contains(child.References[col], rel.QName) || seen[changedColumn{q, col}] {
				continue
			}
			if !slices.Contains(child.UpdateReferences[col], rel.QName) {
				continue
			}
			seen[changedColumn{q, col}] = true
			// NOTE: the value the cascade writes (the new key, or a
			// default) is checked by every other foreign key of the
			// column too: its failure would tell whether a row the
			// user may not see holds it. rel's own rows are read in
			// full here (a key of a scoped relation is refused
			// before: writeChecked).
			for _, q2 := range child.References[col] {
				if q2 == rel.QName {
					continue
				}
				if _, ok := w.notReadable([]QName{q2}); !ok {
					return deny("write_key", "%s of %s is not allowed: its cascade may change %s.%s, whose foreign key references %s, of which you may not read every row and column, and that key's check would tell whether a row holds the value written", clause, rel.QName, q, col, q2)
				}
			}
			next := child.ReferencedBy[col]
			if q2, ok := w.notReadable(next); !ok {
				return deny("write_key", "%s of %s is not allowed: its cascade may change %s.%s, which a foreign key of %s, of which you may not read every row and column, references, and that key's check or cascade would reach rows you may not see", clause, rel.QName, q, col, q2)
			}
			if q2, ok := w.readOnly(next); !ok {
				return deny("policy_input", "%s of %s is not allowed: its cascade may change %s.%s, which a foreign key of %s references, and that key's cascade would write a table the policy reads", clause, rel.QName, q, col, q2)
			}
			if err := w.updateCascadeChecked(child, next, clause, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// changedColumn is a column a cascade changes (updateCascadeChecked).
type changedColumn struct {
	rel    QName
	column string
}

// indexChecked refuses an UPDATE of a column that an index of any kind
// holds with a column masked for the user (Relation.IndexPeers): the new
// index row holds the real masked value beside the one written, and
// whether it fits the index's row size limit (54000 when it does not)
// tells the masked value's length, the written one's being the user's.
// An INSERT or a COPY FROM writes the masked column's default, not a
// real value: they are not refused.
// cols are as writtenColumns reads them.
func indexChecked(cols []*pg_query.Node, rel *Relation, acc Access, clause string) error {
	return peersChecked(cols, rel, rel.IndexPeers, acc, clause,
		"an index holds the column with %s, which you may not read, and whether the index row fits its size limit would tell that value's length")
}

// checkChecked refuses an UPDATE of a column that a CHECK constraint
// reads with a column masked for the user (Relation.CheckPeers): the
// constraint runs on the written value and the real masked one, and
// whether it fails (23514) answers a question about the masked value
// (CHECK (bonus <= salary): is the salary at least the bonus written?).
// An INSERT or a COPY FROM checks the masked column's default, not a
// real value: they are not refused.
// cols are as writtenColumns reads them.
func checkChecked(cols []*pg_query.Node, rel *Relation, acc Access, clause string) error {
	return peersChecked(cols, rel, rel.CheckPeers, acc, clause,
		"a CHECK constraint or a partition key reads the column with %s, which you may not read, and whether it fails (or where the row goes) would tell that value")
}

// peersChecked refuses, under write_key, a write of a column of cols
// (as writtenColumns reads them) that peers pairs with a column masked
// for the user; why says what the pairing would tell, %s the masked
// column (indexChecked, checkChecked).
func peersChecked(cols []*pg_query.Node, rel *Relation, peers map[string][]string, acc Access, clause, why string) error {
	if len(peers) == 0 || len(acc.Masks) == 0 {
		return nil
	}
	for _, n := range writtenColumns(cols, rel) {
		for _, peer := range peers[n] {
			if _, masked := acc.Masks[peer]; masked {
				return deny("write_key", "%s of %s.%s is not allowed: "+why, clause, rel.QName, n, peer)
			}
		}
	}
	return nil
}

// deleteChecked refuses a DELETE from rel when a foreign key of a
// relation the user may not read in full references rel: its check
// would tell whether a hidden row references a deleted one, and its
// cascade would delete or change hidden rows. A view or a foreign table
// is refused, as in writeChecked.
// A relation that follows rel on the key (Access.Follows, see
// followsInFull) is not read in full, but every row of it a deleted row
// can reach is one the user sees: it is not refused for it. The
// relations referencing a referencing relation are checked in turn, as
// a cascade reaches them.
func (w *walker) deleteChecked(rel *Relation) error {
	return w.deleteCheckedFrom(rel, map[QName]bool{rel.QName: true}, map[changedColumn]bool{})
}

// deleteCheckedFrom is deleteChecked, seen the relations already checked
// (or being checked) on the way down a cascade.
// NOTE: seen is shared by the whole walk: a relation's check does not
// depend on the path that reached it, and a schema whose foreign keys
// form a lattice is walked once per relation, not once per path.
// cascaded holds the columns the walk's ON UPDATE cascades have walked
// (setDefaultChecked), for the whole DELETE.
func (w *walker) deleteCheckedFrom(rel *Relation, seen map[QName]bool, cascaded map[changedColumn]bool) error {
	if rel.Kind == 'v' || rel.Kind == 'f' {
		return deny("write_key", "DELETE from %s is not allowed: the constraints a write of a view or a foreign table meets are not pgveil's to see", rel.QName)
	}
	acc := w.access(rel)
	// NOTE: ReferencedBy holds the keys of rel's inheritance children
	// too, which a DELETE of rel reaches: a column of a child's own is
	// no column of rel, and its value is one the user does not read
	// through rel.
	for _, name := range slices.Sorted(maps.Keys(rel.ReferencedBy)) {
		if !slices.ContainsFunc(rel.Columns, func(c Column) bool { return c.Name == name }) && len(rel.ReferencedBy[name]) > 0 {
			return deny("write_key", "DELETE from %s is not allowed: a foreign key of %s references the column %s of a relation it reaches (an inheritance child's), which you may not read through it, and its check or cascade would reach rows you may not see", rel.QName, rel.ReferencedBy[name][0], name)
		}
	}
	for _, c := range rel.Columns {
		if _, masked := acc.Masks[c.Name]; masked && len(rel.ReferencedBy[c.Name]) > 0 {
			// NOTE: the rows a deleted row's masked value reaches are
			// checked, or deleted, by it: a cascade into a table the
			// user reads (or a check's failure) tells the value.
			return deny("write_key", "DELETE from %s is not allowed: a foreign key of %s references its column %s, which you may not read, and its check or cascade would tell a deleted row's value", rel.QName, rel.ReferencedBy[c.Name][0], c.Name)
		}
		var others, next []QName
		for _, q := range rel.ReferencedBy[c.Name] {
			child := w.cat.Relations[q]
			if child == nil || !w.followsInFull(child, rel, c.Name) {
				others = append(others, q)
			}
			next = append(next, q)
		}
		if q, ok := w.notReadable(others); !ok {
			return deny("write_key", "DELETE from %s is not allowed: a foreign key of %s, of which you may not read every row and column, references it, and its check or cascade would reach rows you may not see", rel.QName, q)
		}
		if q, ok := w.readOnly(rel.ReferencedBy[c.Name]); !ok {
			return deny("policy_input", "DELETE from %s is not allowed: a foreign key of %s references it, and its cascade would write a table the policy reads", rel.QName, q)
		}
		if err := w.setDefaultChecked(rel, c.Name, cascaded); err != nil {
			return err
		}
		// NOTE: a cascade into a referencing relation, read in full or
		// followed in full, goes on into the relations that reference
		// it: their keys' checks and cascades are this DELETE's too. A
		// loop of foreign keys reaches nothing more the second time.
		for _, q := range next {
			if seen[q] {
				continue
			}
			seen[q] = true
			if err := w.deleteCheckedFrom(w.cat.Relations[q], seen, cascaded); err != nil {
				return err
			}
		}
	}
	return nil
}

// setDefaultChecked refuses a DELETE from rel whose referencing
// relations (by rel's column key; read in full, as deleteCheckedFrom
// found) set a column to its default on it (Relation.DefaultReferences):
// the default is checked against every relation the column references,
// rel among them, and whether the check fails tells whether a row the
// user may not see holds it; the change cascades on as an UPDATE of the
// column does (updateCascadeChecked).
// NOTE: a key setting NULL (ON DELETE SET NULL) changes its column too:
// the rows referencing the column meet their ON UPDATE action, and SET
// DEFAULT there writes a default the column's other foreign keys check
// (g.x DEFAULT 3 referencing c (pid) ON UPDATE SET DEFAULT and h, scoped:
// whether the DELETE fails tells whether h's hidden row 3 exists). The
// snapshot does not tell such a key from one of several columns or not
// validated (SettingReferences): every one of those cascades on here,
// which refuses more, never less.
// NOTE: seen is the whole DELETE's: every relation whose column a
// cascade changes here is read in full (deleteCheckedFrom refuses the
// others first), so a column's checks do not depend on the path that
// reached it, and a lattice of keys of several columns, each a setting
// reference, is walked once, not once per relation deleted from (a
// fresh walk each took a second on 400 tables). A column set NULL is
// not marked walked: its foreign keys check nothing then, but would
// check a value another path cascades into it.
func (w *walker) setDefaultChecked(rel *Relation, key string, seen map[changedColumn]bool) error {
	for _, q := range rel.ReferencedBy[key] {
		child := w.cat.Relations[q]
		if child == nil {
			continue
		}
		for _, col := range slices.Sorted(maps.Keys(child.SettingReferences)) {
			if !slices.Contains(child.SettingReferences[col], rel.QName) {
				continue
			}
			clause := "ON DELETE SET NULL"
			next := child.ReferencedBy[col]
			// NOTE: NULL passes the column's own keys, but a generated
			// column computed from it (coalesce(pid, 3)) changes with
			// it, and its foreign key checks the new value.
			for _, g := range slices.Sorted(maps.Keys(child.Generated)) {
				if !slices.Contains(child.Generated[g], col) {
					continue
				}
				if q2, ok := w.notReadable(child.References[g]); !ok {
					return deny("write_key", "DELETE from %s is not allowed: a foreign key of %s sets its column %s, from which its generated column %s is computed, whose foreign key checks the new value against %s, of which you may not read every row and column: the check would tell whether a row holds it", rel.QName, q, col, g, q2)
				}
			}
			if slices.Contains(child.DefaultReferences[col], rel.QName) {
				clause = "ON DELETE SET DEFAULT"
				if q2, ok := w.notReadable(child.References[col]); !ok {
					return deny("write_key", "DELETE from %s is not allowed: a foreign key of %s sets its column %s to its default, which a foreign key of the column checks against %s, of which you may not read every row and column: the check would tell whether a row holds the default", rel.QName, q, col, q2)
				}
				if q2, ok := w.notReadable(next); !ok {
					return deny("write_key", "DELETE from %s is not allowed: a foreign key of %s sets its column %s to its default, which a foreign key of %s, of which you may not read every row and column, references, and that key's check or cascade would reach rows you may not see", rel.QName, q, col, q2)
				}
			}
			if clause == "ON DELETE SET DEFAULT" {
				seen[changedColumn{child.QName, col}] = true
			}
			if err := w.updateCascadeChecked(child, next, clause, seen); err != nil {
				return err
			}
		}
	}
	return nil
}

// followsInFull reports whether child follows rel on key for the user
// (Access.Follows) by every foreign key of child that references rel:
// keys of the one followed column, unmasked, to key alone, validated and
// neither setting NULL nor a default on a DELETE
// (Relation.SettingReferences). A DELETE of rel's
// visible rows then checks, or deletes, only rows of child whose column
// equals a visible row's key: rows the user sees.
// NOTE: child and rel are tables (not partitioned, without inheritance
// parents): a partition's keys and its root's are not paired here.
func (w *walker) followsInFull(child, rel *Relation, key string) bool {
	if child.Kind != 'r' || rel.Kind != 'r' || len(child.Ancestors) > 0 || len(rel.Ancestors) > 0 {
		return false
	}
	acc := w.access(child)
	f := acc.Follows
	if acc.Mode != Governed || f == nil || f.Parent != rel.QName || f.Key != key {
		return false
	}
	if _, masked := acc.Masks[f.Column]; masked {
		// NOTE: the key's check, or its cascade, would tell which
		// visible rows hold the deleted row's key: the masked value.
		return false
	}
	for col, qs := range child.References {
		if slices.Contains(qs, rel.QName) && col != f.Column {
			return false
		}
	}
	for _, qs := range child.SettingReferences {
		if slices.Contains(qs, rel.QName) {
			return false
		}
	}
	for col, qs := range rel.ReferencedBy {
		if slices.Contains(qs, child.QName) && col != key {
			return false
		}
	}
	return true
}

// notReadable returns the first of rels the user may not read in full
// (denied, under a row scope, with a masked column, or unknown to the
// snapshot) and false, or true when every one may be: a key's check
// against a relation read in full tells nothing the user could not read.
// readOnly returns the first of rels no statement may write (a table the
// policy reads), and false; true when there is none.
func (w *walker) readOnly(rels []QName) (QName, bool) {
	for _, q := range rels {
		if r := w.cat.Relations[q]; r != nil && w.access(r).ReadOnly != "" {
			return q, false
		}
	}
	return QName{}, true
}

func (w *walker) notReadable(rels []QName) (QName, bool) {
	for _, q := range rels {
		r := w.cat.Relations[q]
		if r == nil {
			return q, false
		}
		if a := w.access(r); a.Mode != Open && (a.Mode != Governed || a.Filter != nil || len(a.Masks) > 0) {
			return q, false
		}
	}
	return QName{}, true
}

// collectColumns adds the names of the unqualified column references of
// n to into.
func collectColumns(n *pg_query.Node, into map[string]bool) {
	visitColumnRefs(n, func(cr *pg_query.ColumnRef) {
		if len(cr.Fields) == 1 {
			if s := cr.Fields[0].GetString_(); s != nil {
				into[s.Sval] = true
			}
		}
	})
}

// visitColumnRefs calls f for every ColumnRef below n.
func visitColumnRefs(n *pg_query.Node, f func(*pg_query.ColumnRef)) {
	if n == nil {
		return
	}
	walkColumnRefs(n, f)
}

func qualifiedRef(rel, col string) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
		Fields: []*pg_query.Node{pg_query.MakeStrNode(rel), pg_query.MakeStrNode(col)}, Location: -1,
	}}}
}
