package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

func TestAuditSearchKind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	// A trail written before and after kinds became words.
	for _, r := range []struct{ kind, sql string }{
		{"VariableShowStmt", "SHOW work_mem /* old */"},
		{"show", "SHOW work_mem /* new */"},
		{"FetchStmt", "MOVE 1 IN c /* old */"},
		{"move", "MOVE 1 IN c /* new */"},
		{"select,set", "SELECT 1; SET work_mem = '8MB'"},
	} {
		l.Write(&audit.Record{Event: audit.EventStatement, User: "marie", Kind: r.kind, SQL: r.sql, Decision: audit.DecisionAllowed})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	for flag, want := range map[string][]string{
		"show":             {"/* old */", "/* new */"},
		"VariableShowStmt": {"/* old */", "/* new */"},
		"move":             {"MOVE 1 IN c /* old */", "MOVE 1 IN c /* new */"},
		"set":              {"SET work_mem"},
	} {
		code, out, errOut := runCLI("", "audit", "search", "--kind", flag, "--format", "json", path)
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != 0 || errOut != "" || len(lines) != len(want) {
			t.Errorf("--kind %s: %d %q %q", flag, code, out, errOut)
			continue
		}
		for i, w := range want {
			if !strings.Contains(lines[i], w) {
				t.Errorf("--kind %s: line %d %s, want %s", flag, i, lines[i], w)
			}
		}
	}
	if code, _, _ := runCLI("", "audit", "search", "--kind", "insert", path); code != 1 {
		t.Errorf("--kind insert: exit %d, want 1 (no match)", code)
	}
}
