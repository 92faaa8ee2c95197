package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// TestCheckUpstreamFollowsCollation: a follows column whose collation
// differs from its key's, neither the default, makes PostgreSQL's
// comparison fail at run time ("could not determine which collation to
// use", 42P22) when a follower's row, a hidden one too, meets a visible
// key, though the types agree and EXPLAIN passes: an error, as pgveil
// follows no such pair.
func TestCheckUpstreamFollowsCollation(t *testing.T) {
	pgtest.Require(t, cluster)
	setupCheckDB(t)
	ctx := context.Background()
	if err := cluster.Exec(ctx, checkDB, fmt.Sprintf(`
CREATE SCHEMA fol23;
GRANT USAGE ON SCHEMA fol23 TO %[1]s;
CREATE TABLE fol23.orders (code text COLLATE "C" PRIMARY KEY, team int);
CREATE TABLE fol23.lines (order_code text COLLATE "POSIX" REFERENCES fol23.orders (code), same_code text COLLATE "C" REFERENCES fol23.orders (code),
  default_code text REFERENCES fol23.orders (code));
GRANT SELECT ON ALL TABLES IN SCHEMA fol23 TO %[1]s;
`, checkSvc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(ctx, checkDB, `DROP SCHEMA fol23 CASCADE`) })
	const parent = "table \"fol23.orders\" {\n  team_column = \"team\"\n}\n"
	for _, c := range []struct {
		name, column string
		errs         bool
	}{
		{"a follows column of another collation than the key is an error naming both and the fix", "order_code", true},
		{"one of the key's collation is not", "same_code", false},
		{"one of the database's default collation is not: PostgreSQL compares under the key's", "default_code", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := checkConfig(t, checkSvc, parent+"table \"fol23.lines\" {\n  follows = { table = \"fol23.orders\", column = \""+c.column+"\", key = \"code\" }\n}\n")
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			flat := strings.Join(strings.Fields(errOut), " ")
			want := []string{path + ":5:13: error: Follows column collation",
				`fol23.lines.order_code (collation pg_catalog."POSIX") and fol23.orders.code (collation pg_catalog."C")`, "COLLATE"}
			for _, w := range want {
				if (code != 0) != c.errs || strings.Contains(flat, w) != c.errs {
					t.Fatalf("exit %d, %q expected %v\nstdout: %s\nstderr: %s", code, w, c.errs, out, errOut)
				}
			}
		})
	}
}
