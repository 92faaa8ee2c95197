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
