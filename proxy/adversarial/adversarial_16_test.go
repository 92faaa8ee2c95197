package adversarial_test

import (
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestAdversarial16 holds the angles of the sixteenth red team that
// TestAdversarial and TestAdversarialDirectReads did not try: errors that
// would fire only on hidden rows behind CTEs (MATERIALIZED or not), set
// operations, self-joins and the comparisons pushDown copies inside the
// scoped subquery; masked columns under ordered-set aggregates, WITH
// TIES, DISTINCT ON, GROUPING SETS and RANGE frames; and PostgreSQL 15's
// MERGE and SQL-standard function bodies, and syntax of PostgreSQL 16
// and 17, in every statement that can wrap them. Every byte the client
// gets is checked for the markers proxytest.SeedMarkers plants.
func TestAdversarial16(t *testing.T) {
	p := proxytest.StartDemo(t)
	proxytest.SeedMarkers(t)
	marieRows := proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["marie"])[0][0]
	tomRows := proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["tom"])[0][0]

	t.Run("errors never fire on hidden rows behind CTEs, set operations, self-joins or pushed comparisons", func(t *testing.T) {
		for _, c := range []struct{ user, outside string }{
			{"marie", "country <> 'France'"},
			{"tom", "agent_login IS DISTINCT FROM 'tom'"},
		} {
			a := newAdvClient(t, p, c.user)
			// boom divides by zero on a row outside the user's scope only.
			boom := func(q string) string {
				return strings.ReplaceAll(q, "BOOM", "1/(CASE WHEN "+c.outside+" THEN 0 ELSE 1 END) = 1")
			}
			bBoom := strings.ReplaceAll(boom("BOOM"), "country", "b.country")
			bBoom = strings.ReplaceAll(bBoom, "agent_login", "b.agent_login")
			for _, q := range []string{
				"WITH c AS MATERIALIZED (SELECT * FROM responses) SELECT count(*) FROM c WHERE BOOM",
				"WITH c AS NOT MATERIALIZED (SELECT * FROM responses) SELECT count(*) FROM c WHERE BOOM",
				"WITH RECURSIVE c AS (SELECT * FROM responses) SELECT count(*) FROM c WHERE BOOM",
				"SELECT count(*) FROM (SELECT * FROM responses UNION ALL SELECT * FROM responses) u WHERE BOOM",
				"SELECT count(*) FROM (SELECT country, agent_login, nps FROM responses INTERSECT SELECT country, agent_login, nps FROM responses) u WHERE BOOM",
				"SELECT count(*) FROM (SELECT country, agent_login FROM responses EXCEPT SELECT 'x', 'y') u WHERE BOOM",
				"SELECT count(*) FROM responses a JOIN responses b ON a.id = b.id AND " + bBoom,
				"SELECT count(*) FROM responses a LEFT JOIN responses b ON a.id = b.id WHERE " + bBoom,
				"SELECT count(*) FROM responses a FULL JOIN responses b ON a.id = b.id AND " + bBoom,
				"SELECT count(*) FROM (VALUES (1), (2)) v(k) JOIN responses ON k = nps AND BOOM",
				"SELECT count(*) FROM responses r, LATERAL (SELECT r.nps AS n) x WHERE BOOM",
				// The comparisons pushDown copies select only hidden rows
				// inside the scoped subquery; the client's own condition
				// still runs outside it.
				"SELECT count(*) FROM responses WHERE id = 990001 AND BOOM",
				"SELECT count(*) FROM responses WHERE id IN (990001, 990002, 990003) AND BOOM",
				"SELECT count(*) FROM responses WHERE id BETWEEN 990000 AND 990200 AND BOOM",
				"SELECT count(*) FROM responses WHERE country IN ('USA', 'Germany') AND BOOM",
				"SELECT count(*) FROM responses WHERE submitted_at < '1990-01-01' AND BOOM",
				"SELECT count(*) FROM responses WHERE submitted_at < timestamptz '1990-01-01' AND BOOM",
				"SELECT count(*) FROM responses WHERE agent_login = 'ashley' AND BOOM",
				"SELECT count(*) FROM responses WHERE team_id = 6 AND nps <= 5 AND BOOM",
				"SELECT count(*) FROM responses WHERE (id, country) = (990001, 'USA') AND BOOM",
				"SELECT count(*) FROM responses WHERE id = ANY('{990001,990002}'::bigint[]) AND BOOM",
				"SELECT count(*) FROM responses WHERE id = ANY(ARRAY(SELECT 990001)) AND BOOM",
				"SELECT count(*) FROM responses WHERE country = (SELECT 'USA') AND BOOM",
				"SELECT count(*) FROM responses WHERE tags @> ARRAY['MARKER-' || 'HIDDEN-ROW-MCV-TAG'] AND BOOM",
				"SELECT count(*) FROM responses WHERE comment ~ '^MARKER' AND BOOM",
				"SELECT count(*) OVER (ORDER BY id RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING) FROM responses WHERE BOOM LIMIT 1",
				"SELECT count(*) FROM responses GROUP BY GROUPING SETS ((country), (agent_login), ()) HAVING min(CASE WHEN BOOM THEN 1 END) = 1",
			} {
				a.noError(boom(q))
			}
		}
	})

	t.Run("masked columns sort, rank and aggregate as NULL", func(t *testing.T) {
		a := newAdvClient(t, p, "marie")
		for _, c := range []struct{ sql, want string }{
			{"SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY score) FROM responses", "NULL"},
			{"SELECT mode() WITHIN GROUP (ORDER BY email) FROM responses", "NULL"},
			{"SELECT count(*) FROM (SELECT id FROM responses ORDER BY score FETCH FIRST 1 ROWS WITH TIES) s", marieRows},
			{"SELECT count(*) FROM (SELECT DISTINCT ON (email, contact) id FROM responses) s", "1"},
			{"SELECT max(r) FROM (SELECT rank() OVER (ORDER BY contact, score) r FROM responses) s", "1"},
			{"SELECT max(n) FROM (SELECT count(*) OVER (ORDER BY score RANGE BETWEEN 1 PRECEDING AND 1 FOLLOWING) n FROM responses) s", marieRows},
			{"SELECT count(*) FROM (SELECT email, score FROM responses GROUP BY GROUPING SETS ((email), (score), ())) s", "3"},
			{"SELECT count(*) FILTER (WHERE email IS NOT NULL OR contact IS NOT NULL OR score IS NOT NULL) FROM responses", "0"},
			{"SELECT count(*) FROM responses WHERE jsonb_path_exists(to_jsonb(responses), '$.email ? (@ != null)')", "0"},
			{"SELECT string_agg(DISTINCT coalesce(email, 'none'), ',' ORDER BY coalesce(email, 'none')) FROM responses", "none"},
			{"SELECT count(*) FROM responses WHERE id = ANY(ARRAY(SELECT id FROM responses WHERE email IS NOT NULL))", "0"},
		} {
			a.expect(c.sql, c.want)
		}
		b := newAdvClient(t, p, "tom")
		b.expect("SELECT count(*) FROM (SELECT id FROM responses ORDER BY email FETCH FIRST 1 ROWS WITH TIES) s", tomRows)
	})

	t.Run("MERGE, SQL-standard bodies and newer syntax are refused in every wrapper", func(t *testing.T) {
		a := newAdvClient(t, p, "marie")
		const merge = "MERGE INTO countries c USING (SELECT 'FR' AS code) s ON c.code = s.code WHEN MATCHED THEN DO NOTHING"
		for _, q := range []string{
			merge,
			"PREPARE m16 AS " + merge,
			"EXPLAIN " + merge,
			"WITH m AS (" + merge + " RETURNING c.*) SELECT * FROM m",
			"COPY (" + merge + " RETURNING c.*) TO STDOUT",
			"DECLARE m16c CURSOR FOR WITH m AS (" + merge + " RETURNING c.*) SELECT * FROM m",
			"MERGE INTO countries c USING responses r ON c.name = r.country WHEN NOT MATCHED BY SOURCE THEN DELETE",
			"CREATE FUNCTION f16() RETURNS bigint LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM responses; END",
			"CREATE PROCEDURE p16() LANGUAGE sql BEGIN ATOMIC SELECT count(*) FROM responses; END",
			"SELECT count(*) FROM responses r WHERE r.comment IS JSON",
			"SELECT JSON_OBJECT('a': email) FROM responses",
			"SELECT any_value(email) FROM responses",
			"SELECT pg_input_is_valid(comment, 'int') FROM responses",
			"SELECT SYSTEM_USER",
			"EXPLAIN (GENERIC_PLAN) SELECT * FROM responses WHERE id = 1",
			"COPY countries TO STDOUT (FORMAT csv, DEFAULT 'x')",
			"COPY countries TO STDOUT (ON_ERROR ignore)",
		} {
			a.refuse(q)
		}
		// The session goes on.
		a.expect("SELECT count(*) FROM responses", marieRows)
	})
}
