package audit

import (
	"strings"
	"testing"
)

// TestRedactLiteralsOfUtilityStatements checks that redact_literals
// keeps no literal of a statement pg_query's normalisation leaves alone:
// it replaces the constants of queries only, and EXECUTE's arguments,
// PREPARE's body or COPY's file name are literals as much as a WHERE's.
func TestRedactLiteralsOfUtilityStatements(t *testing.T) {
	for _, tc := range []struct {
		name, sql, want string
	}{
		{"EXECUTE's arguments are redacted", "EXECUTE p('secret1', 42)", "EXECUTE p($1, $2)"},
		{"EXECUTE's one-digit arguments are redacted, though the text grows", "EXECUTE p(5, 6, 7)", "EXECUTE p($1, $2, $3)"},
		{"a PREPARE's body is redacted", "PREPARE p AS SELECT 'secret2'", "PREPARE p AS SELECT $1"},
		{"a PREPARE after a query is redacted too", "SELECT 'secret3'; PREPARE q AS SELECT 'secret4'", "SELECT $1; PREPARE q AS SELECT $2"},
		{"COPY's file name is redacted", "COPY countries TO '/tmp/secret5'", "COPY countries TO $1"},
		{"a COMMENT's text is redacted", "COMMENT ON TABLE t IS 'secret6'", "COMMENT ON TABLE t IS $1"},
		{"CREATE TABLE AS's constants are redacted", "CREATE TABLE t AS SELECT 'secret7'", "CREATE TABLE t AS SELECT $1"},
		{"a query's constants are redacted as before", "SELECT * FROM t WHERE c = 'secret8' AND d = $1", "SELECT * FROM t WHERE c = $2 AND d = $1"},
		{"a text the scanner cannot read with certainty is withheld", "PREPARE p AS SELECT E'secret9'", "<statement not redactable with certainty: 30 bytes withheld>"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			l, err := Open(Options{File: path, RedactLiterals: true})
			if err != nil {
				t.Fatal(err)
			}
			l.Write(&Record{Event: EventStatement, SQL: tc.sql, Rewritten: tc.sql + " "})
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			e := readEntries(t, path)[0]
			if e.SQL != tc.want {
				t.Errorf("sql %q, want %q", e.SQL, tc.want)
			}
			if strings.Contains(e.Rewritten, "secret") {
				t.Errorf("rewritten %q holds a literal", e.Rewritten)
			}
		})
	}
}
