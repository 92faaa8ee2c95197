package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// benchUser is the login clients use at both proxies.
const benchUser = "bench"

// bench is one run of the benchmark: what it started and what it measured.
type bench struct {
	cfg  config
	argv []string
	logf func(format string, args ...any)

	// cleanups undo setup steps; they run in reverse order.
	cleanups []func() error

	pgbench string
	// pgveilBin is the pgveil binary the proxies run.
	pgveilBin string
	facts     machineFacts
	// targets are direct, pgbouncer, pgveil, pgveil-governed and
	// pgveil-audited, in that order.
	targets []*target
	// poolTargets are pgbouncer-tx and pgveil-pool, the targets of the
	// transaction-pool phase; none without that phase.
	poolTargets []*target
	// dead records the proxies found exited, reported once.
	dead map[string]bool
	res  *results
}

// newBench returns a bench that has started nothing yet.
func newBench(cfg config, argv []string, stderr io.Writer) *bench {
	return &bench{cfg: cfg, argv: argv, logf: progress(stderr), dead: map[string]bool{}, res: newResults()}
}

// onCleanup registers f to run at cleanup, before those registered
// earlier.
func (b *bench) onCleanup(f func() error) { b.cleanups = append(b.cleanups, f) }

// cleanup stops everything setup started, newest first, and returns the
// errors joined. It may be called more than once.
func (b *bench) cleanup() error {
	var errs []error
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		if err := b.cleanups[i](); err != nil {
			errs = append(errs, err)
		}
	}
	b.cleanups = nil
	return errors.Join(errs...)
}

// setup builds pgveil and starts PostgreSQL, PgBouncer and the three
// session-mode pgveil processes, and with the transaction-pool phase
// pgbouncer-tx and pgveil-pool.
func (b *bench) setup(ctx context.Context) error {
	if need := b.cfg.fileLimit(); need > 0 {
		b.checkFileLimit(need)
	}
	binDir, err := pgtest.FindBinDir()
	if err != nil {
		return err
	}
	if b.pgbench, err = findPgbench(binDir); err != nil {
		return err
	}
	pgbouncerBin, err := findPgbouncer(b.cfg.pgbouncer)
	if err != nil {
		return err
	}
	b.facts = gatherFacts(b.pgbench)
	b.facts.PgBouncer = commandVersion(pgbouncerBin, "--version")

	// NOTE: the directory must be traversable by the postgres OS user,
	// who runs PgBouncer from a subdirectory of its own.
	workDir, err := os.MkdirTemp("", "pgveil-bench-")
	if err != nil {
		return fmt.Errorf("create the work directory: %w", err)
	}
	b.onCleanup(func() error {
		if err := os.RemoveAll(workDir); err != nil {
			return fmt.Errorf("remove %s: %w", workDir, err)
		}
		return nil
	})
	if err := os.Chmod(workDir, 0o755); err != nil {
		return fmt.Errorf("work directory: %w", err)
	}

	pgveilBin := b.cfg.pgveil
	defer func() { b.pgveilBin = pgveilBin }()
	if pgveilBin == "" {
		b.logf("building pgveil (go build ./cmd/pgveil) ...")
		if pgveilBin, err = buildPgveil(ctx, workDir); err != nil {
			return err
		}
	}

	b.logf("starting PostgreSQL ...")
	cluster, direct, err := startCluster(ctx, b.cfg.scale, b.cfg.maxConnections(), b.pgbench, b.logf)
	if err != nil {
		return err
	}
	b.onCleanup(func() error {
		b.logf("stopping PostgreSQL")
		if err := cluster.Stop(); err != nil {
			return fmt.Errorf("stop PostgreSQL: %w", err)
		}
		return nil
	})
	if b.facts.Postgres, err = serverVersion(ctx, direct); err != nil {
		return fmt.Errorf("server version: %w", err)
	}

	// NOTE: the proxies connect upstream as a least-privilege account,
	// as a DBA would set them up; direct stays the superuser.
	svc, err := createServiceAccount(ctx, direct)
	if err != nil {
		return err
	}
	password, err := randomSecret()
	if err != nil {
		return err
	}
	b.logf("starting pgbouncer (%s) ...", pgbouncerBin)
	bouncer, err := startPgbouncer(ctx, pgbouncerBin, workDir, sessionPgbouncer(max(b.cfg.clients, b.cfg.idleClients)),
		svc, benchUser, password)
	if err != nil {
		return err
	}
	b.onCleanup(func() error {
		b.logf("stopping pgbouncer")
		return stopPgbouncer(bouncer)
	})
	b.logf("pgbouncer (pid %d) listens on 127.0.0.1:%d", bouncer.proc.pid(), bouncer.port)

	b.targets = []*target{direct, bouncer}
	for _, inst := range pgveilInstances {
		b.logf("starting %s (%s) ...", inst.name, pgveilBin)
		veil, err := startPgveil(ctx, pgveilBin, workDir, inst, svc, benchUser, password, b.cfg.gomaxprocs)
		if err != nil {
			return err
		}
		b.onCleanup(func() error {
			b.logf("stopping %s", inst.name)
			return stopPgveil(veil)
		})
		b.logf("%s (pid %d) listens on 127.0.0.1:%d", inst.name, veil.proc.pid(), veil.port)
		b.targets = append(b.targets, veil)
	}

	governed := b.target(targetPgveilGoverned)
	for _, name := range []string{targetPgveilGoverned, targetPgveilAudited} {
		if err := checkGoverned(ctx, b.target(name), b.cfg.scale); err != nil {
			return err
		}
	}
	if err := checkAudited(ctx, b.target(targetPgveilAudited)); err != nil {
		return err
	}
	if b.cfg.scale <= governedBranches {
		b.logf("note: at --scale %d every account is in branches 1 to %d, so %s's rule hides no row (it still rewrites every statement)",
			b.cfg.scale, governedBranches, governed.name)
	} else {
		b.logf("%s shows the accounts of branches 1 to %d of %d (checked)", governed.name, governedBranches, b.cfg.scale)
	}
	if b.cfg.pooling() {
		return b.startPoolTargets(ctx, pgbouncerBin, pgveilBin, workDir, svc, password)
	}
	return nil
}

// measure runs every measurement, interleaving the targets within each
// round and rotating their order from round to round. Failures are
// recorded in b.res, not returned; it stops early only when ctx ends.
func (b *bench) measure(ctx context.Context) {
	run := pgbenchRun{clients: b.cfg.clients, jobs: b.cfg.jobs(), seconds: seconds(b.cfg.duration)}
	for round := range b.cfg.rounds {
		for _, mode := range modes {
			for _, t := range rotate(b.targets, round) {
				if ctx.Err() != nil {
					return
				}
				r := run
				r.mode = mode
				b.tpsSample(ctx, t, r, round, nil)
			}
		}
	}
	b.sampleMemory(b.res.memAfterPgbench)
	b.readAudit(ctx)

	for round := range b.cfg.streamRounds {
		for _, t := range rotate(b.streamTargets(), round) {
			if ctx.Err() != nil {
				return
			}
			b.streamSample(ctx, t, round)
		}
	}
	b.sampleMemory(b.res.memAfterStream)
	if b.cfg.idleClients > 0 {
		// NOTE: pgveil first: its sessions' backends end with them but
		// for the 100 it keeps (keep_idle), while PgBouncer keeps all its
		// server connections open afterwards.
		for _, name := range []string{targetPgveil, targetPgBouncer} {
			if t := b.target(name); t != nil && ctx.Err() == nil {
				b.idleSample(ctx, t, b.cfg.idleClients, 1, b.res.idle)
			}
		}
	}
	if b.cfg.pooling() {
		b.measurePool(ctx)
	}
	b.facts.LoadEnd = loadAverage()
}

// tpsSample takes one throughput sample of t, after a warm-up run. during,
// when not nil, runs alongside the measured run, with a context that ends
// with it; tpsSample returns after during has.
func (b *bench) tpsSample(ctx context.Context, t *target, r pgbenchRun, round int, during func(context.Context)) {
	s := b.res.tpsOf(t.name, r.mode)
	if err := b.checkAlive(t); err != nil {
		s.add(0, err)
		return
	}
	if w := seconds(b.cfg.warmup); w > 0 {
		warm := r
		warm.seconds = w
		_, err := measureTPS(ctx, b.pgbench, t, warm)
		if errors.Is(err, errNoTransactions) {
			// NOTE: the run is discarded anyway; the measured one, longer,
			// still starts with connected clients.
			b.logf("round %d/%d  %-8s  %-15s  warm-up: no transaction in %ds: connecting %d clients took longer",
				round+1, b.cfg.rounds, r.mode, t.name, w, r.clients)
			err = nil
		}
		if err != nil {
			if ctx.Err() == nil {
				s.add(0, fmt.Errorf("warm-up: %w", err))
				b.logf("round %d/%d  %-8s  %-15s  warm-up failed: %v", round+1, b.cfg.rounds, r.mode, t.name, firstLineOf(err))
			}
			return
		}
	}
	cpuBefore, cpuErr := b.proxyCPU(t)
	series := func() *cpuSeries { return nil }
	if r.steadyCPU && t.proc != nil {
		series = sampleCPU(ctx, t.proc.pid(), cpuInterval)
	}
	stop := alongside(ctx, during)
	res, err := measureTPS(ctx, b.pgbench, t, r)
	stop()
	cpus := series()
	if ctx.Err() != nil {
		return
	}
	s.add(res.tps, err)
	if err != nil {
		b.logf("round %d/%d  %-8s  %-15s  failed: %v", round+1, b.cfg.rounds, r.mode, t.name, firstLineOf(err))
		return
	}
	cpuNote := ""
	if cpuAfter, err := b.proxyCPU(t); err == nil && cpuErr == nil && t.proc != nil {
		total := cpuAfter - cpuBefore
		switch {
		case !r.steadyCPU:
			b.res.addCPU(t.name, r.mode, total, res.processed)
			cpuNote = fmt.Sprintf(", %s CPU %v", t.name, total.Round(10*time.Millisecond))
		default:
			cpuNote = fmt.Sprintf(", %d clients connected in %v, %s CPU %v in all", r.clients,
				res.connTime.Round(10*time.Millisecond), t.name, total.Round(10*time.Millisecond))
			if cpu, txns, ok := steadyCPU(cpus, res, time.Duration(r.seconds)*time.Second); ok {
				b.res.addCPU(t.name, r.mode, cpu, txns)
				cpuNote += fmt.Sprintf(", %v for %d transactions once connected", cpu.Round(10*time.Millisecond), txns)
			} else {
				cpuNote += " (too little of the run was left once connected to count it per transaction)"
			}
		}
	}
	b.logf("round %d/%d  %-8s  %-15s  %8.0f tps%s", round+1, b.cfg.rounds, r.mode, t.name, res.tps, cpuNote)
}

// alongside starts f in a goroutine, when f is not nil, and returns a
// function that ends f's context and waits for f to return.
func alongside(ctx context.Context, f func(context.Context)) (stop func()) {
	if f == nil {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// target returns the target named name, of either phase, nil when there
// is none.
func (b *bench) target(name string) *target {
	for _, t := range slices.Concat(b.targets, b.poolTargets) {
		if t.name == name {
			return t
		}
	}
	return nil
}

// streamTargets returns the targets whose streaming rate is measured: all
// but pgveil-governed and pgveil-audited, whose rule has nothing to do
// with the streamed query (it reads no table), and whose audit trail
// writes one record for it.
func (b *bench) streamTargets() []*target {
	var ts []*target
	for _, t := range b.targets {
		if t.name != targetPgveilGoverned && t.name != targetPgveilAudited {
			ts = append(ts, t)
		}
	}
	return ts
}

// proxyCPU returns the CPU time t's proxy has used so far; 0 for direct
// connections.
func (b *bench) proxyCPU(t *target) (time.Duration, error) {
	if t.proc == nil {
		return 0, nil
	}
	return cpuTime(t.proc.pid())
}

// streamSample takes one streaming sample of t.
func (b *bench) streamSample(ctx context.Context, t *target, round int) {
	s := b.res.streamOf(t.name)
	if err := b.checkAlive(t); err != nil {
		s.add(0, err)
		return
	}
	res, err := measureStream(ctx, t, b.cfg.rows)
	if ctx.Err() != nil {
		return
	}
	s.add(res.rate(), err)
	if err != nil {
		b.logf("round %d/%d  stream    %-15s  failed: %v", round+1, b.cfg.streamRounds, t.name, firstLineOf(err))
		return
	}
	b.logf("round %d/%d  stream    %-15s  %8.1f MB/s (%d rows, %.1f MB in %v)", round+1, b.cfg.streamRounds, t.name,
		res.rate()/1e6, res.rows, float64(res.bytes)/1e6, res.elapsed.Round(time.Millisecond))
}

// checkAlive returns an error when t's proxy has exited: in full the first
// time (recorded among the run's failures), briefly afterwards.
func (b *bench) checkAlive(t *target) error {
	err := t.alive()
	if err == nil {
		return nil
	}
	if !b.dead[t.name] {
		b.dead[t.name] = true
		b.res.errs = append(b.res.errs, err)
		b.logf("%s has exited: %v", t.name, firstLineOf(err))
	}
	return fmt.Errorf("%s: skipped, the process had exited", t.name)
}

// readAudit verifies pgveil-audited's trail into b.res.audit, once its
// writer has written what was queued: the statements have ended, so the
// file stops growing within a sync_interval or so.
func (b *bench) readAudit(ctx context.Context) {
	t := b.target(targetPgveilAudited)
	if t == nil || t.auditFile == "" {
		return
	}
	last := int64(-1)
	for range 20 {
		fi, err := os.Stat(t.auditFile)
		if err == nil && fi.Size() == last {
			break
		}
		if err == nil {
			last = fi.Size()
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
	tr, err := readAuditTrail(ctx, b.pgveilBin, t)
	if err != nil {
		b.res.errs = append(b.res.errs, err)
		return
	}
	b.res.audit = &tr
	verdict := "verified"
	if tr.problem != "" {
		verdict = "FAILED: " + tr.problem
		b.res.errs = append(b.res.errs, fmt.Errorf("%s audit trail: %s", t.name, tr.problem))
	}
	b.logf("%s audit trail: %d records, %.1f MiB in %d file(s), %s", t.name, tr.records,
		float64(tr.bytes)/(1<<20), tr.files, verdict)
}

// sampleMemory reads the memory of the proxies into into.
func (b *bench) sampleMemory(into map[string]memStats) {
	for _, t := range b.targets {
		if t.proc == nil || t.proc.exited() {
			continue
		}
		m, err := readMem(t.proc.pid())
		if err != nil {
			b.res.errs = append(b.res.errs, fmt.Errorf("%s: %w", t.name, err))
			continue
		}
		into[t.name] = m
	}
}

// report assembles the final report; call it before cleanup, while the
// proxies' logs still exist.
func (b *bench) report() *report {
	r := &report{
		command:  commandLine(b.argv),
		settings: b.cfg.settingsText(),
		facts:    b.facts,
		cfg:      b.cfg,
		res:      b.res,
	}
	for _, name := range pgveilNames {
		if t := b.target(name); t != nil {
			lines, total := logProblems(t.proc, 10)
			r.pgveilLogs = append(r.pgveilLogs, procLog{name: t.name, lines: lines, total: total})
		}
	}
	return r
}

// rotate returns ts starting at index k (mod len(ts)).
func rotate(ts []*target, k int) []*target {
	k %= len(ts)
	return append(append([]*target{}, ts[k:]...), ts[:k]...)
}

// firstLineOf returns the first line of err's message.
func firstLineOf(err error) string {
	s := err.Error()
	for i := range len(s) {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
