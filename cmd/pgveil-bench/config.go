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
	markdown    bool
	pgveil      string // a prebuilt pgveil binary; "" builds ./cmd/pgveil
	pgbouncer   string // "" finds it
	// gomaxprocs is GOMAXPROCS for the pgveil process; 0 leaves Go's
	// default (one per core).
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
	fs.BoolVar(&c.markdown, "markdown", false, "print the report as Markdown")
	fs.IntVar(&c.gomaxprocs, "pgveil-gomaxprocs", 1, "GOMAXPROCS of the pgveil process (0: Go's default); 1 matches PgBouncer's single thread on a small machine shared with PostgreSQL")
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
		errs = append(errs, errors.New("--idle-clients must be between 0 and 150 (each holds a server connection; the server allows 200)"))
	}
	if c.clients > 150 {
		errs = append(errs, errors.New("--clients must be at most 150 (the server allows 200 connections)"))
	}
	if c.duration < time.Second {
		errs = append(errs, errors.New("--duration must be at least 1s"))
	}
	if c.warmup < 0 {
		errs = append(errs, errors.New("--warmup must not be negative"))
	}
	return errors.Join(errs...)
}

// jobs returns pgbench's thread count: --jobs, at most one per client.
func (c config) jobs() int { return min(c.jobsFlag, c.clients) }

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
	return fmt.Sprintf("scale=%d clients=%d jobs=%d duration=%ds warmup=%ds rounds=%d stream-rounds=%d rows=%d idle-clients=%d pgveil=%s pgveil-gomaxprocs=%d",
		c.scale, c.clients, c.jobs(), seconds(c.duration), seconds(c.warmup), c.rounds, c.streamRounds, c.rows, c.idleClients, pgveil, c.gomaxprocs)
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
