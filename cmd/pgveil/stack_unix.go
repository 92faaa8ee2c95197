//go:build unix

package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Thread stacks for pg_query. Its C code (the parser's output, the
// deparser, fingerprints) recurses once per level of a statement's tree
// with no stack check; pgveil's limits on what reaches it (package
// sqlguard, rewrite.maxTreeDepth) are measured with 8 MiB thread stacks.
// glibc sizes the threads cgo starts from the stack limit (RLIMIT_STACK)
// the process started with, and gives them 2 MiB when it is unlimited: a
// smaller one would let a statement within those limits crash the process.
const (
	// wantStack is the stack limit serve runs with.
	wantStack = 16 << 20
	// minStack is the least serve accepts, when the hard limit allows
	// no more.
	minStack = 8 << 20
	// stackEnv marks the process serve started again with wantStack.
	stackEnv = "PGVEIL_STACK_RAISED"
)

// ensureStack makes sure serve runs with a stack limit of at least
// minStack: it raises a smaller (or unlimited) soft limit to wantStack, or
// to the hard limit, and starts the process again, which glibc needs to
// size threads by it. It returns an error when it cannot.
func ensureStack() error {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_STACK, &lim); err != nil {
		return fmt.Errorf("reading the stack limit: %w", err)
	}
	if lim.Cur != unix.RLIM_INFINITY && lim.Cur >= minStack {
		return nil
	}
	want := uint64(wantStack)
	if lim.Max != unix.RLIM_INFINITY && lim.Max < want {
		want = lim.Max
	}
	if want < minStack {
		return fmt.Errorf("the stack limit is %d bytes, and at most %d may be set: pgveil needs %d (ulimit -s %d, or LimitSTACK=%dM in a systemd unit)",
			lim.Cur, lim.Max, minStack, minStack>>10, minStack>>20)
	}
	if os.Getenv(stackEnv) != "" {
		return fmt.Errorf("the stack limit is still %d bytes after raising it to %d", lim.Cur, want)
	}
	if err := unix.Setrlimit(unix.RLIMIT_STACK, &unix.Rlimit{Cur: want, Max: lim.Max}); err != nil {
		return fmt.Errorf("raising the stack limit to %d bytes: %w", want, err)
	}
	exe, err := os.Executable()
	if err == nil && strings.HasPrefix(filepath.Base(exe), "ld-") {
		// Started through the dynamic loader, which would read the
		// arguments as another program's.
		err = fmt.Errorf("started through the dynamic loader %s", exe)
	}
	if err != nil {
		return fmt.Errorf("starting again with a %d-byte stack limit (run with ulimit -s %d): %w", want, want>>10, err)
	}
	err = syscall.Exec(exe, os.Args, append(os.Environ(), stackEnv+"=1"))
	return fmt.Errorf("starting again with a %d-byte stack limit: %w", want, err)
}
