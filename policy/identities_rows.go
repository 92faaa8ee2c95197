package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/pgveil/pgveil/internal/scram"
)

// maxRowWarnings caps the warnings about bad rows reported per identity
// block; a summary counts the rest.
const maxRowWarnings = 10

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

// identityRows interprets the result of src's query: its columns and
// its rows in text format. Column problems are
// errors; row problems are warnings, and the row comes back marked
// badRow.
func (c *Config) identityRows(src *IdentitySource, fields []Field, raws [][][]byte) ([]identityRow, hcl.Diagnostics) {
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
	cols := make([]identityColumn, len(fields))
	seen := map[string]bool{}
	loginCol := -1
	for i, f := range fields {
		col := identityColumn{name: f.Name, oid: f.OID}
		if t, ok := types.TypeForOID(f.OID); ok {
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
	for n, raw := range raws {
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
		// NOTE: a role misspelt in the data (a persona column kept by
		// hand) leaves its users without access: name the block meant.
		hint := ""
		if s := suggest(r, sortedKeys(c.Roles)); s != "" {
			hint = fmt.Sprintf(" Did you mean %q?", s)
		}
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Unknown role",
			Detail: fmt.Sprintf("Identity %q gives role %q to %d %s (%s), but no role block defines it: "+
				"they do not get it.%s", src.Name, r, len(logins), plural(len(logins), "user", "users"), strings.Join(logins[:min(len(logins), 5)], ", ")+
				map[bool]string{true: ", …", false: ""}[len(logins) > 5], hint),
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
