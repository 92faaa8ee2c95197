package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

// TestAuditSearchKindOldFetchStmt checks that --kind FetchStmt, the old
// spelling, which stood for FETCH and MOVE alike, finds the records of
// both under their new spellings too, as --kind move finds an old
// FetchStmt: an auditor's saved search must not lose the MOVEs written
// since kinds became words.
func TestAuditSearchKindOldFetchStmt(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range []struct{ kind, sql string }{
		{"FetchStmt", "FETCH 1 IN c /* old */"},
		{"fetch", "FETCH 1 IN c /* new */"},
		{"move", "MOVE 1 IN c /* new */"},
		{"show", "SHOW work_mem"},
	} {
		l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: r.kind, SQL: r.sql, Decision: audit.DecisionAllowed})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("", "audit", "search", "--kind", "FetchStmt", "--format", "json", path)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	want := []string{"FETCH 1 IN c /* old */", "FETCH 1 IN c /* new */", "MOVE 1 IN c /* new */"}
	if code != 0 || errOut != "" || len(lines) != len(want) {
		t.Fatalf("--kind FetchStmt: exit %d, %q %q; want the records of %q", code, out, errOut, want)
	}
	for i, w := range want {
		if !strings.Contains(lines[i], w) {
			t.Errorf("line %d %s, want %s", i, lines[i], w)
		}
	}
}
