package pgtest

import "syscall"

// childAttr returns the attributes of initdb and postgres: run as cred
// (nil: the current user), and killed when this process dies, so that a
// server never outlives its test.
//
// NOTE: the kernel sends Pdeathsig when the OS thread that forked the
// child exits, which for Go means the whole process unless the caller
// runs on a goroutine locked to a thread that then ends.
func childAttr(cred *serverUser) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Credential: cred}
}
