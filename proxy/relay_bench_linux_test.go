package proxy

import (
	"syscall"
	"testing"
)

// rusageThread is RUSAGE_THREAD.
const rusageThread = 1

// threadCPU returns the CPU time, in ns, the calling thread used.
func threadCPU(b *testing.B) int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(rusageThread, &ru); err != nil {
		b.Fatal(err)
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}
