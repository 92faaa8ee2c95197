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
		roles := c.rolesWithout(fn)
		if roles == "" {
			continue
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
	return append(diags, c.classCallWarnings(cat)...)
}

// rolesWithout names the roles whose functions do not list fn, for a
// warning ("role \"a\"", "roles \"a\", \"b\""), or returns "" when every
// role lists it.
func (c *Config) rolesWithout(fn string) string {
	var refused []string
	for _, name := range sortedKeys(c.Roles) {
		if !slices.Contains(c.Roles[name].Functions, fn) {
			refused = append(refused, fmt.Sprintf("%q", name))
		}
	}
	switch len(refused) {
	case 0:
		return ""
	case 1:
		return "role " + refused[0]
	}
	return "roles " + strings.Join(refused, ", ")
}

// classCall is what classCallWarnings gathers of one function: the
// types whose operator class or range calls it, each with how ("plan_kind,
// through its default btree operator class plan_ops"), and the relations
// with a column of one.
type classCall struct {
	fn    rewrite.QName
	types map[string]bool
	rels  map[string]bool
}

// classCallWarnings warns, once per function, about the functions outside
// pg_catalog that the default btree or hash operator class of a column's
// type, or a range type's subtype operator class, canonical or
// subtype_diff function, call (rewrite.Catalog.ColumnCheckCalls, the
// calls with a Via) when some role may not call them: the walker refuses
// those roles every statement reading or writing a relation with such a
// column (sorting, grouping, comparing or hashing its values runs the
// function where no syntax shows it), and the DBA is told which relations,
// and which function to list under which role's functions.
// NOTE: pg_catalog and information_schema relations are left out, as
// checkedRelations leaves them: their refusals are the catalog's.
func (c *Config) classCallWarnings(cat *rewrite.Catalog) hcl.Diagnostics {
	calls := map[rewrite.QName]*classCall{}
	for q, rel := range cat.Relations {
		if q.Schema == "pg_catalog" || q.Schema == "information_schema" {
			continue
		}
		for _, col := range rel.Columns {
			for _, call := range cat.ColumnCheckCalls(col) {
				if call.Via == "" {
					continue
				}
				cc := calls[call.Function]
				if cc == nil {
					cc = &classCall{fn: call.Function, types: map[string]bool{}, rels: map[string]bool{}}
					calls[call.Function] = cc
				}
				cc.types[fmt.Sprintf("%s, through %s", col.Type, call.Via)] = true
				cc.rels[q.String()] = true
			}
		}
	}
	fns := make([]rewrite.QName, 0, len(calls))
	for fn := range calls {
		fns = append(fns, fn)
	}
	slices.SortFunc(fns, func(a, b rewrite.QName) int { return strings.Compare(a.String(), b.String()) })
	var diags hcl.Diagnostics
	for _, f := range fns {
		cc := calls[f]
		fn := f.Schema + "." + f.Name
		roles := c.rolesWithout(fn)
		if roles == "" {
			continue
		}
		types := sortedKeys(cc.types)
		how, verb := "The type "+types[0]+",", "calls"
		if len(types) > 1 {
			how, verb = fmt.Sprintf("%s and %d other %s likewise,", how, len(types)-1, plural(len(types)-1, "column type", "column types")), "call"
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Operator class calls a function",
			Detail: fmt.Sprintf("%s %s %s, which %s may not call. pgveil refuses these roles every statement that "+
				"reads or writes %s, whose columns are of such a type: sorting, grouping, DISTINCT, a join, a "+
				"comparison or a UNION on such a column runs %s where no syntax of the statement shows it. "+
				"To let them read these relations, add it to the functions key of their role blocks: "+
				"functions = [%q] in %s (a user needs it in one of their roles). Or give the type an operator "+
				"class without that function.",
				how, verb, fn, roles, relationNames(sortedKeys(cc.rels)), fn, fn, roles),
		})
	}
	return diags
}

// relationNames lists names, at most five, and how many more.
func relationNames(names []string) string {
	if len(names) > 5 {
		return fmt.Sprintf("%s and %d more", strings.Join(names[:5], ", "), len(names)-5)
	}
	return strings.Join(names, ", ")
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
