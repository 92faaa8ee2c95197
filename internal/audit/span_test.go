package audit

import (
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/pgveil/pgveil/internal/printable"
)

// TestTrailSpanningTheEscapes: lines written before appendString escaped
// C1, format and filler characters held them raw. The MAC covers the
// bytes as written, so such a trail still verifies, a writer of today
// resumes its chain, and a chain whose rotated files span the change
// verifies as one; the raw and the escaped lines decode to the same
// values.
func TestTrailSpanningTheEscapes(t *testing.T) {
	hostile := "mallory\u202e\u009b2J\u200b\u3164\U000e0041\x7f"
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := Open(Options{File: path, Key: testKey})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		r := statement(i)
		r.User, r.SQL = hostile, "SELECT 1 -- "+hostile
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	// Write the lines back as the encoder of before wrote them: the
	// characters raw, each line signed again after the one before.
	old := strings.NewReplacer(`\u202e`, "\u202e", `\u009b`, "\u009b", `\u200b`, "\u200b", `\u3164`, "\u3164",
		`\udb40\udc41`, "\U000e0041", `\u007f`, "\x7f")
	ls := lines(t, path)
	prev := zeroMAC
	for i, line := range ls {
		raw := old.Replace(line)
		if i > 0 && raw == line {
			t.Fatalf("line %d holds no escape to undo: %s", i+1, line)
		}
		ls[i] = resign(t, raw, prev, testKey)
		prev = macOf(t, ls[i])
	}
	setLines(t, path, ls)
	// A writer of today resumes the chain and rotates mid-way.
	files := writeRunOpts(t, Options{File: path, Key: testKey, MaxSize: int64(len(ls[1]) * 3)}, 3, 6, false, true)
	if len(files) < 2 {
		t.Fatalf("no rotation: %v", files)
	}
	if rep := verify(t, testKey, files); !rep.OK || rep.Records != uint64(len(ls)+7) {
		t.Fatalf("a trail spanning the change does not verify: %+v", rep)
	}
	for i, line := range ls[1:] {
		e, err := ParseLine([]byte(line))
		if err != nil {
			t.Fatal(err)
		}
		again := appendLineEnd(appendSigned(nil, e), e.MAC)
		if e.User != hostile || strings.Contains(string(again), "\u202e") {
			t.Fatalf("line %d decodes to %+q, encodes again to %s", i+2, e.User, again)
		}
	}
}

// TestInertLine: a line of before the escapes, or a hand-edited one,
// is shown with escapes that decode to the same record; a line written
// today is shown as it is.
func TestInertLine(t *testing.T) {
	hostile := "mallory\u202e\u009b2J\u200b\u3164\U000e0041\x7f"
	e := &Entry{Seq: 1, Record: *statement(1), Prev: zeroMAC}
	e.User, e.SQL = hostile, "SELECT 1 -- "+hostile
	today := appendLineEnd(appendSigned(nil, e), zeroMAC)
	today = today[:len(today)-1]
	old := strings.NewReplacer(`\u202e`, "\u202e", `\u009b`, "\u009b", `\u200b`, "\u200b", `\u3164`, "\u3164",
		`\udb40\udc41`, "\U000e0041", `\u007f`, "\x7f", `"seq":1,`, "\"seq\":1,\r\t", `"SELECT`, "\"SE\xffLECT")
	for _, tt := range []struct{ name, line string }{
		{"a line written today is shown as it is", string(today)},
		{"a line of before is shown with escapes", old.Replace(string(today))},
	} {
		t.Run(tt.name, func(t *testing.T) {
			want, err := ParseLine([]byte(tt.line))
			if err != nil {
				t.Fatal(err)
			}
			shown := InertLine([]byte(tt.line))
			if tt.line == string(today) && string(shown) != tt.line {
				t.Fatalf("changed to %s", shown)
			}
			for _, r := range string(shown) {
				if printable.Unprintable(r) || r == utf8.RuneError {
					t.Fatalf("raw %U in %q", r, shown)
				}
			}
			got, err := ParseLine(shown)
			if err != nil {
				t.Fatalf("%v: %s", err, shown)
			}
			if got.User != want.User || got.SQL != want.SQL || got.Seq != want.Seq {
				t.Fatalf("shown line decodes to %+q %+q, the line to %+q %+q", got.User, got.SQL, want.User, want.SQL)
			}
		})
	}
}
