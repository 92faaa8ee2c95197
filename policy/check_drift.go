package policy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// Baseline is what a configuration protects in the relations of the
// catalog it last matched, for Drift to compare later snapshots with:
// each relation a table block governs, by OID (which DDL renaming or
// moving it keeps), with its block, the rules covering it, and the
// columns the policy reads there by name, with their attnum (which
// renaming keeps, and dropping and adding again does not).
type Baseline struct {
	rels map[uint32]baselineRelation
}

// baselineRelation is a governed relation of a Baseline.
type baselineRelation struct {
	qname rewrite.QName
	// pattern is the governing table block's label: blocks of two
	// configurations (a reload) compare by it.
	pattern string
	// rules are the names of the enabled rules covering the relation,
	// sorted.
	rules []string
	// named maps each column the policy names on the relation (column
	// blocks, owner and team columns, columns rules and masks read) to
	// its attnum; classified holds the attnums of the classified ones.
	named      map[string]int16
	classified []int16
}

// Baseline returns what c protects in cat, a snapshot c matches
// (CheckCatalog reports no error on it).
func (c *Config) Baseline(cat *rewrite.Catalog) *Baseline {
	b := &Baseline{rels: map[uint32]baselineRelation{}}
	for _, rel := range userRelations(cat) {
		if e, ok := c.protection(rel); ok {
			b.rels[rel.OID] = e
		}
	}
	return b
}

// protection returns what c protects in rel, false when no table block
// governs it.
func (c *Config) protection(rel *rewrite.Relation) (baselineRelation, bool) {
	t, _ := c.tableFor(rel)
	if t == nil {
		return baselineRelation{}, false
	}
	e := baselineRelation{qname: rel.QName, pattern: t.Pattern.String(), named: map[string]int16{}}
	names := map[string]bool{t.OwnerColumn: true, t.TeamColumn: true}
	// NOTE: a follower's column, and the key a follower of rel reads,
	// scope rows as a team column does.
	if f := t.Follows; f != nil {
		names[f.Column] = true
	}
	for _, o := range c.Tables {
		if f := o.Follows; f != nil && f.Table == rel.QName {
			names[f.Key] = true
		}
	}
	for name, col := range t.Columns {
		names[name] = true
		if col.Mask.expr != nil {
			for _, n := range col.Mask.expr.columns {
				names[n] = true
			}
		}
	}
	for _, r := range c.Rules {
		if !r.Enabled || !r.covers(rel) {
			continue
		}
		e.rules = append(e.rules, r.Name)
		if r.where != nil {
			for _, n := range r.where.columns {
				names[n] = true
			}
		}
	}
	slices.Sort(e.rules)
	for _, col := range rel.Columns {
		if names[col.Name] {
			e.named[col.Name] = col.Num
		}
		if t.Columns[col.Name] != nil {
			e.classified = append(e.classified, col.Num)
		}
	}
	return e, true
}

// changed says how rel, whose protection was was, is protected otherwise
// by c now, "" when it is not.
func (c *Config) changed(rel *rewrite.Relation, was baselineRelation) string {
	now, ok := c.protection(rel)
	switch {
	case !ok || now.pattern != was.pattern:
		return fmt.Sprintf("table %s was %s, governed by the table block %q, when the policy was checked last, "+
			"and is governed otherwise now (renamed or moved since)", rel.QName, was.qname, was.pattern)
	case !slices.Equal(now.rules, was.rules):
		return fmt.Sprintf("table %s is covered by other rules than when the policy was checked last (a table renamed since)", rel.QName)
	}
	for _, name := range slices.Sorted(maps.Keys(was.named)) {
		if num, ok := now.named[name]; !ok || num != was.named[name] {
			return fmt.Sprintf("column %q of table %s, which the policy names, was renamed, dropped or swapped with another since the policy was checked last",
				name, rel.QName)
		}
	}
	return ""
}

// DriftCheck is the outcome of Drift.
type DriftCheck struct {
	// Refused says, in name order, why each relation is refused.
	Refused []string
	// Diagnostics are CheckCatalog's.
	Diagnostics hcl.Diagnostics
	// Transient reports that a relation was refused only because a lock
	// kept it from being checked: the next read must check again.
	Transient bool
	// Next is the baseline to compare the next snapshot with.
	Next *Baseline
}

// Drift checks cat, a catalog snapshot read after the one b was made
// from, against c, and refuses there (rewrite.Relation.Refused) every
// relation c no longer protects as it did, so that DDL alone never opens
// what the policy governs:
//
//   - a relation of b (same OID) that another table block, or none,
//     governs now (renamed or moved: in a schema whose default is allow
//     it would be served open), or that other rules cover;
//   - a relation of b on which a column the policy names (column blocks,
//     owner and team columns, what rules and masks read) is gone or has
//     another attnum: renamed, dropped, swapped with another, or dropped
//     and added again (a renamed email would be served in clear, or under
//     the name of a visible column);
//   - the relations a table block governs, now or in b, and those a rule
//     covers, when CheckCatalog reports an error about the block or the
//     rule; every governed relation for an error about neither; a
//     relation locked past lock_timeout while its masks or rules are
//     type-checked (Transient).
//
// What reads a refused relation is refused with it: a parent scans its
// partitions, a view its tables. Next is b moved forward to cat: what
// cat's relations that are not refused are protected by now, so that DDL
// after a table created since the load is compared too; a refused
// relation keeps its entry of b. err reports that the check could not run
// (the snapshot must not then be used). srv is the service account's
// connection with the pinned settings, as for CheckCatalog.
//
// NOTE: cat must not be in force yet: Drift writes its relations.
func (c *Config) Drift(ctx context.Context, srv Server, cat *rewrite.Catalog, ids *Identities, b *Baseline) (*DriftCheck, error) {
	ck := &catalogChecker{cfg: c, ctx: ctx, srv: srv, cat: cat, ids: ids,
		governed: map[*Table][]*rewrite.Relation{}, policies: map[string]*UserPolicy{}, locksRefuse: true}
	diags := ck.check()
	for _, d := range diags {
		if d.Summary == CannotCheckSummary {
			return nil, fmt.Errorf("checking the policies against the new catalog snapshot: %s", d.Detail)
		}
	}
	out := &DriftCheck{Diagnostics: diags, Next: &Baseline{rels: map[uint32]baselineRelation{}}}
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
		if was, ok := b.rels[rel.OID]; ok {
			if reason := c.changed(rel, was); reason != "" {
				refuse(rel, reason)
			}
		}
	}
	for _, d := range diags {
		if d.Severity != hcl.DiagError {
			continue
		}
		if d.Summary == lockedSummary {
			out.Transient = true
		}
		reason := fmt.Sprintf("the policy no longer matches the database since DDL run after it was loaded (%s)", d.Summary)
		switch owner := d.Extra.(type) {
		case *Table:
			for _, rel := range rels {
				if was, ok := b.rels[rel.OID]; governor[rel] == owner || ok && was.pattern == owner.Pattern.String() {
					refuse(rel, fmt.Sprintf("table %s: %s", rel.QName, reason))
				}
			}
		case *Rule:
			// NOTE: a rule that covers nothing any more (its tables
			// dropped or renamed) refuses nothing here: a relation
			// it covered is a relation of b that other rules cover.
			for _, rel := range rels {
				if owner.covers(rel) {
					refuse(rel, fmt.Sprintf("table %s: %s", rel.QName, reason))
				}
			}
		default:
			for _, rel := range rels {
				if _, was := b.rels[rel.OID]; was || governor[rel] != nil {
					refuse(rel, reason)
				}
			}
		}
	}
	for _, rel := range rels {
		if r, ok := why[rel]; ok {
			rel.Refused = r
			out.Refused = append(out.Refused, r)
			if was, ok := b.rels[rel.OID]; ok {
				out.Next.rels[rel.OID] = was
			}
			continue
		}
		if e, ok := c.protection(rel); ok {
			out.Next.rels[rel.OID] = e
		}
	}
	// NOTE: the check above cached, for cat's relations, why parents
	// are denied for their descendants, before any was refused.
	c.inherited.Clear()
	slices.Sort(out.Refused)
	return out, nil
}

// Carry refuses in cat, the snapshot a reloaded configuration c was
// loaded against, the relations DDL changed behind the policy's back
// that c does not protect at least as the policy did before the DDL:
// governed by a table block, every column classified then (by attnum),
// unless dropped since, classified now, and every restrictive rule
// covering it then that c still has enabled covering it now. The
// relations DDL
// changed are those old, the configuration it replaces, refused in the
// snapshot in force (oldCat), and those Drift would refuse in cat against
// oldB with old (a relation of oldB it no longer protects as it did: a
// column it names renamed, dropped or swapped, the relation renamed or
// moved), which the catalog watch had not read yet. A reload is how a DBA
// says the policy matches the database again, when it says what the
// changed columns are; one made for another reason does not open what
// DDL left unprotected, read before the reload or not. It returns the
// baseline for cat with the carried relations' old entries, and why each
// is refused.
//
// NOTE: cat must not be in force yet: Carry writes its relations.
func (c *Config) Carry(cat *rewrite.Catalog, old *Config, oldCat *rewrite.Catalog, oldB *Baseline) (*Baseline, []string) {
	b := c.Baseline(cat)
	if oldB == nil {
		return b, nil
	}
	refused := map[uint32]bool{}
	for _, rel := range oldCat.Relations {
		if rel.Refused != "" {
			refused[rel.OID] = true
		}
	}
	// NOTE: every relation is judged before any is refused: a refusal
	// changes how its descendants are governed (tableFor).
	var carried []*rewrite.Relation
	for _, rel := range userRelations(cat) {
		was, ok := oldB.rels[rel.OID]
		if !ok {
			continue
		}
		// NOTE: DDL the catalog watch had not read yet when the files
		// were reloaded counts as DDL it had: the reload reads the
		// catalog as the watch would, and must not take what it left
		// unprotected as the baseline.
		if !refused[rel.OID] && old.changed(rel, was) == "" {
			continue
		}
		now, governed := c.protection(rel)
		kept := governed
		for _, num := range was.classified {
			if !slices.Contains(now.classified, num) && slices.ContainsFunc(rel.Columns, func(col rewrite.Column) bool { return col.Num == num }) {
				kept = false
			}
		}
		// NOTE: a restrictive rule the relation left by DDL (renamed
		// out of its pattern, its block unchanged) would open rows;
		// one the reloaded policy disables or removes is the DBA's
		// word.
		for _, r := range c.Rules {
			if r.Enabled && r.Restrictive && slices.Contains(was.rules, r.Name) && !r.covers(rel) {
				kept = false
			}
		}
		if !kept {
			carried = append(carried, rel)
		}
	}
	var why []string
	for _, rel := range carried {
		rel.Refused = fmt.Sprintf("table %s was changed by DDL the policy was not updated for, and the reloaded policy does not protect it as before the DDL "+
			"(a column classified then is not now, a restrictive rule covering it then does not now, or no table block governs it)", rel.QName)
		why = append(why, rel.Refused)
		b.rels[rel.OID] = oldB.rels[rel.OID]
	}
	if len(why) > 0 {
		c.inherited.Clear()
	}
	slices.Sort(why)
	return b, why
}

// lockedSummary is the summary of an error Drift reports for a relation
// it could not check because a lock was held on it.
const lockedSummary = "Relation locked"

// lockNotAvailable reports whether err is PostgreSQL's lock_not_available
// (lock_timeout).
func lockNotAvailable(err error) bool {
	var se interface{ SQLState() string }
	return errors.As(err, &se) && se.SQLState() == "55P03"
}
