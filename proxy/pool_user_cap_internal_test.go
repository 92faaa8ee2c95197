package proxy

import "testing"

// TestPoolLoginCounts checks how the pool hands backends and slots to
// waiters when logins are capped (upstream.pool.max_per_user): a waiter
// whose login is at its cap is passed over, the login that lets a
// backend go has room for its own waiter first, and every hand-over
// moves the count once.
func TestPoolLoginCounts(t *testing.T) {
	type setup struct {
		p          *pool
		ann, bob   *poolLogin
		annW, bobW *poolWaiter
		anyW       *poolWaiter
	}
	newSetup := func(open int) *setup {
		s := &setup{p: &pool{size: 2, open: open, idle: map[string][]*backend{}}}
		s.ann = &poolLogin{name: "ann"}
		s.bob = &poolLogin{name: "bob"}
		s.ann.max.Store(1)
		s.bob.max.Store(1)
		s.ann.held.Store(1)
		s.bob.held.Store(1)
		s.bobW = &poolWaiter{key: "k", login: s.bob, grant: make(chan *backend, 1)}
		s.annW = &poolWaiter{key: "k", login: s.ann, grant: make(chan *backend, 1)}
		s.anyW = &poolWaiter{key: "k", grant: make(chan *backend, 1)}
		return s
	}
	granted := func(w *poolWaiter) (*backend, bool) {
		select {
		case b := <-w.grant:
			return b, true
		default:
			return nil, false
		}
	}
	t.Run("a released backend goes to the releasing login's waiter, past an older one at its cap", func(t *testing.T) {
		s := newSetup(2)
		s.p.addWaiter(s.bobW)
		s.p.addWaiter(s.annW)
		b := &backend{key: "k", login: s.ann}
		s.p.release(b)
		if got, ok := granted(s.annW); !ok || got != b {
			t.Fatalf("ann's waiter got %v, %v", got, ok)
		}
		if b.login != s.ann || s.ann.held.Load() != 1 || s.bob.held.Load() != 1 || len(s.p.waiters) != 1 || s.p.waiters[0] != s.bobW {
			t.Fatalf("login %v, ann %d, bob %d, waiters %v", b.login, s.ann.held.Load(), s.bob.held.Load(), s.p.waiters)
		}
	})
	t.Run("a released backend another login's waiters cannot take goes free and off its login's count", func(t *testing.T) {
		s := newSetup(2)
		s.p.addWaiter(s.bobW)
		b := &backend{key: "k", login: s.ann}
		s.p.release(b)
		if _, ok := granted(s.bobW); ok {
			t.Fatal("bob's waiter was served past its cap")
		}
		if b.login != nil || s.ann.held.Load() != 0 || s.p.nidle != 1 || s.p.open != 2 {
			t.Fatalf("login %v, ann %d, free %d, open %d", b.login, s.ann.held.Load(), s.p.nidle, s.p.open)
		}
	})
	t.Run("with room in the pool, a released backend stays free and another key's waiter of its login gets a new slot", func(t *testing.T) {
		s := newSetup(1)
		s.annW.key = "x"
		s.p.addWaiter(s.annW)
		b := &backend{key: "k", login: s.ann}
		s.p.release(b)
		if got, ok := granted(s.annW); !ok || got != nil {
			t.Fatalf("ann's waiter got %v, %v, want a slot", got, ok)
		}
		if s.ann.held.Load() != 1 || s.p.nidle != 1 || s.p.open != 2 {
			t.Fatalf("ann %d, free %d, open %d", s.ann.held.Load(), s.p.nidle, s.p.open)
		}
	})
	t.Run("a freed slot goes to the oldest waiter under its cap", func(t *testing.T) {
		s := newSetup(2)
		s.p.addWaiter(s.bobW)
		s.p.addWaiter(s.anyW)
		s.p.freeSlot(s.ann)
		if got, ok := granted(s.anyW); !ok || got != nil {
			t.Fatalf("the uncapped waiter got %v, %v, want a slot", got, ok)
		}
		if s.ann.held.Load() != 0 || s.p.open != 2 || len(s.p.waiters) != 1 {
			t.Fatalf("ann %d, open %d, %d waiters", s.ann.held.Load(), s.p.open, len(s.p.waiters))
		}
	})
	t.Run("a freed slot no waiter may take is given back", func(t *testing.T) {
		s := newSetup(2)
		s.p.addWaiter(s.bobW)
		s.p.freeSlot(s.ann)
		if s.ann.held.Load() != 0 || s.p.open != 1 || len(s.p.waiters) != 1 {
			t.Fatalf("ann %d, open %d, %d waiters", s.ann.held.Load(), s.p.open, len(s.p.waiters))
		}
	})
	t.Run("a backend freed on a loop passes over a waiter at its cap, and counts for the one it goes to", func(t *testing.T) {
		s := newSetup(2)
		s.ann.held.Store(0)
		s.p.addWaiter(s.bobW)
		s.p.addWaiter(s.annW)
		if got := s.p.takeWaiter("k", nil); got != s.annW {
			t.Fatalf("took %v, want ann's waiter", got)
		}
		if s.ann.held.Load() != 1 || len(s.p.waiters) != 1 {
			t.Fatalf("ann %d, %d waiters", s.ann.held.Load(), len(s.p.waiters))
		}
		if got := s.p.takeWaiter("k", nil); got != nil {
			t.Fatalf("took %v past its cap", got)
		}
	})
	t.Run("a cap raised serves the login's waiters, oldest first, while the pool has room", func(t *testing.T) {
		s := newSetup(0)
		s.p.size = 3
		s.p.logins = map[string]*poolLogin{"bob": s.bob}
		s.bob.sessions = 2
		bobW2 := &poolWaiter{key: "x", login: s.bob, grant: make(chan *backend, 1)}
		s.p.addWaiter(s.bobW)
		s.p.addWaiter(s.anyW)
		s.p.addWaiter(bobW2)
		if lg := s.p.loginOf("bob", 2); lg != s.bob || lg.sessions != 3 {
			t.Fatalf("loginOf gave %v", lg)
		}
		if got, ok := granted(s.bobW); !ok || got != nil {
			t.Fatalf("bob's oldest waiter got %v, %v, want a slot", got, ok)
		}
		if _, ok := granted(bobW2); ok {
			t.Fatal("bob's second waiter was served past the raised cap")
		}
		if s.bob.held.Load() != 2 || s.p.open != 1 || len(s.p.waiters) != 2 {
			t.Fatalf("bob %d, open %d, %d waiters", s.bob.held.Load(), s.p.open, len(s.p.waiters))
		}
	})
	t.Run("a login never counts past its cap", func(t *testing.T) {
		lg := &poolLogin{}
		lg.max.Store(2)
		if !lg.take() || !lg.take() || lg.take() || lg.room() {
			t.Fatalf("held %d", lg.held.Load())
		}
		lg.put()
		if !lg.room() || !lg.take() {
			t.Fatalf("held %d", lg.held.Load())
		}
	})
}

// TestPoolLoginCountBelowZero: a login's count going below zero (a
// backend or slot given back twice) panics, for the session's relay to
// recover, with the pool's lock free: the pool's other sessions go on.
func TestPoolLoginCountBelowZero(t *testing.T) {
	for _, tc := range []struct {
		name string
		give func(p *pool, lg *poolLogin)
	}{
		{"a slot freed twice", func(p *pool, lg *poolLogin) { p.freeSlot(lg) }},
		{"a backend released twice", func(p *pool, lg *poolLogin) { p.release(&backend{key: "k", login: lg}) }},
	} {
		t.Run(tc.name+" panics with the pool's lock free", func(t *testing.T) {
			p := &pool{size: 2, open: 1, idle: map[string][]*backend{}}
			lg := &poolLogin{name: "ann"}
			lg.max.Store(1)
			panicked := func() (r any) {
				defer func() { r = recover() }()
				tc.give(p, lg)
				return nil
			}()
			if panicked == nil {
				t.Fatal("no panic")
			}
			if !p.mu.TryLock() {
				t.Fatal("the pool's lock stays held")
			}
			p.mu.Unlock()
		})
	}
}
