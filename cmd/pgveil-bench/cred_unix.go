//go:build unix

package main

import (
	"fmt"
	"os"
	"os/user"
	"strconv"
	"syscall"
)

// credential is an OS user a child process runs as.
type credential = syscall.Credential

// postgresCredential returns the credential of the "postgres" OS user when
// this process runs as root, for programs that refuse to run as root
// (PgBouncer), and nil otherwise.
func postgresCredential() (*credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres OS user to run pgbouncer: %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("uid of the postgres OS user: %w", err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("gid of the postgres OS user: %w", err)
	}
	return &credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

// chownTo gives the paths to cred's user; it does nothing when cred is nil.
func chownTo(cred *credential, paths ...string) error {
	if cred == nil {
		return nil
	}
	for _, p := range paths {
		if err := os.Chown(p, int(cred.Uid), int(cred.Gid)); err != nil {
			return fmt.Errorf("chown: %w", err)
		}
	}
	return nil
}
