package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

func TestAuditSearchTableSaysWhatWentWrong(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 1/0",
		Decision: audit.DecisionAllowed, SQLState: "22012", UpstreamError: "22012: division by zero"})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 2",
		Decision: audit.DecisionAllowed, Message: "not executed: an earlier message of its batch failed"})
	l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: "select", SQL: "SELECT 3", Decision: audit.DecisionAllowed, Rows: 1})
	l.Write(&audit.Record{Event: "pool_refused", User: "marie", SQL: "SELECT 4", Reason: "pgveil found no free upstream connection within 1s"})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI("", "audit", "search", "--user", "marie", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 0 || len(lines) != 5 {
		t.Fatalf("%d %q", code, out)
	}
	col := strings.Index(lines[0], "WHY DENIED / ERROR")
	for i, want := range []string{"error 22012: division by zero", "not executed: an earlier message", "", "pgveil found no free upstream connection"} {
		row := lines[i+1]
		if want == "" {
			if len(row) > col {
				t.Errorf("row %q has a note", row)
			}
			continue
		}
		if strings.Index(row, want) != col {
			t.Errorf("row %q: want %q at column %d", row, want, col)
		}
	}
}
