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
