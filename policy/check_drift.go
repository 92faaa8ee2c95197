package policy

import (
	"context"
	"fmt"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// Baseline is what a configuration governed in the catalog snapshot it
// was loaded against, for Drift to compare later snapshots with: each
// relation a table block governed, by OID (which DDL renaming or moving
// it keeps), with the block and the columns the block named there.
type Baseline struct {
	rels map[uint32]baselineRelation
}

// baselineRelation is a governed relation of a Baseline.
type baselineRelation struct {
	qname rewrite.QName
	table *Table
	// named are the relation's columns that the table block classifies
	// or reads as owner or team column.
	named []string
}

// Baseline returns what c governs in cat, a snapshot c matches
// (CheckCatalog reports no error on it).
func (c *Config) Baseline(cat *rewrite.Catalog) *Baseline {
	b := &Baseline{rels: map[uint32]baselineRelation{}}
	for _, rel := range userRelations(cat) {
		t, _ := c.tableFor(rel)
		if t == nil {
			continue
		}
		var named []string
		for _, col := range rel.Columns {
			if t.Columns[col.Name] != nil || col.Name == t.OwnerColumn || col.Name == t.TeamColumn {
				named = append(named, col.Name)
			}
		}
		b.rels[rel.OID] = baselineRelation{qname: rel.QName, table: t, named: named}
	}
	return b
}

// Drift checks cat, a catalog snapshot read after the one b was made
// from, against c, and refuses there (rewrite.Relation.Refused) every
// relation c no longer matches, so that DDL alone never opens what the
// policy governed:
//
//   - a relation of b (same OID) that another table block, or none,
//     governs now: renamed or moved to another schema, in a schema whose
//     default is allow it would be served open;
//   - a relation of b that lost a column its table block classified or
//     read (renamed or dropped): renamed, it would be served unmasked;
//   - the relations a table block governs, now or in b, and those a rule
//     covers, when CheckCatalog reports an error about the block or the
//     rule; every governed relation, now or in b, for an error about
//     neither.
//
// What reads a refused relation is refused with it: a parent scans its
// partitions, a view its tables. It returns, in name order, why each
// relation is refused (for the log), and CheckCatalog's diagnostics; err
// when the check could not run (the snapshot must not then be used).
// srv is the service account's connection with the pinned settings, as
// for CheckCatalog.
//
// NOTE: cat must not be in force yet: Drift writes its relations.
func (c *Config) Drift(ctx context.Context, srv Server, cat *rewrite.Catalog, ids *Identities, b *Baseline) (refused []string, diags hcl.Diagnostics, err error) {
	diags = c.CheckCatalog(ctx, srv, cat, ids)
	for _, d := range diags {
		if d.Summary == CannotCheckSummary {
			return nil, diags, fmt.Errorf("checking the policies against the new catalog snapshot: %s", d.Detail)
		}
	}
	rels := userRelations(cat)
	governor := make(map[*rewrite.Relation]*Table, len(rels))
	for _, rel := range rels {
		if t, _ := c.tableFor(rel); t != nil {
			governor[rel] = t
		}
	}
	why := map[*rewrite.Relation]string{}
	refuse := func(rel *rewrite.Relation, reason string) {
		if _, done := why[rel]; !done {
			why[rel] = reason
		}
	}
	for _, rel := range rels {
		old, ok := b.rels[rel.OID]
		if !ok {
			continue
		}
		if governor[rel] != old.table {
			refuse(rel, fmt.Sprintf("table %s was %s, governed by the table block %q, when pgveil loaded its policy, "+
				"and is governed otherwise now (renamed or moved since)", rel.QName, old.qname, old.table.Pattern.String()))
			continue
		}
		for _, name := range old.named {
			if !hasColumn(rel, name) {
				refuse(rel, fmt.Sprintf("column %q of table %s, which its table block %q names, is gone since pgveil loaded its policy (renamed or dropped)",
					name, rel.QName, old.table.Pattern.String()))
				break
			}
		}
	}
	everything := func(reason string) {
		for _, rel := range rels {
			if _, was := b.rels[rel.OID]; was || governor[rel] != nil {
				refuse(rel, reason)
			}
		}
	}
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		reason := fmt.Sprintf("the policy no longer matches the database since DDL run after pgveil loaded it (%s)", d.Summary)
		switch owner := d.Extra.(type) {
		case *Table:
			for _, rel := range rels {
				if old, was := b.rels[rel.OID]; governor[rel] == owner || was && old.table == owner {
					refuse(rel, fmt.Sprintf("table %s: %s", rel.QName, reason))
				}
			}
		case *Rule:
			n := 0
			for _, rel := range rels {
				if owner.covers(rel) {
					refuse(rel, fmt.Sprintf("table %s: %s", rel.QName, reason))
					n++
				}
			}
			if n == 0 {
				everything(reason)
			}
		default:
			everything(reason)
		}
	}
	for _, rel := range rels {
		if r, ok := why[rel]; ok {
			rel.Refused = r
			refused = append(refused, r)
		}
	}
	slices.Sort(refused)
	return refused, diags, nil
}
