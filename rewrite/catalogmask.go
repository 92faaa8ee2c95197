package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// maskedCatalogRelations are the pg_catalog relations the firewall serves
// itself, as a substituted subquery like a governed table's: every
// column in order, with its name and type, but the columns that would
// tell a user how many rows a governed table holds, or how it is used,
// replaced. Clients that read them (psql's \d, Metabase's sync, the IDEs'
// navigators) keep working; the statistics they get are those of a table
// PostgreSQL has never analysed or scanned.
//
// Each entry says which columns are hidden and how:
//
//   - exprs replaces a column by an expression of pgveil's own (fixed SQL
//     text over the relation's unqualified columns), cast back to the
//     column's type;
//   - keep, when set, lists the only columns served as they are: every
//     other column not in exprs reads NULL cast to its type. Views whose
//     columns change between PostgreSQL versions use it, so that a
//     statistics column a new version adds is hidden until listed here.
//
// Without keep, the columns outside exprs are served as they are.
//
// Every other pg_stat_* and pg_statio_* view, pg_stats and pg_statistic
// stay refused, as rewrite/relations.tsv classifies them.
var maskedCatalogRelations = map[string]catalogMask{
	// pg_class's row estimates, for every relation outside the system
	// schemas: -1 tuples (never analysed) and 0 pages; and their file
	// node, 0 as a view's: with pg_database's oid it names the file
	// pg_relation_filenode and pg_relation_filepath are refused for
	// (files), and its value counts the OIDs other sessions took.
	//
	// NOTE: the row's xmin (catalogXmin, for DataGrip) still changes when
	// a session rewrites the table (TRUNCATE, VACUUM FULL, CLUSTER), as
	// with any DDL: that it happened is told, not the file.
	"pg_class": {exprs: parseMasks("pg_class", map[string]string{
		"relfilenode":   "CASE WHEN relnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace OR relnamespace OPERATOR(pg_catalog.=) 'information_schema'::pg_catalog.regnamespace THEN relfilenode ELSE 0 END",
		"reltuples":     "CASE WHEN relnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace OR relnamespace OPERATOR(pg_catalog.=) 'information_schema'::pg_catalog.regnamespace THEN reltuples ELSE -1 END",
		"relpages":      "CASE WHEN relnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace OR relnamespace OPERATOR(pg_catalog.=) 'information_schema'::pg_catalog.regnamespace THEN relpages ELSE 0 END",
		"relallvisible": "CASE WHEN relnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace OR relnamespace OPERATOR(pg_catalog.=) 'information_schema'::pg_catalog.regnamespace THEN relallvisible ELSE 0 END",
	})},
	// pg_attribute's attmissingval: a column added with a default that
	// is not volatile is not written to the rows already there, and
	// PostgreSQL keeps the default's value, computed once by the ALTER
	// TABLE, there: it is the column's real value of each such row,
	// which the default's expression in pg_attrdef need not tell
	// (current_setting(…), a stable function). Served NULL, as for a
	// column added with no default, for every relation.
	//
	// NOTE: atthasmissing still says that such a value exists.
	"pg_attribute": {exprs: parseMasks("pg_attribute", map[string]string{
		"attmissingval": "NULL",
	})},
	// The per-table activity views: which tables exist is already in
	// pg_class; every counter (n_live_tup, n_dead_tup, n_tup_*, seq_scan,
	// idx_scan, heap_blks_*, …), timestamp (last_vacuum, last_analyze, …)
	// and vacuum/analyze count reads NULL, for every table: the counters
	// of system catalogs follow other sessions' activity too.
	// Metabase's sync reads pg_stat_user_tables.n_live_tup as a row
	// estimate and takes NULL as "unknown".
	"pg_stat_all_tables":    {keep: statTableKeys},
	"pg_stat_user_tables":   {keep: statTableKeys},
	"pg_stat_sys_tables":    {keep: statTableKeys},
	"pg_statio_all_tables":  {keep: statTableKeys},
	"pg_statio_user_tables": {keep: statTableKeys},
	"pg_statio_sys_tables":  {keep: statTableKeys},
}

// statTableKeys are the columns of the pg_stat_*_tables and
// pg_statio_*_tables views that only name the table.
var statTableKeys = map[string]bool{"relid": true, "schemaname": true, "relname": true}

// catalogXmin lets the statement stmts read the xmin of the relations of
// maskedCatalogRelations it names, as it may that of every other catalog:
// the IDEs' navigators (DataGrip's) read pg_class.xmin to tell which
// relations changed since they last looked. A relation's SELECT gives
// its xmin, after its columns, when a column reference names it, bare or
// qualified by the FROM item's name; the statement is then deparsed.
//
// NOTE: not in a statement holding a * or a whole-row reference (c,
// (c).*), which would give xmin as a column too: there xmin is unknown,
// as before.
func (w *walker) catalogXmin(stmts []*pg_query.RawStmt) {
	for i := range w.scoped {
		s := &w.scoped[i]
		if s.rel.Schema != "pg_catalog" || s.flat {
			continue
		}
		alias := s.rs.Alias.GetAliasname()
		star := false
		for _, st := range stmts {
			pgtree.Walk(st, func(m proto.Message) bool {
				if ind, ok := m.(*pg_query.A_Indirection); ok {
					// (c).*
					if n := len(ind.Indirection); n > 0 && ind.Indirection[n-1].GetAStar() != nil {
						star = true
					}
					return true
				}
				c, ok := m.(*pg_query.ColumnRef)
				if !ok {
					return true
				}
				f := c.Fields
				n := len(f)
				switch {
				case n > 0 && f[n-1].GetAStar() != nil:
					star = true
				case n == 1 && f[0].GetString_().GetSval() == alias:
					// The whole row, as in to_jsonb(c).
					star = true
				case n > 0 && f[n-1].GetString_().GetSval() == "xmin" &&
					(n == 1 || n == 2 && f[0].GetString_().GetSval() == alias):
					s.xmin = true
				}
				return false
			})
		}
		// NOTE: with a * in the statement, the relation keeps its own
		// columns only: a * over it would show xmin as a column it lacks.
		s.xmin = s.xmin && !star
		if s.xmin {
			w.changed = true
		}
	}
}

// catalogMask is how the firewall serves one relation of
// maskedCatalogRelations.
type catalogMask struct {
	exprs map[string]*pg_query.Node
	keep  map[string]bool
}

// maskedCatalogAccess returns how rel, a pg_catalog relation, is served
// when it is one of maskedCatalogRelations.
func maskedCatalogAccess(rel *Relation) (Access, bool) {
	if rel.Schema != "pg_catalog" {
		return Access{}, false
	}
	m, ok := maskedCatalogRelations[rel.Name]
	if !ok {
		return Access{}, false
	}
	if m.keep == nil {
		return Access{Mode: Governed, Masks: m.exprs}, true
	}
	masks := make(map[string]*pg_query.Node, len(rel.Columns))
	for _, col := range rel.Columns {
		if e, ok := m.exprs[col.Name]; ok {
			masks[col.Name] = e
		} else if !m.keep[col.Name] {
			masks[col.Name] = nil // NULL
		}
	}
	return Access{Mode: Governed, Masks: masks}, true
}

// parseMasks parses the mask expressions of relation rel.
//
// NOTE: fixed text of pgveil's own, parsed once at start-up.
func parseMasks(rel string, exprs map[string]string) map[string]*pg_query.Node {
	masks := make(map[string]*pg_query.Node, len(exprs))
	for col, expr := range exprs {
		tree, err := pg_query.Parse("SELECT " + expr)
		if err != nil {
			panic("rewrite: parsing the " + rel + " mask of " + col + ": " + err.Error())
		}
		masks[col] = tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget().Val
	}
	return masks
}
