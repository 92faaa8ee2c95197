package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestAdversarialDirectReads holds angles TestAdversarial did not: direct
// reads of a table with no masked column (seen twice, so through the
// template), system columns and whole rows there, catalog functions of
// relations, sublinks in LIMIT, window frames and ORDER BY, row
// comparisons, SEARCH and CYCLE, and other spellings of the statement
// text functions. Every byte the client gets is checked for the markers
// proxytest.SeedMarkers plants, and a hidden country planted here.
func TestAdversarialDirectReads(t *testing.T) {
	p := proxytest.StartDemo(t)
	proxytest.SeedMarkers(t)
	ctx := context.Background()
	if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "INSERT INTO countries (code, name) VALUES ('ZZ', 'MARKER-HIDDEN-ROW-COUNTRY')"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "DELETE FROM countries WHERE code = 'ZZ'") })

	a := newAdvClient(t, p, "marie")
	for _, q := range []string{
		// system columns and whole rows of a relation read directly
		"SELECT tableoid, ctid, xmin, xmax, cmin, cmax FROM responses",
		"SELECT ctid, name FROM countries WHERE code <> 'XX'",
		"SELECT xmin, name FROM countries WHERE code <> 'XX'",
		"SELECT countries FROM countries WHERE code <> 'XX'",
		"SELECT c FROM countries c WHERE code <> 'XX'",
		"SELECT c.* FROM countries c WHERE c.code <> 'XX'",
		// direct reads (flatten), seen twice so the template runs
		"SELECT name FROM countries WHERE code <> 'XX' ORDER BY name LIMIT 100",
		"SELECT name FROM countries WHERE code <> 'YY' ORDER BY name LIMIT 100",
		"SELECT name FROM countries WHERE code <> 'YY' ORDER BY name LIMIT 101",
		"SELECT string_agg(name, ',') FROM countries WHERE name > ''",
		"SELECT string_agg(name, ',') FROM countries WHERE name > 'A'",
		"SELECT name, row_number() OVER (ORDER BY name DESC) FROM countries WHERE name <> ''",
		"SELECT DISTINCT ON (code) name FROM countries WHERE code <> ''",
		"SELECT generate_series(1, 2), name FROM countries WHERE code <> ''",
		"SELECT name FROM countries WHERE code IN ('US', 'DE', 'FR', 'ZZ')",
		"SELECT name FROM countries WHERE code IN ('US', 'DE', 'FR', 'ZY')",
		"SELECT name FROM countries WHERE code BETWEEN 'A' AND 'ZZZ'",
		"SELECT name FROM countries WHERE code BETWEEN 'A' AND 'ZZZZ'",
		"SELECT name FROM countries WHERE code = 'ZZ'",
		"SELECT name FROM countries WHERE code = 'ZZ'",
		"SELECT name FROM countries WHERE code = 'Z''Z'",
		"SELECT name FROM countries WHERE code >= 'ZZ' AND code <= 'ZZ'",
		"SELECT name FROM countries WHERE code >= 'ZZ' AND code <= 'ZZ'",
		"SELECT name FROM countries WHERE name = 'MARKER-' || 'HIDDEN-ROW-COUNTRY'",
		"SELECT name FROM countries WHERE name LIKE 'MARKER%'",
		"SELECT count(*) FROM countries WHERE code <> 'XX'",
		"SELECT max(name) FILTER (WHERE 1/(length(name) - 25) > 0) FROM countries WHERE code <> 'XX'",
		"SELECT 1/(length(name) - 25) FROM countries WHERE code <> 'XX'",
		"SELECT name FROM countries WHERE code <> 'XX' ORDER BY 1/(length(name) - 25)",
		"SELECT name FROM countries WHERE code <> 'XX' FETCH FIRST 1 ROWS WITH TIES",
		"SELECT name FROM countries WHERE code <> 'XX' GROUP BY name HAVING 1/(length(name) - 25) > 0",
		"SELECT name FROM countries WHERE code <> 'XX' GROUP BY ROLLUP (name)",
		"SELECT name FROM countries WHERE code <> 'XX' UNION ALL SELECT name FROM countries WHERE code = 'ZZ'",
		"SELECT name FROM ONLY countries WHERE code <> 'XX'",
		"SELECT name FROM countries* WHERE code <> 'XX'",
		"SELECT name FROM public.countries AS c WHERE c.code <> 'XX'",
		"SELECT name FROM public.countries AS countries WHERE countries.code <> 'XX'",
		"SELECT code FROM countries WHERE countries.code <> 'XX'",
		"SELECT code FROM countries WHERE code <> 'XX' AND code <> 'XX'",
		"SELECT code FROM countries WHERE code < 'ZZZ' COLLATE \"C\"",
		"SELECT code FROM countries WHERE code < 'ZZZ' COLLATE \"C\"",
		"SELECT code FROM countries WHERE code COLLATE \"C\" < 'ZZZ'",
		"SELECT code FROM countries WHERE (code) <> 'XX'",
		"SELECT code FROM countries WHERE (code <> 'XX')",
		"SELECT code FROM countries WHERE NOT code = 'XX'",
		"SELECT code FROM countries WHERE code <> ALL ('{XX}')",
		"SELECT code FROM countries WHERE code IS NOT NULL",
		"SELECT code FROM countries WHERE code = 'ZZ' IS NOT FALSE",
		"SELECT code FROM countries WHERE 'XX' <> code",
		"SELECT code FROM countries WHERE code::text <> 'XX'",
		"SELECT code FROM countries WHERE code <> 'XX'::text",
		"SELECT code FROM countries WHERE code <> text 'XX'",
		"SELECT code FROM countries WHERE code <> 'XX'::varchar",
		"SELECT code FROM countries WHERE code <> 'XX'::name",
		"SELECT code FROM countries WHERE code <> 'XX'::bpchar",
		"SELECT code FROM countries WHERE code <> 'XX'::\"char\"",
		"SELECT code FROM countries WHERE code <> U&'XX'",
		"SELECT code FROM countries WHERE code <> E'XX'",
		"SELECT code FROM countries WHERE code <> $$XX$$",
		"SELECT code FROM countries WHERE code <> N'XX'",
		"SELECT code FROM countries WHERE code > B'1'::text",
		"SELECT code FROM countries WHERE code > 1",
		"SELECT code FROM countries WHERE code = true",
		"SELECT code FROM countries WHERE code <> 'XX' LIMIT 10 OFFSET 0",
		"SELECT code FROM countries WHERE code <> 'XX' FOR SHARE",
		"SELECT code FROM countries TABLESAMPLE SYSTEM (100) WHERE code <> 'XX'",
		// catalog functions of relations
		"SELECT pg_get_replica_identity_index('responses')",
		"SELECT * FROM pg_partition_tree('responses')",
		"SELECT pg_relation_is_updatable('responses', true)",
		"SELECT * FROM pg_sequence_parameters('responses_id_seq'::regclass)",
		"SELECT satisfies_hash_partition('responses'::regclass, 1, 0, 990001::bigint)",
		"SELECT attname, attmissingval FROM pg_attribute WHERE attrelid = 'responses'::regclass",
		"SELECT pg_get_serial_sequence('responses', 'id')",
		"SELECT pg_relation_filepath('responses')",
		"SELECT seqstart, seqmax, seqcache FROM pg_sequence",
		"SELECT * FROM information_schema.sequences",
		"SELECT relfrozenxid, age(relfrozenxid) FROM pg_class WHERE relname = 'responses'",
		"SELECT * FROM pg_stat_database",
		"SELECT * FROM pg_stat_wal",
		"SELECT * FROM pg_stat_slru",
		"SELECT * FROM pg_stat_bgwriter",
		"SELECT * FROM pg_stat_ssl",
		"SELECT * FROM pg_stat_gssapi",
		"SELECT * FROM pg_stat_progress_vacuum",
		"SELECT * FROM pg_hba_file_rules",
		"SELECT * FROM pg_db_role_setting",
		"SELECT * FROM pg_policies",
		"SELECT * FROM pg_rules",
		"SELECT * FROM pg_matviews",
		"SELECT * FROM pg_stat_all_indexes",
		"SELECT * FROM pg_statio_all_sequences",
		"SELECT * FROM pg_stat_user_functions",
		"SELECT pg_stat_get_db_tuples_returned(oid) FROM pg_database",
		"SELECT * FROM pg_visible_in_snapshot('1'::xid8, pg_snapshot_in('1:1:'))",
		"SELECT * FROM pg_get_catalog_foreign_keys()",
		"SELECT ts_debug('english', comment) FROM responses LIMIT 1",
		"SELECT * FROM ts_stat('SELECT 1')",
		// row comparisons, distinctness, json/xml paths, sublinks in odd places
		"SELECT count(*) FROM responses WHERE (country, nps) > ('France', 11)",
		"SELECT count(*) FROM responses WHERE country IS DISTINCT FROM 'France'",
		"SELECT jsonb_path_query(to_jsonb(r), '$.email') FROM responses r WHERE id >= 990000",
		"SELECT comment COLLATE \"C\" FROM responses ORDER BY 1 LIMIT 1",
		"SELECT DISTINCT ON (email) id FROM responses",
		"SELECT xmlforest(email, contact, score) FROM responses WHERE id >= 990000",
		"SELECT * FROM XMLTABLE('/a' PASSING (SELECT xmlelement(name a, string_agg(comment, ',')) FROM responses WHERE country = 'USA') COLUMNS x text PATH '.')",
		"SELECT array_position(ARRAY(SELECT id FROM responses ORDER BY id), 990001)",
		"SELECT * FROM responses LIMIT (SELECT count(*) FROM responses WHERE country <> 'France')",
		"SELECT count(*) OVER (ROWS BETWEEN (SELECT count(*) FROM responses WHERE country = 'USA') PRECEDING AND CURRENT ROW) FROM responses LIMIT 1",
		"SELECT id FROM responses ORDER BY (SELECT count(*) FROM public.responses p WHERE p.country <> 'France') LIMIT 1",
		"SELECT count(*) FROM generate_series(1, (SELECT count(*)::int FROM responses WHERE country <> 'France'))",
		"SELECT r::responses FROM responses r WHERE id >= 990000",
		"SELECT (r::responses).email, (r::public.responses).score FROM responses r WHERE id >= 990000",
		"SELECT * FROM json_populate_recordset(NULL::responses, (SELECT json_agg(r) FROM responses r WHERE id >= 990000))",
		"SELECT r FROM responses r GROUP BY r HAVING count(*) > 0 LIMIT 3",
		"SELECT * FROM responses r NATURAL JOIN (SELECT NULL::text AS email) e",
		"SELECT * FROM responses WHERE id >= 990000 AND email IS NULL AND contact IS NULL",
		"SELECT * FROM (TABLE responses) t WHERE id >= 990000",
		"SELECT * FROM (TABLE responses ORDER BY id DESC LIMIT 5) t",
		"WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 2) SEARCH DEPTH FIRST BY n SET ord SELECT * FROM x, responses r WHERE r.country = 'USA'",
		"WITH RECURSIVE x(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM x WHERE n < 2) CYCLE n SET is_cycle USING path SELECT * FROM x, responses r WHERE r.country = 'USA'",
		"BEGIN; DECLARE c SCROLL CURSOR FOR TABLE responses; FETCH ABSOLUTE -1 FROM c; FETCH RELATIVE 0 FROM c; MOVE BACKWARD ALL IN c; FETCH FORWARD 3 FROM c; COMMIT",
		"BEGIN; DECLARE c2 SCROLL CURSOR FOR SELECT name FROM countries WHERE code <> 'XX'; FETCH ALL FROM c2; FETCH BACKWARD ALL FROM c2; COMMIT",
		"PREPARE pc AS SELECT name FROM countries WHERE code <> 'XX'; EXECUTE pc; EXECUTE pc; DEALLOCATE pc",
		// statement text by other spellings
		"SELECT (pg_cursor()).statement",
		"SELECT x.statement FROM ROWS FROM (pg_catalog.pg_cursor()) x",
		"TABLE pg_prepared_statements",
		"SELECT \"current_query\"()",
		"SELECT * FROM pg_catalog.pg_prepared_statements WHERE statement LIKE '%OFFSET 0%'",
		// statement text
		"SHOW ALL",
		"SELECT name, setting FROM pg_settings WHERE name LIKE 'pgveil%' OR name = 'application_name'",
		// errors that quote
		"SELECT * FROM responses WHERE id = 1 AND xyz",
		"SELECT responses.emai FROM responses",
		"SELECT * FROM responses GROUP BY country",
		"SELECT * FROM responses r JOIN responses r2 USING (id) WHERE email = 'x'",
		"SELECT count(*) FROM responses WHERE nps = (SELECT nps FROM responses)",
		"SELECT comment FROM responses ORDER BY id OFFSET -1",
		"SELECT * FROM responses WHERE country = 'France' LIMIT 'x'",
		"SELECT * FROM responses r(a, b, c, d, e, f, g, h, i, j, k, l, m, n, o)",
		"SELECT * FROM responses WHERE submitted_at < 'infinity' AND submitted_at > '-infinity'",
		"SELECT count(*) FROM responses WHERE id = '990001'",
		"SELECT count(*) FROM responses WHERE id = '99999999999999999999'",
		"SELECT count(*) FROM responses WHERE nps = '5' COLLATE \"C\"",
		"SELECT count(*) FROM responses WHERE country = 'USA' COLLATE \"C\"",
		"SELECT count(*) FROM responses WHERE submitted_at >= date '1987-06-04'",
		"SELECT count(*) FROM responses WHERE submitted_at >= '1987-06-04' AND submitted_at < '1987-06-06'",
	} {
		a.probe(q)
	}
	for _, c := range []struct{ user, sql string }{
		{"hq", "SELECT count(*) FROM responses WHERE email IS NOT NULL OR contact IS NOT NULL"},
		{"hq", "SELECT DISTINCT ON (contact) contact, email FROM responses"},
		{"tom", "SELECT count(*) FROM responses WHERE agent_login <> 'tom'"},
		{"bank_app", "SELECT DISTINCT sentiment FROM responses"},
		{"bank_app", "SELECT count(*) FROM responses WHERE NOT ('Banking App' = ANY(tags))"},
		{"bank_app", "SELECT count(*) FROM responses WHERE tags @> ARRAY['Banking App'] AND sentiment = 'positive'"},
		{"lea", "SELECT count(*) FROM responses WHERE team_id <> 11 AND agent_login <> 'lea'"},
		{"paul", "SELECT DISTINCT team_id FROM responses WHERE team_id IN (6, 7, 8, 9, 10, 11)"},
	} {
		b := newAdvClient(t, p, c.user)
		b.probe(c.sql)
	}
}

// TestAdversarialWriteSublinks grants marie UPDATE and DELETE on top of
// her role and reads masked values through what a write evaluates on the
// real row: SET and RETURNING, in sublinks, derived tables, LATERAL,
// VALUES, CTEs and ORDER BY, by every qualification. Each is refused;
// the WHERE reads the masked rows.
func TestAdversarialWriteSublinks(t *testing.T) {
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements, rewrite.KindUpdate, rewrite.KindDelete)
	})
	proxytest.SeedMarkers(t)
	a := newAdvClient(t, p, "marie")
	for _, q := range []string{
		"UPDATE responses r SET comment = (SELECT r.email) WHERE id = 990011 RETURNING comment",
		"UPDATE responses r SET comment = (SELECT email FROM countries LIMIT 1) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT email) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT x FROM (SELECT email AS x) s) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT string_agg(v, ',') FROM unnest(ARRAY[email, contact, score::text]) v) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (WITH x AS (SELECT email) SELECT * FROM x) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT responses.email FROM responses x LIMIT 1) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT public.responses.email FROM responses x LIMIT 1) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT y.email FROM (SELECT 1) y) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT 'x' ORDER BY email LIMIT 1) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT max(v) FROM (VALUES (email)) t(v)) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT v FROM LATERAL (SELECT email) t(v)) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET comment = (SELECT t.email FROM (SELECT 1) AS t(email2)) WHERE id = 990011 RETURNING comment",
		"UPDATE responses SET (comment, branch) = (SELECT email, contact) WHERE id = 990011 RETURNING comment, branch",
		"UPDATE responses SET comment = 'x' WHERE id = 990011 RETURNING (SELECT email)",
		"UPDATE responses SET comment = 'x' WHERE id = 990011 RETURNING (SELECT responses.email FROM countries)",
		"UPDATE responses SET comment = 'x' WHERE id = 990011 RETURNING (SELECT email FROM countries)",
		"UPDATE responses SET comment = 'x' WHERE id = 990011 RETURNING (SELECT x.email FROM responses x WHERE x.id = responses.id)",
		"UPDATE responses SET tags[length(email)] = 'x' WHERE id = 990011 RETURNING tags",
		"DELETE FROM responses WHERE id = 990012 AND false RETURNING (SELECT email)",
		"DELETE FROM responses WHERE id = 990012 AND false RETURNING (SELECT y.email FROM (SELECT 1) y)",
	} {
		a.refuse(q)
	}
	// The WHERE reads the masked rows and finds no hidden one; nothing
	// runs on a hidden row (no division by zero).
	for _, q := range []string{
		"UPDATE responses SET comment = 'x' WHERE id = 990011 RETURNING (SELECT string_agg(comment, ',') FROM responses x WHERE x.id <> responses.id AND x.id >= 990000)",
		"UPDATE responses SET comment = 'x' WHERE id = 990011 AND (SELECT email) IS NOT NULL RETURNING comment",
		"UPDATE responses SET comment = 'x' WHERE id = 990011 AND EXISTS (SELECT 1 FROM countries WHERE responses.email IS NOT NULL) RETURNING comment",
		"UPDATE responses SET comment = 'x' WHERE id IN (990001, 990002, 990003) RETURNING comment",
		"UPDATE responses SET nps = 1/(nps - nps) WHERE id = 990001",
		"UPDATE responses SET nps = nps WHERE 1/(CASE WHEN country = 'USA' THEN 0 ELSE 1 END) = 1",
	} {
		for _, r := range []advResult{a.simple(q), a.extended(q)} {
			switch {
			case r.err != nil:
				// An error would be a WHERE or SET run on a hidden row.
				t.Errorf("%s -> %s", q, errText(r.err))
			case len(r.rows) > 0 && !strings.Contains(q, "string_agg"):
				t.Errorf("%s -> %s, want no row", q, r)
			}
		}
	}
}
