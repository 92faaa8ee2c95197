package policy

import (
	"fmt"
	"slices"
	"strconv"

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
// row with that key, or changes a key to it, and so adopts it), or,
// when no unique index of the parent holds the key alone under the
// equality the follow compares by (asked under a foreign key too, which
// PostgreSQL lets reference an index under another collation, and which
// may hold the column with others), that the
// key is not unique (a warning too: parents sharing a key share their
// children). It returns false
// when the database could not be asked.
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
		} else if ck.followCollations(f, rel, parent) {
			continue
		} else if !followComparable(*col, *key) {
			ck.report(hcl.DiagError, f.Range.Ptr(), "Follows column cast", fmt.Sprintf(
				"PostgreSQL compares %s.%s (%s) and %s.%s (%s) by casting one of them, on hidden rows too, where a cast that fails "+
					"would raise an error telling the row: pgveil follows no such pair, and %s shows no row. "+
					"Give the column the key's type (integers of any size, text and varchar, and domains over them, compare without a cast).",
				rel.QName, f.Column, col.Type, f.Table, f.Key, key.Type, rel.QName))
			continue
		}
		// NOTE: asked under a foreign key too: one may hold the column
		// with others (order_id, placed_at), where the key alone is no
		// more unique, and PostgreSQL lets one reference a unique index
		// under another collation than the key's nondeterministic one,
		// under which the follow compares.
		unique, otherCollation, partKey, err := ck.uniqueKey(parent, f.Key)
		if err != nil {
			ck.diags = append(ck.diags, ck.cannot(err))
			return false
		}
		if !unique {
			ck.report(hcl.DiagWarning, f.Range.Ptr(), "Follows a key that is not unique", notUniqueDetail(rel.QName, f, partKey, otherCollation))
			continue
		}
		if !slices.Contains(rel.References[f.Column], f.Table) {
			ck.report(hcl.DiagWarning, f.Range.Ptr(), "Follows without foreign key", fmt.Sprintf(
				"No foreign key of %s references %s from column %s: a row whose %s matches no row of %s is hidden from everyone, "+
					"until a user who may write %s inserts a row with that %s, or sets the %s of one of its rows to it, and so sees it. "+
					"Add FOREIGN KEY (%s) REFERENCES %s (%s) (ON DELETE CASCADE), or keep writes of %s to trusted roles.",
				rel.QName, f.Table, f.Column, f.Column, f.Table, f.Table, f.Key, f.Key, f.Column, f.Table, f.Key, f.Table))
		}
	}
	return true
}

// followCollations reports as an error, and returns true, when the
// follows column of rel and the parent's key have different collations,
// neither the database's default: PostgreSQL cannot choose one for the
// follow's comparison (a default collation gives way to the other), and
// would fail a statement reading rel's rows with "could not determine
// which collation to use" (42P22) when a row of rel, a hidden one too,
// meets a visible parent row, which EXPLAIN does not show; pgveil follows
// no such pair (followComparable). False when the database cannot say.
func (ck *catalogChecker) followCollations(f *Follows, rel, parent *rewrite.Relation) bool {
	_, rows, err := ck.srv.Query(ck.ctx, `SELECT
  pg_catalog.quote_ident(n1.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c1.collname),
  pg_catalog.quote_ident(n2.nspname) OPERATOR(pg_catalog.||) '.' OPERATOR(pg_catalog.||) pg_catalog.quote_ident(c2.collname)
FROM pg_catalog.pg_attribute a1
JOIN pg_catalog.pg_collation c1 ON c1.oid OPERATOR(pg_catalog.=) a1.attcollation
JOIN pg_catalog.pg_namespace n1 ON n1.oid OPERATOR(pg_catalog.=) c1.collnamespace,
  pg_catalog.pg_attribute a2
JOIN pg_catalog.pg_collation c2 ON c2.oid OPERATOR(pg_catalog.=) a2.attcollation
JOIN pg_catalog.pg_namespace n2 ON n2.oid OPERATOR(pg_catalog.=) c2.collnamespace
WHERE a1.attrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND a1.attname OPERATOR(pg_catalog.=) $2
  AND a2.attrelid OPERATOR(pg_catalog.=) $3::pg_catalog.oid AND a2.attname OPERATOR(pg_catalog.=) $4
  AND a1.attcollation OPERATOR(pg_catalog.<>) a2.attcollation
  AND a1.attcollation OPERATOR(pg_catalog.<>) 100
  AND a2.attcollation OPERATOR(pg_catalog.<>) 100`,
		strconv.FormatUint(uint64(rel.OID), 10), f.Column, strconv.FormatUint(uint64(parent.OID), 10), f.Key)
	if err != nil || len(rows) != 1 {
		return false
	}
	ck.report(hcl.DiagError, f.Range.Ptr(), "Follows column collation", fmt.Sprintf(
		"PostgreSQL cannot choose between the collations of %s.%s (collation %s) and %s.%s (collation %s) to compare them, "+
			"and fails the comparison (\"could not determine which collation to use\") when a row of %s, a hidden one too, meets a visible "+
			"row of %s, which would tell that %s holds rows: pgveil follows no such pair, and %s shows no row. "+
			"Give the column the key's collation (ALTER TABLE %s ALTER COLUMN %s TYPE … COLLATE %s), or the database's default to both.",
		rel.QName, f.Column, rows[0][0], f.Table, f.Key, rows[0][1], rel.QName, f.Table, rel.QName, rel.QName, rel.QName, sqlName(f.Column), rows[0][1]))
	return true
}

// uniqueKeySQL says whether a valid unique index of relation $1 (an OID)
// has the column named $2 as its only key column, without expressions or
// a predicate (what a foreign key may reference), under the column's own
// equality; whether one does under another collation only; and the
// relation's partition key as pg_get_partkeydef prints it ("" when it is
// not partitioned).
//
// NOTE: the column's own equality is its collation's when that one is
// nondeterministic (the follow compares under it: 'B-3' equals 'b-3' when
// case-insensitive, which an index under "C" holds as two keys), and any
// index collation's otherwise (a deterministic collation compares bytes,
// and an index unique under a coarser equality is unique under bytes).
const uniqueKeySQL = `WITH k AS (SELECT i.indcollation[0] OPERATOR(pg_catalog.=) a.attcollation
    OR NOT EXISTS (SELECT FROM pg_catalog.pg_collation co
      WHERE co.oid OPERATOR(pg_catalog.=) a.attcollation AND NOT co.collisdeterministic) AS own
  FROM pg_catalog.pg_index i
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) i.indrelid AND a.attnum OPERATOR(pg_catalog.=) i.indkey[0]
  WHERE i.indrelid OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND i.indisunique AND i.indisvalid
    AND i.indnkeyatts OPERATOR(pg_catalog.=) 1 AND i.indexprs IS NULL AND i.indpred IS NULL
    AND a.attname OPERATOR(pg_catalog.=) $2)
SELECT EXISTS (SELECT FROM k WHERE k.own), EXISTS (SELECT FROM k WHERE NOT k.own),
  COALESCE(pg_catalog.pg_get_partkeydef($1::pg_catalog.oid), '')`

// uniqueKey reports whether key is unique by itself in parent under its
// own equality, whether it is only under another collation (uniqueKeySQL),
// and parent's partition key ("" when it is not partitioned).
func (ck *catalogChecker) uniqueKey(parent *rewrite.Relation, key string) (unique, otherCollation bool, partKey string, err error) {
	_, rows, err := ck.srv.Query(ck.ctx, uniqueKeySQL, strconv.FormatUint(uint64(parent.OID), 10), key)
	if err != nil {
		return false, false, "", fmt.Errorf("reading the unique indexes of %s: %w", parent.QName, err)
	}
	if len(rows) != 1 || len(rows[0]) != 3 {
		return false, false, "", fmt.Errorf("reading the unique indexes of %s: %d rows", parent.QName, len(rows))
	}
	return string(rows[0][0]) == "t", string(rows[0][1]) == "t", string(rows[0][2]), nil
}

// notUniqueDetail explains a follow of child on a key its parent does not
// hold unique: which rows it shows, why no foreign key can back it, and
// what to do. partKey is the parent's partition key, "" when it is not
// partitioned; otherCollation tells that a unique index holds the key
// alone under another collation than its nondeterministic one.
func notUniqueDetail(child rewrite.QName, f *Follows, partKey string, otherCollation bool) string {
	detail := fmt.Sprintf("No unique index of %s holds %s alone, so no foreign key can reference it", f.Table, f.Key)
	if otherCollation {
		detail = fmt.Sprintf("No unique index of %[1]s holds %[2]s alone under its collation, which is nondeterministic and under which pgveil "+
			"compares it with %[3]s.%[4]s: an index under another collation holds keys it finds equal (such as 'B-3' and 'b-3' "+
			"case-insensitively), and a foreign key may reference that index", f.Table, f.Key, child, f.Column)
	} else if partKey != "" {
		detail += fmt.Sprintf(" (%s is partitioned by %s, and PostgreSQL requires every unique index of a partitioned table to hold the partition key's columns)", f.Table, partKey)
	}
	return detail + fmt.Sprintf(". A row of %[1]s is visible to whoever sees any row of %[2]s whose %[3]s equals its %[4]s: two rows of %[2]s with the same %[3]s "+
		"(in two partitions, or in one) share their children, the children of a hidden one included, and a row whose %[4]s matches no row of %[2]s "+
		"is hidden until an unscoped writer of %[2]s inserts that %[3]s and so sees it. Make %[3]s unique (PRIMARY KEY or UNIQUE (%[3]s); "+
		"a partitioned table only when its partition key is %[3]s), or follow a table where it is, and keep writes of %[2]s to trusted roles.",
		child, f.Table, f.Key, f.Column)
}
