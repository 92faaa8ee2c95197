//go:build unix

package pgtest

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// serverUser is the OS user initdb and postgres run as.
type serverUser = syscall.Credential

// serverCredential returns the OS user to run initdb and postgres as:
// nil (the current user) unless the current process is root, in which
// case the "postgres" OS user, since postgres refuses to run as root.
func serverCredential() (*serverUser, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup(osUser)
	if err != nil {
		return nil, fmt.Errorf("pgtest: running as root needs the %q OS user to own and run the cluster "+
			"(installing the postgresql package creates it): %w", osUser, err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: uid of %q: %w", osUser, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("pgtest: gid of %q: %w", osUser, err)
	}
	return &serverUser{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chown gives path to the OS user the server runs as, when that is not the
// current user.
func (c *Cluster) chown(path string) error {
	if c.cred == nil {
		return nil
	}
	if err := os.Chown(path, int(c.cred.Uid), int(c.cred.Gid)); err != nil {
		return fmt.Errorf("pgtest: %w", err)
	}
	return nil
}

// processExists reports whether a process pid exists (zombies included).
func processExists(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}
