package wire

import (
	"math/bits"
	"sync"
)

// pools holds a sync.Pool of buffers per power-of-two size up to 1 MiB:
// each session's readers and writers use a handful of sizes (a few KiB
// to 64 KiB), and an event loop's idle session gives its buffers back to
// them. Other sizes are allocated and left to the collector.
var pools [21]sync.Pool

// poolOf returns the pool of buffers of n bytes, nil when n is not a
// power of two of the range.
func poolOf(n int) *sync.Pool {
	if n <= 0 || n&(n-1) != 0 {
		return nil
	}
	if i := bits.TrailingZeros(uint(n)); i < len(pools) {
		return &pools[i]
	}
	return nil
}

// getBuf returns a buffer of n bytes.
func getBuf(n int) []byte {
	if p := poolOf(n); p != nil {
		if b, ok := p.Get().(*[]byte); ok {
			return *b
		}
	}
	return make([]byte, n)
}

// putBuf gives b, of its full length, back to the pool of its size.
func putBuf(b []byte) {
	if p := poolOf(len(b)); p != nil {
		p.Put(&b)
	}
}
