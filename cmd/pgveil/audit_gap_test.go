package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestAuditSearchSaysWhenRecordsAreMissing checks that pgveil audit
// search, whose answer an auditor reads as "this is all that happened",
// says when the files it read have holes in their seq: a rotated file
// not given, a line removed. A search that prints nothing must not hide
// a gap.
func TestAuditSearchSaysWhenRecordsAreMissing(t *testing.T) {
	files := writeAuditChain(t)
	t.Run("a rotated file left out is named as missing records", func(t *testing.T) {
		given := append([]string{files[0]}, files[2:]...)
		_, _, errOut := runCLI("", append([]string{"audit", "search", "--user", "nobody"}, given...)...)
		if !strings.Contains(errOut, "records missing before seq") || !strings.Contains(errOut, "run pgveil audit verify") {
			t.Errorf("stderr %q: want the gap named", errOut)
		}
	})
	t.Run("a line removed from a file is named as a missing record", func(t *testing.T) {
		data, err := os.ReadFile(files[1])
		if err != nil {
			t.Fatal(err)
		}
		lines := strings.SplitAfter(string(data), "\n")
		if len(lines) < 3 {
			t.Fatalf("%d lines: the test needs 3", len(lines))
		}
		cut := filepath.Join(t.TempDir(), filepath.Base(files[1]))
		if err := os.WriteFile(cut, []byte(lines[0]+strings.Join(lines[2:], "")), 0o600); err != nil {
			t.Fatal(err)
		}
		given := append([]string{files[0], cut}, files[2:]...)
		_, _, errOut := runCLI("", append([]string{"audit", "search", "--format", "json"}, given...)...)
		if !strings.Contains(errOut, ":2: 1 records missing before seq") ||
			!strings.Contains(errOut, "1 records missing from the files given") {
			t.Errorf("stderr %q: want the one record missing named", errOut)
		}
	})
	t.Run("a complete trail, from its latest files only, says nothing", func(t *testing.T) {
		_, _, errOut := runCLI("", append([]string{"audit", "search"}, files[1:]...)...)
		if errOut != "" {
			t.Errorf("stderr %q: want none", errOut)
		}
	})
	t.Run("a line repeated is left to verify, not counted as a gap", func(t *testing.T) {
		data, err := os.ReadFile(files[1])
		if err != nil {
			t.Fatal(err)
		}
		first, _, _ := strings.Cut(string(data), "\n")
		dup := filepath.Join(t.TempDir(), filepath.Base(files[1]))
		if err := os.WriteFile(dup, []byte(string(data)+first+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		given := append([]string{files[0], dup}, files[2:]...)
		_, _, errOut := runCLI("", append([]string{"audit", "search"}, given...)...)
		if strings.Contains(errOut, "missing") {
			t.Errorf("stderr %q: a repeated line is no gap", errOut)
		}
	})
}
