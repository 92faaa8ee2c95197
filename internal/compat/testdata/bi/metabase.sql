-- Tool: Metabase 0.50 (PostgreSQL driver on PgJDBC 42.x)
-- Protocol: extended
-- Reproduces: what Metabase sends when it connects, syncs the database's
-- metadata (tables, fields, primary keys, privileges, field values) and
-- runs a native question: the connection is made read-only with SET
-- SESSION CHARACTERISTICS, the sync reads information_schema and
-- pg_catalog (src/metabase/driver/postgres.clj: get-tables-sql,
-- describe-fields-sql, current-user-table-privileges), and a native query
-- is wrapped as SELECT "source".* FROM (…) AS "source" LIMIT 2000.
-- Recorded from the driver's source and PgJDBC's behaviour, not from a
-- packet capture.

SHOW TRANSACTION ISOLATION LEVEL;
SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY;
SET SESSION CHARACTERISTICS AS TRANSACTION ISOLATION LEVEL READ COMMITTED;
show timezone;
SELECT nspname AS "TABLE_SCHEM", current_database() AS "TABLE_CATALOG" FROM pg_catalog.pg_namespace WHERE nspname <> 'pg_toast' AND (nspname !~ '^pg_temp_' OR nspname = (pg_catalog.current_schemas(true))[1]) AND (nspname !~ '^pg_toast_temp_' OR nspname = replace((pg_catalog.current_schemas(true))[1], 'pg_temp_', 'pg_toast_temp_')) ORDER BY "TABLE_SCHEM";

-- describe-database: the tables to sync. The estimated row count comes
-- from pg_stat_user_tables.n_live_tup, which pgveil serves with every
-- counter NULL (it would count rows beyond the user's): Metabase lists
-- the tables without an estimate. See the README's Compatibility section.
-- expect: null estimated_row_count
SELECT "n"."nspname" AS "schema", "c"."relname" AS "name", CASE "c"."relkind" WHEN 'r' THEN 'TABLE' WHEN 'p' THEN 'PARTITIONED TABLE' WHEN 'v' THEN 'VIEW' WHEN 'f' THEN 'FOREIGN TABLE' WHEN 'm' THEN 'MATERIALIZED VIEW' ELSE NULL END AS "type", "d"."description" AS "description", "stat"."n_live_tup" AS "estimated_row_count" FROM "pg_catalog"."pg_class" AS "c" INNER JOIN "pg_catalog"."pg_namespace" AS "n" ON "c"."relnamespace" = "n"."oid" LEFT JOIN "pg_catalog"."pg_description" AS "d" ON ("c"."oid" = "d"."objoid") AND ("d"."objsubid" = 0) AND ("d"."classoid" = 'pg_class'::regclass) LEFT JOIN "pg_stat_user_tables" AS "stat" ON ("n"."nspname" = "stat"."schemaname") AND ("c"."relname" = "stat"."relname") WHERE ("c"."relnamespace" = "n"."oid") AND ("n"."nspname" !~ '^pg_') AND ("n"."nspname" <> 'information_schema') AND c.relkind in ('r', 'p', 'v', 'f', 'm') AND ("n"."nspname" IN ('public')) ORDER BY "type" ASC, "schema" ASC, "name" ASC;

-- have-select-privilege?: a probe per table, which must not fail.
SELECT TRUE AS "_" FROM "public"."responses" WHERE 1 <> 1 LIMIT 0;
SELECT TRUE AS "_" FROM "public"."countries" WHERE 1 <> 1 LIMIT 0;

-- current-user-table-privileges
-- expect: same
with table_privileges as ( select NULL as role, t.schemaname as schema, t.objectname as table, pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'update') as update, pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'select') as select, pg_catalog.has_any_column_privilege(current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'insert') as insert, pg_catalog.has_table_privilege(     current_user, '"' || replace(t.schemaname, '"', '""') || '"' || '.' || '"' || replace(t.objectname, '"', '""') || '"',  'delete') as delete from ( select schemaname, tablename as objectname from pg_catalog.pg_tables union select schemaname, viewname as objectname from pg_catalog.pg_views union select schemaname, matviewname as objectname from pg_catalog.pg_matviews ) t where t.schemaname !~ '^pg_' and t.schemaname <> 'information_schema' and pg_catalog.has_schema_privilege(current_user, t.schemaname, 'usage') ) select t.* from table_privileges t ORDER BY 2, 3;

-- describe-fields: one query for every table's columns.
-- expect: same
SELECT "c"."column_name" AS "name", CASE WHEN "c"."udt_schema" IN ('public', 'pg_catalog') THEN FORMAT('%s', "c"."udt_name") ELSE FORMAT('"%s"."%s"', "c"."udt_schema", "c"."udt_name") END AS "database-type", "c"."ordinal_position" - 1 AS "database-position", "c"."table_schema" AS "table-schema", "c"."table_name" AS "table-name", "pk"."column_name" IS NOT NULL AS "pk?", COL_DESCRIPTION(CAST(CAST(FORMAT('%I.%I', CAST("c"."table_schema" AS TEXT), CAST("c"."table_name" AS TEXT)) AS REGCLASS) AS OID), "c"."ordinal_position") AS "field-comment", (("column_default" IS NULL) OR (LOWER("column_default") = 'null')) AND ("is_nullable" = 'NO') AND NOT ((("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO')) AS "database-required", (("column_default" IS NOT NULL) AND ("column_default" LIKE '%nextval(%')) OR ("is_identity" <> 'NO') AS "database-is-auto-increment" FROM "information_schema"."columns" AS "c" LEFT JOIN (SELECT "tc"."table_schema", "tc"."table_name", "kc"."column_name" FROM "information_schema"."table_constraints" AS "tc" INNER JOIN "information_schema"."key_column_usage" AS "kc" ON ("tc"."constraint_name" = "kc"."constraint_name") AND ("tc"."table_schema" = "kc"."table_schema") AND ("tc"."table_name" = "kc"."table_name") WHERE "tc"."constraint_type" = 'PRIMARY KEY') AS "pk" ON ("c"."table_schema" = "pk"."table_schema") AND ("c"."table_name" = "pk"."table_name") AND ("c"."column_name" = "pk"."column_name") WHERE c.table_schema !~ '^information_schema|catalog_history|pg_' AND ("c"."table_schema" IN ('public')) ORDER BY "table-schema" ASC, "table-name" ASC, "database-position" ASC;

-- describe-fks
-- expect: same
SELECT fk_ns.nspname AS "fk-table-schema", fk_table.relname AS "fk-table-name", fk_column.attname AS "fk-column-name", pk_ns.nspname AS "pk-table-schema", pk_table.relname AS "pk-table-name", pk_column.attname AS "pk-column-name" FROM pg_constraint c JOIN pg_class fk_table ON c.conrelid = fk_table.oid JOIN pg_namespace fk_ns ON c.connamespace = fk_ns.oid JOIN pg_attribute fk_column ON c.conrelid = fk_column.attrelid JOIN pg_class pk_table ON c.confrelid = pk_table.oid JOIN pg_namespace pk_ns ON pk_table.relnamespace = pk_ns.oid JOIN pg_attribute pk_column ON c.confrelid = pk_column.attrelid WHERE fk_ns.nspname !~ '^information_schema|catalog_history|pg_' AND c.contype = 'f'::char AND fk_column.attnum = ANY(c.conkey) AND pk_column.attnum = ANY(c.confkey) AND fk_ns.nspname IN ('public') ORDER BY 1, 2, 3;

-- Field values (fingerprinting and filter widgets): the distinct values
-- of a category column, which must be marie's only.
SELECT "public"."responses"."country" AS "country" FROM "public"."responses" GROUP BY "public"."responses"."country" ORDER BY "public"."responses"."country" ASC LIMIT 1000;
SELECT "public"."responses"."sentiment" AS "sentiment" FROM "public"."responses" GROUP BY "public"."responses"."sentiment" ORDER BY "public"."responses"."sentiment" ASC LIMIT 1000;

-- A question built in the query builder: count by country, by month.
SELECT "public"."responses"."country" AS "country", DATE_TRUNC('month', "public"."responses"."submitted_at") AS "submitted_at", COUNT(*) AS "count", AVG("public"."responses"."score") AS "avg" FROM "public"."responses" WHERE ("public"."responses"."submitted_at" >= timestamp with time zone '2025-01-01 00:00:00.000Z') AND ("public"."responses"."submitted_at" < timestamp with time zone '2026-01-01 00:00:00.000Z') GROUP BY "public"."responses"."country", DATE_TRUNC('month', "public"."responses"."submitted_at") ORDER BY "public"."responses"."country" ASC, DATE_TRUNC('month', "public"."responses"."submitted_at") ASC;

-- A native (SQL) question: wrapped by Metabase, with its remark.
-- Metabase:: userID: 1 queryType: native queryHash: 0c1f…
SELECT "source".* FROM (SELECT id, country, branch, nps, score, email, submitted_at FROM responses WHERE nps <= 6 ORDER BY submitted_at DESC) AS "source" LIMIT 2000;

-- Table preview (the "raw data" view): every column, masked ones NULL.
SELECT "public"."responses"."id" AS "id", "public"."responses"."survey_id" AS "survey_id", "public"."responses"."contact" AS "contact", "public"."responses"."email" AS "email", "public"."responses"."country" AS "country", "public"."responses"."branch" AS "branch", "public"."responses"."nps" AS "nps", "public"."responses"."score" AS "score", "public"."responses"."submitted_at" AS "submitted_at" FROM "public"."responses" LIMIT 2000;

SET SESSION CHARACTERISTICS AS TRANSACTION READ WRITE;
