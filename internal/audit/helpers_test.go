package audit

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// testKey is the HMAC key of the tests' chains.
var testKey = []byte("0123456789abcdef0123456789abcdef")

// statement returns the i-th statement record of the tests.
func statement(i int) *Record {
	return &Record{
		Time:     time.Date(2026, 11, 30, 2, 15, 0, i, time.UTC),
		Event:    EventStatement,
		Session:  fmt.Sprintf("s%d", i%3),
		User:     []string{"marie", "paul"}[i%2],
		Roles:    []string{"country_analyst"},
		Kind:     "select",
		SQL:      fmt.Sprintf("SELECT email FROM responses WHERE id = %d", i),
		Tables:   []string{"public.responses"},
		Columns:  []string{"public.responses.email"},
		Decision: DecisionRewritten,
		Rows:     int64(i),
		Duration: time.Duration(i) * time.Microsecond,
	}
}

// writeChain writes n statements through a Log with opts (File set to
// a fresh directory's audit.log when empty) and returns the files, in
// chain order (oldest first).
func writeChain(t *testing.T, n int, opts Options) []string {
	t.Helper()
	if opts.File == "" {
		opts.File = filepath.Join(t.TempDir(), "audit.log")
	}
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		l.Write(statement(i))
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return chainFiles(t, opts.File)
}

// chainFiles returns the rotated files of path, oldest first, then path.
func chainFiles(t *testing.T, path string) []string {
	t.Helper()
	rotated, err := filepath.Glob(path + ".*")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(rotated)
	return append(rotated, path)
}

// lines returns the lines of file, without newlines.
func lines(t *testing.T, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSuffix(string(data), "\n"), "\n")
}

// setLines replaces the content of file with ls.
func setLines(t *testing.T, file string, ls []string) {
	t.Helper()
	var b bytes.Buffer
	for _, l := range ls {
		b.WriteString(l + "\n")
	}
	if err := os.WriteFile(file, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// verify runs Verify and fails on an I/O error.
func verify(t *testing.T, key []byte, files []string) *Report {
	t.Helper()
	rep, err := Verify(key, files)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

// countRecords counts the lines of files.
func countRecords(t *testing.T, files []string) int {
	t.Helper()
	n := 0
	for _, f := range files {
		if data, err := os.ReadFile(f); err == nil {
			n += bytes.Count(data, []byte("\n"))
		}
	}
	return n
}
