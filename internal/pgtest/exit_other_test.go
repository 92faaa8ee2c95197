//go:build !linux

package pgtest_test

import (
	"errors"
	"time"
)

// waitExited is Linux only (pidfd_open), as is the parent-death signal
// TestChildDiesWithParent checks.
func waitExited(pid int, timeout time.Duration) (bool, error) {
	return false, errors.ErrUnsupported
}
