package adversarial_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestGroupingSetsKeepTheirNulls holds the GROUP BY widening of a scoped
// subquery (rewrite/grouping.go) to grouping sets: a column one set holds
// and another lacks reads NULL in the rows of the other, as on the table.
// Found by diffsmith (seed 2023, statement 3712): hq, whose responses are
// a scoped subquery for their masked contact and email, read the comment
// in the rows of the set (r.id) too, the widening having added r.comment
// to every set.
func TestGroupingSetsKeepTheirNulls(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()
	conn := p.Connect(t, "hq")
	for _, tc := range []struct{ name, sql, col string }{
		{"a column of one set of GROUPING SETS", `SELECT r.id, r.comment FROM responses r GROUP BY GROUPING SETS ((r.id, r.comment), (r.id))`, "comment"},
		{"a column of one set beside the key", `SELECT r.id, r.branch, count(*) AS n FROM responses r GROUP BY r.id, GROUPING SETS ((r.branch), ())`, "branch"},
		{"a column of one set, the key by position", `SELECT r.id, r.comment FROM responses r GROUP BY GROUPING SETS ((1, r.comment), (1))`, "comment"},
	} {
		t.Run(tc.name+" reads NULL in the other sets' rows", func(t *testing.T) {
			q := "SELECT count(*), count(*) FILTER (WHERE s." + tc.col + " IS NULL) FROM (" + tc.sql + ") s"
			var rows, nulls int
			if err := conn.QueryRow(ctx, q).Scan(&rows, &nulls); err != nil {
				t.Fatal(err)
			}
			want := proxytest.Direct(t, q)[0]
			if got := []string{fmt.Sprint(rows), fmt.Sprint(nulls)}; got[0] != want[0] || got[1] != want[1] {
				t.Errorf("through pgveil %s rows, %s of them NULL; on the table %s rows, %s NULL", got[0], got[1], want[0], want[1])
			}
		})
	}
}
