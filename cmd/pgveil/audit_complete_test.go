package main

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/audit"
)

func TestAuditVerifyComplete(t *testing.T) {
	t.Setenv("PGVEIL_AUDIT_KEY", auditKey)
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	l.Write(&audit.Record{Event: audit.EventStart})
	l.Write(&audit.Record{Event: audit.EventDropped, Count: 2})
	l.Write(&audit.Record{Event: audit.EventStop})
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	code, out, _ := runCLI("", "audit", "verify", path)
	if code != 0 || !strings.Contains(out, "OK: 3 records") || !strings.Contains(out, "note: "+path+":2: 2 records were dropped") {
		t.Fatalf("without --complete: %d %q", code, out)
	}
	code, out, _ = runCLI("", "audit", "verify", "--complete", path)
	if code != 1 || !strings.Contains(out, "FAILED: --complete: the trail says 2 records were dropped") {
		t.Fatalf("with --complete: %d %q", code, out)
	}
}
