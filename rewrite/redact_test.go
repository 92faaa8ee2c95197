package rewrite

import (
	"strings"
	"testing"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

func TestRedactLiterals(t *testing.T) {
	for _, c := range []struct {
		name, text string
		keep       int
		want       string
		kept       int
		ok         bool
	}{
		{"literals become parameters numbered as pg_query numbers them",
			"SELECT * FROM t WHERE a = 'secret' AND b = $2 AND c = 4.5", 1000,
			"SELECT * FROM t WHERE a = $3 AND b = $2 AND c = $4", 57, true},
		{"comments go too, each for a placeholder, the newline ending one kept",
			"/* card 4111111111111111 */ SELECT 1 -- password: hunter2\nFROM t", 1000,
			"/*…*/ SELECT $1 --…\nFROM t", 64, true},
		{"block comments nest, as PostgreSQL's do",
			"SELECT 1 /* a /* b */ hunter2 */ + 2", 1000, "SELECT $1 /*…*/ + $2", 36, true},
		{"a comment glued to its neighbours keeps them apart",
			"SELECT 1/*x*/FROM t--y\r", 1000, "SELECT $1/*…*/FROM t--…\r", 23, true},
		{"what looks like a comment inside a string is the string",
			"SELECT '/* 4111 */', '-- hunter2'", 1000, "SELECT $1, $2", 33, true},
		{"or inside a quoted identifier, which stays",
			`SELECT 1 AS "-- x /* y */"`, 1000, `SELECT $1 AS "-- x /* y */"`, 26, true},
		{"a comment the cut goes through is replaced whole",
			"SELECT 1 /* hunter2 */, 2", 14, "SELECT $1 ", 9, true},
		{"an unterminated comment is refused",
			"SELECT 1 /* hunter2", 100, "", 19, false},
		{"a longer text is cut to keep bytes",
			"SELECT 'a', 'b', 'c'", 13, "SELECT $1, $2", 15, true},
		{"never inside a parameter",
			"SELECT 'a', 'b', 'c'", 12, "SELECT $1, ", 12, true},
		{"a literal the cut goes through is replaced whole",
			"SELECT 'secret', 1", 10, "SELECT $1", 15, true},
		{"nor inside a character",
			"SELECT été", 8, "SELECT ", 7, true},
		{"what the scanner cannot read with certainty is refused",
			"SELECT E'\\'', 'secret'", 100, "", 22, false},
		{"even past the cut, when a token read before it goes on there",
			"SELECT 'unterminated", 10, "", 10, false},
		{"what comes after the cut is not read",
			"SELECT 1, $$x$$", 9, "SELECT $1", 8, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, kept, ok := RedactLiterals(c.text, c.keep)
			if got != c.want || kept != c.kept || ok != c.ok {
				t.Errorf("RedactLiterals(%q, %d) = %q, %d, %v; want %q, %d, %v", c.text, c.keep, got, kept, ok, c.want, c.kept, c.ok)
			}
		})
	}
}

// FuzzRedactLiterals holds RedactLiterals to pg_query's scanner: what it
// returns of a text it reads holds no literal constant, and no comment
// but the placeholders.
//
//	go test ./rewrite -run '^$' -fuzz FuzzRedactLiterals -fuzztime 1m
func FuzzRedactLiterals(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 4711;",
		"SELECT 'a''b', \"c\"\"d\", 1.5e-3, .5, $2 FROM t1 WHERE x = 2147483648",
		"SELECT 'a'\n'b'", "SELECT E'\\'' -- '", "SELECT 0x1F, 1_000, 1..2",
		"ALTER ROLE marie PASSWORD 'MyNewS3cret!'", "SELECT 'a' /* ' */ 'b'",
		"/* card 4111111111111111 */ SELECT 1 -- password: hunter2\n", "SELECT 1 /* a /* b */ c */ +--x\r2",
		"SELECT \"--\" FROM t /**/", "SELECT 1 */* x */ 2",
	} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, text string, keep int) {
		if strings.IndexByte(text, 0) >= 0 || len(text) > 4096 || !utf8.ValidString(text) {
			return
		}
		got, kept, ok := RedactLiterals(text, keep)
		if !ok {
			return
		}
		if len(got) > max(keep, 0) || kept > len(text) {
			t.Fatalf("RedactLiterals(%q, %d) = %q, %d: longer than asked", text, keep, got, kept)
		}
		if kept < len(text) {
			// A prefix may end in a comment or a quote: scan it closed.
			return
		}
		res, err := pg_query.Scan(got)
		if err != nil {
			return
		}
		for _, tok := range res.Tokens {
			switch tok.Token {
			case pg_query.Token_SCONST, pg_query.Token_ICONST, pg_query.Token_FCONST, pg_query.Token_USCONST,
				pg_query.Token_BCONST, pg_query.Token_XCONST:
				t.Fatalf("RedactLiterals(%q) = %q holds the literal %q", text, got, got[tok.Start:tok.End])
			case pg_query.Token_C_COMMENT, pg_query.Token_SQL_COMMENT:
				if c := got[tok.Start:tok.End]; c != CommentRedacted && c != LineCommentRedacted {
					t.Fatalf("RedactLiterals(%q) = %q holds the comment %q", text, got, c)
				}
			}
		}
	})
}
