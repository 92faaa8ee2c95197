package proxy

import (
	"crypto/rand"
	"crypto/subtle"
	"encoding/binary"
	"sync"
	"time"
)

// Cancel requests reach PostgreSQL on a connection of their own, for each
// of which the postmaster starts a process: a client must not turn its key
// into a stream of them. A session's requests are forwarded one at a time
// and at most one per cancelInterval: a request that comes sooner waits
// for its turn, so that a client cancelling one statement and then the
// next loses neither, and a request that comes while another of the
// session's is waiting or being forwarded is dropped, as it would cancel
// what that one cancels (PostgreSQL drops a cancel that finds nothing
// running too). At most maxCancelForwards are forwarded at once across the
// server; a request past that waits its turn.
//
// A session that ends with a statement running cancels it too (end,
// endPooled), on a goroutine of its own: at most maxEndCancels of those
// at once, a bound of their own, so that a flood of hang-ups neither
// delays the clients' own requests nor is delayed by them.
const (
	cancelInterval    = 100 * time.Millisecond
	maxCancelForwards = 16
	maxEndCancels     = 16
)

// cancelOutcome is what became of a cancel request, for the metrics.
type cancelOutcome int

const (
	cancelForwarded cancelOutcome = iota
	cancelUnknown
	cancelIdle
	cancelBusy
	cancelFailed
	cancelOutcomes
)

func (o cancelOutcome) String() string {
	return [...]string{"forwarded", "unknown", "idle", "busy", "failed"}[o]
}

// endCancelOutcome is what became of the cancel request an ending
// session sent (cancelAtEnd), for the metrics.
type endCancelOutcome int

const (
	endCancelDelivered endCancelOutcome = iota
	endCancelBusy
	endCancelFailed
	endCancelOutcomes
)

func (o endCancelOutcome) String() string {
	return [...]string{"delivered", "busy", "failed"}[o]
}

// cancelRegistry maps the BackendKeyData pgveil gave each client to its
// session. Clients never learn the upstream backend's own key, so a
// CancelRequest reaches the upstream only through a key pgveil issued.
//
// NOTE: keys are random; a forged or stale key matches nothing, and the
// secret is compared in constant time.
type cancelRegistry struct {
	mu sync.Mutex
	m  map[uint32]*session
	// forwarding holds a token per cancel request being forwarded;
	// ending one per cancel request of an ending session being sent.
	// NOTE: made on first use, under mu.
	forwarding, ending chan struct{}
}

// throttleCancel reports whether a cancel request of ss is to be
// forwarded, false when another of the session's is waiting or being
// forwarded. If so it marks ss as forwarding one until the returned func
// runs, and returns once cancelInterval has passed since the previous one.
//
// NOTE: a request waits at most cancelInterval, and only one per session
// does: a flood costs a goroutine and a connection per session, not per
// request.
func (ss *session) throttleCancel() (done func(), ok bool) {
	if !ss.cancelling.CompareAndSwap(false, true) {
		return nil, false
	}
	if wait := time.Duration(ss.lastCancel.Load() + int64(cancelInterval) - time.Now().UnixNano()); wait > 0 {
		time.Sleep(min(wait, cancelInterval))
	}
	ss.lastCancel.Store(time.Now().UnixNano())
	return func() { ss.cancelling.Store(false) }, true
}

// turns returns the tokens of the cancel requests of clients, or with
// ending of ending sessions.
func (r *cancelRegistry) turns(ending bool) chan struct{} {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ending {
		if r.ending == nil {
			r.ending = make(chan struct{}, maxEndCancels)
		}
		return r.ending
	}
	if r.forwarding == nil {
		r.forwarding = make(chan struct{}, maxCancelForwards)
	}
	return r.forwarding
}

// acquire waits for a turn to send a cancel request, a client's or with
// ending an ending session's, until deadline.
func (r *cancelRegistry) acquire(ending bool, deadline time.Time) bool {
	ch := r.turns(ending)
	select {
	case ch <- struct{}{}:
		return true
	default:
	}
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ch <- struct{}{}:
		return true
	case <-t.C:
		return false
	}
}

// release ends a turn acquire(ending) gave.
func (r *cancelRegistry) release(ending bool) { <-r.turns(ending) }

// register issues a fresh key for ss.
func (r *cancelRegistry) register(ss *session) (pid uint32, secret [4]byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.m == nil {
		r.m = map[uint32]*session{}
	}
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			panic("pgveil: crypto/rand failed: " + err.Error())
		}
		// Positive, non-zero, like a real pid.
		pid = binary.BigEndian.Uint32(b[:4]) & 0x7fffffff
		if pid != 0 && r.m[pid] == nil {
			break
		}
	}
	copy(secret[:], b[4:])
	r.m[pid] = ss
	return pid, secret
}

// lookup returns the session whose key is (pid, secret), or nil.
func (r *cancelRegistry) lookup(pid uint32, secret []byte) *session {
	r.mu.Lock()
	ss := r.m[pid]
	r.mu.Unlock()
	if ss == nil || subtle.ConstantTimeCompare(ss.secret[:], secret) != 1 {
		return nil
	}
	return ss
}

// remove forgets the key of ss.
func (r *cancelRegistry) remove(ss *session) {
	r.mu.Lock()
	if r.m[ss.pid] == ss {
		delete(r.m, ss.pid)
	}
	r.mu.Unlock()
}
