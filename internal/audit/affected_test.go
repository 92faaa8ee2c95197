package audit

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAffectedRows checks that a write's record keeps the rows it
// changed: written as "affected" after "rows", read back, under the
// chain's MAC; a line written before the field existed reads as 0.
func TestAffectedRows(t *testing.T) {
	t.Run("a write's count is written, read back and verified", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		l, err := Open(Options{File: path, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		r := statement(1)
		r.Kind, r.SQL, r.Rows, r.Affected = "delete", "DELETE FROM responses WHERE nps < 3", 0, 5000
		l.Write(r)
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"affected":5000,`) {
			t.Fatalf("no affected field in %s", b)
		}
		e, err := ParseLine(b)
		if err != nil || e.Affected != 5000 {
			t.Fatalf("parsed %+v, %v", e, err)
		}
		if rep, err := Verify(testKey, []string{path}); err != nil || !rep.OK {
			t.Fatalf("verify: %+v, %v", rep, err)
		}
	})
	t.Run("a record that changed nothing has no affected field", func(t *testing.T) {
		line := string(appendSigned(nil, &Entry{Seq: 1, Record: *statement(3), Prev: zeroMAC}))
		if strings.Contains(line, "affected") {
			t.Fatalf("affected in %s", line)
		}
	})
	t.Run("a line of an older trail parses with 0", func(t *testing.T) {
		good := string(appendLineEnd(appendSigned(nil, &Entry{Seq: 7, Record: *statement(7), Prev: zeroMAC}), strings.Repeat("ab", 32)))
		e, err := ParseLine([]byte(good))
		if err != nil || e.Affected != 0 || e.Rows != 7 {
			t.Fatalf("%+v, %v", e, err)
		}
	})
}
