//go:build unix && !linux

package main

import "syscall"

// childAttr returns the process attributes of every process the harness
// starts: a process group of its own. Pdeathsig is Linux's: elsewhere a
// child outlives a harness killed outright.
func childAttr(cred *credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}
