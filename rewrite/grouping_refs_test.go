package rewrite

import (
	"maps"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// TestRefsAboveAsReadAbove: the references a SELECT reads, collected once
// and indexed by their first name (refsAbove), give every FROM item the
// columns the walk per item gave it (readAbove, as it was), whatever the
// alias (none, one a column or a table shares, one spelled in capitals),
// the qualification (schema.table.column, db.schema.table.column), a
// subquery's own FROM item of the same alias, LATERAL, or a CTE of the
// table's name.
func TestRefsAboveAsReadAbove(t *testing.T) {
	stmts := []string{
		"SELECT r.a, b, r.*, r, s.c FROM t r, u s GROUP BY r.id",
		"SELECT * FROM t GROUP BY id",
		"SELECT a, t.b, public.t.c, db.public.t.a, t.* FROM t GROUP BY id",
		"SELECT \"R\".a, R.b, r.c, \"r\".id FROM t \"R\" JOIN t r ON true GROUP BY 1",
		"SELECT a, id, (SELECT r.b FROM u r), (SELECT max(a) FROM u) FROM t r GROUP BY r.id HAVING count(r.a) > 0 ORDER BY r.c, b",
		"SELECT r.a FROM t r, LATERAL (SELECT r.b, a FROM u) l GROUP BY r.id, l.a",
		"WITH t AS (SELECT 1 AS a) SELECT t.a, r.b FROM t, t r GROUP BY r.id",
		"SELECT DISTINCT ON (r.a, b) r.c, count(*) OVER (PARTITION BY r.b ORDER BY c) FROM t r GROUP BY r.id WINDOW w AS (PARTITION BY r.a)",
		"SELECT a.a, a, a.* FROM t a GROUP BY a.id",
		"SELECT id.id, id FROM t id GROUP BY 1",
		"SELECT (r).a, (r.b).x, r.c[1], row(r.*) FROM t r GROUP BY r.id",
		"SELECT x FROM t r GROUP BY r.id",
		"SELECT r.id, s.id FROM t r JOIN u s USING (id) GROUP BY r.id",
	}
	cols := []string{"id", "a", "b", "c", "r", "t", "x"}
	rel := &Relation{}
	for _, c := range cols {
		rel.Columns = append(rel.Columns, Column{Name: c})
	}
	for _, stmt := range stmts {
		tree, err := pg_query.Parse(stmt)
		if err != nil {
			t.Fatalf("%q: %v", stmt, err)
		}
		var sels []*pg_query.SelectStmt
		pgtree.Walk(tree.Stmts[0].Stmt, func(m proto.Message) bool {
			if s, ok := m.(*pg_query.SelectStmt); ok {
				sels = append(sels, s)
			}
			return true
		})
		for _, sel := range sels {
			above := columnRefsAbove(sel)
			for _, alias := range []string{"", "r", "R", "s", "t", "a", "id", "x", "public", "db", "l", "u", "w"} {
				s := &scopedRef{rs: &pg_query.RangeSubselect{}, rel: rel}
				if alias != "" {
					s.rs.Alias = &pg_query.Alias{Aliasname: alias}
				}
				for _, single := range []bool{false, true} {
					want := oldReadAbove(sel, s, single)
					if got := above.read(s, single); !maps.Equal(got, want) {
						t.Errorf("%q, alias %q, single %v: read %v, the walk per item read %v", stmt, alias, single, got, want)
					}
				}
			}
		}
	}
}

// oldReadAbove is readAbove as it was before refsAbove (355b525).
func oldReadAbove(sel *pg_query.SelectStmt, s *scopedRef, single bool) map[string]bool {
	read := map[string]bool{}
	visit := func(m proto.Message) bool {
		if cr, ok := m.(*pg_query.ColumnRef); ok {
			if col, ok := refColumn(cr, s, single); ok {
				if col == "" {
					for _, c := range s.rel.Columns {
						read[c.Name] = true
					}
				} else {
					read[col] = true
				}
			}
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
	return read
}
