package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// CheckUnseenCalls warns, once per cast or domain, about the functions
// outside pg_catalog that cat's implicit and assignment casts and domain
// CHECK constraints call (rewrite.Catalog.UnseenCalls) when some role
// may not call them: PostgreSQL runs them where no syntax of a statement
// shows them, so pgveil cannot refuse them there, and a user of such a
// role runs the function all the same. `pgveil check --upstream` and
// `pgveil serve` (at start and at each reload) report them.
func (c *Config) CheckUnseenCalls(cat *rewrite.Catalog) hcl.Diagnostics {
	var diags hcl.Diagnostics
	for _, call := range cat.UnseenCalls {
		fn := call.Function.Schema + "." + call.Function.Name
		var refused []string
		for _, name := range sortedKeys(c.Roles) {
			if !slices.Contains(c.Roles[name].Functions, fn) {
				refused = append(refused, fmt.Sprintf("%q", name))
			}
		}
		if len(refused) == 0 {
			continue
		}
		roles := "role " + refused[0]
		if len(refused) > 1 {
			roles = "roles " + strings.Join(refused, ", ")
		}
		d := &hcl.Diagnostic{Severity: hcl.DiagWarning}
		switch call.Kind {
		case 'd':
			d.Summary = "Domain check calls a function"
			d.Detail = fmt.Sprintf("A CHECK constraint of the domain %s calls %s, which %s may not call. "+
				"PostgreSQL runs it on every value stored in a column of that domain, where no syntax of the "+
				"statement shows it, so pgveil cannot refuse it: a user of these roles who may write such a "+
				"column runs %s. Use a CHECK without that function, or list %s in the roles' functions if "+
				"they may call it.", call.Target, fn, roles, fn, fn)
			if rels := checkedRelations(cat, call.Function); rels != "" {
				d.Detail = fmt.Sprintf("A CHECK constraint of the domain %s calls %s, which %s may not call. "+
					"pgveil refuses these roles every statement that reads or writes %s, whose columns are of a "+
					"type made of that domain: a value the statement writes may take the column's type and run "+
					"the CHECK. List %s in the roles' functions if they may call it, or use a CHECK without "+
					"that function. PostgreSQL also runs it on values a function or trigger stores in such a "+
					"column, where no syntax shows it.", call.Target, fn, roles, rels, fn)
			}
		default:
			d.Summary = "Implicit cast calls a function"
			d.Detail = fmt.Sprintf("The cast from %s to %s, implicit or on assignment, calls %s, which %s "+
				"may not call. PostgreSQL applies such a cast where no syntax of the statement shows it (an "+
				"argument, a comparison, a UNION, an assignment), so pgveil cannot refuse it there: a user of "+
				"these roles runs %s through it. Create the cast again without AS IMPLICIT or AS ASSIGNMENT "+
				"(pgveil checks explicit casts), or list %s in the roles' functions if they may call it.",
				call.Source, call.Target, fn, roles, fn, fn)
		}
		diags = append(diags, d)
	}
	return diags
}

// checkedRelations names the relations outside pg_catalog and
// information_schema with a column whose type's domain CHECKs call fn
// (rewrite.Catalog.ColumnCheckCalls), which pgveil refuses a role that
// may not call fn: at most five, and how many more.
func checkedRelations(cat *rewrite.Catalog, fn rewrite.QName) string {
	var names []string
	for q, rel := range cat.Relations {
		if q.Schema == "pg_catalog" || q.Schema == "information_schema" {
			continue
		}
		if slices.ContainsFunc(rel.Columns, func(col rewrite.Column) bool {
			return slices.ContainsFunc(cat.ColumnCheckCalls(col), func(c rewrite.ImplicitCall) bool { return c.Function == fn })
		}) {
			names = append(names, q.String())
		}
	}
	slices.Sort(names)
	if len(names) > 5 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
	}
	return strings.Join(names, ", ")
}
