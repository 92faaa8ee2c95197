package proxy

import (
	"crypto/tls"
	"net"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// hangUpPoll is how often watchHangUp looks at the client's socket.
const hangUpPoll = 50 * time.Millisecond

// watchHangUp returns a channel closed once the peer of c has closed the
// connection (or shut its sending side), until stop is closed; nil when c is no
// socket. It only looks at the socket (poll, POLLRDHUP), reading nothing,
// so a client's pipelined messages stay for its session: for a session
// that waits for a pooled backend with no read of its client under way
// (pool.acquireFor).
func watchHangUp(stop <-chan struct{}, c net.Conn) <-chan struct{} {
	if tc, ok := c.(*tls.Conn); ok {
		c = tc.NetConn()
	}
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return pollHangUp(stop, rc.Control)
}

// watchClientHangUp is watchHangUp for an event-loop session whose worker
// waits for a pooled backend: its client socket is the loop's (lp.cfd),
// which stays open while the worker runs (lp.busy).
func (lp *loopState) watchClientHangUp(stop <-chan struct{}) <-chan struct{} {
	fd := uintptr(lp.cfd.Sysfd())
	return pollHangUp(stop, func(f func(uintptr)) error { f(fd); return nil })
}

// pollHangUp looks at a socket, through control, every hangUpPoll until
// stop is closed, and closes the channel it returns once the peer hung up.
func pollHangUp(stop <-chan struct{}, control func(func(uintptr)) error) <-chan struct{} {
	gone := make(chan struct{})
	go func() {
		tick := time.NewTicker(hangUpPoll)
		defer tick.Stop()
		for {
			hup := false
			err := control(func(fd uintptr) {
				fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLRDHUP}}
				n, err := unix.Poll(fds, 0)
				hup = err == nil && n > 0 && fds[0].Revents&(unix.POLLRDHUP|unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
			})
			if err != nil {
				// Closed under it: the session's end is on its way.
				return
			}
			if hup {
				close(gone)
				return
			}
			select {
			case <-stop:
				return
			case <-tick.C:
			}
		}
	}()
	return gone
}
