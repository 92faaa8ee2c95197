package audit

import (
	"strings"
	"testing"
	"unicode"
)

// TestLinesArePrintable: operators read the trail with tail -f, less or
// pgveil audit search --format json, which prints the lines as written.
// A value a client chose (a login name, an application_name, a
// statement's comment) is escaped in the line wherever a terminal would
// act on it, and decodes to exactly what the client sent.
func TestLinesArePrintable(t *testing.T) {
	for _, tt := range []struct{ name, value string }{
		{"an escape sequence", "x\x1b[2J\x1b]52;c;Y3VybA==\x07"},
		{"a C1 control sequence introducer", "x\u009b2J"},
		{"a C1 operating system command", "x\u009d52;c;Y3VybA==\u009c"},
		{"a bidirectional override", "SELECT 1 -- \u202edeinied"},
		{"bidirectional isolates", "a\u2066b\u2067c\u2068d\u2069"},
		{"a zero-width joiner and space", "ma\u200dl\u200blory"},
		{"a byte order mark", "\ufeffSELECT 1"},
		{"a tag character beyond the basic plane", "x\U000e0041y"},
		{"a line separator", "x\u2028y\u2029z"},
		{"a carriage return", "allowed\rdenied"},
		{"a Hangul filler that prints blank", "marie\u3164"},
	} {
		t.Run("the line escapes "+tt.name, func(t *testing.T) {
			e := &Entry{Seq: 1, Record: *statement(1), Prev: zeroMAC}
			e.User, e.ApplicationName, e.SQL, e.Message = tt.value, tt.value, tt.value, tt.value
			line := appendLineEnd(appendSigned(nil, e), zeroMAC)
			for _, r := range strings.TrimSuffix(string(line), "\n") {
				if unicode.IsControl(r) || unicode.In(r, unicode.Cf, unicode.Zl, unicode.Zp, unicode.Other_Default_Ignorable_Code_Point) {
					t.Fatalf("raw %U in %s", r, line)
				}
			}
			got, err := ParseLine(line)
			if err != nil {
				t.Fatal(err)
			}
			if got.User != tt.value || got.ApplicationName != tt.value || got.SQL != tt.value || got.Message != tt.value {
				t.Errorf("decoded %+q %+q %+q %+q, want %+q", got.User, got.ApplicationName, got.SQL, got.Message, tt.value)
			}
		})
	}
}
