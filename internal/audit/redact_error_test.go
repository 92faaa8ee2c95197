package audit

import (
	"strings"
	"testing"
)

// TestRedactLiteralsOfUpstreamErrors checks that redact_literals keeps
// no part of a value PostgreSQL quotes in an error: it does not escape
// the double quotes of the value it echoes, so a literal holding some
// must not leave a part of it outside the quotes the scrubber pairs.
func TestRedactLiteralsOfUpstreamErrors(t *testing.T) {
	for _, tc := range []struct {
		name, upstream, want string
	}{
		{"a quoted value is scrubbed", `42704: unrecognized configuration parameter "hunter1"`, `42704: unrecognized configuration parameter "…"`},
		{"a value holding double quotes is scrubbed whole", `42704: unrecognized configuration parameter "a" hunter2 "b"`, `42704: unrecognized configuration parameter "…"`},
		{"an error quoting no value is kept", `22012: division by zero`, `22012: division by zero`},
		{"an unterminated quote drops the rest", `22P02: invalid input syntax for type integer: "hunter3`, `22P02: invalid input syntax for type integer: "…"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			l, err := Open(Options{File: path, RedactLiterals: true})
			if err != nil {
				t.Fatal(err)
			}
			l.Write(&Record{Event: EventStatement, SQL: "SELECT 1", UpstreamError: tc.upstream})
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			e := readEntries(t, path)[0]
			if e.UpstreamError != tc.want || strings.Contains(e.UpstreamError, "hunter") {
				t.Errorf("upstream_error %q, want %q", e.UpstreamError, tc.want)
			}
		})
	}
}

// TestRedactedTextsFingerprint checks that a record whose text is
// redacted keeps no fingerprint that depends on the literals it hides:
// pg_query's fingerprint of some utility statements hashes their string
// constants (COPY's file or program, NOTIFY's payload, COMMENT's text,
// CREATE ROLE's password), and anyone reading the trail could confirm a
// guessed literal by fingerprinting the statement with it. A query's
// fingerprint, which ignores its constants, is kept.
func TestRedactedTextsFingerprint(t *testing.T) {
	fingerprints := func(t *testing.T, redact bool, sqls ...string) []string {
		t.Helper()
		path := t.TempDir() + "/audit.log"
		l, err := Open(Options{File: path, RedactLiterals: redact})
		if err != nil {
			t.Fatal(err)
		}
		for _, sql := range sqls {
			l.Write(&Record{Event: EventStatement, SQL: sql})
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, e := range readEntries(t, path) {
			if e.Event == EventStatement {
				out = append(out, e.Fingerprint)
			}
		}
		return out
	}
	for _, tc := range []struct {
		name   string
		redact bool
		a, b   string
	}{
		{"COPY's program", true, "COPY t FROM PROGRAM 'cat /hunter1'", "COPY t FROM PROGRAM 'cat /hunter2'"},
		{"NOTIFY's payload", true, "NOTIFY ch, 'hunter1'", "NOTIFY ch, 'hunter2'"},
		{"COMMENT's text", true, "COMMENT ON TABLE t IS 'hunter1'", "COMMENT ON TABLE t IS 'hunter2'"},
		{"a password, without redact_literals", false, "CREATE ROLE r PASSWORD 'hunter1'", "CREATE ROLE r PASSWORD 'hunter2'"},
	} {
		t.Run("the fingerprint of "+tc.name+" does not tell its literal", func(t *testing.T) {
			fp := fingerprints(t, tc.redact, tc.a, tc.b)
			if fp[0] != fp[1] {
				t.Errorf("fingerprints %q and %q differ with the literal", fp[0], fp[1])
			}
		})
	}
	t.Run("a query's fingerprint is kept", func(t *testing.T) {
		fp := fingerprints(t, true, "SELECT * FROM t WHERE c = 'hunter1'", "SELECT * FROM t WHERE c = 'hunter2'")
		if fp[0] == "" || fp[0] != fp[1] {
			t.Errorf("fingerprints %q and %q, want the same, not empty", fp[0], fp[1])
		}
	})
}

// TestRedactedTextsRefusalMessage checks that a record whose text is kept
// without its literals (redact_literals, or a text holding a secret) keeps
// none in the message of its refusal either: pgveil's refusals quote what
// they refuse, a literal of the statement among them.
func TestRedactedTextsRefusalMessage(t *testing.T) {
	for _, tc := range []struct {
		name   string
		redact bool
		sql    string
		want   string
	}{
		{"redact_literals scrubs the quoted literal of a refusal", true,
			"SELECT set_config('hunter1', 'x', false)",
			`pgveil refused the statement: set_config may not change the setting "…": named by a string literal`},
		{"a text holding a password scrubs it without redact_literals", false,
			"SELECT dblink_connect('password=hunter1')",
			`pgveil refused the statement: set_config may not change the setting "…": named by a string literal`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := t.TempDir() + "/audit.log"
			l, err := Open(Options{File: path, RedactLiterals: tc.redact})
			if err != nil {
				t.Fatal(err)
			}
			l.Write(&Record{Event: EventStatement, SQL: tc.sql, Decision: DecisionDenied,
				Message: `pgveil refused the statement: set_config may not change the setting "hunter1": named by a string literal`})
			l.Write(&Record{Event: EventStatement, SQL: "SELECT 1", Decision: DecisionDenied, Message: `refused "kept"`})
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
			es := readEntries(t, path)
			if es[0].Message != tc.want || strings.Contains(es[0].SQL, "hunter") {
				t.Errorf("message %q, sql %q; want message %q", es[0].Message, es[0].SQL, tc.want)
			}
			if want := map[bool]string{true: `refused "…"`, false: `refused "kept"`}[tc.redact]; es[1].Message != want {
				t.Errorf("a text without literals to hide: message %q, want %q", es[1].Message, want)
			}
		})
	}
}
