package proxy_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestPushdownFenceKeepsClientConditionsOut: with pushdown = false, the
// client's own conditions, wherever it puts them (WHERE, ORDER BY with
// LIMIT, LATERAL, window functions, CTEs, HAVING, joins, sublinks), never
// run on a row the scope removes: a cast that fails on a hidden row's
// value would put it in the error.
func TestPushdownFenceKeepsClientConditionsOut(t *testing.T) {
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		for _, tb := range c.Tables {
			tb.Pushdown = false
		}
	})
	c := p.Connect(t, "marie")
	ctx := context.Background()
	france := directCount(t, proxytest.Scopes["marie"])
	boom := "(CASE WHEN r.country <> 'France' THEN r.country::int ELSE 1 END) = 1"
	for _, q := range []string{
		"SELECT count(*) FROM responses r WHERE " + boom,
		"SELECT count(*) FROM (SELECT id FROM responses r WHERE " + boom + " ORDER BY id LIMIT 100000) s",
		"SELECT count(*) FROM (SELECT r.id, row_number() OVER (PARTITION BY " + boom + ") FROM responses r) s",
		"WITH w AS (SELECT * FROM responses) SELECT count(*) FROM w r WHERE " + boom,
		"WITH w AS MATERIALIZED (SELECT * FROM responses) SELECT count(*) FROM w r WHERE " + boom,
		"SELECT sum(n) FROM (SELECT r.country, count(*) n FROM responses r GROUP BY r.country HAVING " + boom + ") s",
		"SELECT count(*) FROM (VALUES (1)) v(a) JOIN responses r ON " + boom,
		"SELECT count(*) FROM (VALUES (1)) v(a), LATERAL (SELECT * FROM responses r WHERE " + boom + " AND v.a = 1) r",
		"SELECT count(*) FROM responses r WHERE EXISTS (SELECT 1 WHERE " + boom + ")",
		"SELECT count(*) FROM responses r WHERE r.id IN (SELECT r2.id FROM responses r2 JOIN responses r ON r.id = r2.id WHERE " + boom + ")",
		"SELECT count(*) FROM (SELECT * FROM responses UNION ALL SELECT * FROM responses WHERE false) r WHERE " + boom,
		"SELECT count(*) FROM (SELECT * FROM responses OFFSET 0) r WHERE " + boom,
		"SELECT count(*) FROM ONLY responses r WHERE " + boom,
		"SELECT count(*) FROM responses r WHERE " + boom + " AND r.id > 0 AND r.country = 'France'",
		"SELECT count(*) FILTER (WHERE " + boom + ") FROM responses r",
	} {
		for range 2 { // cold, then through the caches and templates
			var s string
			if err := c.QueryRow(ctx, q).Scan(&s); err != nil {
				t.Fatalf("%s: %v", q, err)
			}
			if n, _ := strconv.Atoi(s); n != france {
				t.Fatalf("%s: %s, want %d", q, s, france)
			}
		}
	}
}
