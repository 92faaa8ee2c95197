//go:build unix

package ldaptest

import (
	"os"
	"syscall"
)

// pause stops p (SIGSTOP), as a directory that hangs.
func pause(p *os.Process) error { return p.Signal(syscall.SIGSTOP) }

// resume continues a paused p (SIGCONT).
func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
