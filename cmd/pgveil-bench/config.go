package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// errUsagePrinted reports a command-line error that the flag package has
// already printed.
var errUsagePrinted = errors.New("invalid command line")

// config holds the command-line settings.
type config struct {
	scale    int
	clients  int
	jobsFlag int
	duration time.Duration
	warmup   time.Duration
	rounds   int
	// streamRounds is the number of streaming samples per target; they
	// are short, so more are taken than pgbench rounds.
	streamRounds int
	rows         int
	// idleClients is how many idle connections the idle-client memory
	// measurement opens to each proxy.
	idleClients int
	// poolClients are the pgbench clients (-c) of the transaction-pool
	// phase; 0 disables the phase, and with it pgbouncer-tx and
	// pgveil-pool.
	poolClients int
	// poolSize is the upstream backends each pooling proxy may open:
	// pgveil-pool's pool size and pgbouncer-tx's default_pool_size.
	poolSize int
	// poolIdleClients is how many idle connections the transaction-pool
	// phase opens to each pooling proxy to measure their memory.
	poolIdleClients int
	markdown        bool
	pgveil          string // a prebuilt pgveil binary; "" builds ./cmd/pgveil
	pgbouncer       string // "" finds it
	// gomaxprocs is GOMAXPROCS for the session-mode pgveil processes; 0
	// leaves Go's default (one per core), which pgveil-pool always has.
	gomaxprocs int
}

// parseFlags parses the command line; usage and errors go to stderr.
func parseFlags(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("pgveil-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.IntVar(&c.scale, "scale", 10, "pgbench scale factor of the tables (pgbench -i -s)")
	fs.IntVar(&c.clients, "clients", 8, "pgbench clients (-c)")
	fs.IntVar(&c.jobsFlag, "jobs", 2, "pgbench threads (-j), at most --clients")
	fs.DurationVar(&c.duration, "duration", 15*time.Second, "length of each measured pgbench run (whole seconds)")
	fs.DurationVar(&c.warmup, "warmup", 3*time.Second, "length of the discarded pgbench run before each measured one (0: none)")
	fs.IntVar(&c.rounds, "rounds", 2, "how many times each pgbench run is repeated; the median is reported")
	fs.IntVar(&c.streamRounds, "stream-rounds", 5, "how many times each streamed result is read; the median is reported")
	fs.IntVar(&c.rows, "rows", 1_000_000, "rows of the streamed result")
	fs.IntVar(&c.idleClients, "idle-clients", 150, "idle connections opened to each proxy to measure the memory an idle client costs (0: none)")
	fs.IntVar(&c.poolClients, "pool-clients", 500, "pgbench clients (-c) of the transaction-pool phase, through pgveil-pool and pgbouncer-tx (0: no such phase, nor its idle clients)")
	fs.IntVar(&c.poolSize, "pool-size", 50, "upstream backends of each transaction pool (pgveil's pool size, PgBouncer's default_pool_size)")
	fs.IntVar(&c.poolIdleClients, "pool-idle-clients", 5000, "idle connections opened to each transaction-pooling proxy to measure its memory (0: none)")
	fs.BoolVar(&c.markdown, "markdown", false, "print the report as Markdown")
	fs.IntVar(&c.gomaxprocs, "pgveil-gomaxprocs", 1, "GOMAXPROCS of pgveil and pgveil-governed (0: Go's default; pgveil-pool always has Go's default); 1 matches PgBouncer's single thread on a small machine shared with PostgreSQL")
	fs.StringVar(&c.pgveil, "pgveil", "", "pgveil binary to run (default: build ./cmd/pgveil of the module)")
	fs.StringVar(&c.pgbouncer, "pgbouncer", "", "pgbouncer binary (default: PATH, then /usr/sbin/pgbouncer)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return config{}, err
		}
		// NOTE: the flag package has printed the error and the usage.
		return config{}, errUsagePrinted
	}
	if fs.NArg() > 0 {
		return config{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return c, c.validate()
}

// validate checks the ranges of the settings.
func (c config) validate() error {
	var errs []error
	positive := map[string]int{"--scale": c.scale, "--clients": c.clients, "--jobs": c.jobsFlag,
		"--rounds": c.rounds, "--stream-rounds": c.streamRounds, "--rows": c.rows}
	for _, name := range []string{"--scale", "--clients", "--jobs", "--rounds", "--stream-rounds", "--rows"} {
		if positive[name] < 1 {
			errs = append(errs, fmt.Errorf("%s must be at least 1", name))
		}
	}
	if c.idleClients < 0 || c.idleClients > 150 {
		errs = append(errs, errors.New("--idle-clients must be between 0 and 150 (each holds a server connection; the server allows 250, 40 of them for the backends pgveil keeps)"))
	}
	if c.clients > 150 {
		errs = append(errs, errors.New("--clients must be at most 150 (the server allows 250 connections, 40 of them for the backends pgveil keeps)"))
	}
	if c.poolClients < 0 || c.poolClients > maxPoolClients {
		errs = append(errs, fmt.Errorf("--pool-clients must be between 0 and %d", maxPoolClients))
	}
	if c.poolSize < 1 || c.poolSize > maxPoolSize {
		errs = append(errs, fmt.Errorf("--pool-size must be between 1 and %d (the server's max_connections grows by twice the pool size)", maxPoolSize))
	}
	if c.poolIdleClients < 0 || c.poolIdleClients > maxPoolIdleClients {
		errs = append(errs, fmt.Errorf("--pool-idle-clients must be between 0 and %d (every connection takes a local port of 127.0.0.1)", maxPoolIdleClients))
	}
	if c.duration < time.Second {
		errs = append(errs, errors.New("--duration must be at least 1s"))
	}
	if c.warmup < 0 {
		errs = append(errs, errors.New("--warmup must not be negative"))
	}
	return errors.Join(errs...)
}

// Upper bounds of the transaction-pool flags.
const (
	maxPoolClients = 10000
	maxPoolSize    = 1000
	// maxPoolIdleClients stays well below the ~28,000 ephemeral ports
	// Linux gives connections from 127.0.0.1 to one address.
	maxPoolIdleClients = 20000
)

// sessionConnections is the max_connections the session-mode phases
// need: the limits of --clients and --idle-clients are set for 200, and
// each session-mode pgveil (pgveil, pgveil-governed) keeps up to 100
// ended sessions' backends open (upstream.pool.keep_idle) besides.
const sessionConnections = 400

// jobs returns pgbench's thread count: --jobs, at most one per client.
func (c config) jobs() int { return min(c.jobsFlag, c.clients) }

// poolJobs returns pgbench's thread count of the transaction-pool phase.
func (c config) poolJobs() int { return min(c.jobsFlag, c.poolClients) }

// pooling reports whether the transaction-pool phase runs.
func (c config) pooling() bool { return c.poolClients > 0 }

// maxConnections returns the cluster's max_connections: what the
// session-mode phases need, plus, with the transaction-pool phase, both
// pools (PgBouncer and pgveil keep their backends open between runs, so
// both may be full at once, next to the server connections PgBouncer in
// session mode keeps) and a few for the direct connection that counts
// them.
func (c config) maxConnections() int {
	if !c.pooling() {
		return sessionConnections
	}
	return sessionConnections + 2*c.poolSize + 10
}

// fileLimit returns the open files the busiest process needs in the
// transaction-pool phase (the harness with its idle clients, or a proxy
// with them and its backends), 0 without that phase.
func (c config) fileLimit() uint64 {
	if !c.pooling() {
		return 0
	}
	return uint64(max(c.poolClients, c.poolIdleClients) + c.poolSize + 256)
}

// seconds rounds d up to whole seconds, as pgbench -T takes.
func seconds(d time.Duration) int {
	return int((d + time.Second - 1) / time.Second)
}

// settingsText describes the effective settings, defaults included.
func (c config) settingsText() string {
	pgveil := "built from ./cmd/pgveil"
	if c.pgveil != "" {
		pgveil = c.pgveil
	}
	pool := "pool-clients=0"
	if c.pooling() {
		pool = fmt.Sprintf("pool-clients=%d pool-jobs=%d pool-size=%d pool-idle-clients=%d", c.poolClients, c.poolJobs(), c.poolSize, c.poolIdleClients)
	}
	return fmt.Sprintf("scale=%d clients=%d jobs=%d duration=%ds warmup=%ds rounds=%d stream-rounds=%d rows=%d idle-clients=%d %s pgveil=%s pgveil-gomaxprocs=%d",
		c.scale, c.clients, c.jobs(), seconds(c.duration), seconds(c.warmup), c.rounds, c.streamRounds, c.rows, c.idleClients, pool, pgveil, c.gomaxprocs)
}

// commandLine renders the program's invocation, quoting arguments that
// need it.
func commandLine(argv []string) string {
	parts := []string{filepath.Base(argv[0])}
	for _, a := range argv[1:] {
		if a == "" || strings.ContainsAny(a, " \t\n'\"\\$`*?[]{}()<>|&;#~") {
			a = strconv.Quote(a)
		}
		parts = append(parts, a)
	}
	return strings.Join(parts, " ")
}
