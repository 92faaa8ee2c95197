package policy

import (
	"fmt"
	"math"
	"math/big"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/rewrite"
)

// testSchema is the body of a test block.
var testSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "user", Required: true},
		{Name: "query", Required: true},
		{Name: "rows"},
		{Name: "unordered"},
		{Name: "row_count"},
		{Name: "masked"},
		{Name: "denied"},
		{Name: "rule"},
		{Name: "groups"},
	},
}

// Test is a `test "name" { … }` block: a statement a user sends through
// pgveil, and what must come of it. `pgveil test` runs them; they have no
// effect on serving.
type Test struct {
	// Name is the block's label.
	Name string
	// User is the login the statement is sent as.
	User string
	// Query is the statement text, as a client would send it. It is not
	// checked when the configuration is loaded: a query pgveil refuses (a
	// syntax error too) is what a test expecting denied = true is about.
	Query string
	// Rows are the expected rows, each a list of column values in
	// PostgreSQL's text form, nil for NULL. ExpectRows says whether rows
	// was given (rows = [] expects no row).
	Rows       [][]*string
	ExpectRows bool
	// Unordered compares Rows as a multiset instead of in order.
	Unordered bool
	// RowCount is the expected number of rows; nil when not given.
	RowCount *int64
	// Masked are the columns the rewrite must mask, as
	// schema.table.column, exactly (no more, no fewer); ExpectMasked says
	// whether masked was given (masked = [] expects no masked column).
	Masked       []string
	ExpectMasked bool
	// Denied, when set, says whether pgveil must refuse the statement.
	Denied *bool
	// Rule is the firewall rule expected to refuse the statement
	// (Denied true); "" accepts any.
	Rule string
	// Groups are the directory groups (DNs) User is in, for a user that
	// logs in through the ldap block: the test compiles it with the roles
	// and groups the ldap group blocks map them to, as serve does at its
	// login (Identities.DirectoryUser). Nil when not given: the user's
	// roles are its user block's and identity rows' alone.
	// NOTE: a test never asks the directory: it must not depend on who
	// is in which group today.
	Groups []string
	// DeclRange is where the block starts; UserRange is its user, and
	// QueryRange its query (DeclRange when either is missing).
	DeclRange, UserRange, QueryRange hcl.Range
}

// ExpectsDenied reports whether the test expects a refusal.
func (t *Test) ExpectsDenied() bool { return t.Denied != nil && *t.Denied }

// NeedsData reports whether the test compares what the statement
// returns (rows or row_count), which only running it upstream tells.
func (t *Test) NeedsData() bool { return t.ExpectRows || t.RowCount != nil }

// decodeTest decodes one test block into Tests.
func (d *decoder) decodeTest(b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, testSchema, "test."+name)
	if !d.validLabel(b, "test") {
		return
	}
	for _, prev := range d.cfg.Tests {
		if prev.Name == name {
			d.duplicate(b, "test", name, prev.DeclRange)
			return
		}
	}
	t := &Test{Name: name, DeclRange: b.DefRange, UserRange: b.DefRange, QueryRange: b.DefRange}
	d.cfg.Tests = append(d.cfg.Tests, t)
	if a := c.Attributes["groups"]; a != nil {
		dns, _, _ := d.stringList(a, "a directory group's DN")
		t.Groups = append([]string{}, dns...)
		if d.cfg.LDAP == nil {
			d.errorAt(a, "Setting without effect",
				"groups are the directory groups of a user that logs in through the ldap block: the configuration has no ldap block.")
		}
	}
	if a := c.Attributes["user"]; a != nil {
		t.UserRange = a.Expr.Range()
		if login, ok := d.nonEmptyString(a, "user"); ok {
			t.User = login
			// NOTE: with identity blocks the login may come from upstream
			// rows: pgveil test checks it once they are loaded. With
			// groups, a login no block names is a person only the
			// directory knows, as at her login.
			if !d.identityBlocks && d.cfg.Users[login] == nil && (t.Groups == nil || d.cfg.LDAP == nil) {
				d.unknown(a.Expr.Range(), a, "user", login, sortedKeys(d.cfg.Users),
					"Define it with a user block (or list users upstream with an identity block).")
			}
		}
	}
	if a := c.Attributes["query"]; a != nil {
		t.QueryRange = a.Expr.Range()
		t.Query, _ = d.nonEmptyString(a, "query")
	}
	if a := c.Attributes["rows"]; a != nil {
		t.Rows, _ = d.testRows(a)
		t.ExpectRows = true
	}
	if a := c.Attributes["unordered"]; a != nil {
		t.Unordered, _ = d.boolean(a)
		if c.Attributes["rows"] == nil {
			d.errorAt(a, "Setting without effect", "unordered says how to compare rows: it needs rows = [[…]].")
		}
	}
	if a := c.Attributes["row_count"]; a != nil {
		if n, ok := d.rowCount(a); ok {
			t.RowCount = &n
		}
		if c.Attributes["rows"] != nil {
			d.errorAt(a, "Conflicting expectations", fmt.Sprintf(
				"Test %q gives both rows and row_count; rows already says how many rows there are: keep one.", name))
		}
	}
	if a := c.Attributes["masked"]; a != nil {
		t.ExpectMasked = true
		cols, ranges, _ := d.stringList(a, "a column as schema.table.column")
		t.Masked = []string{}
		for i, col := range cols {
			if d.maskedColumn(ranges[i], a, col) {
				t.Masked = append(t.Masked, col)
			}
		}
	}
	if a := c.Attributes["denied"]; a != nil {
		if v, ok := d.boolean(a); ok {
			t.Denied = &v
		}
		if t.ExpectsDenied() {
			for _, other := range []string{"rows", "row_count", "masked"} {
				if o := c.Attributes[other]; o != nil {
					d.errorAt(o, "Conflicting expectations", fmt.Sprintf(
						"Test %q expects pgveil to refuse the statement (denied = true), so there is no %s to compare.", name, other))
				}
			}
		}
	}
	if a := c.Attributes["rule"]; a != nil {
		t.Rule, _ = d.nonEmptyString(a, "rule")
		if t.Rule != "" && !firewall.Known(t.Rule) {
			// NOTE: without this, the test only fails when run upstream
			// (offline it is skipped), with the typo hidden in a mismatch.
			d.unknown(a.Expr.Range(), a, "firewall rule", t.Rule, firewall.Names(),
				"The firewall rules are listed in README.md (Firewall rules).")
		}
		if !t.ExpectsDenied() {
			d.errorAt(a, "Setting without effect",
				"rule names the firewall rule expected to refuse the statement: it needs denied = true.")
		}
	}
	if a := c.Attributes["denied"]; a != nil && t.ExpectsDenied() && t.Rule == "" {
		d.deniedWithoutRole(t, a)
	}
	if !t.ExpectRows && c.Attributes["row_count"] == nil && !t.ExpectMasked && c.Attributes["denied"] == nil {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Test without expectation",
			Detail: fmt.Sprintf(`Test %q says what to run but not what must come of it: set rows = [[…]], `+
				`row_count = N, masked = ["schema.table.column"] or denied = true.`, name),
			Subject: b.DefRange.Ptr(),
		})
	}
}

// testRowsShape says how rows are written, for messages.
const testRowsShape = `rows is a list of rows, each a list of values (strings, numbers or null): ` +
	`rows = [["France", 12], ["Spain", null]].`

// testRows decodes a test's rows: a list of lists of strings, numbers or
// nulls. A number becomes its decimal text.
func (d *decoder) testRows(a *hcl.Attribute) ([][]*string, bool) {
	v, diags := a.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return nil, false
	}
	if v.IsNull() || !isSequence(v.Type()) {
		d.errorAt(a, "Incorrect attribute value type", testRowsShape)
		return nil, false
	}
	rowExprs, _ := hcl.ExprList(a.Expr)
	rowRanges := elementRanges(a.Expr, v.LengthInt())
	out := [][]*string{}
	ok := true
	for i, row := range v.AsValueSlice() {
		if row.IsNull() || !isSequence(row.Type()) {
			d.errorRange(rowRanges[i], a, "Incorrect attribute value type", fmt.Sprintf("Row %d is not a list of values. %s", i+1, testRowsShape))
			ok = false
			continue
		}
		cellRanges := make([]hcl.Range, row.LengthInt())
		for j := range cellRanges {
			cellRanges[j] = rowRanges[i]
		}
		if len(rowExprs) == v.LengthInt() {
			cellRanges = elementRanges(rowExprs[i], row.LengthInt())
		}
		cells := make([]*string, 0, row.LengthInt())
		for j, cell := range row.AsValueSlice() {
			switch {
			case cell.IsNull():
				cells = append(cells, nil)
			case cell.Type() == cty.String:
				s := cell.AsString()
				cells = append(cells, &s)
			case cell.Type() == cty.Number && !reasonableNumber(cell.AsBigFloat()):
				d.errorRange(cellRanges[j], a, "Incorrect attribute value type", fmt.Sprintf(
					"Row %d, value %d: the number is beyond 1e±1000; write it as a string.", i+1, j+1))
				ok = false
			case cell.Type() == cty.Number:
				s := cell.AsBigFloat().Text('f', -1)
				cells = append(cells, &s)
			case cell.Type() == cty.Bool:
				d.errorRange(cellRanges[j], a, "Incorrect attribute value type", fmt.Sprintf(
					"Row %d, value %d: write booleans as PostgreSQL prints them, \"t\" or \"f\".", i+1, j+1))
				ok = false
			default:
				d.errorRange(cellRanges[j], a, "Incorrect attribute value type", fmt.Sprintf(
					"Row %d, value %d is not a string, a number or null. %s", i+1, j+1, testRowsShape))
				ok = false
			}
		}
		out = append(out, cells)
	}
	return out, ok
}

// isSequence reports whether ty is a list or a tuple.
func isSequence(ty cty.Type) bool {
	return ty.IsTupleType() || ty.IsListType()
}

// rowCount decodes row_count: a whole number from 0.
func (d *decoder) rowCount(a *hcl.Attribute) (int64, bool) {
	v, ok := d.value(a, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact || n < 0 || n == math.MaxInt64 {
		d.errorAt(a, "Invalid value", "row_count must be a whole number of rows, 0 or more.")
		return 0, false
	}
	return n, true
}

// maskedColumn checks one element of a test's masked: schema.table.column,
// where some table block classifies column (no other column is ever
// masked).
func (d *decoder) maskedColumn(rng hcl.Range, a *hcl.Attribute, s string) bool {
	schema, rest, ok1 := strings.Cut(s, ".")
	table, column, ok2 := strings.Cut(rest, ".")
	if !ok1 || !ok2 || schema == "" || table == "" || column == "" {
		d.errorRange(rng, a, "Invalid column name", fmt.Sprintf(
			"%q must be schema.table.column, as pgveil explain lists masked columns, e.g. \"public.responses.email\".", s))
		return false
	}
	var candidates []string
	// same maps a candidate naming the test's table to its table block
	// and column.
	type blockColumn struct {
		t   *Table
		col *Column
	}
	same := map[string]blockColumn{}
	for _, t := range d.cfg.Tables {
		if _, ok := t.Columns[column]; ok {
			return true
		}
		prefix := t.Pattern.String()
		matches := t.Pattern.Match(rewrite.QName{Schema: schema, Name: table})
		if matches {
			prefix = schema + "." + table
		}
		for _, name := range sortedKeys(t.Columns) {
			candidates = append(candidates, prefix+"."+name)
			if matches {
				same[prefix+"."+name] = blockColumn{t, t.Columns[name]}
			}
		}
	}
	detail := fmt.Sprintf("No column block of any table block is named %q, so %s is never masked.", column, s)
	m := suggest(s, candidates)
	if bc, ok := same[m]; ok {
		// NOTE: the test and the table block spell one column two ways,
		// and either may be the typo: suggesting the block's spelling
		// would spread a typo of the block to the test.
		detail += fmt.Sprintf(" The table block %q classifies a column %q (at %s): if that is the table's column, write %q here; "+
			"if the table's column is %s, fix the column block, which masks nothing until then.",
			bc.t.Pattern.String(), bc.col.Name, position(bc.col.DeclRange), m, column)
	} else if m != "" {
		detail += fmt.Sprintf(" Did you mean %q?", m)
	} else {
		detail += " Masked columns are those of column blocks whose class the user's roles do not list."
	}
	d.errorRange(rng, a, "Column never masked", detail)
	return false
}

// deniedWithoutRole warns of a test expecting a refusal, with no rule,
// whose user has no role in the files: pgveil refuses every statement of
// such a login (no_policy), so the test passes whatever the policy says
// about the statement. Not when identity rows may give its roles
// (RolesFromFiles false), nor when the test gives the user directory
// groups (groups), whose group blocks may give roles; a user block
// without roles that only LDAP groups fill is warned of otherwise,
// pgveil test never reading the directory.
func (d *decoder) deniedWithoutRole(t *Test, a *hcl.Attribute) {
	u := d.cfg.Users[t.User]
	if u == nil || len(u.Roles) > 0 || len(t.Groups) > 0 || !d.cfg.RolesFromFiles(t.User) {
		return
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagWarning,
		Summary:  "Test passes for any statement",
		Detail: fmt.Sprintf(`Test %q expects a refusal, but user %q has no role: pgveil refuses every statement `+
			`of a login without a role (firewall rule no_policy), so the test passes whatever the policy says. `+
			`Give the user a role, or write rule = "…" naming the firewall rule that must refuse the statement `+
			`(rule = "no_policy" if that is the point).`, t.Name, t.User),
		Subject: a.Expr.Range().Ptr(),
		Context: a.Range.Ptr(),
	})
}
