package main

import (
	"context"
	"fmt"
	"strconv"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// clusterSettings returns the server settings of the benchmark cluster,
// on top of pgtest's defaults (fsync off), for maxConnections
// connections (config.maxConnections).
func clusterSettings(maxConnections int) map[string]string {
	return map[string]string{
		"shared_buffers":  "256MB",
		"max_connections": strconv.Itoa(maxConnections),
		// NOTE: nothing in the benchmark writes, but pgbench -i does.
		"synchronous_commit": "off",
		"jit":                "off",
	}
}

// startCluster starts the throwaway PostgreSQL server, allowing
// maxConnections connections, creates the bench database and fills it with
// `pgbench -i -s scale`. It returns the cluster and the direct target (the
// superuser, who also owns the tables).
func startCluster(ctx context.Context, scale, maxConnections int, pgbench string, logf func(string, ...any)) (*pgtest.Cluster, *target, error) {
	cluster, err := pgtest.Start(pgtest.Options{Settings: clusterSettings(maxConnections)})
	if err != nil {
		return nil, nil, fmt.Errorf("start PostgreSQL: %w", err)
	}
	user, pw := cluster.SuperUser()
	direct := &target{name: targetDirect, host: cluster.Host(), port: cluster.Port(), user: user, password: pw}
	logf("PostgreSQL listens on %s (max_connections=%d, log %s)", cluster.Addr(), maxConnections, cluster.LogFile())

	if err := cluster.CreateDatabase(ctx, benchDatabase); err != nil {
		_ = cluster.Stop()
		return nil, nil, fmt.Errorf("create database %s: %w", benchDatabase, err)
	}
	logf("pgbench -i -s %d ...", scale)
	if _, err := runPgbench(ctx, pgbench, direct, "-i", "-q", "-s", strconv.Itoa(scale)); err != nil {
		_ = cluster.Stop()
		return nil, nil, fmt.Errorf("initialise the pgbench tables: %w", err)
	}
	return cluster, direct, nil
}

// serverVersion returns the server_version the target reports.
func serverVersion(ctx context.Context, t *target) (string, error) {
	conn, err := t.connect(ctx)
	if err != nil {
		return "", err
	}
	defer conn.Close(context.Background())
	return conn.ParameterStatus("server_version"), nil
}

// serviceUser is the upstream account the proxies connect as: what a DBA
// would give pgveil (and PgBouncer), not the superuser that owns the
// tables, so that pgveil logs no warning about its privileges.
const serviceUser = "pgveil_bench_svc"

// createServiceAccount creates serviceUser with a fresh password, allowed
// to read and write the pgbench tables and nothing else: no temporary
// objects, no CREATE on the public schema (PostgreSQL 15's default). It
// returns the target of the proxies' upstream: direct as serviceUser.
func createServiceAccount(ctx context.Context, direct *target) (*target, error) {
	pw, err := randomSecret()
	if err != nil {
		return nil, err
	}
	conn, err := direct.connect(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	// NOTE: the password is hex (randomSecret): no quote to escape.
	sql := fmt.Sprintf(`CREATE ROLE %s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '%s';
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO %s;
REVOKE TEMP ON DATABASE %s FROM PUBLIC;
REVOKE CREATE ON SCHEMA public FROM PUBLIC`, serviceUser, pw, serviceUser, benchDatabase)
	if _, err := conn.Exec(ctx, sql).ReadAll(); err != nil {
		return nil, fmt.Errorf("create the service account %s: %w", serviceUser, err)
	}
	svc := *direct
	svc.user, svc.password = serviceUser, pw
	return &svc, nil
}
