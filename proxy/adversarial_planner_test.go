package proxy_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestAdversarialPlannerStatistics: PostgreSQL estimates a condition on
// a column of the scoped subquery from the statistics of the governed
// table, which it looks up through the subquery (examine_variable looks
// through a subquery scan to the table's column, OFFSET 0 or not), and it
// estimates a regular expression, LIKE or inequality by running the
// client's operator on the most common values and the histogram of the
// whole table: hidden rows' values included (the service account may
// read the table, so statistic_proc_security_check lets any operator
// run). The estimate chooses the plan, and the plan the order of the rows
// a statement returns without ORDER BY. So two statements that return
// the same rows marie may see come back in another order depending on
// whether a hidden row's value matches a pattern of her choosing: a
// most common value of hidden rows (what pg_stats, refused, would show)
// can be read a character at a time.
//
// SECURITY.md lists the plan choice among the residual risks as a count
// of hidden rows in a range ("about what pg_stats would say"); this test
// shows it reads their values, with any regular expression, on a column
// without an index, and that pushdown = false does not close it.
func TestAdversarialPlannerStatistics(t *testing.T) {
	for _, pushdown := range []bool{true, false} {
		t.Run(fmt.Sprintf("pushdown=%v", pushdown), func(t *testing.T) {
			p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
				for _, tb := range c.Tables {
					tb.Pushdown = pushdown
				}
			})
			advSeed(t)
			a := newAdvClient(t, p, "marie")
			// The left side is some of marie's rows; the right side
			// matches none of her rows whatever the pattern, so both
			// statements return the same rows. Only the planner's
			// estimate of the right side differs, with whether the
			// pattern matches a most common value of the column over
			// every row. Which left side makes the plan flip depends on
			// the estimates (pushed comparisons change them): any one
			// flipping is the leak.
			// Two guesses: the seeded hidden rows' branch, and a country
			// marie never sees (countries shows her France only, and so
			// do responses): USA is a most common value of the demo's
			// own responses.country, Atlantis no value at all.
			for _, g := range []struct{ column, hit, miss, what string }{
				{"branch", "^MARKER-HIDDE[N]-ROW-MC[V] b", "^MARKER-HIDDE[N]-ROW-MC[V] c", "a hidden row's branch starts with 'MARKER-HIDDEN-ROW-MCV b'"},
				{"country", "^USA$", "^Atlantis$", "hidden rows have the country USA"},
			} {
				leaked := false
				for _, left := range []string{"branch = 'Lyon' AND nps >= 9", "nps = 0"} {
					q := func(pattern string) string {
						return "SELECT s.id FROM (SELECT id, team_id FROM responses WHERE " + left + ") s " +
							"LEFT JOIN (SELECT id, team_id FROM responses WHERE " + g.column + " ~ '" + pattern + "') x ON x.team_id = s.team_id"
					}
					hit, miss := a.simple(q(g.hit)), a.simple(q(g.miss))
					if hit.err != nil || miss.err != nil {
						t.Fatalf("hit: %v, miss: %v", hit.err, miss.err)
					}
					sorted := func(rows [][]string) string {
						var ids []string
						for _, r := range rows {
							ids = append(ids, r[0])
						}
						sort.Strings(ids)
						return fmt.Sprint(ids)
					}
					if sorted(hit.rows) != sorted(miss.rows) || len(hit.rows) < 2 {
						t.Fatalf("test bug: the two statements return different rows, or fewer than two")
					}
					if !leaked && fmt.Sprint(hit.rows) != fmt.Sprint(miss.rows) {
						leaked = true
						n := min(5, len(hit.rows))
						t.Errorf("the order of marie's own rows tells whether %s (left side %s):\n"+
							"  %-28s -> %v…\n  %-28s -> %v…", g.what, left, g.hit, hit.rows[:n], g.miss, miss.rows[:n])
					}
				}
			}
		})
	}
}
