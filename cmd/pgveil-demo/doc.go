// Command pgveil-demo runs pgveil in front of a throwaway PostgreSQL that
// holds the customer-feedback demo data, and prints how to connect as each
// demo user. `make demo` runs it; Ctrl-C stops everything and removes the
// temporary files.
//
// Steps: start a cluster with internal/pgtest (initdb into a temp dir, a
// free port, binaries from pg_config --bindir or /usr/lib/postgresql/*/bin),
// create the database "feedback" from testdata/demo/*.sql, give the
// service account pgveil_svc a random password, build cmd/pgveil, start
// `pgveil serve --config configs/demo.hcl` with the addresses and password
// in environment variables, check that every demo user can log in, and
// print one ready-to-paste psql line per user.
//
// pgveil listens on PGVEIL_DEMO_LISTEN and serves its admin endpoint on
// PGVEIL_DEMO_ADMIN when they are set (as configs/demo.hcl reads them);
// otherwise on 127.0.0.1:6432 and 127.0.0.1:9187, or a free port when one
// is taken.
package main
