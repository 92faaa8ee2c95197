package proxy

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/wire"
)

// freeTestBackend returns a backend of key whose connection is open and
// quiet (alive), for a pool's free list.
func freeTestBackend(t *testing.T, key string) *backend {
	t.Helper()
	c, peer := net.Pipe()
	t.Cleanup(func() { c.Close(); peer.Close() })
	return &backend{key: key, up: &upstreamConn{conn: c}, io: c, prepared: newBackendStmts(),
		in: wire.NewReader(c, 64, 1024), out: wire.NewWriter(c, 64)}
}

// TestPoolCapHeldTheWaitBack checks that a 53300 names the login's cap
// whenever the cap held the session back during its wait, though the
// login has room as the wait ends (a backend of its went back that
// instant), and names the pool's size when only the pool was full.
func TestPoolCapHeldTheWaitBack(t *testing.T) {
	const setting = "upstream.pool.max_per_user"
	newPool := func(open int) (*pool, *poolLogin) {
		p := &pool{size: 2, open: open, wait: 10 * time.Millisecond, log: zap.NewNop(),
			idle: map[string][]*backend{}, logins: map[string]*poolLogin{}}
		ann := &poolLogin{name: "ann"}
		ann.max.Store(1)
		return p, ann
	}
	t.Run("a session that waited at its cap is told of the cap though its login has room as the wait ends", func(t *testing.T) {
		p, ann := newPool(1)
		ann.held.Store(1)
		_, err := p.acquireFor(context.Background(), "k", nil, ann, nil)
		if !errors.Is(err, errPoolTimeout) {
			t.Fatalf("acquire: %v", err)
		}
		ann.put() // ann's backend goes back as the wait ends
		ce, named := p.timeoutError("ann", ann, setting, err)
		if !named || !strings.Contains(ce.resp.Hint, setting) || !strings.Contains(ce.resp.Detail, `"ann"`) {
			t.Fatalf("named the cap %v: %q / %q", named, ce.resp.Detail, ce.resp.Hint)
		}
	})
	t.Run("a waiter a released backend passes over at its cap is marked held back by it", func(t *testing.T) {
		p, ann := newPool(2)
		w := &poolWaiter{key: "k", login: ann, grant: make(chan *backend, 1)}
		p.addWaiter(w)
		ann.held.Store(1) // another session of ann took a backend meanwhile
		p.release(&backend{key: "k"})
		if !w.capped || len(p.waiters) != 1 {
			t.Fatalf("capped %v, %d waiters", w.capped, len(p.waiters))
		}
	})
	t.Run("a session that waited for a full pool under its cap is told of the pool's size", func(t *testing.T) {
		p, ann := newPool(2)
		_, err := p.acquireFor(context.Background(), "k", nil, ann, nil)
		if !errors.Is(err, errPoolTimeout) {
			t.Fatalf("acquire: %v", err)
		}
		ce, named := p.timeoutError("ann", ann, setting, err)
		if named || !strings.Contains(ce.resp.Hint, "upstream.pool.size") {
			t.Fatalf("named the cap %v: %q / %q", named, ce.resp.Detail, ce.resp.Hint)
		}
	})
}

// TestPoolCapWaiterTakesFreeBackend checks that a waiter its login's
// cap held back, once room is made for it, takes a free backend of its
// key that went free meanwhile rather than a slot to dial another.
func TestPoolCapWaiterTakesFreeBackend(t *testing.T) {
	for _, tc := range []struct {
		name string
		// room makes room for ann's waiter; held and free are ann's
		// count, the pool's free backends and its open count then.
		room             func(p *pool, ann *poolLogin)
		held, free, open int
	}{
		{"a slot freed by its login", func(p *pool, ann *poolLogin) { p.freeSlot(ann) }, 1, 0, 1},
		{"a backend of another key released by its login", func(p *pool, ann *poolLogin) {
			p.release(&backend{key: "x", login: ann})
		}, 1, 1, 2},
		{"its cap raised", func(p *pool, ann *poolLogin) {
			p.logins["ann"] = ann
			p.loginOf("ann", 2)
		}, 2, 0, 2},
	} {
		t.Run(tc.name+" gives it the free backend of its key", func(t *testing.T) {
			p := &pool{size: 2, open: 2, log: zap.NewNop(), idle: map[string][]*backend{}, logins: map[string]*poolLogin{}}
			ann := &poolLogin{name: "ann"}
			ann.max.Store(1)
			ann.held.Store(1)
			w := &poolWaiter{key: "k", login: ann, grant: make(chan *backend, 1)}
			p.addWaiter(w)
			free := freeTestBackend(t, "k")
			p.idleBackend(free) // went free while ann was at its cap
			tc.room(p, ann)
			select {
			case got := <-w.grant:
				if got != free {
					t.Fatalf("the waiter got %p, want the free backend %p (nil: a slot to dial)", got, free)
				}
			default:
				t.Fatal("the waiter was not served")
			}
			if free.login != ann || ann.held.Load() != int32(tc.held) || p.nidle != tc.free || p.open != tc.open || len(p.waiters) != 0 {
				t.Fatalf("login %v, ann %d, free %d, open %d, %d waiters", free.login, ann.held.Load(), p.nidle, p.open, len(p.waiters))
			}
		})
	}
}
