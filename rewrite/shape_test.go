package rewrite

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func TestLiteralShape(t *testing.T) {
	for _, tc := range []struct {
		text, norm, kinds string
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;", "SELECT abalance FROM pgbench_accounts WHERE aid = $1;", "i"},
		{"SELECT name FROM t WHERE a = 'x''y' AND b = 2.5 AND c = 1e3", "SELECT name FROM t WHERE a = $1 AND b = $2 AND c = $3", "snn"},
		{"SELECT 2147483647, 2147483648, 007", "SELECT $1, $2, $3", "ibi"},
		{"SELECT .5, 1., t.5", "SELECT $1, $2, t$3", "nnn"},
		{"SELECT $2 + 7, $1", "SELECT $2 + $3, $1", "i"},
		{`SELECT "it's" FROM "a""b" WHERE x = 'é'`, `SELECT "it's" FROM "a""b" WHERE x = $1`, "s"},
		{"SELECT a1, x$1, _9 FROM t1", "SELECT a1, x$1, _9 FROM t1", ""},
		{"SELECT 'a'  'b'", "SELECT $1  $2", "ss"},
		{"SELECT -5", "SELECT -$1", "i"},
		{"-- q '1'\nSELECT 2 /* '3' /* 4 */ 5 */ - 6--7", "-- q '1'\nSELECT $1 /* '3' /* 4 */ 5 */ - $2--7", "ii"},
		{"SELECT 1 */* 2 */ 3 +-- 4\r5", "SELECT $1 */* 2 */ $2 +-- 4\r$3", "iii"},
		// Operators keep their bytes: ^- and !=- are operators of their
		// own, +- and <>- a + or <> and a minus; the number is the same
		// token either way.
		{"SELECT 2^-1, x!=-1, x+-1, x<>-1, x-1, 1::int-1", "SELECT $1^-$2, x!=-$3, x+-$4, x<>-$5, x-$6, $7::int-$8", "iiiiiiii"},
		// \v is a space to PostgreSQL 17 (pg_query) and a syntax error
		// to 15: the scanner reads what 17 reads, and 15 refuses the
		// text whatever its literals.
		{"SELECT - \v5", "SELECT - \v$1", "i"},
		{"SELECT 'a'/**/'b', ..5, $1..2", "SELECT $2/**/$3, ..$4, $1..$5", "ssii"},
		{"SELECT 00000000000000000000001, 0002147483648", "SELECT $1, $2", "ib"},
	} {
		t.Run(tc.text, func(t *testing.T) {
			norm, kinds := tc.text, ""
			shape, n, ok := literalShape(tc.text)
			if n > 0 {
				kinds, norm, _ = strings.Cut(shape, "\x00")
			}
			if !ok || n != len(kinds) || norm != tc.norm || kinds != tc.kinds {
				t.Fatalf("got %q %q %v, want %q %q", norm, kinds, ok, tc.norm, tc.kinds)
			}
		})
	}
}

func TestLiteralShapeGivesUpOnWhatItDoesNotKnow(t *testing.T) {
	for _, text := range []string{
		"SELECT 1 /* unterminated",
		"SELECT 1 /* /* nested, unterminated */",
		"SELECT 'a' -- a line comment between two segments\n'b'",
		"SELECT 'a'\n/* a comment between two segments */ 'b'",
		"SELECT $$x$$",
		"SELECT $a$x$a$",
		"SELECT E'\\''",
		"SELECT e'x'",
		"SELECT B'101', X'1F', N'x'",
		"SELECT U&'\\0041'",
		`SELECT U&"\0041"`,
		"SELECT 'a'\n'b'",
		"SELECT 'a' \r\n\t 'b'",
		"SELECT 0x1F",
		"SELECT 0o17, 0b101",
		"SELECT 1_000",
		"SELECT 123abc",
		"SELECT 1..2",
		"SELECT 1.2.3",
		"SELECT 1e",
		"SELECT 1e+",
		"SELECT $1abc",
		"SELECT $",
		"SELECT 'unterminated",
		`SELECT "unterminated`,
		"SELECT x'1'",
		"SELECT 5'x'",
		"SELECT $1$", "SELECT $1_", "SELECT 5..", "SELECT 1.e", "SELECT $_$ $$ $_$",
		"SELECT 'a'\f\n'b'", "SELECT 'a'\v\n'b'", "SELECT 'a'\r'b'", `SELECT ""`, "SELECT é'x'", "SELECT x&'a'",
	} {
		if shape, _, ok := literalShape(text); ok {
			t.Errorf("%q: got %q, want no shape", text, shape)
		}
	}
}

// TestScanLiteralsAgreesWithPgQuery holds scanLiterals to pg_query's own
// scanner on every statement of the rewrite golden files and of the
// compatibility suite's BI query sets.
func TestScanLiteralsAgreesWithPgQuery(t *testing.T) {
	var texts []string
	files, _ := filepath.Glob(filepath.Join("testdata", "rewrite", "*.txtar"))
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		_, sql, ok := strings.Cut(string(raw), "\n-- sql --\n")
		if !ok {
			t.Fatalf("%s: no sql section", file)
		}
		sql, _, _ = strings.Cut(sql, "\n-- ")
		texts = append(texts, strings.TrimSpace(sql))
	}
	sets, _ := filepath.Glob(filepath.Join("..", "internal", "compat", "testdata", "*", "*.sql"))
	for _, file := range sets {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, line := range strings.Split(string(raw), "\n") {
			if !strings.HasPrefix(line, "--") {
				lines = append(lines, line)
			}
		}
		stmts, err := pg_query.SplitWithScanner(strings.Join(lines, "\n"), true)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		texts = append(texts, stmts...)
	}
	if len(texts) < 100 {
		t.Fatalf("only %d texts: the corpus moved", len(texts))
	}
	shaped := 0
	for _, text := range texts {
		if msg := compareWithScanner(text); msg != "" {
			t.Errorf("%s\n%s", msg, text)
		}
		if _, _, ok := literalShape(text); ok {
			shaped++
		}
	}
	t.Logf("%d of %d texts have a literal shape", shaped, len(texts))
}

// compareWithScanner returns how scanLiterals and pg_query's scanner
// disagree on text, or "" when they agree or scanLiterals gives up.
func compareWithScanner(text string) string {
	spans, maxParam, ok := scanLiterals(text, nil)
	if !ok {
		return ""
	}
	res, err := pg_query.Scan(text)
	if err != nil {
		// A text the lexer refuses (an operator over 63 bytes, say) never
		// parses, so no shape is ever learnt from it; and a literal's
		// value cannot make the lexer refuse a text that has that shape.
		return ""
	}
	var want []literalSpan
	wantParam := 0
	for _, tok := range res.Tokens {
		s := literalSpan{start: int(tok.Start), end: int(tok.End)}
		switch tok.Token {
		case pg_query.Token_ICONST:
			s.kind = kindInt
		case pg_query.Token_FCONST:
			s.kind = kindNumeric
			if _, err := strconv.ParseInt(text[s.start:s.end], 10, 64); err == nil {
				s.kind = kindBigInt
			}
		case pg_query.Token_SCONST:
			s.kind = kindString
		case pg_query.Token_PARAM:
			var p int
			fmt.Sscanf(text[s.start+1:s.end], "%d", &p)
			wantParam = max(wantParam, p)
			continue
		case pg_query.Token_USCONST, pg_query.Token_BCONST, pg_query.Token_XCONST:
			return fmt.Sprintf("scanLiterals read a text holding a %v token", tok.Token)
		case pg_query.Token_SQL_COMMENT, pg_query.Token_C_COMMENT:
			continue
		default:
			continue
		}
		want = append(want, s)
	}
	if fmt.Sprint(spans) != fmt.Sprint(want) || maxParam != wantParam {
		return fmt.Sprintf("scanLiterals: %v (highest parameter %d)\npg_query:     %v (highest parameter %d)", spans, maxParam, want, wantParam)
	}
	return ""
}

// FuzzScanLiterals holds scanLiterals to pg_query's scanner: any text it
// reads must have exactly the literal tokens it reports.
//
//	go test ./rewrite -run '^$' -fuzz FuzzScanLiterals -fuzztime 1m
func FuzzScanLiterals(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
		"SELECT 'a''b', \"c\"\"d\", 1.5e-3, .5, $2 FROM t1 WHERE x = 2147483648",
		"SELECT 'a'\n'b'", "SELECT E'\\'' -- '", "SELECT 0x1F, 1_000, 1..2",
		"SELECT U&'\\0041' UESCAPE '!'", "SELECT $q$'$q$", "SELECT 'a' /* ' */",
		"-- q '1'\nSELECT 1 /* 2 /* 3 */ '4' */ + 5--6\n", "SELECT 'a' -- x\n'b'", "SELECT 'a'\n/* x */ 'b'", "SELECT 1 */* 2 */ 3 +-- 4\r5",
		// The nineteenth red team's classes: PostgreSQL 15 and 17 lex
		// them apart (\v is a space to 17 only) or pgveil must give up.
		"SELECT 1\v+ 2", "SELECT - \v5", "SELECT 'a'\v\n'b'", "SELECT 'a'\f\n'b'", "SELECT 'a'\r'b'",
		"SELECT $1a, $1$, a$1, $0, $01", "SELECT 1e, 1e+, 1.e5, .5, 5., t.5, ..5, $1..2, 1.5.", "SELECT 0o7, 0b1, 0x, 1_",
		"SELECT @-1, +-1, !=-1, <>-1, 2^-1, x-1, x -1, 1::int-1", "SELECT 'a'/**/'b', 1/**/'a', 'a'1",
		"SELECT \"\", \"a\"\"b\", U&\"d\\0061t\\+000061\" UESCAPE '!'", "SELECT B'01', X'1F', N'x', e'x', u&'x', é'x'",
		"SELECT $$a$$, $_$ $$ $_$, $a$b$a$, 'x'$$y$$", "SELECT :var, :'var', \\x 1", "SELECT \x81' 1", "SELECT 00000000000000000000001, 0002147483648",
		"SELECT " + strings.Repeat("a", 70) + " 1, \"" + strings.Repeat("é", 40) + "\" 2",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		if strings.IndexByte(text, 0) >= 0 || len(text) > 4096 {
			return
		}
		if msg := compareWithScanner(text); msg != "" {
			t.Fatalf("%s\ntext: %q", msg, text)
		}
	})
}
