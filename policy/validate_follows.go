package policy

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// checkFollows checks each table block's follows: the parent is governed
// by a table block naming it exactly (an open or pattern-governed parent
// has no scope of its own a DBA chose for it), its key column is not
// classified (a masked key would be compared by its real value: the
// child's rows would tell which hidden values the key holds), and no
// chain of follows loops (a table would follow itself).
//
// NOTE: whether the columns exist, and their types match, is for pgveil
// check --upstream (checkFollowsColumns): the catalog is not read here.
func (d *decoder) checkFollows() {
	var exact []string
	for _, t := range d.cfg.Tables {
		if t.Pattern.Exact() {
			exact = append(exact, t.Pattern.String())
		}
	}
	for _, t := range d.cfg.Tables {
		f := t.Follows
		if f == nil {
			continue
		}
		parent := d.cfg.tableBlock(f.Table.String())
		if parent == nil {
			detail := fmt.Sprintf("No table block names %s exactly: a table can only follow a governed table, "+
				"whose rules decide which of its rows a user sees.", f.Table)
			if s := suggest(f.Table.String(), exact); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			} else {
				detail += fmt.Sprintf(" Add table %q { … } with its rules.", f.Table)
			}
			d.followsError(f, "Unknown follows table", detail)
			continue
		}
		if c := parent.Columns[f.Key]; c != nil {
			d.followsError(f, "Masked follows key", fmt.Sprintf(
				"Column %s of %s is classified %q (masked for roles without that class): %s follows %s on it, "+
					"and the comparison would read its real value, so which rows of %s a user sees would tell it. "+
					"Follow an unclassified key (the parent's id).", f.Key, f.Table, c.Class, t.Pattern, f.Table, t.Pattern))
		}
		// A loop: walk the parents until a table without follows, or
		// back to t.
		chain := []string{t.Pattern.String()}
		for p := parent; p != nil && p.Follows != nil; {
			chain = append(chain, p.Pattern.String())
			if p == t {
				d.followsError(f, "Follows loop", fmt.Sprintf(
					"%s: no table would ever show a row. Make one of them follow a table that follows none.",
					strings.Join(chain, " follows ")))
				break
			}
			if len(chain) > len(d.cfg.Tables)+1 {
				break // a loop not through t: reported at its own tables
			}
			p = d.cfg.tableBlock(p.Follows.Table.String())
		}
	}
}

// followsError reports a follows problem at the attribute's value.
func (d *decoder) followsError(f *Follows, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  f.Range.Ptr(),
	})
}
