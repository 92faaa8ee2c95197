package policy

import (
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// follows checks t's follows against the catalog: the parent exists and
// has the key column, each of rels (the relations t governs) has the
// column, PostgreSQL compares the column with the key (the follow's
// subquery type-checks on each) without a cast (followComparable), and a foreign key from the column to the
// parent's key exists (a warning otherwise: a row whose column matches no
// parent row is hidden, until someone who may write the parent inserts a
// row with that key, or changes a key to it, and so adopts it). It
// returns false when the database could not be asked.
func (ck *catalogChecker) follows(t *Table, rels []*rewrite.Relation) bool {
	f := t.Follows
	parent := ck.cat.Relations[f.Table]
	if parent == nil {
		detail := fmt.Sprintf("No table, view or foreign table named %s exists in database %s (as the service account %s sees it): %s follows it, and shows no row.",
			f.Table, ck.cfg.Upstream.Database, ck.cfg.Upstream.User, t.Pattern)
		if s := suggest(f.Table.String(), ck.relationNames()); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		ck.report(hcl.DiagError, f.Range.Ptr(), "Unknown follows table", detail)
		return true
	}
	if !followable(parent) {
		ck.report(hcl.DiagError, f.Range.Ptr(), "Follows a view", fmt.Sprintf(
			"%s is a view or materialized view: its key is a column of its base tables, which a user who may write them "+
				"could give a visible row the key of a hidden one, and so see its children. pgveil follows no view, and %s "+
				"shows no row. Follow the table the view reads.", f.Table, t.Pattern))
		return true
	}
	if !hasColumn(parent, f.Key) {
		detail := fmt.Sprintf("Table %s has no column %q: %s follows it on that key, and shows no row.", f.Table, f.Key, t.Pattern)
		names := make([]string, len(parent.Columns))
		for i, c := range parent.Columns {
			names[i] = c.Name
		}
		if s := suggest(f.Key, names); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		ck.report(hcl.DiagError, f.Range.Ptr(), "Unknown follows key", detail)
		return true
	}
	have := ck.missingColumn(t, rels, f.Range.Ptr(), f.Column, fmt.Sprintf("follows.column = %q", f.Column), "no row is visible through the follow")
	for _, rel := range have {
		problem, ok := ck.typeCheck(f.Range.Ptr(), fmt.Sprintf("the comparison of column %s with %s.%s", f.Column, f.Table, f.Key),
			explainSelect(pg_query.MakeAConstIntNode(1, -1), rel, followNode(f, parent.Name, nil)))
		if !ok {
			return false
		}
		if problem != "" {
			ck.report(hcl.DiagError, f.Range.Ptr(), "Follows column of the wrong type", fmt.Sprintf(
				"PostgreSQL rejects %s = %s.%s on %s: %s. Every statement reading %s fails: follow a key of the column's type.",
				f.Column, f.Table, f.Key, rel.QName, problem, rel.QName))
			continue
		}
		if col, key := columnOf(rel, f.Column), columnOf(parent, f.Key); col.Nondeterministic != key.Nondeterministic {
			ck.report(hcl.DiagError, f.Range.Ptr(), "Follows column collation", fmt.Sprintf(
				"PostgreSQL compares %s.%s and %s.%s under a nondeterministic collation one of them has and the other lacks "+
					"(case- or accent-insensitive), where a row of %s would match a visible key for a hidden one: pgveil follows "+
					"no such pair, and %s shows no row. Give the column the key's collation.",
				rel.QName, f.Column, f.Table, f.Key, rel.QName, rel.QName))
			continue
		} else if !followComparable(*col, *key) {
			ck.report(hcl.DiagError, f.Range.Ptr(), "Follows column cast", fmt.Sprintf(
				"PostgreSQL compares %s.%s (%s) and %s.%s (%s) by casting one of them, on hidden rows too, where a cast that fails "+
					"would raise an error telling the row: pgveil follows no such pair, and %s shows no row. "+
					"Give the column the key's type (integers of any size, text and varchar, and domains over them, compare without a cast).",
				rel.QName, f.Column, col.Type, f.Table, f.Key, key.Type, rel.QName))
			continue
		}
		if !slices.Contains(rel.References[f.Column], f.Table) {
			ck.report(hcl.DiagWarning, f.Range.Ptr(), "Follows without foreign key", fmt.Sprintf(
				"No foreign key of %s references %s from column %s: a row whose %s matches no row of %s is hidden from everyone, "+
					"until a user who may write %s inserts a row with that %s, or changes a %s to it, and so sees it. "+
					"Add FOREIGN KEY (%s) REFERENCES %s (%s) (ON DELETE CASCADE), or keep writes of %s to trusted roles.",
				rel.QName, f.Table, f.Column, f.Column, f.Table, f.Table, f.Key, f.Key, f.Column, f.Table, f.Key, f.Table))
		}
	}
	return true
}
