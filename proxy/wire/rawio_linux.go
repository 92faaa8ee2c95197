package wire

import (
	"io"
	"net"
	"syscall"
	"unsafe"
)

// This file is Linux's: the raw system calls and MSG_NOSIGNAL are Linux
// ABI. Other systems use rawio_other.go, the ordinary net.Conn path.

// rawConn reads and writes a TCP connection with raw system calls on its
// non-blocking descriptor, waiting in the runtime's poller only when the
// descriptor is not ready.
//
// Go's ordinary path enters and leaves the scheduler's syscall state on
// every read and write. On a busy loopback, a write that wakes the peer
// often outlasts the scheduler's 20µs threshold, so the processor is
// handed to another thread and taken back: thread wake-ups that cost more
// than the relay itself. Calls on a non-blocking socket never block, so
// they may run as raw system calls. They are recvfrom(2) and sendto(2)
// rather than read(2) and write(2), which reach the socket through the
// file layer (and its position lock) first.
//
// NOTE: rawConn is used for plain TCP connections only; TLS connections
// keep crypto/tls over the ordinary path. Deadlines and Close still work:
// the poller waits honour them.
type rawConn struct {
	rc syscall.RawConn
	// NOTE: one goroutine at a time reads a connection and one at a time
	// writes it (the session's relays; its writes to the client are
	// serialised), so each direction keeps its call's state here and its
	// callback is made once: a closure per call would cost an allocation
	// per read and per write.
	rd, wr rawOp
	// wait, peekByte and peeked are WaitReadable's callback, its one
	// byte, and whether it asked the socket already.
	wait     func(fd uintptr) bool
	peekByte [1]byte
	peeked   bool
	// quietFn and quiet are Quiet's callback and its answer.
	quietFn func(fd uintptr) bool
	quiet   bool
}

// rawOp is the state of the read or write in progress on a rawConn.
type rawOp struct {
	p     []byte
	n     int
	errno syscall.Errno
	fn    func(fd uintptr) bool
	// nonblock makes the operation return ErrWouldBlock rather than
	// wait in the poller (SetNonBlocking).
	nonblock bool
}

// NewRawIO returns c's raw reader/writer, or c itself when c is not a
// plain TCP connection. rawio_other.go holds the portable one.
func NewRawIO(c net.Conn) io.ReadWriter {
	var sc syscall.Conn
	switch c := c.(type) {
	case *net.TCPConn:
		sc = c
	case *net.UnixConn:
		sc = c
	default:
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	r := &rawConn{rc: rc}
	r.rd.fn = r.rd.read
	r.wr.fn = r.wr.write
	r.wait = r.peek
	r.quietFn = r.askQuiet
	return r
}

// Quiet reports whether rw, one of NewRawIO's, is open with nothing to
// read, asking its socket without waiting or consuming anything; ok is
// false when rw is not one of NewRawIO's. A connection the peer closed
// reads as its end, or holds what the peer sent last.
func Quiet(rw io.ReadWriter) (quiet, ok bool) {
	r, ok := rw.(*rawConn)
	if !ok {
		return false, false
	}
	r.quiet = false
	if err := r.rc.Read(r.quietFn); err != nil {
		return false, true
	}
	return r.quiet, true
}

// askQuiet is Quiet's callback.
func (r *rawConn) askQuiet(fd uintptr) bool {
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.peekByte[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		r.quiet = e == syscall.EAGAIN
		return true
	}
}

// SetNonBlocking switches rw's reads and writes, rw one of NewRawIO's,
// between the waiting mode they start in and a non-blocking mode, in which Read and Write return
// ErrWouldBlock (Write with the count it wrote) where they would wait: an
// event loop reads and writes so a pooled backend it waits for in its
// own epoll instance (RawFD). It reports false when rw is not one of
// NewRawIO's raw connections.
//
// NOTE: the connection stays in Go's poller, so that Close and deadlines
// keep working, and its descriptor stays valid while a Read or Write
// runs, however the connection is closed meanwhile.
func SetNonBlocking(rw io.ReadWriter, read, write bool) bool {
	r, ok := rw.(*rawConn)
	if ok {
		r.rd.nonblock, r.wr.nonblock = read, write
	}
	return ok
}

// RawFD returns the descriptor of rw, one of NewRawIO's, for an event
// loop's epoll instance; false when rw is not one. The number is valid
// until the connection is closed: the caller removes it from its epoll
// instance first.
func RawFD(rw io.ReadWriter) (int, bool) {
	r, ok := rw.(*rawConn)
	if !ok {
		return -1, false
	}
	fd := -1
	if err := r.rc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		return -1, false
	}
	return fd, true
}

// WaitReadable waits until the socket has something to read, or its end,
// holding no buffer meanwhile: an idle session waits so. Deadlines and
// Close end the wait with their error.
func (r *rawConn) WaitReadable() error {
	r.peeked = false
	return r.rc.Read(r.wait)
}

// peek is WaitReadable's callback: it reports false, to wait, when the
// socket has nothing to read. Called again once the poller saw the
// socket readable, it does not ask again: the read that follows will
// (and waits, holding its buffer, on a rare spurious wake-up).
func (r *rawConn) peek(fd uintptr) bool {
	if r.peeked {
		return true
	}
	r.peeked = true
	for {
		_, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&r.peekByte[0])), 1,
			syscall.MSG_PEEK|syscall.MSG_DONTWAIT, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		return e != syscall.EAGAIN
	}
}

// Read reads what the socket holds, up to len(p).
func (r *rawConn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	op := &r.rd
	op.p, op.n, op.errno = p, 0, 0
	err := r.rc.Read(op.fn)
	n, errno := op.n, op.errno
	op.p = nil
	if err != nil {
		return 0, err
	}
	if errno == syscall.EAGAIN {
		return 0, ErrWouldBlock
	}
	if errno != 0 {
		return 0, errno
	}
	if n == 0 {
		return 0, io.EOF
	}
	return n, nil
}

// read is the callback of Read: it reports false to wait for the socket.
func (op *rawOp) read(fd uintptr) bool {
	for {
		m, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&op.p[0])), uintptr(len(op.p)), 0, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e == syscall.EAGAIN {
			if op.nonblock {
				op.errno = e
				return true
			}
			return false
		}
		op.n, op.errno = int(m), e
		return true
	}
}

// Write writes all of p, waiting for room when the socket buffer is full.
func (r *rawConn) Write(p []byte) (int, error) {
	op := &r.wr
	op.p, op.n, op.errno = p, 0, 0
	err := r.rc.Write(op.fn)
	written, errno := op.n, op.errno
	op.p = nil
	if err != nil {
		return written, err
	}
	if errno == syscall.EAGAIN {
		return written, ErrWouldBlock
	}
	if errno != 0 {
		return written, errno
	}
	return written, nil
}

// write is the callback of Write: it reports false to wait for room.
func (op *rawOp) write(fd uintptr) bool {
	for op.n < len(op.p) {
		m, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, fd, uintptr(unsafe.Pointer(&op.p[op.n])), uintptr(len(op.p)-op.n), syscall.MSG_NOSIGNAL, 0, 0)
		if e == syscall.EINTR {
			continue
		}
		if e == syscall.EAGAIN {
			if op.nonblock {
				op.errno = e
				return true
			}
			return false
		}
		if e != 0 {
			op.errno = e
			return true
		}
		op.n += int(m)
	}
	return true
}
