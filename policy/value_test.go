package policy

import (
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func TestLiteral(t *testing.T) {
	str := func(s string) Value { v, _ := stringValue(s); return v }
	num := func(s string) Value { v, _ := numberValue(s); return v }
	list := func(vs ...Value) Value { v, _ := listValue(vs); return v }
	cases := []struct {
		name string
		v    Value
		want string
	}{
		{"a missing value is NULL", Value{}, "NULL"},
		{"a string is quoted", str("it's"), "'it''s'"},
		{"a backslash makes an escape string", str(`a\b`), `E'a\\b'`},
		{"an int4 is a plain constant", intValue(-2147483648), "-2147483648"},
		{"a bigint is a numeric constant", intValue(9223372036854775807), "9223372036854775807"},
		{"a decimal keeps its digits", num("-0.000001"), "-0.000001"},
		{"an exponent is kept", num("1.5e+300"), "1.5e+300"},
		{"a boolean is a boolean", boolValue(false), "false"},
		{"a list of strings is an array", list(str("a"), str("b'")), "ARRAY['a', 'b''']"},
		{"a list of numbers is an array", list(intValue(1), num("2.5")), "ARRAY[1, 2.5]"},
		{"an empty list is a typed array", list(), "ARRAY[]::pg_catalog.text[]"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got := deparseExpr(literal(tt.v))
			if got != tt.want {
				t.Errorf("got %s, want %s", got, tt.want)
			}
			if _, err := pg_query.Parse("SELECT " + got); err != nil {
				t.Errorf("does not parse: %v", err)
			}
		})
	}
}

func TestValuesRefuseWhatSQLCannotHold(t *testing.T) {
	for _, tt := range []struct{ name, problem string }{
		{"NaN is not a number", func() string { _, p := numberValue("NaN"); return p }()},
		{"Infinity is not a number", func() string { _, p := numberValue("Infinity"); return p }()},
		{"a number with a trailing identifier is not a number", func() string { _, p := numberValue("1e5x"); return p }()},
		{"a string with NUL is refused", func() string { _, p := stringValue("a\x00b"); return p }()},
		{"invalid UTF-8 is refused", func() string { _, p := stringValue("\xff"); return p }()},
		{"a mixed list is refused", func() string { _, p := listValue([]Value{intValue(1), {kind: kindString, text: "a"}}); return p }()},
		{"a nested list is refused", func() string { _, p := listValue([]Value{stringsValue(nil)}); return p }()},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if strings.TrimSpace(tt.problem) == "" {
				t.Error("accepted")
			}
		})
	}
}
