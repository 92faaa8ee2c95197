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
// the statement must prepare and run again after it.
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
		"threshold_again", "rollback_again", "usable_after"} {
		if r := get(t, recs, name); r["sqlstate"] != nil {
			t.Errorf("%s: %v", name, r)
		}
	}
	if a, b := get(t, recs, "prepared")["value"], get(t, recs, "prepared_again")["value"]; a != b || a == nil {
		t.Errorf("the statement again after rollback(): %v, before: %v", b, a)
	}
}
