//go:build unix && !linux

package pgtest

import "syscall"

// childAttr returns the attributes of initdb and postgres: run as cred
// (nil: the current user). Pdeathsig is Linux's: elsewhere a server whose
// test process is killed outlives it until the next Start sweeps its
// directory (sweepStale).
func childAttr(cred *serverUser) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Credential: cred}
}
