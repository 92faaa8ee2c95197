package audit

import (
	"strings"
	"testing"
)

// TestRedactLiteralsDropsComments checks that a redacted record keeps no
// comment of the statement: a comment holds what a literal would, and
// redact_literals keeps only the statement's tokens. Each comment leaves
// a placeholder; a statement that may hold a secret loses its comments
// without redact_literals too.
func TestRedactLiteralsDropsComments(t *testing.T) {
	long := "SELECT 1 -- password: hunter2\n" + strings.Repeat("+ 1 ", 400)
	for _, tc := range []struct {
		name, sql string
		redact    bool
		maxText   int
		want      string
	}{
		{"a block and a line comment are replaced", "/* card 4111111111111111 */ SELECT 1 -- password: hunter2\n", true, 0,
			"/*…*/ SELECT $1 --…\n"},
		{"nested block comments are replaced whole", "SELECT /* a /* 4111111111111111 */ b */ 1", true, 0,
			"SELECT /*…*/ $1"},
		{"a comment-like string is a literal, replaced as one", "SELECT '/* 4111111111111111 */'", true, 0,
			"SELECT $1"},
		{"a text cut to max_text loses its comments too", long, true, 1024,
			"SELECT $1 --…\n+ $2 + $3 …"},
		{"a statement that may hold a password loses them without redact_literals",
			"ALTER ROLE marie PASSWORD 'x' /* it is hunter2 */", false, 0, "ALTER ROLE marie PASSWORD $1 /*…*/"},
		{"without redact_literals, an ordinary statement is kept as sent", "/* card 4111 */ SELECT 1", false, 0,
			"/* card 4111 */ SELECT 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			l, err := Open(Options{File: path, RedactLiterals: tc.redact, MaxText: tc.maxText})
			if err != nil {
				t.Fatal(err)
			}
			l.Write(&Record{Event: EventStatement, SQL: tc.sql, Rewritten: tc.sql + " "})
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			e := readEntries(t, path)[0]
			if !strings.HasPrefix(e.SQL, strings.TrimSuffix(tc.want, "…")) {
				t.Errorf("sql %q, want %q", e.SQL, tc.want)
			}
			for _, secret := range []string{"4111", "hunter2"} {
				if tc.redact && strings.Contains(e.SQL+e.Rewritten, secret) {
					t.Errorf("record %q, rewritten %q holds %q", e.SQL, e.Rewritten, secret)
				}
			}
			if tc.redact && tc.maxText == 0 && e.Fingerprint == "" {
				t.Errorf("redacted %q lost its fingerprint", e.SQL)
			}
		})
	}
}
