//go:build !unix

package ldaptest

import (
	"errors"
	"os"
)

// pause cannot stop a process on this system.
func pause(*os.Process) error { return errors.New("ldaptest: pausing slapd needs a Unix system") }

// resume has nothing to undo on this system.
func resume(*os.Process) error { return nil }
