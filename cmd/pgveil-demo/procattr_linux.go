package main

import "syscall"

// proxyAttr returns the attributes of the pgveil process: SIGTERM when the
// demo dies, so that the proxy never outlives it.
func proxyAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
