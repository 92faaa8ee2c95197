-- Tool: Tableau Desktop / Server 2023.x, PostgreSQL connector (psqlODBC
-- style: UseDeclareFetch, libpq underneath)
-- Protocol: simple
-- Reproduces: the connector's start-up probes, its temporary-table
-- capability check, and how it reads an extract or a live query: a
-- transaction, DECLARE "SQL_CUR…" CURSOR WITH HOLD FOR SELECT …, FETCH
-- 1000 IN "SQL_CUR…" until empty, CLOSE, COMMIT. Queries use Tableau's
-- quoting and naming ("sum:Number of Records:ok", "TEMP(…)").
-- Recorded from psqlODBC's cursor protocol and Tableau's logged SQL, not
-- from a packet capture.
--
-- Temporary tables: pgveil refuses them (firewall rule temp_objects;
-- the demo's service account has no TEMP privilege either). Tableau
-- probes for them at connect and, when the probe fails, generates queries
-- without them; a TDC file with
--   <customization name='CAP_CREATE_TEMP_TABLES' value='no' />
--   <customization name='CAP_SELECT_INTO' value='no' />
-- stops the probe and the errors it logs.

set DateStyle to 'ISO';
set extra_float_digits to 2;
show transaction_isolation;
select oid, typname from pg_type where typname in ('lo', 'geometry', 'geography', 'hstore');
select pg_client_encoding();
SELECT version();
select current_schema();

-- The temporary-table capability probe: refused, with a hint.
-- expect: refused 42501 temp_objects
CREATE LOCAL TEMPORARY TABLE "#Tableau_12_2_Connect" ("COL" INTEGER) ON COMMIT PRESERVE ROWS;
-- expect: refused 42501 statement_kind
DROP TABLE "#Tableau_12_2_Connect";

-- The data source pane: schemas, tables, columns.
-- expect: same
select nspname from pg_namespace where nspname not like 'pg_%' and nspname <> 'information_schema' order by 1;
-- expect: same
select relname, nspname, relkind from pg_class c, pg_namespace n where relkind in ('r', 'v', 'm', 'f', 'p') and nspname not in ('pg_catalog', 'information_schema', 'pg_toast', 'pg_temp_1') and n.oid = relnamespace order by nspname, relname;
-- expect: same
SELECT a.attname, t.typname, a.attlen, a.atttypmod, a.attnotnull, a.attnum FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid WHERE a.attrelid = 'public.responses'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;

-- Metadata of the custom SQL / table: a query that returns no row.
SELECT * FROM "public"."responses" "responses" LIMIT 0;

-- A live query through a cursor.
BEGIN;
declare "SQL_CUR0x7f8e3c00a1f0" cursor with hold for SELECT "responses"."country" AS "country", SUM(1) AS "sum:Number of Records:ok", AVG(CAST("responses"."nps" AS DOUBLE PRECISION)) AS "avg:nps:ok", SUM("responses"."score") AS "sum:score:ok" FROM "public"."responses" "responses" GROUP BY 1;
fetch 1000 in "SQL_CUR0x7f8e3c00a1f0";
fetch 1000 in "SQL_CUR0x7f8e3c00a1f0";
close "SQL_CUR0x7f8e3c00a1f0";
COMMIT;

-- An extract: every row, 1000 at a time.
BEGIN;
declare "SQL_CUR0x7f8e3c00b2a0" cursor with hold for SELECT "responses"."id" AS "id", "responses"."contact" AS "contact", "responses"."email" AS "email", "responses"."country" AS "country", "responses"."nps" AS "nps", "responses"."score" AS "score", "responses"."submitted_at" AS "submitted_at" FROM "public"."responses" "responses";
fetch 1000 in "SQL_CUR0x7f8e3c00b2a0";
fetch 1000 in "SQL_CUR0x7f8e3c00b2a0";
fetch 1000 in "SQL_CUR0x7f8e3c00b2a0";
fetch 1000 in "SQL_CUR0x7f8e3c00b2a0";
close "SQL_CUR0x7f8e3c00b2a0";
COMMIT;

-- A filter card: the distinct values of a dimension, and a date range.
SELECT "responses"."country" AS "country" FROM "public"."responses" "responses" GROUP BY 1 ORDER BY 1 ASC;
SELECT MIN("responses"."submitted_at") AS "TEMP(attr:submitted_at:qk:min)", MAX("responses"."submitted_at") AS "TEMP(attr:submitted_at:qk:max)" FROM "public"."responses" "responses" HAVING (COUNT(1) > 0);
