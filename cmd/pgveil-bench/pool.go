package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// The transaction-pool phase: many clients on a few upstream backends,
// through pgveil-pool and pgbouncer-tx.

// poolAppName is the application_name of pgbench's clients in the
// transaction-pool phase. PgBouncer sets it on the server connection it
// lends them, which tells pgbouncer-tx's backends from those pgbouncer
// (session mode) keeps open.
const poolAppName = "pgveil-bench-pool"

// pgveilPoolAppName is the application_name of the backends of pgveil's
// pool that no session took yet; one a session took names its user and
// application (pgveilPoolTag).
const pgveilPoolAppName = "pgveil:pool"

// pgveilPoolTag is the application_name a session of pgbench's clients
// gives the pgveil-pool backend it takes.
const pgveilPoolTag = "pgveil:" + benchUser + ":" + poolAppName

// poolIdleParallel is how many idle clients of the transaction-pool phase
// connect at once.
const poolIdleParallel = 16

// backendPoll is how often a pooling proxy's upstream backends are
// counted while pgbench runs through it.
const backendPoll = time.Second

// startPoolTargets starts pgbouncer-tx and pgveil-pool in front of
// upstream, for clients logging in as benchUser with password.
func (b *bench) startPoolTargets(ctx context.Context, pgbouncerBin, pgveilBin, workDir string, upstream *target, password string) error {
	inst := transactionPgbouncer(b.cfg.poolSize, b.cfg.poolClients+b.cfg.poolIdleClients)
	b.logf("starting %s (%s) ...", inst.name, pgbouncerBin)
	bouncer, err := startPgbouncer(ctx, pgbouncerBin, workDir, inst, upstream, benchUser, password)
	if err != nil {
		return err
	}
	b.onCleanup(func() error {
		b.logf("stopping %s", inst.name)
		return stopPgbouncer(bouncer)
	})
	bouncer.appName, bouncer.backendApps = poolAppName, [2]string{poolAppName, poolAppName}
	b.logf("%s (pid %d) listens on 127.0.0.1:%d", inst.name, bouncer.proc.pid(), bouncer.port)

	vinst := pgveilPoolInstance(b.cfg.poolSize)
	b.logf("starting %s (%s, Go's default GOMAXPROCS) ...", vinst.name, pgveilBin)
	veil, err := startPgveil(ctx, pgveilBin, workDir, vinst, upstream, benchUser, password, b.cfg.gomaxprocs)
	if err != nil {
		return err
	}
	b.onCleanup(func() error {
		b.logf("stopping %s", vinst.name)
		return stopPgveil(veil)
	})
	veil.appName, veil.backendApps = poolAppName, [2]string{pgveilPoolAppName, pgveilPoolTag}
	b.logf("%s (pid %d) listens on 127.0.0.1:%d", vinst.name, veil.proc.pid(), veil.port)

	b.poolTargets = []*target{bouncer, veil}
	return nil
}

// measurePool runs the transaction-pool phase: pgbench -S -M simple with
// --pool-clients clients through each pooling proxy, interleaved and
// rotated by round as the other throughput runs, counting the upstream
// backends the proxy holds meanwhile; then --pool-idle-clients idle
// clients at each.
func (b *bench) measurePool(ctx context.Context) {
	run := pgbenchRun{mode: modeSimple, clients: b.cfg.poolClients, jobs: b.cfg.poolJobs(), seconds: seconds(b.cfg.duration),
		steadyCPU: true}
	for round := range b.cfg.rounds {
		for _, t := range rotate(b.poolTargets, round) {
			if ctx.Err() != nil {
				return
			}
			b.poolSample(ctx, t, run, round)
		}
	}
	if b.cfg.poolIdleClients == 0 {
		return
	}
	for _, t := range b.poolTargets {
		if ctx.Err() != nil {
			return
		}
		b.logf("idle      %-15s  opening %d clients, %d at a time ...", t.name, b.cfg.poolIdleClients, poolIdleParallel)
		b.idleSample(ctx, t, b.cfg.poolIdleClients, poolIdleParallel, b.res.poolIdle)
	}
}

// poolSample takes one throughput sample of the pooling proxy t, counting
// its upstream backends every backendPoll during the measured run.
func (b *bench) poolSample(ctx context.Context, t *target, r pgbenchRun, round int) {
	var (
		most, counts int
		countErr     error
	)
	b.tpsSample(ctx, t, r, round, func(ctx context.Context) {
		most, counts, countErr = b.watchBackends(ctx, t)
	})
	if countErr != nil && ctx.Err() == nil {
		b.res.errs = append(b.res.errs, fmt.Errorf("count the upstream backends of %s: %w", t.name, countErr))
		return
	}
	if counts > 0 {
		b.res.addBackends(t.name, most)
		b.logf("round %d/%d  %-8s  %-15s  %d upstream backends at most (%d counts)", round+1, b.cfg.rounds, r.mode, t.name, most, counts)
	}
}

// watchBackends counts t's upstream backends in pg_stat_activity, through
// a direct connection, every backendPoll until ctx ends, and returns the
// most it counted and how many counts it made. The end of ctx is not an
// error.
func (b *bench) watchBackends(ctx context.Context, t *target) (most, counts int, err error) {
	direct := b.target(targetDirect)
	conn, err := direct.connect(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return 0, 0, nil
		}
		return 0, 0, err
	}
	defer conn.Close(context.Background())
	tick := time.NewTicker(backendPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return most, counts, nil
		case <-tick.C:
		}
		n, err := countBackends(ctx, conn, t.backendApps)
		if err != nil {
			if ctx.Err() != nil {
				return most, counts, nil
			}
			return most, counts, err
		}
		most = max(most, n)
		counts++
	}
}

// countBackends returns how many backends of the bench database
// pg_stat_activity lists with either application_name of apps.
func countBackends(ctx context.Context, conn *pgconn.PgConn, apps [2]string) (int, error) {
	if apps[0] == "" {
		return 0, errors.New("no application_name to count the backends by")
	}
	const q = "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND application_name IN ($2, $3)"
	res := conn.ExecParams(ctx, q, [][]byte{[]byte(benchDatabase), []byte(apps[0]), []byte(apps[1])}, nil, nil, nil).Read()
	if res.Err != nil {
		return 0, res.Err
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return 0, fmt.Errorf("%s: unexpected result shape", q)
	}
	n, err := strconv.Atoi(string(res.Rows[0][0]))
	if err != nil {
		return 0, fmt.Errorf("%s: %w", q, err)
	}
	return n, nil
}

// checkFileLimit raises the open-file limit of this process and of those
// it starts to the hard limit, and says so when that is still below need
// or cannot be done: the transaction-pool phase's idle clients would then
// fail to connect.
func (b *bench) checkFileLimit(need uint64) {
	limit, err := raiseFileLimit()
	switch {
	case err != nil:
		b.logf("warning: %v; the transaction-pool phase needs about %d open files in a process", err, need)
	case limit < need:
		b.logf("warning: open files are limited to %d (the hard RLIMIT_NOFILE), the transaction-pool phase needs about %d in a process: "+
			"raise the hard limit (ulimit -Hn) or lower --pool-clients and --pool-idle-clients", limit, need)
	default:
		b.logf("open files: limit %d (the hard RLIMIT_NOFILE) for this process and those it starts; the transaction-pool phase needs about %d", limit, need)
	}
}
