package main

import "syscall"

// credential is an OS user a child process runs as; on Windows always
// the current one.
type credential struct{}

// postgresCredential returns nil: children run as the current user.
func postgresCredential() (*credential, error) { return nil, nil }

// chownTo does nothing: children run as the current user.
func chownTo(*credential, ...string) error { return nil }

// childAttr returns no special attributes: Windows has no process groups
// of this kind, parent death signal or user switch.
func childAttr(*credential) *syscall.SysProcAttr { return nil }
