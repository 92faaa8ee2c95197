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
