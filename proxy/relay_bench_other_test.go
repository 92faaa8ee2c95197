//go:build !linux

package proxy

import "testing"

// threadCPU returns 0: the thread's CPU time is read on Linux only.
func threadCPU(*testing.B) int64 { return 0 }
