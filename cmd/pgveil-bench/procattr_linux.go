package main

import "syscall"

// childAttr returns the process attributes of every process the harness
// starts: a process group of its own and SIGKILL when the harness dies.
func childAttr(cred *credential) *syscall.SysProcAttr {
	// NOTE: the kernel sends Pdeathsig when the OS thread that forked the
	// child exits; Go's threads live as long as the process unless a
	// goroutine locked to one ends, which this program never does.
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL, Credential: cred}
}
