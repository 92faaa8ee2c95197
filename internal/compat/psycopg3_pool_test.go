package compat

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestPsycopg3RollbackInTransactionPool runs psycopg 3 through pgveil with
// a transaction pool: once it prepared a statement, its rollback() sends
// DEALLOCATE ALL in the extended protocol, which must run (before 2026-12
// it was refused, 0A000, and rollback() raised FeatureNotSupported), and
// the statement must prepare and run again after it; in pipeline mode
// too, where rollback() sends ROLLBACK and DEALLOCATE ALL in one batch.
func TestPsycopg3RollbackInTransactionPool(t *testing.T) {
	requireVeil(t)
	py := pythonModules("psycopg")(t)
	host, port, err := net.SplitHostPort(requirePooledVeil(t))
	if err != nil {
		t.Fatal(err)
	}
	e := endpoint{host: host, port: port, user: "hq", password: password("hq")}
	outp := runClient(t, nil, py, filepath.Join("testdata", "python", "psycopg3_pool_rollback.py"), e.dsn())
	if os.Getenv("COMPAT_SHOW") != "" {
		t.Log(outp)
	}
	recs := records(t, outp)
	for _, name := range []string{"prepared", "rollback", "prepared_again", "commit", "threshold", "rollback_after_threshold",
		"threshold_again", "rollback_again", "usable_after", "commit_before_pipeline",
		"pipeline_prepared", "pipeline_rollback", "pipeline_prepared_again", "pipeline_threshold", "pipeline_rollback_again",
		"pipeline_usable_after", "pipeline_prepared_before_error", "pipeline_rollback_after_error",
		"pipeline_usable_after_error", "usable_after_pipeline"} {
		if r := get(t, recs, name); r["sqlstate"] != nil {
			t.Errorf("%s: %v", name, r)
		}
	}
	if a, b := get(t, recs, "prepared")["value"], get(t, recs, "prepared_again")["value"]; a != b || a == nil {
		t.Errorf("the statement again after rollback(): %v, before: %v", b, a)
	}
	// In pipeline mode rollback() sends ROLLBACK and DEALLOCATE ALL in one
	// batch (before 2026-12 refused, 0A000), after an error too.
	if r := get(t, recs, "pipeline_error"); r["sqlstate"] != "22012" {
		t.Errorf("pipeline_error: want 22012, got %v", r)
	}
	for _, name := range []string{"pipeline_prepared_again", "pipeline_usable_after_error"} {
		if a, b := get(t, recs, "prepared")["value"], get(t, recs, name)["value"]; a != b {
			t.Errorf("%s: %v, want %v", name, b, a)
		}
	}
}
