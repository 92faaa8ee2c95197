-- Tool: Grafana 10.x, PostgreSQL data source (pgx underneath)
-- Protocol: extended
-- Reproduces: the data source's health check, the query editor's table
-- and column pickers (information_schema with quote_ident), and panel
-- queries after macro expansion: $__timeFilter(submitted_at) becomes
-- submitted_at BETWEEN '…' AND '…', $__timeGroupAlias(submitted_at, 1d)
-- becomes floor(extract(epoch from submitted_at)/86400)*86400 AS "time",
-- $__timeFrom() a literal timestamp. Expanded by hand the way
-- pkg/tsdb/grafana-postgresql-datasource/macros.go does.

SELECT 1;
SELECT current_setting('server_version_num')::int / 100 AS version;
-- expect: same
SELECT quote_ident(table_name) AS "table" FROM information_schema.tables WHERE quote_ident(table_schema) NOT IN ('information_schema', 'pg_catalog', '_timescaledb_cache', '_timescaledb_catalog', '_timescaledb_internal', '_timescaledb_config', 'timescaledb_information', 'timescaledb_experimental') AND table_type = 'BASE TABLE' AND quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1), array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i, string_to_array(current_setting('search_path'), ',') s) ORDER BY 1;
-- expect: same
SELECT quote_ident(column_name) AS "column", data_type AS "type" FROM information_schema.columns WHERE CASE WHEN array_length(parse_ident('responses'), 1) = 2 THEN quote_ident(table_schema) = (parse_ident('responses'))[1] AND quote_ident(table_name) = (parse_ident('responses'))[2] ELSE quote_ident(table_name) = 'responses' AND quote_ident(table_schema) IN (SELECT CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END FROM generate_series(array_lower(string_to_array(current_setting('search_path'), ','), 1), array_upper(string_to_array(current_setting('search_path'), ','), 1)) AS i, string_to_array(current_setting('search_path'), ',') s) END ORDER BY 1;

-- A time series panel: responses per day, one series per country.
SELECT floor(extract(epoch from submitted_at)/86400)*86400 AS "time", country AS metric, count(*) AS value FROM responses WHERE submitted_at BETWEEN '2025-01-01T00:00:00Z' AND '2025-12-31T23:59:59Z' GROUP BY 1, 2 ORDER BY 1, 2;
-- A stat panel with $__timeFrom() and $__timeTo().
SELECT avg(nps) AS "NPS", count(score) AS scored FROM responses WHERE submitted_at >= '2025-01-01T00:00:00Z' AND submitted_at <= '2026-12-31T23:59:59Z';
-- A table panel.
SELECT submitted_at AS "time", country, branch, nps, email, score FROM responses WHERE submitted_at BETWEEN '2025-06-01T00:00:00Z' AND '2025-06-30T23:59:59Z' ORDER BY 1 DESC LIMIT 500;
-- A template variable ($country).
SELECT DISTINCT country AS __text, country AS __value FROM responses ORDER BY 1;
