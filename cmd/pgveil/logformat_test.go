package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"go.uber.org/zap"
)

// hostile are values a governed user controls (a login name, an
// application_name, the text of an error) that reach pgveil's own log.
var hostile = []struct{ name, value, visible string }{
	{"an escape sequence that clears the screen", "mallory\x1b[2J", `\u001b[2J`},
	{"a C1 control sequence introducer", "mallory\u009b2J", `\u009b2J`},
	{"an OSC 52 clipboard write", "mallory\u009d52;c;Y3VybA==\u009c", `\u009d52`},
	{"a bidirectional override", "mallory\u202edeilppa", `\u202e`},
	{"a bidirectional isolate", "mallory\u2066x\u2069", `\u2066`},
	{"a zero-width space", "mal\u200blory", `\u200b`},
	{"a line separator", "mallory\u2028INFO session started", `\u2028`},
	{"a carriage return that overwrites the line", "mallory\rINFO  session started", `\r`},
	{"an invalid UTF-8 byte", "mallory\x9b2J", `\ufffd2J`},
	{"a Hangul filler that prints blank", "marie\u3164", `marie\u3164`},
	{"a tag character beyond the basic plane", "mallory\U000e0041", `\U000e0041`},
}

// TestConsoleLogIsPrintable: the log is read on a terminal (the JSON
// format through tail or less), so no value a client chose acts on it;
// the JSON format keeps the values exact.
func TestConsoleLogIsPrintable(t *testing.T) {
	for _, tt := range hostile {
		t.Run("the console format shows "+tt.name+" as an escape", func(t *testing.T) {
			var out bytes.Buffer
			log, err := newLogger("console", "info", &out)
			if err != nil {
				t.Fatal(err)
			}
			log.With(zap.String("user", tt.value)).Warn("authentication failed",
				zap.String("reason", tt.value), zap.Error(errors.New(tt.value)))
			line := out.String()
			if !strings.HasSuffix(line, "\n") || strings.Count(line, "\n") != 1 {
				t.Fatalf("not one line: %q", line)
			}
			for _, r := range strings.TrimSuffix(line, "\n") {
				if r == '\t' {
					continue
				}
				if unprintable(r) || r == '\ufffd' {
					t.Fatalf("raw %U in %q", r, line)
				}
			}
			if !strings.Contains(line, tt.visible) {
				t.Errorf("%q does not show %q", line, tt.visible)
			}
		})
		t.Run("the JSON format escapes "+tt.name+" and keeps it exact", func(t *testing.T) {
			var out bytes.Buffer
			log, err := newLogger("json", "info", &out)
			if err != nil {
				t.Fatal(err)
			}
			log.Warn("authentication failed", zap.String("user", tt.value))
			for _, r := range strings.TrimSuffix(out.String(), "\n") {
				if unprintable(r) {
					t.Fatalf("raw %U in %q", r, out.String())
				}
			}
			var rec map[string]any
			if err := json.Unmarshal(out.Bytes(), &rec); err != nil {
				t.Fatalf("%v: %q", err, out.String())
			}
			want := strings.ToValidUTF8(tt.value, "\ufffd")
			if rec["user"] != want {
				t.Errorf("user %q, want %q", rec["user"], want)
			}
		})
	}
}
