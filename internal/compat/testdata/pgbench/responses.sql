-- pgbench custom script: an analyst's dashboard refresh, one transaction
-- of three reads on the governed table, with random parameters.
\set nps random(0, 10)
\set id random(1, 3004)
SELECT count(*) FROM responses WHERE nps = :nps;
SELECT country, score, email FROM responses WHERE id = :id;
SELECT country, avg(nps) FROM responses WHERE submitted_at >= '2025-06-01' GROUP BY country ORDER BY country;
