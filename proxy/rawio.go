package proxy

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// rawConn reads and writes a TCP connection with raw system calls on its
// non-blocking descriptor, waiting in the runtime's poller only when the
// descriptor is not ready.
//
// Go's ordinary path enters and leaves the scheduler's syscall state on
// every read and write. On a busy loopback, a write that wakes the peer
// often outlasts the scheduler's 20µs threshold, so the processor is
// handed to another thread and taken back: thread wake-ups that cost more
// than the relay itself. read(2) and write(2) on a non-blocking socket
// never block, so they may run as raw system calls.
//
// NOTE: rawConn is used for plain TCP connections only; TLS connections
// keep crypto/tls over the ordinary path. Deadlines and Close still work:
// the poller waits honour them.
type rawConn struct {
	rc syscall.RawConn
}

// newRawIO returns c's raw reader/writer, or c itself when c is not a
// plain TCP connection.
func newRawIO(c net.Conn) io.ReadWriter {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return c
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return c
	}
	return &rawConn{rc: rc}
}

// Read reads what the socket holds, up to len(p).
func (r *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	var n int
	var errno syscall.Errno
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			m, _, e := syscall.RawSyscall(syscall.SYS_READ, fd, uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)))
			if e == syscall.EINTR {
				continue
			}
			if e == syscall.EAGAIN {
				return false
			}
			n, errno = int(m), e
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if errno != 0 {
		return 0, errno
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// Write writes all of p, waiting for room when the socket buffer is full.
func (r *rawConn) Write(p []byte) (int, error) {
	written := 0
	var errno syscall.Errno
	err := r.rc.Write(func(fd uintptr) bool {
		for written < len(p) {
			m, _, e := syscall.RawSyscall(syscall.SYS_WRITE, fd, uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written))
			if e == syscall.EINTR {
				continue
			}
			if e == syscall.EAGAIN {
				return false
			}
			if e != 0 {
				errno = e
				return true
			}
			written += int(m)
		}
		return true
	})
	if err != nil {
		return written, err
	}
	if errno != 0 {
		return written, errno
	}
	return written, nil
}
