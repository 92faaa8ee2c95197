package main

import (
	"os"
	"strings"
	"testing"
)

// TestAuditVerifyTail checks that verify tells the auditor where a chain
// without a stop record ends, and what to compare it with: records cut
// from its end leave no trace in the chain itself.
func TestAuditVerifyTail(t *testing.T) {
	t.Setenv("PGVEIL_AUDIT_KEY", auditKey)
	t.Run("a chain whose last records were removed names the seq it ends at", func(t *testing.T) {
		files := writeAuditChain(t)
		newest := files[len(files)-1]
		data, err := os.ReadFile(newest)
		if err != nil {
			t.Fatal(err)
		}
		ls := strings.SplitAfter(string(data), "\n")
		if err := os.WriteFile(newest, []byte(strings.Join(ls[:len(ls)-3], "")), 0o600); err != nil {
			t.Fatal(err)
		}
		code, out, _ := runCLI("", append([]string{"audit", "verify"}, files...)...)
		if code != 0 || !strings.Contains(out, "note: the chain ends at seq 28 ") || !strings.Contains(out, "pgveil_audit_last_seq") {
			t.Fatalf("%d %q", code, out)
		}
	})
}
