package rewrite_test

import (
	"errors"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestWritesWithoutSelectReturnNoRows: a role listing writes but not
// select reads no governed table (walker.mayRead, writeReads). An
// UPDATE's or a DELETE's RETURNING reads the rows it finds, as they were
// or became: UPDATE t SET c = c RETURNING … would read every row in
// scope. A write that reads no column still runs.
func TestWritesWithoutSelectReturnNoRows(t *testing.T) {
	env := demoEnvironment(t)
	p := noSelectPolicy{env.policy(t, "marie")}
	for _, sql := range []string{
		"UPDATE responses SET nps = nps RETURNING id, comment, nps",
		"DELETE FROM responses WHERE id = 1 RETURNING comment",
		"DELETE FROM countries RETURNING code, name",
		"WITH d AS (UPDATE responses SET nps = nps RETURNING comment) SELECT * FROM d",
		"UPDATE responses SET nps = nps RETURNING 1",
	} {
		t.Run("a role without select is refused "+sql, func(t *testing.T) {
			_, err := rewrite.Rewrite(sql, env.cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "statement_kind" {
				t.Fatalf("got %v, want a statement_kind refusal", err)
			}
		})
	}
	for _, sql := range []string{
		"UPDATE responses SET nps = 1",
		"DELETE FROM countries",
	} {
		t.Run("a role without select writes "+sql, func(t *testing.T) {
			if _, err := rewrite.Rewrite(sql, env.cat, p); err != nil {
				t.Fatal(err)
			}
		})
	}
}
