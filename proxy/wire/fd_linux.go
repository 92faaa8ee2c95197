package wire

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// FD is a socket taken out of Go's poller for an event loop: the loop
// waits for it on its own epoll instance and reads and writes it with
// raw, non-blocking system calls. A descriptor left in Go's poller as
// well would wake the runtime's poller thread at every packet, for
// nothing: the loop, not a goroutine, waits for it.
//
// Each direction is in one of two modes. Non-blocking (the loop's): Read
// and Write return ErrWouldBlock when the socket is not ready. Waiting (a
// worker goroutine's, set by SetWait): they wait in poll(2), in a system
// call the runtime knows blocks, so the worker holds a thread but no
// processor.
//
// NOTE: one goroutine at a time reads an FD and one at a time writes it,
// and the hand-over between the loop and a worker sets the mode with a
// happens-before edge: the modes need no lock. Shutdown may be called
// from any goroutine: it wakes a worker waiting in poll(2). Close is the
// owner's, once nobody uses the descriptor, so that its number is never
// reused under a reader.
type FD struct {
	fd int
	// readWait and writeWait select the waiting mode of each direction.
	readWait, writeWait bool
	shutOnce            sync.Once
	closeOnce           sync.Once
}

// TakeFD takes c's socket out of Go's poller: it duplicates the
// descriptor, closes c (which leaves the socket open through the
// duplicate) and returns the duplicate, non-blocking. c must be a plain
// TCP or Unix connection, never one inside TLS: the bytes read would be
// the TLS records.
func TakeFD(c net.Conn) (*FD, error) {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil, fmt.Errorf("taking the socket of a %T: not a plain socket", c)
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil, fmt.Errorf("taking a socket: %w", err)
	}
	nfd := -1
	var derr error
	if err := rc.Control(func(fd uintptr) {
		nfd, derr = unix.FcntlInt(fd, unix.F_DUPFD_CLOEXEC, 0)
	}); err != nil {
		return nil, fmt.Errorf("taking a socket: %w", err)
	}
	if derr != nil {
		return nil, fmt.Errorf("duplicating a socket: %w", derr)
	}
	// NOTE: O_NONBLOCK belongs to the open file the two descriptors
	// share; set it again in case c's was changed.
	if err := unix.SetNonblock(nfd, true); err != nil {
		unix.Close(nfd)
		return nil, fmt.Errorf("making a socket non-blocking: %w", err)
	}
	c.Close()
	return &FD{fd: nfd}, nil
}

// Sysfd returns the descriptor, for epoll_ctl(2).
func (f *FD) Sysfd() int { return f.fd }

// SetWait sets the waiting mode of reads and of writes.
func (f *FD) SetWait(read, write bool) { f.readWait, f.writeWait = read, write }

// SetReadWait sets the waiting mode of reads only.
func (f *FD) SetReadWait(wait bool) { f.readWait = wait }

// SetWriteWait sets the waiting mode of writes only.
func (f *FD) SetWriteWait(wait bool) { f.writeWait = wait }

// Read reads what the socket holds, up to len(p).
func (f *FD) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		n, _, e := syscall.RawSyscall6(syscall.SYS_RECVFROM, uintptr(f.fd), uintptr(unsafe.Pointer(&p[0])), uintptr(len(p)), 0, 0, 0)
		switch e {
		case 0:
			if n == 0 {
				return 0, io.EOF
			}
			return int(n), nil
		case syscall.EINTR:
			continue
		case syscall.EAGAIN:
			if !f.readWait {
				return 0, ErrWouldBlock
			}
			if err := f.wait(unix.POLLIN); err != nil {
				return 0, err
			}
		default:
			return 0, e
		}
	}
}

// Write writes p: all of it in waiting mode; in non-blocking mode what
// the socket takes, returning ErrWouldBlock with the count when that is
// not all.
func (f *FD) Write(p []byte) (int, error) {
	written := 0
	for written < len(p) {
		n, _, e := syscall.RawSyscall6(syscall.SYS_SENDTO, uintptr(f.fd), uintptr(unsafe.Pointer(&p[written])), uintptr(len(p)-written), syscall.MSG_NOSIGNAL, 0, 0)
		switch e {
		case 0:
			written += int(n)
		case syscall.EINTR:
		case syscall.EAGAIN:
			if !f.writeWait {
				return written, ErrWouldBlock
			}
			if err := f.wait(unix.POLLOUT); err != nil {
				return written, err
			}
		default:
			return written, e
		}
	}
	return written, nil
}

// wait waits in poll(2) until the socket is ready for events, or broken
// or shut down (the read or write that follows then reports it).
func (f *FD) wait(events int16) error {
	fds := []unix.PollFd{{Fd: int32(f.fd), Events: events}}
	for {
		_, err := unix.Poll(fds, -1)
		if err == nil {
			return nil
		}
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// Shutdown shuts the socket down both ways, which wakes any read, write
// or poll(2) on it, here or in the peer. Safe from any goroutine.
func (f *FD) Shutdown() {
	f.shutOnce.Do(func() { _ = unix.Shutdown(f.fd, unix.SHUT_RDWR) })
}

// Close closes the descriptor, once.
func (f *FD) Close() error {
	var err error
	f.closeOnce.Do(func() { err = unix.Close(f.fd) })
	return err
}

// GiveBack returns f's socket to Go's poller as a net.Conn, for a
// goroutine to use with deadlines again, and closes f. f must be out of
// every epoll instance, and nobody may use it any more.
func (f *FD) GiveBack() (net.Conn, error) {
	var err error
	var c net.Conn
	f.closeOnce.Do(func() {
		file := os.NewFile(uintptr(f.fd), "socket")
		// NOTE: FileConn duplicates the descriptor; closing file closes
		// f's, and the socket stays open through c's.
		c, err = net.FileConn(file)
		file.Close()
	})
	if c == nil && err == nil {
		err = errors.New("giving back a closed socket")
	}
	return c, err
}

// Takeable reports whether TakeFD can take c: a plain TCP or Unix
// socket, never a TLS connection over one.
func Takeable(c net.Conn) bool {
	switch c.(type) {
	case *net.TCPConn, *net.UnixConn:
		return true
	}
	return false
}
