//go:build unix

package main

import (
	"fmt"
	"syscall"
)

// raiseFileLimit sets the soft RLIMIT_NOFILE of this process to its hard
// limit, for itself and for the processes it starts from now on
// (PostgreSQL, PgBouncer, pgveil, pgbench), and returns that limit.
// Whether it is at least what a phase needs is the caller's to say.
//
// NOTE: Go raises its own soft limit at start, but gives the processes it
// starts the original one back unless the program sets the limit itself;
// so the limit is set even when this process's is already high enough.
func raiseFileLimit() (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("read the open-file limit (RLIMIT_NOFILE): %w", err)
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("raise the open-file limit (RLIMIT_NOFILE) to its hard limit %d: %w", lim.Max, err)
	}
	return lim.Cur, nil
}
