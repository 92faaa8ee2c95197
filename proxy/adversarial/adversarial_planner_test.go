package adversarial_test

import (
	"fmt"
	"sort"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// plannerGuess is a pair of conditions on a column of responses that
// match none of marie's rows, hit matching a most common value of the
// column over every row (hidden ones included), miss none.
type plannerGuess struct{ hit, miss, what string }

// plannerOracle runs, as a, two statements that return the same rows
// marie may see: some of her rows (the left side) joined to the rows of
// the right side, cond, which match none of hers. Only the planner's
// estimate of cond differs; if it reads the table's statistics, hit and
// miss estimate differently, the plan flips and, without ORDER BY, the
// order of her rows with it. It returns a description of the first flip,
// "" when none. Which left side makes the plan flip depends on the
// estimates (pushed comparisons change them): any one flipping is the
// leak.
func plannerOracle(t *testing.T, a *advClient, g plannerGuess) string {
	t.Helper()
	for _, left := range []string{"branch = 'Lyon' AND nps >= 9", "nps = 0"} {
		q := func(cond string) string {
			return "SELECT s.id FROM (SELECT id, team_id FROM responses WHERE " + left + ") s " +
				"LEFT JOIN (SELECT id, team_id FROM responses WHERE " + cond + ") x ON x.team_id = s.team_id"
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
		if fmt.Sprint(hit.rows) != fmt.Sprint(miss.rows) {
			n := min(5, len(hit.rows))
			return fmt.Sprintf("the order of marie's own rows tells whether %s (left side %s):\n"+
				"  %-36s -> %v…\n  %-36s -> %v…", g.what, left, g.hit, hit.rows[:n], g.miss, miss.rows[:n])
		}
	}
	return ""
}

// plannerStart starts the demo with pushdown as given on every table,
// seeds the hidden most common values and returns marie's client.
func plannerStart(t *testing.T, pushdown bool) *advClient {
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) {
		for _, tb := range c.Tables {
			tb.Pushdown = pushdown
		}
	})
	proxytest.SeedMarkers(t)
	return newAdvClient(t, p, "marie")
}

// TestAdversarialPlannerStatistics: PostgreSQL estimates a condition on
// a column of a subquery from the statistics of the table column it
// reads (examine_variable looks through a subquery scan, OFFSET 0 or
// not), and it estimates a regular expression, LIKE or inequality by
// running the client's operator on the most common values and the
// histogram of the whole table: hidden rows' values included (the service
// account may read the table, so statistic_proc_security_check lets any
// operator run). The estimate chooses the plan, and the plan the order of
// the rows a statement returns without ORDER BY. So two statements that
// return the same rows marie may see would come back in another order
// depending on whether a hidden row's value matches a pattern of her
// choosing: a most common value of hidden rows (what pg_stats, refused,
// would show) could be read a character at a time.
//
// With pushdown = false the scoped subquery stands behind the statistics
// fence (rewrite/subst.go, fenced), which the planner does not look
// through: no condition of the client's, whatever its operator, is
// estimated from the table's statistics.
//
// The seeded hidden rows' branch, and a country marie never sees
// (countries shows her France only, and so do responses): USA is a most
// common value of the demo's own responses.country, Atlantis no value at
// all.
func TestAdversarialPlannerStatistics(t *testing.T) {
	t.Run("pushdown=false", func(t *testing.T) {
		a := plannerStart(t, false)
		for _, g := range []plannerGuess{
			{"branch ~ '^MARKER-HIDDE[N]-ROW-MC[V] b'", "branch ~ '^MARKER-HIDDE[N]-ROW-MC[V] c'", "a hidden row's branch starts with 'MARKER-HIDDEN-ROW-MCV b'"},
			{"country ~ '^USA$'", "country ~ '^Atlantis$'", "hidden rows have the country USA (regular expression)"},
			{"country LIKE 'US_'", "country LIKE 'At_'", "hidden rows have the country USA (LIKE)"},
			{"country = 'USA'", "country = 'Atlantis'", "hidden rows have the country USA (=, not pushed)"},
			{"country > 'T' AND country < 'V'", "country > 'A' AND country < 'B'", "hidden rows have a country between T and V (<, >)"},
			{"team_id = 6 AND nps = 5", "team_id = 6 AND nps = 4", "hidden rows of team 6 have the nps 5"},
		} {
			if leak := plannerOracle(t, a, g); leak != "" {
				t.Error(leak)
			}
		}
	})
}

// TestAdversarialPlannerStatisticsPushdownResidual documents the residual
// SECURITY.md states for pushdown = true (the default): the scoped
// subquery has no statistics fence there, so the planner estimates the
// client's conditions on its columns from the table's statistics, any
// operator (the pushed comparisons are estimated inside the subquery, on
// the table itself, whatever the fence). The same guess as
// TestAdversarialPlannerStatistics's, which pushdown = false closes. It
// fails when that changes: then update SECURITY.md, README.md and
// configs/README.md ("Pushdown"), and this test.
//
// NOTE: pushed equalities (country = 'USA', team_id = 6, nps = 5 AND
// team_id = 6 against misses) did not flip this oracle's plan on the
// demo data: the scope and the copy together estimate a handful of rows
// either way. That is this join's sensitivity, not a bound on the channel.
func TestAdversarialPlannerStatisticsPushdownResidual(t *testing.T) {
	a := plannerStart(t, true)
	g := plannerGuess{"country ~ '^USA$'", "country ~ '^Atlantis$'", "hidden rows have the country USA (regular expression)"}
	leak := plannerOracle(t, a, g)
	if leak == "" {
		t.Fatalf("with pushdown = true the planner no longer reads a regular expression's estimate through the scoped subquery: " +
			"the residual SECURITY.md documents for pushdown = true has changed")
	}
	t.Logf("documented residual, pushdown = true: %s", leak)
}
