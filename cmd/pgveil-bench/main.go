package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"
)

func main() {
	os.Exit(run(os.Args, os.Stdout, os.Stderr))
}

// Exit statuses.
const (
	exitOK          = 0
	exitFailed      = 1   // a step or a measurement failed
	exitUsage       = 2   // bad command line
	exitInterrupted = 130 // SIGINT or SIGTERM
)

// run executes the benchmark and returns the exit status. The report goes
// to stdout, progress to stderr. Everything started is stopped before it
// returns, whatever happens.
func run(argv []string, stdout, stderr io.Writer) (status int) {
	cfg, err := parseFlags(argv[1:], stderr)
	if errors.Is(err, flag.ErrHelp) {
		return exitOK
	}
	if errors.Is(err, errUsagePrinted) {
		return exitUsage
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgveil-bench: %v\n", err)
		return exitUsage
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		// NOTE: from now on a second Ctrl-C kills the harness at once;
		// the kernel still kills every child (Pdeathsig).
		stop()
	}()

	b := newBench(cfg, argv, stderr)
	defer func() {
		if err := b.cleanup(); err != nil {
			fmt.Fprintf(stderr, "pgveil-bench: cleanup: %v\n", err)
			if status == exitOK && ctx.Err() == nil {
				status = exitFailed
			}
		}
	}()
	interrupted := func() int {
		b.logf("interrupted: stopping everything (Ctrl-C again to abort at once)")
		return exitInterrupted
	}

	if err := b.setup(ctx); err != nil {
		if ctx.Err() != nil {
			return interrupted()
		}
		fmt.Fprintf(stderr, "pgveil-bench: %v\n", err)
		return exitFailed
	}
	b.measure(ctx)
	if ctx.Err() != nil {
		return interrupted()
	}
	rep := b.report()
	rep.write(stdout, cfg.markdown)
	if len(b.res.allErrors()) > 0 {
		return exitFailed
	}
	return exitOK
}

// progress returns a logger that prefixes each line with the seconds since
// start.
func progress(w io.Writer) func(format string, args ...any) {
	start := time.Now()
	return func(format string, args ...any) {
		fmt.Fprintf(w, "[%6.1fs] %s\n", time.Since(start).Seconds(), fmt.Sprintf(format, args...))
	}
}
