-- Tool: Apache Superset 3.x on SQLAlchemy 1.4 and psycopg2
-- Protocol: simple
-- Reproduces: SQLAlchemy's PostgreSQL dialect on connect (version,
-- current_schema, standard_conforming_strings) and its reflection of a
-- dataset (has_table, get_columns with pg_sequence for identity columns,
-- the primary key, foreign keys, indexes, comments), then Superset's
-- queries: the dataset preview, SQL Lab with its LIMIT, and a chart's
-- query built by SQLAlchemy Core on a Table with schema "public"
-- (schema-qualified column references). Taken from
-- sqlalchemy/dialects/postgresql/base.py 1.4 and Superset's logged SQL.

select pg_catalog.version();
select current_schema();
show standard_conforming_strings;
show transaction isolation level;
-- expect: same
select relname from pg_class c join pg_namespace n on n.oid=c.relnamespace where pg_catalog.pg_table_is_visible(c.oid) and relname='responses';
-- expect: same
SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' AND c.relkind in ('r', 'p') ORDER BY 1;
-- expect: same
SELECT c.oid FROM pg_catalog.pg_class c LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE (n.nspname = 'public') AND c.relname = 'responses' AND c.relkind in ('r', 'v', 'm', 'f', 'p');
-- expect: same
SELECT a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), (SELECT pg_catalog.pg_get_expr(d.adbin, d.adrelid) FROM pg_catalog.pg_attrdef d WHERE d.adrelid = a.attrelid AND d.adnum = a.attnum AND a.atthasdef) AS DEFAULT, a.attnotnull, a.attrelid as table_oid, pgd.description as comment, a.attgenerated as generated, (SELECT json_build_object('always', a.attidentity = 'a', 'start', s.seqstart, 'increment', s.seqincrement, 'minvalue', s.seqmin, 'maxvalue', s.seqmax, 'cache', s.seqcache, 'cycle', s.seqcycle) FROM pg_catalog.pg_sequence s JOIN pg_catalog.pg_class c on s.seqrelid = c."oid" WHERE c.relkind = 'S' AND a.attidentity != '' AND s.seqrelid = pg_catalog.pg_get_serial_sequence(a.attrelid::regclass::text, a.attname)::regclass::oid) as identity_options FROM pg_catalog.pg_attribute a LEFT JOIN pg_catalog.pg_description pgd ON (pgd.objoid = a.attrelid AND pgd.objsubid = a.attnum) WHERE a.attrelid = 'public.responses'::regclass AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum;
-- expect: same
SELECT t.typname as "name", pg_catalog.format_type(t.typbasetype, t.typtypmod) as "attype", not t.typnotnull as "nullable", t.typdefault as "default", pg_catalog.pg_type_is_visible(t.oid) as "visible", n.nspname as "schema" FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace WHERE t.typtype = 'd';
-- expect: same
SELECT t.typname as "name", pg_catalog.pg_type_is_visible(t.oid) as "visible", n.nspname as "schema", e.enumlabel as "label" FROM pg_catalog.pg_type t LEFT JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace LEFT JOIN pg_catalog.pg_enum e ON t.oid = e.enumtypid WHERE t.typtype = 'e' ORDER BY "schema", "name", e.oid;
-- expect: same
SELECT a.attname FROM pg_attribute a JOIN (SELECT unnest(ix.indkey) attnum, generate_subscripts(ix.indkey, 1) ord FROM pg_index ix WHERE ix.indrelid = 'public.responses'::regclass AND ix.indisprimary) k ON a.attnum=k.attnum WHERE a.attrelid = 'public.responses'::regclass ORDER BY k.ord;
-- expect: same
SELECT r.conname, pg_catalog.pg_get_constraintdef(r.oid, true) as condef, n.nspname as conschema FROM pg_catalog.pg_constraint r, pg_namespace n, pg_class c WHERE r.conrelid = 'public.responses'::regclass AND r.contype = 'f' AND c.oid = confrelid AND n.oid = c.relnamespace ORDER BY 1;
-- expect: same
SELECT i.relname as relname, ix.indisunique, ix.indexprs, a.attname, a.attnum, c.conrelid, ix.indkey::varchar, ix.indoption::varchar, i.reloptions, am.amname, pg_get_expr(ix.indpred, ix.indrelid), NULL as indnkeyatts FROM pg_class t join pg_index ix on t.oid = ix.indrelid join pg_class i on i.oid = ix.indexrelid left outer join pg_attribute a on t.oid = a.attrelid and a.attnum = ANY(ix.indkey) left outer join pg_constraint c on (ix.indrelid = c.conrelid and ix.indexrelid = c.conindid and c.contype in ('p', 'u', 'x')) left outer join pg_am am on i.relam = am.oid WHERE t.relkind IN ('r', 'v', 'f', 'm', 'p') and t.oid = 'public.responses'::regclass and ix.indisprimary = 'f' ORDER BY t.relname, i.relname;
-- expect: same
SELECT pgd.description as table_comment FROM pg_catalog.pg_description pgd WHERE pgd.objsubid = 0 AND pgd.objoid = 'public.responses'::regclass;

-- The dataset preview and SQL Lab (Superset adds LIMIT 1001).
SELECT * FROM public.responses LIMIT 100;
SELECT country, count(*) AS n, avg(score) AS score FROM responses GROUP BY country ORDER BY n DESC
LIMIT 1001;
-- A chart on the dataset: SQLAlchemy Core, schema-qualified columns.
SELECT public.responses.country AS country, DATE_TRUNC('month', public.responses.submitted_at) AS __timestamp, count(*) AS count, AVG(public.responses.nps) AS "AVG(nps)" FROM public.responses WHERE public.responses.submitted_at >= TO_TIMESTAMP('2025-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') AND public.responses.submitted_at < TO_TIMESTAMP('2026-01-01 00:00:00.000000', 'YYYY-MM-DD HH24:MI:SS.US') GROUP BY public.responses.country, DATE_TRUNC('month', public.responses.submitted_at) ORDER BY count DESC LIMIT 10000;
