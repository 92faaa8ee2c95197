package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// unqualifyColumnRefs rewrites the column references of the SELECT being
// walked that name a governed relation with its schema, schema.rel.col
// and schema.rel.*, into rel.col and rel.*, before the relation's FROM
// item (rv, without an alias) becomes a subquery aliased rel: PostgreSQL
// resolves a schema-qualified reference only against a table, never
// against a subquery's alias, and would answer "invalid reference to
// FROM-clause entry". SQLAlchemy writes such references for every Table
// declared with a schema (Superset, pandas.read_sql_table), as do other
// query builders.
//
// The rewrite keeps the meaning: both forms resolve to the innermost FROM
// item named rel. Nested SELECTs that bring a FROM item of that name of
// their own other than the relation itself (an alias, another schema's
// table, a CTE) are left alone, since there the short form would bind to
// it; PostgreSQL then refuses the qualified form rather than answer
// otherwise.
func (w *walker) unqualifyColumnRefs(schema, rel string) {
	if len(w.selects) == 0 {
		return
	}
	top := w.selects[len(w.selects)-1]
	cte := containsCTE(top, rel)
	for _, level := range w.ctes {
		cte = cte || level[rel]
	}
	w.unqualifyIn(top, schema, rel, top, cte)
}

// containsCTE reports whether m defines a CTE named name anywhere.
func containsCTE(m proto.Message, name string) bool {
	found := false
	pgtree.Walk(m, func(m proto.Message) bool {
		if c, ok := m.(*pg_query.CommonTableExpr); ok && c.Ctename == name {
			found = true
		}
		return !found
	})
	return found
}

// unqualifiedRef is a column reference unqualifyIn shortened: its text,
// at its Location, still starts with schema and a dot.
type unqualifiedRef struct {
	ref    *pg_query.ColumnRef
	schema string
}

// unqualifyIn walks m, shortening schema.rel.x references, and
// db.schema.rel.x ones when db is the current database; self is the
// SELECT the relation's FROM item belongs to. It appends what it
// shortened to w.unqualified. cte reports that a CTE named rel may be
// visible in a nested SELECT.
//
// NOTE: a reference naming the database is marked changed: a splice
// only drops a schema from a reference's text (splice.go).
func (w *walker) unqualifyIn(m proto.Message, schema, rel string, self *pg_query.SelectStmt, cte bool) {
	db, done, changed := w.cat.Database, &w.unqualified, &w.changed
	pgtree.Walk(m, func(m proto.Message) bool {
		switch v := m.(type) {
		case *pg_query.ColumnRef:
			f := v.Fields
			if db != "" && len(f) == 4 && f[0].GetString_().GetSval() == db {
				// db.schema.rel.col: a deparse writes it shortened.
				f = f[1:]
			}
			if len(f) == 3 && f[0].GetString_().GetSval() == schema && f[1].GetString_().GetSval() == rel {
				if len(v.Fields) == 4 {
					*changed = true
				}
				v.Fields = f[1:]
				*done = append(*done, unqualifiedRef{ref: v, schema: schema})
			}
			return false
		case *pg_query.SelectStmt:
			return v == self || !shadows(v, schema, rel, cte)
		}
		return true
	})
}

// shadows reports whether the FROM list of s (joins included) has an item
// called rel that is not schema.rel itself without an alias; with cte,
// an unqualified rel may be a CTE of that name, and shadows too (the
// short form would bind to the CTE, the qualified one skips it).
func shadows(s *pg_query.SelectStmt, schema, rel string, cte bool) bool {
	found := false
	var visit func(n *pg_query.Node)
	visit = func(n *pg_query.Node) {
		switch f := n.GetNode().(type) {
		case *pg_query.Node_RangeVar:
			rv := f.RangeVar
			if rv.Alias != nil {
				found = found || rv.Alias.Aliasname == rel
			} else if rv.Relname == rel && (rv.Schemaname != "" && rv.Schemaname != schema || rv.Schemaname == "" && cte) {
				found = true
			}
		case *pg_query.Node_RangeSubselect:
			found = found || f.RangeSubselect.Alias != nil && f.RangeSubselect.Alias.Aliasname == rel
		case *pg_query.Node_RangeFunction:
			found = found || f.RangeFunction.Alias != nil && f.RangeFunction.Alias.Aliasname == rel
		case *pg_query.Node_JoinExpr:
			found = found || f.JoinExpr.Alias != nil && f.JoinExpr.Alias.Aliasname == rel
			visit(f.JoinExpr.Larg)
			visit(f.JoinExpr.Rarg)
		}
	}
	for _, n := range s.FromClause {
		visit(n)
	}
	return found
}
