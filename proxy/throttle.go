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
// Failed logins are throttled per login and client address. Once
// listen.max_auth_failures attempts failed within authFailureWindow, the
// login's next attempts from that address are refused before
// authentication, with no password check, no directory bind and no audit
// record, until the window since the first attempt has passed. Attempts
// made at once count too: no more may be under way than failures remain
// before the limit, and one past that waits for its turn (bounded by
// listen.startup_timeout), so a pool opening many connections of one
// login at once is served and a burst of guesses is not. A success clears
// the count. Brute force then tries that many passwords a window per
// address, and a flood of failures writes one audit record a window, not
// one per attempt. One address has at most maxThrottledPerHost logins
// counted at once; a new one past that is refused like a login past its
// failures, so that trying many logins makes the throttle forget none. Logins are compared in lower case: a directory binds
// DANA as dana. 0 turns the throttle off; behind an address every client
// shares (a load balancer, NAT), anyone there can keep a login refused by
// failing for it.
const (
	authFailureWindow = time.Minute
	// maxThrottled bounds the (address, login) pairs counted: past it,
	// the oldest is forgotten. Every login is counted, known or not: SCRAM
	// answers an unknown login exactly like a wrong password, and a
	// throttle that never refused one would undo that after
	// listen.max_auth_failures attempts.
	maxThrottled = 100000
	// maxThrottledPerHost bounds the logins of one address counted at
	// once: past it, a login of that address not counted yet is refused
	// until the window of one of those passed. Without it, one address
	// trying maxThrottled logins of its own, a startup packet each, would
	// make the throttle forget every key, its own refused one included,
	// and try that login again; and every login is counted now, not only
	// those that may exist.
	maxThrottledPerHost = 1000
)

// throttledError is the refusal of a login the throttle blocks: a
// clientError the session's end neither logs nor audits.
type throttledError struct {
	*clientError
}

// throttleKey is a login, in lower case, from a client address.
type throttleKey struct {
	host, login string
}

// failures counts a key's failed attempts since since, and those under
// way.
type failures struct {
	failed, busy int
	since        time.Time
}

// queued is a key in the order its window started.
type queued struct {
	k     throttleKey
	since time.Time
}

// authThrottle counts login attempts (see above).
type authThrottle struct {
	mu sync.Mutex
	// NOTE: guarded by mu. order holds the keys of m by the start of
	// their window, oldest first from head, and stale ones (a key whose
	// window restarted), skipped as they come out.
	m     map[throttleKey]*failures
	order []queued
	head  int
	// hosts counts the keys of m by host (maxThrottledPerHost).
	// NOTE: guarded by mu; every key added to or deleted from m changes
	// it (forget).
	hosts map[string]int
}

// forget deletes k from m (mu held).
func (t *authThrottle) forget(k throttleKey) {
	if _, ok := t.m[k]; !ok {
		return
	}
	delete(t.m, k)
	if t.hosts[k.host]--; t.hosts[k.host] <= 0 {
		delete(t.hosts, k.host)
	}
}

// attemptVerdict is what attempt says of an attempt.
type attemptVerdict int

const (
	// attemptGo: it may authenticate; done must follow.
	attemptGo attemptVerdict = iota
	// attemptWait: as many are under way as failures remain; ask again.
	attemptWait
	// attemptRefused: the key reached its limit until then.
	attemptRefused
)

// attempt asks at now whether an attempt of k may authenticate, under a
// limit of limit failures a window, and when k is refused until.
func (t *authThrottle) attempt(k throttleKey, now time.Time, limit int) (attemptVerdict, time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[throttleKey]*failures{}
		t.hosts = map[string]int{}
	}
	t.expire(now)
	f := t.m[k]
	if f == nil && t.hosts[k.host] >= maxThrottledPerHost {
		// NOTE: known logins and unknown ones alike.
		return attemptRefused, now.Add(authFailureWindow)
	}
	if f == nil || now.Sub(f.since) >= authFailureWindow {
		for len(t.m) >= maxThrottled {
			t.pop()
		}
		if t.m[k] == nil {
			t.hosts[k.host]++
		}
		busy := 0
		if f != nil {
			busy = f.busy
		}
		f = &failures{since: now, busy: busy}
		t.m[k] = f
		t.order = append(t.order, queued{k: k, since: now})
	}
	switch {
	case f.failed >= limit:
		return attemptRefused, f.since.Add(authFailureWindow)
	case f.busy >= limit-f.failed:
		return attemptWait, time.Time{}
	}
	f.busy++
	return attemptGo, time.Time{}
}

// attemptOutcome is how an attempt attempt let go ended.
type attemptOutcome int

const (
	// attemptFailed: a wrong password, certificate or bind.
	attemptFailed attemptOutcome = iota
	// attemptSucceeded: authenticated; the count is cleared.
	attemptSucceeded
	// attemptAborted: neither (the client left, a protocol error): it
	// frees its turn and changes no count.
	attemptAborted
)

// done ends an attempt of k that attempt let go. It reports whether it
// is the failure that reached limit.
func (t *authThrottle) done(k throttleKey, o attemptOutcome, limit int) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	f := t.m[k]
	if f == nil {
		// Forgotten meanwhile (a success, expiry, eviction).
		return false
	}
	f.busy = max(f.busy-1, 0)
	switch o {
	case attemptSucceeded:
		t.forget(k)
	case attemptFailed:
		f.failed++
		return f.failed == limit
	}
	return false
}

// expire forgets the keys whose window has passed (mu held): each key
// comes out of order once, so the cost is constant per attempt.
func (t *authThrottle) expire(now time.Time) {
	for t.head < len(t.order) && now.Sub(t.order[t.head].since) >= authFailureWindow {
		t.pop()
	}
}

// pop takes the oldest key out of order, and forgets it unless its
// window restarted since, whether its window has passed or not (mu
// held).
func (t *authThrottle) pop() {
	if t.head == len(t.order) {
		// Every key left in m is stale in order: none to force out.
		clear(t.m)
		clear(t.hosts)
		return
	}
	q := t.order[t.head]
	t.order[t.head] = queued{}
	t.head++
	if f := t.m[q.k]; f != nil && f.since.Equal(q.since) {
		t.forget(q.k)
	}
	if t.head > len(t.order)/2 && t.head > 1024 {
		t.order = append(t.order[:0], t.order[t.head:]...)
		t.head = 0
	}
}

// hostOf returns the host part of a client address, the key of the
// login throttle; "" for a Unix socket's or an unknown one, which every
// such client shares.
func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	return ""
}

// startupHostOf returns the key of a client address for
// listen.max_startup_per_address: hostOf's, but an IPv6 address's /64,
// since one host commonly holds a whole /64. (The throttle keeps the full
// address: a /64 is also a whole office, any host of which could keep
// the others' logins refused.)
func startupHostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok && ta.IP.To4() == nil && len(ta.IP) == net.IPv6len {
		return ta.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
	}
	return hostOf(a)
}

// Unwrap returns the clientError, which failStartup sends.
func (e *throttledError) Unwrap() error { return e.clientError }
