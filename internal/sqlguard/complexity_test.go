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
		{"an IN list of 20,000 values passes", "SELECT 1 FROM t WHERE a IN (" + strings.Repeat("1,", 20000) + "1)", false},
		{"one of 30,000 values is refused", "SELECT 1 FROM t WHERE a IN (" + strings.Repeat("1,", 30000) + "1)", true},
		{"a million of them is refused", "SELECT 1" + strings.Repeat(",1", 1000000), true},
		{"so are 60,000 words", "SELECT CASE" + strings.Repeat(" WHEN a THEN b", 15000) + " END", true},
		{"a 900 KiB string of words passes", "SELECT '" + strings.Repeat("abcdef ", 900<<10/7) + "'", false},
		{"a text longer than 1 MiB is refused", "SELECT '" + strings.Repeat("x", 1<<20) + "'", true},
		{"a long text of few tokens is refused at once", "SELECT 1 FROM t -- " + strings.Repeat("x", 2<<20), true},
		// A red team's: a FROM list of 100,000 governed references (1.8
		// MB) took 1.6 s and 143 MiB to rewrite.
		{"a FROM list of 20,000 references is refused", "SELECT 1 FROM " + strings.Repeat("responses r, ", 20000) + "t", true},
		// A second review's desynchronisations from PostgreSQL's lexer.
		{"a carriage return ends a -- comment", "SELECT 1 --\r" + strings.Repeat("+1", 20000), true},
		{"a string continued on the next line stays an E string", "SELECT E'a'\n'\\'' " + strings.Repeat("+1", 20000) + " -- '\n", true},
		{"a -- comment ends the string, and what follows is another", "SELECT E'a' -- c\n'\\'' " + strings.Repeat("+1", 20000) + " -- '\n", false},
		{"a dollar quote may open right after another", "DO $a$x$a$$b$'$b$; SELECT 1" + strings.Repeat("+1", 20000) + " -- '\n", true},
		{"casts chain", "SELECT 1" + strings.Repeat("::int", 20000), true},
		{"quoted casts chain too", "SELECT 1" + strings.Repeat("::\"int4\"", 20000), true},
		{"COLLATE chains", "SELECT 'a'" + strings.Repeat(" COLLATE \"C\"", 20000), true},
		{"AT TIME ZONE chains", "SELECT now()" + strings.Repeat(" AT TIME ZONE 'UTC'", 20000), true},
		{"NOT chains", "SELECT " + strings.Repeat("NOT ", 20000) + "true", true},
		{"brackets nest", "SELECT ARRAY" + strings.Repeat("[", 5000) + "1" + strings.Repeat("]", 5000), true},
		{"UNION chains", "SELECT 1" + strings.Repeat(" UNION SELECT 1", 20000), true},
		{"JOIN chains", "SELECT 1 FROM t" + strings.Repeat(" CROSS JOIN t", 20000), true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if why, _ := Check(tc.sql); (why != "") != tc.refused {
				t.Fatalf("refused with %q, want refused %v", why, tc.refused)
			}
		})
	}
}

// TestQuickCountAgreesWithTheScanner holds the quick count to
// pg_query's scanner on texts short enough for it to decide alone, in the
// corners of the lexer where it could go wrong: it may count more, never
// fewer.
func TestQuickCountAgreesWithTheScanner(t *testing.T) {
	for _, sql := range []string{
		"SELECT E'a'\n'\\'' + 1 -- '\n",
		"SELECT E'a' -- c\n'\\'' + 1 -- '\n",
		"SELECT 'a'\r\n  'b' + 1",
		"SELECT 1 --\r+1+1",
		"SELECT a$b$ + 1 FROM t WHERE $1 = 2",
		"SELECT $a$x$a$$b$'$b$ + 1",
		"SELECT 1$$x$$ + 1",
		"SELECT U&'d\\0061t\\+000061' UESCAPE '\\' + 1",
		"SELECT B'10' + X'1F' + N'x' + 1",
		"SELECT somee'x' + e'\\\\' + E'\\'' + 1",
		"SELECT /* a /* b */ c */ 1 +/* x */ 2 */",
		"SELECT \"a\"\"b\" + 1, 'it''s' + 2",
		"SELECT $é$ + $é$ + 1",
	} {
		q, why, _ := quickCount(sql)
		s, err := scanCount(sql)
		if why != "" || err != nil {
			if (why != "") != (err != nil) {
				t.Errorf("%q: quick %q, scanner %v", sql, why, err)
			}
			continue
		}
		if q.Ops < s.Ops || q.Depth < s.Depth {
			t.Errorf("%q: quick counted %+v, the scanner %+v", sql, q, s)
		}
	}
}
