package sqlguard

import (
	"strings"
	"testing"
)

func TestTooComplex(t *testing.T) {
	deep := "SELECT 1" + strings.Repeat("+1", 30000)
	cases := []struct {
		name, sql string
		refused   bool
	}{
		{"an ordinary statement passes", "SELECT a + b FROM t WHERE c = 'x+y' AND d < 3", false},
		{"a chain of 30000 additions is refused", deep, true},
		{"operators inside a string do not count", "SELECT '" + strings.Repeat("+", 20000) + "'", false},
		{"operators inside a comment do not count", "SELECT 1 -- " + strings.Repeat("+", 20000), false},
		{"operators inside a dollar quote do not count", "SELECT $q$" + strings.Repeat("+", 20000) + "$q$", false},
		{"an E string's escaped quote does not hide what follows", "SELECT E'\\'', 1" + strings.Repeat("+1", 20000) + " --'", true},
		{"a typed literal ending in e is not an E string", "SELECT date'\\', 1" + strings.Repeat("+1", 20000) + " --'", true},
		{"deep parentheses are refused", "SELECT " + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := TooComplex(tc.sql) != ""; got != tc.refused {
				t.Fatalf("refused = %v, want %v", got, tc.refused)
			}
		})
	}
}
