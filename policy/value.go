package policy

import (
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// valueKind is the type of a Value.
type valueKind int

const (
	// kindMissing is the zero Value: the attribute is not set.
	kindMissing valueKind = iota
	kindString
	kindNumber
	kindBool
	kindList
)

// Value is the value of a user attribute (me.<name> in a policy): a
// string, a number, a boolean, or a list of strings or of numbers. The
// zero Value is a missing attribute, which binds as NULL.
//
// NOTE: a Value is immutable, and every Value is valid: strings are UTF-8
// without NUL bytes, numbers are finite decimals. Policies bind Values into
// SQL only as literal AST nodes (see literal), never as text.
type Value struct {
	// kind is the type of the value.
	kind valueKind
	// text is a string's value, or a number in decimal notation.
	text string
	// b is a boolean's value.
	b bool
	// list holds a list's elements, all of elem's kind.
	list []Value
	// elem is the kind of a list's elements (kindString for an empty
	// list).
	elem valueKind
}

// decimalRE matches the numbers a Value holds: the plain decimal notation
// PostgreSQL's lexer reads as one numeric constant.
var decimalRE = regexp.MustCompile(`^-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?$`)

// stringValue returns a string Value, or a sentence saying why s cannot be
// one.
func stringValue(s string) (Value, string) {
	if !utf8.ValidString(s) {
		return Value{}, "it is not valid UTF-8"
	}
	if strings.ContainsRune(s, 0) {
		return Value{}, "it contains a NUL character, which PostgreSQL text cannot hold"
	}
	return Value{kind: kindString, text: s}, ""
}

// intValue returns a whole-number Value.
func intValue(n int64) Value {
	return Value{kind: kindNumber, text: strconv.FormatInt(n, 10)}
}

// numberValue returns a number Value from its decimal text, or a sentence
// saying why it cannot be one.
// reasonableNumber reports whether f is 0 or between about 1e-1000 and
// 1e1000 in magnitude. Formatting a number in decimal takes time
// quadratic in its exponent: 1e-1000000 in a configuration would hold
// pgveil for minutes.
func reasonableNumber(f *big.Float) bool {
	const maxExp2 = 3322 // 1000 decimal digits
	exp := f.MantExp(nil)
	return f.Sign() == 0 || exp >= -maxExp2 && exp <= maxExp2
}

func numberValue(text string) (Value, string) {
	if !decimalRE.MatchString(text) {
		return Value{}, fmt.Sprintf("%q is not a finite decimal number", text)
	}
	return Value{kind: kindNumber, text: text}, ""
}

// boolValue returns a boolean Value.
func boolValue(b bool) Value { return Value{kind: kindBool, b: b} }

// listValue returns a list Value of strings or numbers, or a sentence
// saying why elems cannot form one.
func listValue(elems []Value) (Value, string) {
	elem := kindString
	for i, e := range elems {
		if e.kind != kindString && e.kind != kindNumber {
			return Value{}, "a list may only hold strings or numbers"
		}
		if i == 0 {
			elem = e.kind
		} else if e.kind != elem {
			return Value{}, "a list must hold only strings or only numbers, not both"
		}
	}
	return Value{kind: kindList, list: elems, elem: elem}, ""
}

// stringsValue returns the list of the strings ss, which must be valid
// (they come from validated configuration or identity values).
func stringsValue(ss []string) Value {
	elems := make([]Value, len(ss))
	for i, s := range ss {
		elems[i] = Value{kind: kindString, text: s}
	}
	return Value{kind: kindList, list: elems, elem: kindString}
}

// IsMissing reports whether v is the missing value.
func (v Value) IsMissing() bool { return v.kind == kindMissing }

// String renders v in HCL syntax, for dumps and messages.
func (v Value) String() string {
	switch v.kind {
	case kindString:
		return strconv.Quote(v.text)
	case kindNumber:
		return v.text
	case kindBool:
		return strconv.FormatBool(v.b)
	case kindList:
		parts := make([]string, len(v.list))
		for i, e := range v.list {
			parts[i] = e.String()
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return "null"
}

// equal reports whether v and w are the same value.
func (v Value) equal(w Value) bool { return v.String() == w.String() }

// literal returns v as a SQL literal AST node: a string or number
// constant, true/false, an ARRAY[…] of constants, or NULL for the missing
// value. An empty list is ARRAY[]::text[] (or numeric[]), since an untyped
// empty array is an error in PostgreSQL.
//
// NOTE: this is the only way user attributes enter SQL. The deparser
// quotes string constants itself, so no value can change the shape of the
// statement.
func literal(v Value) *pg_query.Node {
	switch v.kind {
	case kindString:
		return pg_query.MakeAConstStrNode(v.text, -1)
	case kindNumber:
		if n, err := strconv.ParseInt(v.text, 10, 32); err == nil && n != math.MinInt32 {
			return pg_query.MakeAConstIntNode(n, -1)
		}
		// NOTE: like PostgreSQL's own parser, numbers that do not fit an
		// int4 are Float constants, whose text the deparser prints as is:
		// decimalRE guarantees it is one numeric token. So is
		// -2147483648, which the grammar reads as minus 2147483648, a
		// Float constant (2147483648 does not fit an int4): an Integer
		// would deparse into text that does not parse back into it.
		// Analysed, the Float is an integer again (make_const tries
		// int8, then int4): the type upstream is int4 either way.
		return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
			Val: &pg_query.A_Const_Fval{Fval: &pg_query.Float{Fval: v.text}}, Location: -1,
		}}}
	case kindBool:
		return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{
			Val: &pg_query.A_Const_Boolval{Boolval: &pg_query.Boolean{Boolval: v.b}}, Location: -1,
		}}}
	case kindList:
		elems := make([]*pg_query.Node, len(v.list))
		for i, e := range v.list {
			elems[i] = literal(e)
		}
		arr := &pg_query.Node{Node: &pg_query.Node_AArrayExpr{AArrayExpr: &pg_query.A_ArrayExpr{Elements: elems, Location: -1}}}
		if len(elems) > 0 {
			return arr
		}
		typ := "text"
		if v.elem == kindNumber {
			typ = "numeric"
		}
		return typeCast(arr, arrayType(typ))
	}
	return nullConst()
}

// nullConst returns the NULL constant.
func nullConst() *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_AConst{AConst: &pg_query.A_Const{Isnull: true, Location: -1}}}
}

// boolConst returns the constant TRUE or FALSE.
func boolConst(b bool) *pg_query.Node { return literal(boolValue(b)) }

// typeCast returns arg::typ.
func typeCast(arg *pg_query.Node, typ *pg_query.TypeName) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{Arg: arg, TypeName: typ, Location: -1}}}
}

// scalarType returns the type name pg_catalog.<name>.
func scalarType(name string) *pg_query.TypeName {
	return &pg_query.TypeName{
		Names:    []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(name)},
		Typemod:  -1,
		Location: -1,
	}
}

// arrayType returns the type name pg_catalog.<name>[].
func arrayType(name string) *pg_query.TypeName {
	t := scalarType(name)
	t.ArrayBounds = []*pg_query.Node{pg_query.MakeIntNode(-1)}
	return t
}
