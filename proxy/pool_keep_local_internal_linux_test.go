package proxy

import (
	"testing"

	"golang.org/x/sys/unix"
)

// TestKeepOrGiveBackWaiterQueuedMeanwhile: a session that queues, the
// pool full, while a loop keeps the backend its session let go of free
// on the loop, gets that backend, or asks the loop for it (reclaim): it
// never waits out its timeout with the backend free.
//
// NOTE: the loop reads nwait, then counts the backend in localFree; the
// waiter counts itself in nwait, then reads localFree (reclaim). Unless
// the loop reads nwait again after counting the backend, both may read
// the other's count before it changed.
func TestKeepOrGiveBackWaiterQueuedMeanwhile(t *testing.T) {
	p := &pool{size: 1, open: 1, idle: map[string][]*backend{}, logins: map[string]*poolLogin{}}
	l := &eventLoop{epfd: -1}
	b := &backend{key: "k", home: l, hev: unix.EPOLLIN, hfd: -1, prepared: newBackendStmts()}
	l.lb.slots = []*backend{b}
	w := &poolWaiter{key: "k", grant: make(chan *backend, 1)}
	reclaims := false
	beforeKeepLocal = func() {
		// As acquireFor does, the pool full: queued, then a reclaim
		// only if a loop counts a free backend.
		p.mu.Lock()
		p.addWaiter(w)
		p.mu.Unlock()
		reclaims = p.localFree.Load() > 0
	}
	t.Cleanup(func() { beforeKeepLocal = nil })
	l.keepOrGiveBack(&poolLink{pool: p}, b, false)
	select {
	case got := <-w.grant:
		if got != b {
			t.Fatalf("the waiter got %p, want the backend let go %p", got, b)
		}
		if l.lb.nidle != 0 || p.localFree.Load() != 0 || p.nwait.Load() != 0 {
			t.Fatalf("the backend still counts as free on the loop: nidle %d, localFree %d, nwait %d",
				l.lb.nidle, p.localFree.Load(), p.nwait.Load())
		}
	default:
		if !reclaims {
			t.Fatal("the waiter neither got the backend kept free on the loop nor saw it to reclaim it")
		}
	}
}

// TestKeepOrGiveBackCappedWaiters checks that a backend a loop's
// session lets go of stays free on the loop while only waiters at their
// login's cap wait (they are served as their login makes room), and
// goes to the pool as before once a waiter under its cap waits.
func TestKeepOrGiveBackCappedWaiters(t *testing.T) {
	setup := func(t *testing.T) (*pool, *eventLoop, *backend, *poolWaiter) {
		p := &pool{size: 2, open: 2, idle: map[string][]*backend{}, logins: map[string]*poolLogin{}}
		ann := &poolLogin{name: "ann"}
		ann.max.Store(1)
		ann.held.Store(1)
		capped := &poolWaiter{key: "k", login: ann, grant: make(chan *backend, 1)}
		p.addWaiter(capped)
		l := &eventLoop{epfd: -1}
		b := freeTestBackend(t, "k")
		b.home, b.hev, b.hfd = l, unix.EPOLLIN, -1
		l.lb.slots = []*backend{b}
		return p, l, b, capped
	}
	t.Run("with only a waiter at its cap, the backend stays free on its loop", func(t *testing.T) {
		p, l, b, capped := setup(t)
		l.keepOrGiveBack(&poolLink{pool: p}, b, false)
		if b.home != l || l.lb.nidle != 1 || p.localFree.Load() != 1 || p.nidle != 0 {
			t.Fatalf("home %p (loop %p), loop free %d, localFree %d, pool free %d", b.home, l, l.lb.nidle, p.localFree.Load(), p.nidle)
		}
		if len(capped.grant) != 0 || !capped.capped {
			t.Fatalf("the waiter at its cap was served (%d) or not marked (%v)", len(capped.grant), capped.capped)
		}
	})
	t.Run("a waiter under its cap queued meanwhile gets the backend or sees it to reclaim it", func(t *testing.T) {
		p, l, b, _ := setup(t)
		w := &poolWaiter{key: "x", grant: make(chan *backend, 1)}
		reclaims := false
		beforeKeepLocal = func() {
			p.mu.Lock()
			p.addWaiter(w)
			p.mu.Unlock()
			reclaims = p.localFree.Load() > 0
		}
		t.Cleanup(func() { beforeKeepLocal = nil })
		l.keepOrGiveBack(&poolLink{pool: p}, b, false)
		select {
		case got := <-w.grant:
			if got != nil {
				t.Fatalf("the waiter of another key got %p, want a slot", got)
			}
		default:
			if !reclaims {
				t.Fatal("the waiter neither got a slot nor saw the backend kept free on the loop to reclaim it")
			}
		}
	})
}
