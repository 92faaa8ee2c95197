package pgtest

import (
	"os"
	"syscall"
)

// serverUser is the OS user initdb and postgres run as; on Windows always
// the current one.
type serverUser struct{}

// serverCredential returns nil: on Windows the server runs as the current
// user.
func serverCredential() (*serverUser, error) { return nil, nil }

// childAttr returns no special attributes: Windows has neither a parent
// death signal nor another user to switch to.
func childAttr(*serverUser) *syscall.SysProcAttr { return nil }

// chown does nothing: the server runs as the current user.
func (c *Cluster) chown(string) error { return nil }

// processExists reports whether a process pid exists.
func processExists(pid int) bool {
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}
