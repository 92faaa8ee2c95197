package rewrite

import (
	"strconv"
	"strings"
)

// A comparison of a column with a parameter is copied into the scoped
// subquery as col OP $n::type (pushOperand): for a parameter whose type
// the client left to PostgreSQL, the cast makes it the column's type.
// One the client declared — in Parse (a JDBC setLong, a psycopg
// numeric) or in SQL PREPARE — is another matter: cast to a narrower
// column type, 1e20 or 3000000000 overflows, and the statement fails
// where PostgreSQL, comparing in the wider type, answers. So the walker
// reads the declared types: a parameter of the column's own type is cast
// to it as before, one of an integer type the column's compares in its
// own (int4 column, int8 parameter: int48lt, leak-proof too), one whose
// cast to the column's type cannot fail (a timestamp to a date, text to
// name) as before, and any other stays outside.

// declaredPolicy is the Policy of a statement whose Parse message
// declares parameter types: Key differs with them, so that no cache
// shares a rewrite between statements declaring different types, and
// the walker reads them (newWalker).
type declaredPolicy struct {
	Policy
	key   string
	types []uint32
}

// Key implements Policy.
func (d *declaredPolicy) Key() string { return d.key }

// declare returns p for a statement whose Parse declared types: p itself
// when it declares none that matter (every OID 0 or unknown).
func declare(p Policy, types []uint32) Policy {
	matters := false
	for _, t := range types {
		if t != 0 && t != oidUnknown {
			matters = true
			break
		}
	}
	if !matters {
		return p
	}
	var b strings.Builder
	b.WriteString(p.Key())
	b.WriteString("\x00declared")
	for _, t := range types {
		b.WriteByte(' ')
		b.WriteString(strconv.FormatUint(uint64(t), 10))
	}
	return &declaredPolicy{Policy: p, key: b.String(), types: types}
}

// oidUnknown is the OID of the type unknown, which declares nothing.
const oidUnknown = 705

// declaredOIDs maps the OIDs of the types pushOperand knows to the names
// leakproofPairs uses; varchar, bpchar and name parameters compare with
// a text column as text.
var declaredOIDs = map[uint32]string{
	21: "int2", 23: "int4", 20: "int8", 25: "text", 1043: "varchar", 1042: "bpchar", 19: "name",
	16: "bool", 2950: "uuid", 26: "oid", 1082: "date", 1114: "timestamp", 1184: "timestamptz",
}

// declaredNames maps the pg_catalog type names a SQL PREPARE may declare
// (as the parser writes them) to the names of declaredOIDs.
var declaredNames = map[string]string{
	"int2": "int2", "int4": "int4", "int8": "int8", "text": "text", "varchar": "varchar", "bpchar": "bpchar",
	"name": "name", "bool": "bool", "uuid": "uuid", "oid": "oid", "date": "date", "timestamp": "timestamp",
	"timestamptz": "timestamptz",
}

// Answers of declaredParam besides a type name.
const (
	// undeclared: the client left the type to PostgreSQL.
	undeclared = ""
	// otherType: a type pushOperand does not know (numeric, float8, an
	// array, a type outside pg_catalog…).
	otherType = "?"
)

// declaredParam returns the type the statement declares for parameter
// $n: a name of declaredOIDs, undeclared or otherType. A parameter left to
// PostgreSQL that the statement references more than once is otherType:
// PostgreSQL types it at the reference it analyses first, which the copy
// in a scope subquery, analysed before the client's WHERE, would become
// ($1::numeric IS NOT NULL AND nps > $1 compares in numeric, not in
// nps's int4).
func (w *walker) declaredParam(n int32) string {
	t := w.declaredType(n)
	if t == undeclared && w.paramUses(n) > 1 {
		return otherType
	}
	return t
}

// declaredType is declaredParam, whatever the references.
func (w *walker) declaredType(n int32) string {
	i := int(n) - 1
	if w.prepared != nil {
		if i < 0 || i >= len(w.prepared) {
			return undeclared
		}
		tn := w.prepared[i].GetTypeName()
		if tn == nil || len(tn.Typmods) > 0 || len(tn.ArrayBounds) > 0 || tn.Setof || tn.PctType {
			return otherType
		}
		var schema, name string
		switch len(tn.Names) {
		case 1:
			if len(w.path) == 0 || w.path[0] != "pg_catalog" {
				return otherType
			}
			schema, name = "pg_catalog", tn.Names[0].GetString_().GetSval()
		case 2:
			schema, name = tn.Names[0].GetString_().GetSval(), tn.Names[1].GetString_().GetSval()
		}
		if t, ok := declaredNames[name]; ok && schema == "pg_catalog" {
			return t
		}
		if name == "unknown" && schema == "pg_catalog" {
			return undeclared
		}
		return otherType
	}
	if i < 0 || i >= len(w.declared) || w.declared[i] == 0 || w.declared[i] == oidUnknown {
		return undeclared
	}
	if t, ok := declaredOIDs[w.declared[i]]; ok {
		return t
	}
	return otherType
}

// paramCast says how pushOperand copies a comparison of a column
// compared as typ with a parameter declared as decl (declaredParam): the
// type the copy casts the parameter to, whether < and > must become <=
// and >= (the cast may round), or false when the copy is not made.
func paramCast(typ, decl string) (cast string, widen, ok bool) {
	switch {
	case decl == undeclared:
		// PostgreSQL gives the parameter the type of the cast.
		return typ, true, true
	case decl == typ:
		return typ, false, true
	case typ == "text" && (decl == "varchar" || decl == "bpchar" || decl == "name"),
		typ == "name" && (decl == "text" || decl == "varchar" || decl == "bpchar"),
		typ == "date" && (decl == "timestamp" || decl == "timestamptz"):
		// Casts that cannot fail, but may shorten or round.
		return typ, true, true
	}
	if _, ok := leakproofPairs[[2]string{typ, decl}]; ok {
		// Compared in the parameter's own type by a leak-proof
		// cross-type operator: no cast of a value.
		return decl, false, true
	}
	return "", false, false
}
