package policy

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/scram"
)

// maxRowWarnings caps the warnings about bad rows reported per identity
// block; a summary counts the rest.
const maxRowWarnings = 10

// identitySettings fix, for the identity transaction, the settings that
// decide the text form of dates, times and intervals.
const identitySettings = "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'; SET LOCAL IntervalStyle = 'postgres'"

// LoadIdentities runs the identity queries, and reads the teams table if
// any, over conn (the upstream service account), inside one READ ONLY
// transaction, and merges the rows with the user blocks (see
// buildIdentities).
//
// A query that fails, or returns a column pgveil cannot interpret (no
// login column, a team that is not an integer, groups that are not text),
// is an error: LoadIdentities then returns nil, and no user of any source
// is usable. A bad row (a login with two rows, an invalid verifier, a
// multi-dimensional array) is a warning, and the login it is about has no
// access at all. Every diagnostic points at the identity block.
func (c *Config) LoadIdentities(ctx context.Context, conn *pgconn.PgConn) (*Identities, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if len(c.IdentitySources) == 0 && (c.Teams == nil || c.Teams.Table == nil) {
		return c.HCLIdentities(), nil
	}
	if _, err := conn.Exec(ctx, "BEGIN TRANSACTION READ ONLY").ReadAll(); err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read identities",
			Detail:   fmt.Sprintf("Starting a read-only transaction upstream failed: %s.", err),
		}}
	}
	// NOTE: the transaction only reads; ROLLBACK ends it either way. (A
	// closure: a deferred conn.Exec(…).ReadAll() would send ROLLBACK now.)
	defer func() { _, _ = conn.Exec(context.WithoutCancel(ctx), "ROLLBACK").ReadAll() }()
	// NOTE: dates, times and intervals become attributes in their text
	// form, which these settings decide: ISO 8601 and UTC are what
	// policies read alike under every client's settings (see datetime.go).
	if _, err := conn.Exec(ctx, identitySettings).ReadAll(); err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read identities",
			Detail:   fmt.Sprintf("Setting the date and time output upstream failed: %s.", err),
		}}
	}

	var rows []identityRow
	broken := map[string]string{}
	for _, src := range c.IdentitySources {
		res := conn.ExecParams(ctx, src.Query, nil, nil, nil, nil).Read()
		if res.Err != nil {
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Identity query failed",
				Detail:   fmt.Sprintf("The query of identity %q failed upstream: %s.", src.Name, res.Err),
				Subject:  src.QueryRange.Ptr(),
			})
		}
		srcRows, srcDiags := c.identityRows(src, res)
		diags = append(diags, srcDiags...)
		if srcDiags.HasErrors() {
			return nil, diags
		}
		for _, r := range srcRows {
			if r.set == badRow {
				broken[r.login] = fmt.Sprintf("its row from identity %q is invalid", src.Name)
				continue
			}
			rows = append(rows, r)
		}
	}
	if t := c.Teams; t != nil && t.Table != nil {
		d := c.checkTeamsTable(ctx, conn)
		diags = append(diags, d...)
		if d.HasErrors() {
			return nil, diags
		}
	}
	ids := c.buildIdentities(rows, broken)
	diags = append(diags, c.unusedAttributes(ids)...)
	return ids, diags
}

// badRow marks an identityRow that could not be read: its login is
// broken.
const badRow userFields = 1 << 7

// Identity columns with a meaning of their own; every other column is a
// free attribute.
const (
	colLogin    = "login"
	colRoles    = "roles"
	colTeam     = "team"
	colGroups   = "groups"
	colPassword = "password"
)

// PostgreSQL type OIDs pgveil interprets.
var (
	textOIDs  = []uint32{pgtype.TextOID, pgtype.VarcharOID, pgtype.NameOID, pgtype.BPCharOID}
	textArray = []uint32{pgtype.TextArrayOID, pgtype.VarcharArrayOID, pgtype.NameArrayOID, pgtype.BPCharArrayOID}
	intOIDs   = []uint32{pgtype.Int2OID, pgtype.Int4OID, pgtype.Int8OID}
	intArray  = []uint32{pgtype.Int2ArrayOID, pgtype.Int4ArrayOID, pgtype.Int8ArrayOID}
	numOIDs   = []uint32{pgtype.NumericOID, pgtype.Float4OID, pgtype.Float8OID, pgtype.OIDOID}
	numArray  = []uint32{pgtype.NumericArrayOID, pgtype.Float4ArrayOID, pgtype.Float8ArrayOID}
)

// identityColumn is how one column of an identity query is read.
type identityColumn struct {
	// name is the column's name.
	name string
	// oid is its type.
	oid uint32
	// array says whether it is a (one-dimensional) array.
	array bool
}

// identityRows interprets the result of src's query. Column problems are
// errors; row problems are warnings, and the row comes back marked
// badRow.
func (c *Config) identityRows(src *IdentitySource, res *pgconn.Result) ([]identityRow, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	colError := func(detail string) {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid identity column",
			Detail:   fmt.Sprintf("Identity %q: %s", src.Name, detail),
			Subject:  src.QueryRange.Ptr(),
		})
	}
	types := pgtype.NewMap()
	cols := make([]identityColumn, len(res.FieldDescriptions))
	seen := map[string]bool{}
	loginCol := -1
	for i, f := range res.FieldDescriptions {
		col := identityColumn{name: f.Name, oid: f.DataTypeOID}
		if t, ok := types.TypeForOID(f.DataTypeOID); ok {
			_, col.array = t.Codec.(*pgtype.ArrayCodec)
		}
		cols[i] = col
		if seen[col.name] {
			colError(fmt.Sprintf("the query returns two columns named %s; give them distinct names with AS.", col.name))
			continue
		}
		seen[col.name] = true
		switch col.name {
		case colLogin:
			loginCol = i
			if col.array {
				colError("the login column is an array; it must be text.")
			}
		case colRoles, colGroups:
			if !slices.Contains(textOIDs, col.oid) && !slices.Contains(textArray, col.oid) {
				colError(fmt.Sprintf("the %s column must be text or text[] (one name, or an array of names), not %s.", col.name, typeName(types, col.oid)))
			}
		case colTeam:
			if !slices.Contains(intOIDs, col.oid) {
				colError(fmt.Sprintf("the team column must be an integer (a team id), not %s.", typeName(types, col.oid)))
			}
		case colPassword:
			if !slices.Contains(textOIDs, col.oid) {
				colError(fmt.Sprintf("the password column must be text (a SCRAM-SHA-256 verifier), not %s.", typeName(types, col.oid)))
			}
		}
	}
	if loginCol < 0 {
		colError(`the query returns no login column: select the user name AS login, e.g. "SELECT name AS login, … FROM …".`)
	}
	if diags.HasErrors() {
		return nil, diags
	}

	var rows []identityRow
	byLogin := map[string]int{}
	unknownRoles := map[string][]string{}
	warnings := 0
	warn := func(format string, args ...any) {
		warnings++
		if warnings <= maxRowWarnings {
			diags = append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Invalid identity row",
				Detail:   fmt.Sprintf("Identity %q: ", src.Name) + fmt.Sprintf(format, args...),
				Subject:  src.DeclRange.Ptr(),
			})
		}
	}
	for n, raw := range res.Rows {
		if len(raw[loginCol]) == 0 {
			warn("row %d has no login; it is ignored.", n+1)
			continue
		}
		login := string(raw[loginCol])
		row := identityRow{source: src, login: login, attrs: map[string]Value{}}
		if i, dup := byLogin[login]; dup {
			warn("login %q has more than one row: it has no access until it has one.", login)
			rows[i].set = badRow
			continue
		}
		byLogin[login] = len(rows)
		if problem := c.readRow(&row, cols, raw, types, loginCol); problem != "" {
			warn("login %q: %s; it has no access until the row is fixed.", login, problem)
			row.set = badRow
		}
		// NOTE: a role no block defines grants nothing and no rule can
		// name it: dropping it only ever narrows access.
		row.roles = slices.DeleteFunc(row.roles, func(r string) bool {
			if c.Roles[r] == nil {
				unknownRoles[r] = append(unknownRoles[r], login)
				return true
			}
			return false
		})
		rows = append(rows, row)
	}
	for _, r := range sortedKeys(unknownRoles) {
		logins := unknownRoles[r]
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Unknown role",
			Detail: fmt.Sprintf("Identity %q gives role %q to %d users (%s), but no role block defines it: "+
				"they do not get it.", src.Name, r, len(logins), strings.Join(logins[:min(len(logins), 5)], ", ")+
				map[bool]string{true: ", …", false: ""}[len(logins) > 5]),
			Subject: src.DeclRange.Ptr(),
		})
	}
	if warnings > maxRowWarnings {
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Invalid identity rows",
			Detail:   fmt.Sprintf("Identity %q: %d more rows are invalid.", src.Name, warnings-maxRowWarnings),
			Subject:  src.DeclRange.Ptr(),
		})
	}
	return rows, diags
}

// readRow fills row from one result row, or says what is wrong with it.
func (c *Config) readRow(row *identityRow, cols []identityColumn, raw [][]byte, types *pgtype.Map, loginCol int) string {
	if _, problem := stringValue(row.login); problem != "" {
		return "the login cannot be used: " + problem
	}
	for i, col := range cols {
		if i == loginCol || raw[i] == nil {
			continue
		}
		v, problem := columnValue(col, raw[i], types)
		if problem != "" {
			return fmt.Sprintf("column %s: %s", col.name, problem)
		}
		switch col.name {
		case colRoles, colGroups:
			names := []string{v.text}
			if v.kind == kindList {
				names = names[:0]
				for _, e := range v.list {
					names = append(names, e.text)
				}
			}
			names = slices.DeleteFunc(names, func(s string) bool { return s == "" })
			slices.Sort(names)
			names = slices.Compact(names)
			if col.name == colRoles {
				row.roles = names
				row.set |= fieldRoles
			} else {
				row.groups = names
				row.set |= fieldGroups
			}
		case colTeam:
			id, err := strconv.ParseInt(v.text, 10, 64)
			if err != nil {
				return "the team is not an integer"
			}
			row.team = &id
			row.set |= fieldTeam
		case colPassword:
			ver, err := scram.ParseVerifier(v.text)
			if err != nil {
				return "the password is not a SCRAM-SHA-256 verifier"
			}
			row.verifier = ver
			row.set |= fieldPassword
		default:
			row.attrs[col.name] = v
		}
	}
	return ""
}

// columnValue converts one value of col, in text format, into a Value:
// integers and numbers become numbers, booleans booleans, one-dimensional
// arrays lists (of numbers for numeric arrays, of strings otherwise), and
// anything else a string holding its text form.
func columnValue(col identityColumn, raw []byte, types *pgtype.Map) (Value, string) {
	if !col.array {
		return scalarValue(col.oid, string(raw))
	}
	var arr pgtype.Array[*string]
	if err := types.Scan(col.oid, pgtype.TextFormatCode, raw, &arr); err != nil {
		return Value{}, fmt.Sprintf("the array cannot be read: %s", err)
	}
	if len(arr.Dims) > 1 {
		return Value{}, "multi-dimensional arrays are not supported"
	}
	elemOID := pgtype.TextOID
	if slices.Contains(intArray, col.oid) || slices.Contains(numArray, col.oid) {
		elemOID = pgtype.NumericOID
	}
	elems := make([]Value, 0, len(arr.Elements))
	for _, e := range arr.Elements {
		if e == nil {
			return Value{}, "the array holds NULL"
		}
		v, problem := scalarValue(uint32(elemOID), *e)
		if problem != "" {
			return Value{}, problem
		}
		if v.kind != kindString && v.kind != kindNumber {
			v = Value{kind: kindString, text: *e}
		}
		elems = append(elems, v)
	}
	v, problem := listValue(elems)
	return v, problem
}

// scalarValue converts the text form of a value of type oid.
func scalarValue(oid uint32, text string) (Value, string) {
	switch {
	case slices.Contains(intOIDs, oid) || slices.Contains(numOIDs, oid):
		if v, problem := numberValue(text); problem == "" {
			return v, ""
		}
		// NaN and infinities are not numbers a literal can hold.
		return stringValue(text)
	case oid == pgtype.BoolOID:
		return boolValue(text == "t"), ""
	}
	return stringValue(text)
}

// typeName names a type for messages.
func typeName(types *pgtype.Map, oid uint32) string {
	if t, ok := types.TypeForOID(oid); ok {
		if elem, isArray := strings.CutPrefix(t.Name, "_"); isArray {
			return elem + "[]"
		}
		return t.Name
	}
	return fmt.Sprintf("the type with OID %d", oid)
}

// checkTeamsTable reads the teams table, so that a wrong table or column
// name is reported now rather than as failing statements, and warns when
// the tree has a cycle (which the recursive scope tolerates).
func (c *Config) checkTeamsTable(ctx context.Context, conn *pgconn.PgConn) hcl.Diagnostics {
	t := c.Teams
	sql, err := teamsQuery(t)
	if err != nil {
		panic(fmt.Sprintf("policy: deparsing the teams query: %v", err))
	}
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the teams table",
			Detail:   fmt.Sprintf("Reading %s (%s, %s) failed upstream: %s.", t.Table, t.IDColumn, t.ParentColumn, res.Err),
			Subject:  t.DeclRange.Ptr(),
		}}
	}
	for i, f := range res.FieldDescriptions {
		if !slices.Contains(intOIDs, f.DataTypeOID) {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid teams table",
				Detail: fmt.Sprintf("%s.%s must be an integer column.", t.Table,
					[]string{t.IDColumn, t.ParentColumn}[i]),
				Subject: t.DeclRange.Ptr(),
			}}
		}
	}
	parent := map[string]string{}
	for _, r := range res.Rows {
		if r[0] != nil && r[1] != nil {
			parent[string(r[0])] = string(r[1])
		}
	}
	for _, id := range sortedKeys(parent) {
		seen := map[string]bool{id: true}
		for p, ok := parent[id]; ok; p, ok = parent[p] {
			if seen[p] {
				return hcl.Diagnostics{{
					Severity: hcl.DiagWarning,
					Summary:  "Teams table is not a tree",
					Detail: fmt.Sprintf("In %s, team %s is below itself (its parents loop). team_subtree still "+
						"terminates, but the loop's teams all see each other.", t.Table, p),
					Subject: t.DeclRange.Ptr(),
				}}
			}
			seen[p] = true
		}
	}
	return nil
}

// teamsQuery returns SELECT <id>, <parent> FROM <schema>.<table>, built as
// a tree so that configured names are never spliced into SQL text.
func teamsQuery(t *Teams) (string, error) {
	sel := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{
			pg_query.MakeResTargetNodeWithVal(columnRef(t.IDColumn), -1),
			pg_query.MakeResTargetNodeWithVal(columnRef(t.ParentColumn), -1),
		},
		FromClause:  []*pg_query.Node{rangeVar(*t.Table)},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	return deparseStmt(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}})
}

// deparseStmt renders one statement.
func deparseStmt(stmt *pg_query.Node) (string, error) {
	return pg_query.Deparse(&pg_query.ParseResult{Version: treeVersion, Stmts: []*pg_query.RawStmt{{Stmt: stmt}}})
}

// treeVersion is the parse-tree version of the linked pg_query (its
// PostgreSQL's server_version_num), which its deparser requires of every
// tree it is given; pg_query exports it only on parse results.
var treeVersion = func() int32 {
	r, err := pg_query.Parse("SELECT")
	if err != nil {
		panic("policy: pg_query cannot parse SELECT: " + err.Error())
	}
	return r.Version
}()

// unusedAttributes warns about me.<name> that no loaded user has: the
// condition is then never true. (Without identity blocks, Load reports
// them as errors.)
func (c *Config) unusedAttributes(ids *Identities) hcl.Diagnostics {
	known := map[string]bool{}
	for _, n := range builtinAttributes {
		known[n] = true
	}
	for _, u := range ids.users {
		for n := range u.Attributes {
			known[n] = true
		}
	}
	var diags hcl.Diagnostics
	check := func(e *sqlExpr, where string) {
		if e == nil {
			return
		}
		for _, name := range sortedKeys(e.attrs) {
			if !known[name] {
				rng := e.attrs[name]
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Unknown attribute",
					Detail: fmt.Sprintf("%s reads me.%s, but no user has that attribute (in user blocks or identity "+
						"columns %s), so the condition is never true.", where, name, strings.Join(sortedKeys(known), ", ")),
					Subject: rng.Ptr(),
				})
			}
		}
	}
	for _, r := range c.Rules {
		check(r.where, "Rule "+r.Name)
	}
	for _, t := range c.Tables {
		for _, name := range sortedKeys(t.Columns) {
			check(t.Columns[name].Mask.expr, fmt.Sprintf("The mask of %s.%s", t.Pattern, name))
		}
	}
	return diags
}
