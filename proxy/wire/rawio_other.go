//go:build !linux

package wire

import (
	"io"
	"net"
)

// NewRawIO returns c itself: outside Linux the relay reads and writes
// through the ordinary net.Conn path. rawio_linux.go holds the raw system
// calls that save the scheduler's hand-offs on a busy Linux loopback; the
// behaviour is the same, the cost per message higher.
func NewRawIO(c net.Conn) io.ReadWriter {
	return c
}

// SetNonBlocking reports false: outside Linux there are no event loops.
func SetNonBlocking(io.ReadWriter, bool, bool) bool { return false }

// RawFD reports false: outside Linux there are no event loops.
func RawFD(io.ReadWriter) (int, bool) { return -1, false }

// Quiet reports ok false: outside Linux, callers peek the net.Conn.
func Quiet(io.ReadWriter) (quiet, ok bool) { return false, false }
