package compat

import (
	"net"
	"os"
	"path/filepath"
	"testing"
)

// TestPgJDBCAutosaveActFor runs PgJDBC with autosave=always (a SAVEPOINT
// before each statement of a transaction, ROLLBACK TO SAVEPOINT after one
// that fails) through the metabase service, which acts for viewers with
// SET ROLE inside its transactions, directly and behind a transaction
// pool: after each rollback to a savepoint the service must act for whom
// PostgreSQL's SET ROLE semantics say (a SET before the savepoint stays),
// or have the statement refused, never act for another viewer.
func TestPgJDBCAutosaveActFor(t *testing.T) {
	requireVeil(t)
	dir := t.TempDir()
	javac := lookPath(t, "javac")
	lookPath(t, "java")
	if _, err := os.Stat(jdbcJar); err != nil {
		missing(t, "PgJDBC (Debian package libpostgresql-jdbc-java)", err)
	}
	runClient(t, nil, javac, "-cp", jdbcJar, "-d", dir, filepath.Join("testdata", "java", "AutosaveActFor.java"))
	for _, c := range []struct{ name, addr string }{{"direct", veil}, {"transaction pool", requirePooledVeil(t)}} {
		t.Run(c.name, func(t *testing.T) {
			url := "jdbc:postgresql://" + c.addr + "/" + demoDB + "?sslmode=disable&autosave=always&ApplicationName=pgveil-compat"
			if _, _, err := net.SplitHostPort(c.addr); err != nil {
				t.Fatal(err)
			}
			outp := runClient(t, nil, "java", "-cp", dir+string(os.PathListSeparator)+jdbcJar, "AutosaveActFor", url, "metabase", password("metabase"))
			if os.Getenv("COMPAT_SHOW") != "" {
				t.Log(outp)
			}
			recs := records(t, outp)
			ok := func(name string) bool { return get(t, recs, name)["sqlstate"] == nil }
			// What PostgreSQL's SET ROLE semantics give: a switch a
			// statement's failure rolled back to its savepoint stays. A
			// switch pgveil refuses (one of an unknown user; one sent
			// with autosave's SAVEPOINT still unanswered) is not made.
			committed, current := "", ""
			counts := map[string]any{}
			seen := func(name string) {
				r := get(t, recs, name)
				if r["sqlstate"] != nil {
					t.Errorf("%s: %v (the service acts for %q)", name, r, current)
					return
				}
				actFor, _ := r["act_for"].(string)
				if actFor != current {
					t.Errorf("%s: pgveil.act_for upstream %q, want %q", name, actFor, current)
				}
				if n, seen := counts[actFor]; seen && n != r["responses"] {
					t.Errorf("%s: %v responses acting for %q, %v before", name, r["responses"], actFor, n)
				}
				counts[actFor] = r["responses"]
			}
			set := func(name, to string) {
				if ok(name) {
					current = to
				} else if r := get(t, recs, name); r["sqlstate"] != "42501" {
					t.Errorf("%s: %v", name, r)
				}
			}
			set("set_marie", "marie")
			seen("as_marie")
			seen("as_marie_after_rollback_to")
			set("set_hq", "hq")
			seen("as_hq_after_rollback_to")
			if ok("set_unknown") {
				t.Errorf("set_unknown: accepted")
			}
			seen("as_hq_after_failed_set")
			committed = current
			seen("as_hq_committed")
			set("set_marie_again", "marie")
			seen("as_marie_again")
			current = committed
			seen("as_hq_after_rollback")
			if counts["marie"] != nil && counts["marie"] == counts["hq"] {
				t.Errorf("marie and hq see as many responses: %v", counts)
			}
		})
	}
}
