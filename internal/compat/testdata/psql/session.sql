-- Everyday psql: variables, \gset, \x, a transaction, an error that must
-- leave the session usable (ON_ERROR_STOP is off for this script).
\set ON_ERROR_STOP 0
\set VERBOSITY verbose
SELECT count(*) AS n FROM responses \gset
\echo rows :n
\x on
SELECT id, country, email, score FROM responses ORDER BY id LIMIT 1;
\x off
BEGIN;
SELECT country, count(*) FROM responses GROUP BY 1 ORDER BY 1;
COMMIT;
SELECT login FROM employees;
\echo after-error
SELECT 1 AS still_usable;
\dt+
