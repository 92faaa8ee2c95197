package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// cve20Secrets are the strings only a filtered row or a masked value of
// proxytest.SeedMarkers's markers holds: no answer of the corpus may contain one.
var cve20Secrets = []string{"MARKER", "876.54", "987.65", "ashley", "USA", "Germany"}

// cve20Case is one attempt of the corpus of TestAdversarial20CVE: a
// statement a governed user sends, after a technique of PostgreSQL's own
// row-level security and privilege CVEs, and what pgveil must answer.
//
// NOTE: exactly one of refused, state, truth and same is set. refused is
// the firewall rule of a 42501; state a SQLSTATE PostgreSQL itself
// raises whatever the hidden rows hold (a constant folded at plan time);
// truth a statement whose rows, read directly as the superuser, must be
// the answer; same a statement whose answer through pgveil, as the same
// user, must be the answer (the user's own baseline).
type cve20Case struct {
	technique, user, sql string
	refused, state       string
	truth, same          string
}

// cve20Corpus is the attack corpus. Every statement is run on the simple
// and the extended protocol.
var cve20Corpus = []cve20Case{
	// Leaky functions before the filter (CVE-2017-7484, CVE-2019-10130
	// and the errors-as-oracle family): a function that fails only on a
	// hidden row must never run on one, so the answer is the visible
	// rows' own.
	{technique: "a division by zero only on hidden rows", user: "marie",
		sql:   "SELECT count(*) FROM responses WHERE 1/(CASE WHEN country = 'USA' THEN 0 ELSE 1 END) = 1",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "a cast that fails only on hidden rows' text", user: "marie",
		sql:   "SELECT count(*) FROM responses r WHERE CASE WHEN r.country <> 'France' THEN (r.comment)::int ELSE 0 END = 0",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "a cast of a masked column that would fail on its real value", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE email::int = 1", truth: "SELECT 0"},
	{technique: "a division by a masked numeric", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE score::int/0 = 1", truth: "SELECT 0"},
	{technique: "a hidden row named by its key with a comparison failing on its value", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE id = 990001 AND 1/(nps - 2) = 0", truth: "SELECT 0"},
	{technique: "a pushed-down comparison beside a failing one on a hidden value", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE country = 'USA' AND (nps/0) = 0", truth: "SELECT 0"},
	{technique: "BETWEEN, pushed down, beside a failing expression", user: "marie",
		sql: "SELECT count(*) FROM responses r WHERE r.id = 990001 AND r.nps BETWEEN 1 AND 3 AND 1/(r.nps - 2) = 0", truth: "SELECT 0"},
	{technique: "regclass input of a hidden row's value", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE country = 'USA' AND nps::text::regclass IS NULL", truth: "SELECT 0"},
	{technique: "a memory-hungry function only on a hidden row", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE id = 990001 AND length(repeat(comment, 1000000000)) > 0", truth: "SELECT 0"},
	{technique: "a slow function only on hidden rows (timing)", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE id = 990001 AND pg_sleep(5) IS NULL", truth: "SELECT 0"},
	{technique: "a join condition failing on hidden rows", user: "marie",
		sql:   "SELECT count(*) FROM countries c JOIN responses r ON 1/(CASE WHEN r.country = 'USA' THEN 0 ELSE 1 END) = 1",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "a LATERAL item failing on hidden rows", user: "marie",
		sql:   "SELECT count(*) FROM responses r, LATERAL (SELECT 1/(CASE WHEN r.country = 'USA' THEN 0 ELSE 1 END) x) l",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "a materialized CTE filtered by a failing expression", user: "marie",
		sql:   "WITH c AS MATERIALIZED (SELECT * FROM responses) SELECT count(*) FROM c WHERE 1/(CASE WHEN country = 'USA' THEN 0 ELSE 1 END) = 1",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "an ORDER BY failing on hidden rows", user: "marie",
		sql:   "SELECT count(*) FROM (SELECT * FROM responses ORDER BY 1/(CASE WHEN country = 'USA' THEN 0 ELSE 1 END)) s",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "a GROUP BY failing on hidden rows", user: "marie",
		sql:   "SELECT count(*) FROM responses GROUP BY 1/(CASE WHEN country = 'USA' THEN 0 ELSE 1 END)",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["marie"]},
	{technique: "a failing expression on hidden reference rows", user: "marie",
		sql: "SELECT count(*) FROM countries WHERE 1/(CASE WHEN name = 'Germany' THEN 0 ELSE 1 END) = 1", truth: "SELECT 1"},
	{technique: "a division by zero only on rows another agent handled", user: "tom",
		sql:   "SELECT count(*) FROM responses WHERE 1/(CASE WHEN agent_login <> 'tom' THEN 0 ELSE 1 END) = 1",
		truth: "SELECT count(*) FROM responses WHERE " + proxytest.Scopes["tom"]},
	{technique: "another agent's row with a comparison failing on its value", user: "tom",
		sql: "SELECT count(*) FROM responses WHERE agent_login = 'ashley' AND nps = 2 AND 1/(nps - 2) = 0", truth: "SELECT 0"},
	{technique: "a division by zero outside the own team", user: "lea",
		sql: "SELECT count(*) FROM responses WHERE 1/(CASE WHEN team_id <> 11 THEN 0 ELSE 1 END) = 1", same: "SELECT count(*) FROM responses"},
	{technique: "a division by zero on praise the restrictive rule removes", user: "bank_app",
		sql: "SELECT count(*) FROM responses WHERE 1/(CASE WHEN sentiment = 'positive' THEN 0 ELSE 1 END) = 1", same: "SELECT count(*) FROM responses"},
	{technique: "a constant division by zero fails whatever the rows hold", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE country = 'USA' AND 1/0 = 1", state: "22012"},
	{technique: "a sublink failing on a constant fails whatever the rows hold", user: "marie",
		sql: "SELECT count(*) FROM responses WHERE EXISTS (SELECT 1 FROM responses r2 WHERE r2.country = 'USA' AND 1/0 = 1)", state: "22012"},

	// The policy's own inputs (CVE-2019-10208's search_path, for a
	// rewriter: names): a CTE named like a table the scope reads does
	// not stand in for it.
	{technique: "a CTE named teams beside the team-subtree scope", user: "paul",
		sql:  "WITH teams AS (SELECT id, NULL::int AS parent_id, name FROM public.teams) SELECT count(DISTINCT team_id) FROM responses",
		same: "SELECT count(DISTINCT team_id) FROM responses"},
	{technique: "a CTE named employees beside the group scope", user: "ops",
		sql:  "WITH employees AS (SELECT 'x' AS login, 'vendor_a' AS group_name) SELECT count(DISTINCT agent_login) FROM responses",
		same: "SELECT count(DISTINCT agent_login) FROM responses"},
	{technique: "a CTE named team_surveys beside the restrictive rule", user: "lea",
		sql:  "WITH team_surveys AS (SELECT 11 AS team_id, s AS survey_id FROM generate_series(1, 10) s) SELECT count(*) FROM responses",
		same: "SELECT count(*) FROM responses"},
	{technique: "a LATERAL item named teams", user: "paul",
		sql: "SELECT count(*) FROM responses r, LATERAL (SELECT 1) teams", same: "SELECT count(*) FROM responses"},

	// Statistics and sizes (CVE-2017-7484, CVE-2024-4317, and the
	// non-EXPLAIN ways to count rows).
	{technique: "EXPLAIN row estimates", user: "marie", sql: "EXPLAIN SELECT * FROM responses", refused: "explain_governed"},
	{technique: "EXPLAIN ANALYZE rows removed by filter", user: "marie", sql: "EXPLAIN ANALYZE SELECT * FROM responses", refused: "explain_governed"},
	{technique: "pg_stats (CVE-2017-7484)", user: "marie", sql: "SELECT * FROM pg_stats WHERE tablename = 'responses'", refused: "statistics"},
	{technique: "pg_statistic", user: "marie", sql: "SELECT stanullfrac FROM pg_statistic", refused: "statistics"},
	{technique: "pg_stats_ext (CVE-2024-4317)", user: "marie", sql: "SELECT * FROM pg_stats_ext", refused: "statistics"},
	{technique: "pg_stats_ext_exprs (CVE-2024-4317)", user: "marie", sql: "SELECT * FROM pg_stats_ext_exprs", refused: "statistics"},
	{technique: "pg_statistic_ext_data", user: "marie", sql: "SELECT * FROM pg_statistic_ext_data", refused: "statistics"},
	{technique: "pg_class.reltuples and relpages", user: "marie",
		sql: "SELECT reltuples, relpages FROM pg_class WHERE relname = 'responses'", truth: "SELECT -1::real, 0"},
	{technique: "pages, tuples or all-visible pages in pg_class of a relation outside the catalogs", user: "marie",
		sql:   "SELECT count(*) FROM pg_class WHERE (relpages > 0 OR reltuples >= 0 OR relallvisible > 0) AND relnamespace::regnamespace::text NOT IN ('pg_catalog', 'information_schema')",
		truth: "SELECT 0"},
	{technique: "pages and tuples of the governed table's TOAST relation", user: "marie",
		sql: "SELECT t.relpages, t.reltuples FROM pg_class c JOIN pg_class t ON t.oid = c.reltoastrelid WHERE c.relname = 'responses'", truth: "SELECT 0, -1::real"},
	{technique: "the ctid of visible rows, whose gaps count hidden ones", user: "marie", sql: "SELECT ctid FROM responses LIMIT 3", state: "42703"},
	{technique: "a ctid range", user: "marie", sql: "SELECT count(*) FROM responses WHERE ctid > '(0,0)'", state: "42703"},
	{technique: "xmin and xmax of visible rows", user: "marie", sql: "SELECT r.xmin, r.xmax FROM responses r LIMIT 3", state: "42703"},
	{technique: "tableoid of visible rows", user: "marie", sql: "SELECT tableoid FROM responses LIMIT 1", state: "42703"},
	{technique: "pg_stat_user_tables.n_live_tup", user: "marie",
		sql: "SELECT DISTINCT n_live_tup FROM pg_stat_user_tables", truth: "SELECT NULL::bigint"},
	{technique: "pg_stat_xact_user_tables of this transaction's scans", user: "marie", sql: "SELECT seq_tup_read FROM pg_stat_xact_user_tables", refused: "statistics"},
	{technique: "pg_relation_size and pg_total_relation_size", user: "marie",
		sql: "SELECT pg_relation_size('responses'), pg_total_relation_size('responses'), pg_indexes_size('responses')", truth: "SELECT NULL::bigint, NULL::bigint, NULL::bigint"},
	{technique: "pg_stat_get_live_tuples", user: "marie", sql: "SELECT pg_stat_get_live_tuples('responses'::regclass)", refused: "statistics"},
	{technique: "pg_stat_get_xact_tuples_returned", user: "marie", sql: "SELECT pg_stat_get_xact_tuples_returned('responses'::regclass)", refused: "statistics"},
	{technique: "pg_stat_get_db_tuples_fetched", user: "marie", sql: "SELECT pg_stat_get_db_tuples_fetched(oid) FROM pg_database", refused: "statistics"},
	{technique: "TABLESAMPLE SYSTEM row counts", user: "marie", sql: "SELECT count(*) FROM responses TABLESAMPLE SYSTEM (100)", refused: "tablesample"},
	{technique: "TABLESAMPLE BERNOULLI REPEATABLE", user: "marie", sql: "SELECT count(*) FROM responses TABLESAMPLE BERNOULLI (100) REPEATABLE (1)", refused: "tablesample"},
	{technique: "the sequence behind the key", user: "marie", sql: "SELECT last_value FROM responses_id_seq", refused: "sequences"},
	{technique: "pg_sequence_last_value", user: "marie", sql: "SELECT pg_sequence_last_value('responses_id_seq')", refused: "sequences"},
	{technique: "the relation's file", user: "marie", sql: "SELECT pg_relation_filepath('responses')", refused: "files"},

	// Changes of identity (CVE-2023-2455, CVE-2024-10976): pinned
	// settings a plain user may try.
	{technique: "set_config of role", user: "marie", sql: "SELECT set_config('role', 'tom', false)", refused: "pinned_settings"},
	{technique: "set_config of session_authorization", user: "marie", sql: "SELECT set_config('session_authorization', 'tom', false)", refused: "pinned_settings"},
	{technique: "SET ROLE by a user that is no BI service", user: "marie", sql: "SET ROLE tom", refused: "act_for"},
	{technique: "SET SESSION AUTHORIZATION", user: "marie", sql: "SET SESSION AUTHORIZATION tom", refused: "pinned_settings"},
	{technique: "search_path (CVE-2019-10208)", user: "marie", sql: "SET search_path = public, pg_catalog", refused: "pinned_settings"},

	// Security-restricted operations and extension scripts
	// (CVE-2020-25695, CVE-2022-1552, CVE-2023-39417): nothing that
	// would run a DBA's or an extension's code as another role is
	// reachable.
	{technique: "ANALYZE (CVE-2020-25695)", user: "marie", sql: "ANALYZE responses", refused: "statement_kind"},
	{technique: "VACUUM (CVE-2020-25695)", user: "marie", sql: "VACUUM responses", refused: "statement_kind"},
	{technique: "REINDEX (CVE-2022-1552)", user: "marie", sql: "REINDEX TABLE responses", refused: "statement_kind"},
	{technique: "CLUSTER (CVE-2022-1552)", user: "marie", sql: "CLUSTER responses", refused: "statement_kind"},
	{technique: "CREATE EXTENSION (CVE-2023-39417)", user: "marie", sql: "CREATE EXTENSION pgstattuple", refused: "statement_kind"},
	{technique: "CREATE FUNCTION, a leaky function of one's own (CVE-2019-10130)", user: "marie",
		sql: "CREATE FUNCTION leak(text) RETURNS bool LANGUAGE sql AS 'SELECT true'", refused: "ddl"},
	{technique: "a table of one's own copied from the governed one", user: "marie", sql: "CREATE TEMP TABLE t AS SELECT * FROM responses", refused: "ddl"},
	{technique: "LOCK of the governed table", user: "marie", sql: "LOCK TABLE responses", refused: "statement_kind"},
	{technique: "row locks on governed rows", user: "marie", sql: "SELECT id FROM responses WHERE id = 990001 FOR UPDATE NOWAIT", refused: "locking"},
	{technique: "pg_input_is_valid, PostgreSQL 16's error-free oracle", user: "marie", sql: "SELECT pg_input_is_valid('1', 'int')", refused: "function"},
	{technique: "a table read by name as XML", user: "marie", sql: "SELECT table_to_xml('responses', true, false, '')", refused: "query_text"},
	{technique: "a query run from text", user: "marie", sql: "SELECT query_to_xml('SELECT * FROM responses', true, false, '')", refused: "query_text"},
	{technique: "extended statistics' MCV items", user: "marie", sql: "SELECT * FROM pg_mcv_list_items(NULL)", refused: "statistics"},

	// CVE-2023-5869: a huge array fails cleanly and the upstream lives.
	{technique: "an array over the size limit (CVE-2023-5869)", user: "marie",
		sql: "SELECT array_fill(0, ARRAY[2147483647, 2147483647])", state: "54000"},
	{technique: "the session and the upstream go on after it", user: "marie", sql: "SELECT 1", truth: "SELECT 1"},
}

// cve20Writes is the corpus of writes, run by marie granted INSERT,
// UPDATE and DELETE on her French rows (CVE-2021-32027/32028,
// CVE-2023-39418, CVE-2021-20229 and the key-existence oracles). Each is
// run on the extended protocol only, after the reads: the allowed ones
// change proxytest.SeedMarkers's row 990011, which proxytest.SeedMarkers removes.
var cve20Writes = []cve20Case{
	{technique: "INSERT of a key only a hidden row holds (23505 oracle)", user: "marie",
		sql: "INSERT INTO responses (id, country, submitted_at) VALUES (990001, 'France', now())", refused: "write_scope"},
	{technique: "INSERT of a name a hidden reference row holds (23505 oracle)", user: "marie",
		sql: "INSERT INTO countries VALUES ('XX', 'Germany')", refused: "write_scope"},
	{technique: "INSERT … ON CONFLICT DO UPDATE (CVE-2021-32028)", user: "marie",
		sql: "INSERT INTO responses (id, country, submitted_at) VALUES (995001, 'France', now()) ON CONFLICT (id) DO UPDATE SET comment = excluded.comment RETURNING *", refused: "write_governed"},
	{technique: "MERGE (CVE-2023-39418)", user: "marie",
		sql: "MERGE INTO responses r USING (SELECT 990001 AS id) s ON r.id = s.id WHEN MATCHED THEN UPDATE SET nps = 1", refused: "merge"},
	{technique: "UPDATE moving a row out of the scope (WITH CHECK)", user: "marie",
		sql: "UPDATE responses SET country = 'Germany' WHERE id = 990011 RETURNING id, country", refused: "write_scope"},
	// NOTE: the demo's response_comments follows responses on id, so
	// write_scope refuses the key's UPDATE before write_key would.
	{technique: "UPDATE of the key to a hidden row's (23505 oracle)", user: "marie",
		sql: "UPDATE responses SET id = 990001 WHERE id = 990011", refused: "write_scope"},
	{technique: "UPDATE of a foreign key to a table not readable in full", user: "marie",
		sql: "UPDATE responses SET agent_login = 'ashley' WHERE id = 990011", refused: "write_key"},
	{technique: "UPDATE … FROM a hidden row, RETURNING it", user: "marie",
		sql: "UPDATE responses r SET nps = r.nps FROM responses r2 WHERE r2.id = 990001 AND r.id = 990011 RETURNING r2.email", refused: "write_governed"},
	{technique: "UPDATE with several target columns from masked ones (CVE-2021-20229)", user: "marie",
		sql: "UPDATE responses SET (comment, branch) = (SELECT email, contact) WHERE id = 990011 RETURNING comment, branch", refused: "masked_write"},
	{technique: "UPDATE with a row of masked columns (CVE-2021-20229)", user: "marie",
		sql: "UPDATE responses SET (comment, branch) = ROW(email, contact) WHERE id = 990011 RETURNING comment, branch", refused: "masked_write"},
	{technique: "UPDATE of an array element from a masked column (CVE-2021-32027)", user: "marie",
		sql: "UPDATE responses SET tags[1] = email WHERE id = 990011 RETURNING tags", refused: "masked_write"},
	{technique: "RETURNING the whole real row", user: "marie",
		sql: "UPDATE responses SET comment = 'x' WHERE id = 990011 RETURNING (responses.*)::text", refused: "masked_write"},
	{technique: "DELETE of a hidden row RETURNING it", user: "marie",
		sql: "DELETE FROM responses WHERE id = 990001 RETURNING *", refused: "masked_write"},
	{technique: "DELETE of a referenced reference row (foreign-key oracle)", user: "marie",
		sql: "DELETE FROM countries WHERE name IN ('France', 'Germany') RETURNING name", truth: "SELECT 'France'"},
	{technique: "UPDATE from a sublink on a hidden row reads it as absent", user: "marie",
		sql: "UPDATE responses SET comment = (SELECT comment FROM responses WHERE id = 990001) WHERE id = 990011 RETURNING comment", truth: "SELECT NULL::text"},
	{technique: "a CHECK failure names no row", user: "marie",
		sql: "UPDATE responses SET nps = 11 WHERE id = 990011", state: "23514"},
	{technique: "UPDATE of a hidden row changes nothing", user: "marie",
		sql: "UPDATE responses SET nps = 1 WHERE id = 990001 RETURNING id", truth: "SELECT 1 WHERE false"},
	{technique: "a write's WHERE testing a masked column of the target", user: "marie",
		sql: "UPDATE responses SET tags = tags WHERE id = 990011 AND email IS NOT NULL RETURNING id", truth: "SELECT 1 WHERE false"},
	{technique: "a write's WHERE testing the target's whole row", user: "marie",
		sql: "UPDATE responses SET tags = tags WHERE id = 990011 AND responses::text LIKE '%MARKER%' RETURNING id", truth: "SELECT 1 WHERE false"},
	{technique: "a write's WHERE sublink correlated to a masked column", user: "marie",
		sql: "UPDATE responses SET tags = tags WHERE id = 990011 AND EXISTS (SELECT 1 WHERE responses.email LIKE 'MARKER%') RETURNING id", truth: "SELECT 1 WHERE false"},
	{technique: "a write's WHERE on the row constructor of masked columns", user: "marie",
		sql: "UPDATE responses SET tags = tags WHERE id = 990011 AND ROW(responses.contact, responses.email) IS NOT NULL RETURNING id", truth: "SELECT 1 WHERE false"},
	{technique: "a DELETE's WHERE testing a masked column", user: "marie",
		sql: "DELETE FROM responses r WHERE r.id = 990011 AND r::text LIKE '%MARKER%' RETURNING r.id", truth: "SELECT 1 WHERE false"},
	{technique: "SET from a VALUES list of a masked column (CVE-2021-20229)", user: "marie",
		sql: "UPDATE responses SET comment = (SELECT x FROM (VALUES (responses.email)) v(x)) WHERE id = 990011 RETURNING comment", refused: "masked_write"},
	{technique: "RETURNING a sublink on a masked column", user: "marie",
		sql: "UPDATE responses SET tags = tags WHERE id = 990011 RETURNING (SELECT 1 WHERE responses.email LIKE 'MARKER%')", refused: "masked_write"},
	{technique: "a write's WHERE failing only on hidden rows", user: "marie",
		sql: "UPDATE responses SET nps = nps WHERE country = 'USA' AND (comment)::int = 0 RETURNING id", truth: "SELECT 1 WHERE false"},
	{technique: "a NOT NULL failure names no row", user: "marie",
		sql: "UPDATE responses SET submitted_at = NULL WHERE id = 990011", state: "23502"},
	{technique: "a foreign-key failure to a reference table", user: "marie",
		sql: "UPDATE responses SET survey_id = 999 WHERE id = 990011", state: "23503"},
	{technique: "an array subscript at the limit (CVE-2021-32027)", user: "marie",
		sql: "UPDATE responses SET tags[2147483647] = 'x' WHERE id = 990011", state: "54000"},
}

// TestAdversarial20CVE runs an attack corpus built from PostgreSQL's own
// row-level security and privilege CVEs through pgveil against the demo,
// as the country-limited analyst (marie), the agent who sees his own
// rows (tom), the team lead, the product team and the BI service acting
// for others, each answer compared with the truth read directly.
func TestAdversarial20CVE(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements,
			rewrite.KindInsert, rewrite.KindUpdate, rewrite.KindDelete)
	})
	proxytest.SeedMarkers(t)
	// NOTE: the write corpus deletes France from countries as marie (the
	// demo has no foreign key to it, so nothing refuses the DELETE); put
	// it back for the tests that share this cluster.
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB,
			"INSERT INTO countries (code, name) SELECT 'FR', 'France' WHERE NOT EXISTS (SELECT FROM countries WHERE code = 'FR')")
	})
	conns := map[string]*pgx.Conn{}
	conn := func(user string) *pgx.Conn {
		if c, ok := conns[user]; ok {
			return c
		}
		c := p.Connect(t, user)
		conns[user] = c
		return c
	}
	modes := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec}
	run := func(t *testing.T, c cve20Case, modes []pgx.QueryExecMode) {
		t.Helper()
		for _, mode := range modes {
			got, err := cve20Query(ctx, conn(c.user), c.sql, mode)
			for _, s := range cve20Secrets {
				if strings.Contains(got, s) || (err != nil && strings.Contains(cve20ErrText(err), s)) {
					t.Errorf("%v: the answer to %s holds %q: %s %v", mode, c.sql, s, got, err)
				}
			}
			var pe *pgconn.PgError
			errors.As(err, &pe)
			switch {
			case c.refused != "":
				if pe == nil || pe.Code != "42501" || !strings.Contains(pe.Message, "(firewall rule "+c.refused+")") {
					t.Errorf("%v: %s: got %q, %v; want refused by %s", mode, c.sql, got, err, c.refused)
				}
			case c.state != "":
				if pe == nil || pe.Code != c.state {
					t.Errorf("%v: %s: got %q, %v; want SQLSTATE %s", mode, c.sql, got, err, c.state)
				}
			default:
				var want string
				if c.truth != "" {
					want = cve20Text(proxytest.Direct(t, c.truth))
				} else {
					var werr error
					want, werr = cve20Query(ctx, conn(c.user), c.same, mode)
					if werr != nil {
						t.Fatalf("%s: %v", c.same, werr)
					}
				}
				if err != nil || got != want {
					t.Errorf("%v: %s:\n got %q, %v\nwant %q", mode, c.sql, got, err, want)
				}
			}
		}
	}

	// The server's own timeout turns a slow function run on a hidden row
	// into an error (57014), with no timing in the test.
	if _, err := conn("marie").Exec(ctx, "SET statement_timeout = '2s'"); err != nil {
		t.Fatal(err)
	}
	t.Run("no read of the corpus sees a filtered row or a masked value", func(t *testing.T) {
		for _, c := range cve20Corpus {
			t.Run(c.user+" tries "+c.technique, func(t *testing.T) { run(t, c, modes) })
		}
	})
	t.Run("no write of the corpus reads or tests a hidden row", func(t *testing.T) {
		for _, c := range cve20Writes {
			t.Run(c.user+" tries "+c.technique, func(t *testing.T) {
				run(t, c, []pgx.QueryExecMode{pgx.QueryExecModeExec})
			})
		}
	})
}

// cve20Query runs sql on conn in mode and returns its rows as text, one
// line a row, NULL for null.
func cve20Query(ctx context.Context, conn *pgx.Conn, sql string, mode pgx.QueryExecMode) (string, error) {
	rs, err := conn.Query(ctx, sql, mode)
	if err != nil {
		return "", err
	}
	defer rs.Close()
	var rows [][]string
	for rs.Next() {
		raw := rs.RawValues()
		row := make([]string, len(raw))
		for i, v := range raw {
			if v == nil {
				row[i] = "NULL"
				continue
			}
			// The text of the value, whatever the format pgx asked for.
			vals, _ := rs.Values()
			row[i] = fmt.Sprint(vals[i])
		}
		rows = append(rows, row)
	}
	rs.Close()
	return cve20Text(rows), rs.Err()
}

// cve20Text is rows as one line a row.
func cve20Text(rows [][]string) string {
	var b strings.Builder
	for _, r := range rows {
		b.WriteString(strings.Join(r, "|"))
		b.WriteByte('\n')
	}
	return b.String()
}

// cve20ErrText is everything an error tells the client.
func cve20ErrText(err error) string {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return pe.Message + " " + pe.Detail + " " + pe.Hint + " " + pe.Where
	}
	return err.Error()
}

// TestAdversarial20CVEIdentityChanges holds pgveil to what PostgreSQL's
// CVE-2023-2455 and CVE-2024-10976 got wrong: a plan, a prepared
// statement or a cached statement made for one user must never run for
// another. Two country analysts (marie, France; hans, Germany) send the
// same text; the BI service acts for one, then the other, with pgx's
// statement cache on; a statement prepared acting for marie is executed
// acting for hans; and in transaction pooling one session's statement
// and cursor names are not another's.
func TestAdversarial20CVEIdentityChanges(t *testing.T) {
	ctx := context.Background()
	src, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	marie := `user "marie" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles      = ["country_analyst"]
  attributes = { country = "France" }
}`
	if !strings.Contains(string(src), marie) {
		t.Fatal("configs/demo.hcl no longer holds marie's block as this test expects")
	}
	// hans has marie's password and Germany for country.
	hans := strings.Replace(strings.Replace(marie, `"marie"`, `"hans"`, 1), "France", "Germany", 1)
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), marie, marie+"\n"+hans, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	const q = "SELECT country, count(*) FROM responses GROUP BY country ORDER BY 1"
	truth := func(country string) string {
		return cve20Text(proxytest.Direct(t, "SELECT country, count(*) FROM responses WHERE country = '"+country+"' GROUP BY country"))
	}
	modes := []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec,
		pgx.QueryExecModeCacheStatement, pgx.QueryExecModeCacheDescribe}

	t.Run("two analysts sending the same text each read their own country", func(t *testing.T) {
		for _, u := range []struct{ login, country string }{{"marie", "France"}, {"hans", "Germany"}, {"marie", "France"}} {
			c, err := pgx.Connect(ctx, p.URL(u.login, "demo-marie", nil))
			if err != nil {
				t.Fatal(err)
			}
			for _, mode := range modes {
				got, err := cve20Query(ctx, c, q, mode)
				if want := truth(u.country); err != nil || got != want {
					t.Errorf("%s, %v: got %q, %v; want %q", u.login, mode, got, err, want)
				}
			}
			c.Close(ctx)
		}
	})
	t.Run("the BI service's cached statements follow each change of viewer", func(t *testing.T) {
		c := p.Connect(t, "metabase")
		for _, step := range []struct{ viewer, want string }{
			{"marie", truth("France")}, {"hans", truth("Germany")}, {"hq", cve20Text(proxytest.Direct(t, q))}, {"marie", truth("France")},
		} {
			if _, err := c.Exec(ctx, "SET ROLE "+step.viewer); err != nil {
				t.Fatal(err)
			}
			for _, mode := range modes {
				if got, err := cve20Query(ctx, c, q, mode); err != nil || got != step.want {
					t.Errorf("acting for %s, %v: got %q, %v; want %q", step.viewer, mode, got, err, step.want)
				}
			}
		}
	})
	t.Run("a statement prepared acting for marie runs for hans as hans's", func(t *testing.T) {
		c := p.Connect(t, "metabase")
		if _, err := c.Exec(ctx, "SET ROLE marie"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Prepare(ctx, "cve20s", "SELECT DISTINCT country FROM responses WHERE country <> $1"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Exec(ctx, "SET ROLE hans"); err != nil {
			t.Fatal(err)
		}
		// pgx runs a name it prepared as that statement.
		var got string
		rs, err := c.Query(ctx, "cve20s", "x")
		if err == nil {
			for rs.Next() {
				v, _ := rs.Values()
				got += fmt.Sprint(v...) + "\n"
			}
			rs.Close()
			err = rs.Err()
		}
		if err == nil && got != "Germany\n" {
			t.Errorf("acting for hans, marie's statement read %q", got)
		}
		if err != nil && !strings.Contains(err.Error(), "policy_changed") {
			t.Errorf("want hans's rows or a policy_changed refusal, got %v", err)
		}
	})
	t.Run("no startup parameter chooses the role, the viewer or a pinned setting", func(t *testing.T) {
		for _, c := range []struct{ user, key, value string }{
			{"marie", "role", "hq"},
			{"marie", "options", "-c role=hq"},
			{"marie", "pgveil.act_for", "hq"},
			{"metabase", "options", "-c pgveil.act_for=tom"},
			{"metabase", "options", "--role=tom"},
			{"metabase", "session_authorization", "tom"},
			{"marie", "search_path", "pg_temp"},
			{"marie", "options", "-c search_path=pg_temp,public"},
			{"marie", "options", "-c row_security=off"},
			{"marie", "options", "-c client_min_messages=debug5"},
		} {
			conn, err := pgx.Connect(ctx, p.URL(c.user, "demo-"+c.user, url.Values{c.key: {c.value}}))
			var pe *pgconn.PgError
			if err == nil {
				conn.Close(ctx)
			}
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Errorf("%s connecting with %s=%q: got %v, want a 42501 refusal", c.user, c.key, c.value, err)
			}
		}
	})
	t.Run("in transaction pooling one session cannot reach another's statements or cursors", func(t *testing.T) {
		pp, _ := proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 1))
		hq, marie := pp.Connect(t, "hq"), pp.Connect(t, "marie")
		const hidden = "SELECT country FROM responses WHERE country <> 'France' LIMIT 1"
		if _, err := proxytest.RoundTrip(t, hq, &pgproto3.Parse{Name: "cve20", Query: hidden}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		for _, msgs := range [][]pgproto3.FrontendMessage{
			{&pgproto3.Bind{PreparedStatement: "cve20"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{&pgproto3.Describe{ObjectType: 'S', Name: "cve20"}, &pgproto3.Sync{}},
			{&pgproto3.Query{String: "EXECUTE cve20"}},
		} {
			rows, err := proxytest.RoundTrip(t, marie, msgs...)
			if len(rows) > 0 || err == nil {
				t.Errorf("marie reached hq's statement: %q, %v", rows, err)
			}
		}
		if rows, err := proxytest.RoundTrip(t, hq, &pgproto3.Bind{PreparedStatement: "cve20"}, &pgproto3.Execute{}, &pgproto3.Sync{}); err != nil || len(rows) != 1 {
			t.Errorf("hq's own statement: %q, %v", rows, err)
		}
	})
}
