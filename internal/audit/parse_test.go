package audit

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseLine(t *testing.T) {
	good := string(appendLineEnd(appendSigned(nil, &Entry{Seq: 7, Record: *statement(7), Prev: zeroMAC}), strings.Repeat("ab", 32)))
	tests := []struct {
		name, line, problem string
	}{
		{"a written line parses", good, ""},
		{"a line without its newline parses", strings.TrimSuffix(good, "\n"), ""},
		{"a cut line is partial", good[:len(good)/2], `does not end with a "mac" field`},
		{"an empty line is not a record", "", "an empty line, not a record"},
		{"the beginning of a record cut short is partial", `{"se`, `does not end with a "mac" field (a partial line?)`},
		{"a line of text is not a record", "2026-11-30 02:15:00 LOG: connection received", "not a record: the line does not begin with"},
		{"a JSON object of another shape is not a record", `{"level":"info","msg":"started"}`, "not a record: the line does not begin with"},
		{"gzip data is not a record", "\x1f\x8b\x08\x00\x00\x00", "not a record: gzip data"},
		{"binary data is not a record", "PK\x03\x04\xff\xfe", "not a record: binary data"},
		{"a line without seq is refused", strings.Replace(good, `"seq":7,`, ``, 1), `no "seq" field`},
		{"a bad time is refused", strings.Replace(good, `"time":"2026-`, `"time":"x2026-`, 1), `"time" is not`},
		{"a bad prev is refused", strings.Replace(good, `"prev":"0`, `"prev":"Z`, 1), `"prev" is not`},
		{"a bad duration is refused", strings.Replace(good, `"duration_ms":0.007`, `"duration_ms":1e999`, 1), `duration_ms`},
		{"broken JSON is refused", strings.Replace(good, `"user":`, `"user"`, 1), "not a JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := ParseLine([]byte(tt.line))
			if tt.problem == "" {
				if err != nil {
					t.Fatal(err)
				}
				if e.Seq != 7 || e.User != "paul" || e.Duration != 7*time.Microsecond || !e.Time.Equal(statement(7).Time) {
					t.Fatalf("%+v", e)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.problem) {
				t.Fatalf("error %v, want %q", err, tt.problem)
			}
		})
	}
}

// FuzzParseLine feeds arbitrary lines to ParseLine, which must not panic,
// and checks that what it accepts encodes to a line that parses back to
// the same bytes: the writer's format and the reader agree; InertLine,
// which audit search shows lines through, keeps the record.
func FuzzParseLine(f *testing.F) {
	var b []byte
	for i := range 3 {
		e := &Entry{Seq: uint64(i + 1), Record: *statement(i), Prev: zeroMAC}
		e.Message = "quote \" backslash \\ newline \n \u2028"
		b = appendLineEnd(appendSigned(b[:0], e), strings.Repeat("0f", 32))
		f.Add(bytes.Clone(b))
	}
	f.Add([]byte(`{"seq":1,"time":"2026-01-01T00:00:00Z","event":"x","duration_ms":1e3,"prev":"` + zeroMAC + `","mac":"` + zeroMAC + `"}`))
	f.Add([]byte(`{"seq":18446744073709551615,"time":"2026-01-01T00:00:00+02:00","event":"\ud800","rows":-9223372036854775808,"prev":"` + zeroMAC + `","mac":"` + zeroMAC + `"}`))
	f.Fuzz(func(t *testing.T, line []byte) {
		e, err := ParseLine(line)
		if err != nil {
			return
		}
		shown, err := ParseLine(InertLine(line))
		if err != nil || !reflect.DeepEqual(shown, e) {
			t.Fatalf("InertLine changed the record: %v\n%+v\n%+v", err, shown, e)
		}
		mac := strings.Repeat("1", 64)
		once := appendLineEnd(appendSigned(nil, e), mac)
		e2, err := ParseLine(once)
		if err != nil {
			t.Fatalf("a re-encoded line does not parse: %v\n%s", err, once)
		}
		twice := appendLineEnd(appendSigned(nil, e2), mac)
		if !bytes.Equal(once, twice) {
			t.Fatalf("encoding is not stable:\n%s%s", once, twice)
		}
	})
}
