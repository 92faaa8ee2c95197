package proxy

import (
	"net"
	"sync"
	"time"
)

// What a client that has not logged in may cost.
//
// listen.max_startup_per_address caps the connections of one client
// address still in their startup (TLS, startup packet, authentication):
// one past it is closed at once, unread, and the log says so at most
// every refuseLogEvery. Without it, one address holding idle sockets
// could fill listen.max_connections and lock every user out. 0 sets no
// cap: behind a load balancer that hides the clients' addresses, one
// address is every client's.
//
// Failed logins are throttled per login and client address: after
// maxAuthFailures failures within authFailureWindow, the login's next
// attempts from that address are refused before authentication, with
// no password check, no directory bind and no audit record, until the
// window since the first failure has passed. A login that succeeds
// clears its count. Brute force then tries maxAuthFailures passwords a
// window per address, and a flood of failures writes one audit record a
// window, not one per attempt.
const (
	maxAuthFailures   = 10
	authFailureWindow = time.Minute
	// maxThrottled bounds the (address, login) pairs counted: past it,
	// expired ones are dropped, and a new pair is not counted while none
	// has expired.
	maxThrottled = 100000
)

// throttledError is the refusal of a login the throttle blocks: a
// clientError the session's end neither logs nor audits.
type throttledError struct {
	*clientError
}

// throttleKey is a login from a client address.
type throttleKey struct {
	host, login string
}

// failures counts a key's failed logins since since.
type failures struct {
	n     int
	since time.Time
}

// authThrottle counts failed logins (see above).
type authThrottle struct {
	mu sync.Mutex
	// NOTE: guarded by mu.
	m map[throttleKey]*failures
}

// blocked reports whether k has failed maxAuthFailures times in the
// window that is still open, and when that window closes.
func (t *authThrottle) blocked(k throttleKey, now time.Time) (bool, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[k]
	if f == nil || now.Sub(f.since) >= authFailureWindow {
		return false, time.Time{}
	}
	return f.n >= maxAuthFailures, f.since.Add(authFailureWindow)
}

// failed counts a failed login of k, and reports whether it is the one
// that reached maxAuthFailures.
func (t *authThrottle) failed(k throttleKey, now time.Time) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[throttleKey]*failures{}
	}
	f := t.m[k]
	if f == nil || now.Sub(f.since) >= authFailureWindow {
		if f == nil && len(t.m) >= maxThrottled {
			t.sweep(now)
			if len(t.m) >= maxThrottled {
				return false
			}
		}
		f = &failures{since: now}
		t.m[k] = f
	}
	f.n++
	return f.n == maxAuthFailures
}

// succeeded forgets the failures of k.
func (t *authThrottle) succeeded(k throttleKey) {
	t.mu.Lock()
	delete(t.m, k)
	t.mu.Unlock()
}

// sweep drops the counts whose window has passed (mu held).
func (t *authThrottle) sweep(now time.Time) {
	for k, f := range t.m {
		if now.Sub(f.since) >= authFailureWindow {
			delete(t.m, k)
		}
	}
}

// hostOf returns the host part of a client address; "" for a Unix
// socket's or an unknown one.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// Unwrap returns the clientError, which failStartup sends.
func (e *throttledError) Unwrap() error { return e.clientError }
