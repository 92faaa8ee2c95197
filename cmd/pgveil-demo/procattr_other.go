//go:build !linux

package main

import "syscall"

// proxyAttr returns no special attributes: the parent death signal is
// Linux's. Elsewhere the demo stops pgveil itself on Ctrl-C, and a
// demo killed outright leaves it running.
func proxyAttr() *syscall.SysProcAttr { return nil }
