package proxy

import (
	"context"
	"testing"
)

// TestAcquireReleasesThePoolLockOnPanic: a panic while an acquire holds
// the pool's lock (a bug in pgveil) ends that acquire only; the lock
// must be released with it, or every session of every user waits on the
// pool forever.
func TestAcquireReleasesThePoolLockOnPanic(t *testing.T) {
	t.Run("a panic under the lock leaves the pool unlocked", func(t *testing.T) {
		// Full, with a free backend of another key that is nil: making
		// room for the acquire's key panics under the lock.
		p := &pool{size: 1, open: 1, nidle: 1, idle: map[string][]*backend{"other": {nil}}, logins: map[string]*poolLogin{}}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the acquire did not panic")
				}
			}()
			_, _ = p.acquireFor(context.Background(), "key", nil, nil, nil)
		}()
		if !p.mu.TryLock() {
			t.Fatal("the pool's lock is still held after the panic")
		}
		p.mu.Unlock()
	})

	t.Run("a panic under the lock of an event loop's acquire leaves the pool unlocked", func(t *testing.T) {
		// A login counted below zero: giving back its count, the
		// pool having no idle backend of the key, panics under the
		// lock (poolLogin.put).
		lg := &poolLogin{}
		lg.max.Store(5)
		lg.held.Store(-1)
		p := &pool{size: 1, idle: map[string][]*backend{}, logins: map[string]*poolLogin{}}
		func() {
			defer func() {
				if recover() == nil {
					t.Fatal("the acquire did not panic")
				}
			}()
			_, _, _ = p.acquireNow("key", &poolWaiter{login: lg})
		}()
		if !p.mu.TryLock() {
			t.Fatal("the pool's lock is still held after the panic")
		}
		p.mu.Unlock()
	})
}
