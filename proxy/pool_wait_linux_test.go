package proxy

import (
	"testing"
	"time"
)

// TestTakeWaiterPrefersTheLoop checks which waiter a backend freed on an
// event loop goes to: a waiter on that loop that queued within
// loopAffinity of the oldest, otherwise the oldest.
func TestTakeWaiterPrefersTheLoop(t *testing.T) {
	here, there := &eventLoop{}, &eventLoop{}
	t0 := time.Now()
	deliver := func(*backend, bool) {}
	on := func(name string, l *eventLoop, after time.Duration) *poolWaiter {
		return &poolWaiter{key: name, loop: l, deliver: deliver, deadline: t0.Add(after)}
	}
	goroutine := &poolWaiter{key: "k", grant: make(chan *backend, 1)}
	for _, c := range []struct {
		name    string
		waiters []*poolWaiter
		from    *eventLoop
		want    int
	}{
		{"the oldest, on the loop", []*poolWaiter{on("k", here, 0), on("k", here, 100*time.Microsecond)}, here, 0},
		{"one on the loop just after the oldest elsewhere", []*poolWaiter{on("k", there, 0), on("k", here, loopAffinity/2)}, here, 1},
		{"the oldest elsewhere, the loop's too late", []*poolWaiter{on("k", there, 0), on("k", here, 2*loopAffinity)}, here, 0},
		{"the oldest elsewhere, none on the loop", []*poolWaiter{on("k", there, 0), on("k", there, 10*time.Microsecond)}, here, 0},
		{"another key's waiters are not counted", []*poolWaiter{on("x", here, 0), on("k", there, 0), on("k", here, 10*time.Microsecond)}, here, 2},
		{"a goroutine's wait is served in turn", []*poolWaiter{goroutine, on("k", here, 0)}, here, 0},
		{"nor passed over for a later one", []*poolWaiter{on("k", there, 0), goroutine, on("k", here, 10*time.Microsecond)}, here, 0},
		{"a backend freed off the loops goes to the oldest", []*poolWaiter{on("k", there, 0), on("k", here, 0)}, nil, 0},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &pool{}
			for _, w := range c.waiters {
				p.addWaiter(w)
			}
			if got := p.takeWaiter("k", c.from); got != c.waiters[c.want] {
				t.Fatalf("took waiter %v, want %d", got, c.want)
			}
			if len(p.waiters) != len(c.waiters)-1 || int(p.nwait.Load()) != len(p.waiters) {
				t.Fatalf("%d waiters left, nwait %d", len(p.waiters), p.nwait.Load())
			}
		})
	}
}
