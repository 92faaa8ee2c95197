// Package compat is pgveil's client compatibility suite: it drives real
// clients and replays the query habits of BI tools through pgveil, as the
// demo users marie (French analyst: France rows of public.responses only;
// contact, email and score come back NULL) and hq (every country, the
// score, no personal data).
//
// TestMain starts one throwaway PostgreSQL with the demo database
// (testdata/demo) and one pgveil, in the test process, configured by
// configs/demo.hcl. Each client test then runs the real program — psql,
// pgbench, a Java program on PgJDBC, Python scripts on psycopg2, psycopg 3,
// SQLAlchemy and pandas, asyncpg, and psqlODBC through pyodbc, Node.js
// scripts on node-postgres and postgres.js — against that
// pgveil and checks what it prints. The programs and scripts are test data
// under testdata/: most print one JSON object a line, which the tests
// compare with what they expect. The BI query sets of testdata/bi/*.sql
// replay what Metabase, Tableau, Power BI (Npgsql), Grafana, Superset and
// DBeaver send, through pgx, as marie and as hq.
//
// install.sh installs the clients (Debian packages, and npm ci for
// testdata/node); `make compat` runs it, then this package's tests. A
// missing client skips its test with a message naming `make compat`,
// except under CI=true, where it is a failure. COMPAT_POOL=transaction
// puts a transaction pool in front of the clients (TestPostgresJS runs
// with and without one, through a second pgveil: requirePooledVeil);
// COMPAT_LOG=1 logs what pgveil does, and COMPAT_SHOW=1 what each client
// script printed.
package compat
