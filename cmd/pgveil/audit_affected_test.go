package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

// TestAuditSearchAffected checks that pgveil audit search answers "who
// deleted those 5,000 rows": --min-affected keeps the writes that
// changed at least that many rows, the table shows the count (CHANGED)
// next to the rows read, and the json lines carry it as written.
func TestAuditSearchAffected(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(&audit.Record{Event: audit.EventStatement, User: "paul", Kind: "select", SQL: "SELECT id FROM responses", Decision: audit.DecisionAllowed, Rows: 7})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "hq", Kind: "delete", SQL: "DELETE FROM responses WHERE nps < 3", Decision: audit.DecisionAllowed, Affected: 5000})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "hq", Kind: "update", SQL: "UPDATE responses SET nps = 0 WHERE id = 1", Decision: audit.DecisionAllowed, Affected: 1})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	t.Run("--min-affected keeps the writes that changed that many rows", func(t *testing.T) {
		code, out, errOut := runCLI("", "audit", "search", "--min-affected", "100", "--format", "json", path)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 1 || !strings.Contains(lines[0], `"affected":5000,`) || !strings.Contains(lines[0], "DELETE FROM responses") {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		if code, out, _ := runCLI("", "audit", "search", "--min-affected", "1", path); code != 0 || strings.Count(out, "\n") != 3 {
			t.Fatalf("--min-affected 1: %d %q", code, out)
		}
	})
	t.Run("the table shows the rows changed next to the rows read", func(t *testing.T) {
		code, out, errOut := runCLI("", "audit", "search", path)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || len(lines) != 4 {
			t.Fatalf("%d %q %q", code, out, errOut)
		}
		col := strings.Index(lines[0], "CHANGED")
		if col < 0 || !strings.Contains(lines[0], "ROWS") {
			t.Fatalf("header %q", lines[0])
		}
		end := col + len("CHANGED")
		for i, want := range []string{"", "5000", "1"} {
			if got := strings.TrimSpace(lines[i+1][end-8 : end]); got != want {
				t.Errorf("row %d: CHANGED %q, want %q:\n%s\n%s", i+1, got, want, lines[0], lines[i+1])
			}
		}
		if f := strings.Fields(lines[1]); f[3] != "7" || f[4] != "select" {
			t.Errorf("a select's row %q", lines[1])
		}
	})
	t.Run("a bad --min-affected is a usage error", func(t *testing.T) {
		for _, v := range []string{"-1", "many"} {
			if code, _, _ := runCLI("", "audit", "search", "--min-affected", v, path); code != 2 {
				t.Errorf("--min-affected %s: exit %d", v, code)
			}
		}
	})
}
