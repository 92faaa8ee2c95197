//go:build unix

package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
)

// connQuiet reports whether c is open with nothing to read: a peek that
// neither blocks nor consumes. A free backend the server closed (a
// restart, pg_terminate_backend) reads as end of file, or holds the FATAL
// it was sent.
func connQuiet(c net.Conn) bool {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	quiet := false
	var b [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		quiet = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK
		return true
	})
	return err == nil && quiet
}
