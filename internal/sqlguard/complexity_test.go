package sqlguard

import (
	"strings"
	"testing"
)

func TestCheck(t *testing.T) {
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
		// PostgreSQL reads a$b$ as one identifier: no dollar quote hides
		// what follows.
		{"a $ inside an identifier opens no dollar quote", "SELECT a$b$ FROM t WHERE 1 = 1" + strings.Repeat("+1", 20000), true},
		{"nor does a$$", "SELECT 1 AS a$$ WHERE 1 = 1" + strings.Repeat("+1", 20000), true},
		{"an unterminated dollar quote is refused", "SELECT $q$ " + strings.Repeat("+1", 20000), true},
		{"an unterminated string is refused", "SELECT 'abc", true},
		{"an unterminated quoted identifier is refused", `SELECT "abc`, true},
		{"an unterminated comment is refused", "SELECT 1 /* /* */", true},
		{"a dollar quote with a non-ASCII tag hides its operators", "SELECT $é$" + strings.Repeat("+", 20000) + "$é$", false},
		{"a parameter is no dollar quote", "SELECT $1 + $2 FROM t WHERE a = $3", false},
		{"an IN list of 100,000 values passes", "SELECT 1 FROM t WHERE a IN (" + strings.Repeat("1,", 100000) + "1)", false},
		{"a million of them is refused", "SELECT 1" + strings.Repeat(",1", 1000000), true},
		{"so are 500,000 words", "SELECT CASE" + strings.Repeat(" WHEN a THEN b", 125000) + " END", true},
		{"a 16 MB string passes", "SELECT '" + strings.Repeat("x, ", 5<<20) + "'", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if why, _ := Check(tc.sql); (why != "") != tc.refused {
				t.Fatalf("refused with %q, want refused %v", why, tc.refused)
			}
		})
	}
}
