package rewrite

import (
	"context"
	"errors"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// waitFor acquires a slot for user on a goroutine and returns the
// channel its result arrives on.
func waitFor(s *parseSlots, ctx context.Context, user string) <-chan error {
	ch := make(chan error, 1)
	go func() { ch <- s.acquire(ctx, user) }()
	return ch
}

// queued waits until n statements of user wait.
func queued(t *testing.T, s *parseSlots, user string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		s.mu.Lock()
		k := len(s.waiting[user])
		s.mu.Unlock()
		if k == n {
			return
		}
	}
	t.Fatalf("%d statements of %s never queued", n, user)
}

func pending(ch <-chan error) bool {
	select {
	case <-ch:
		return false
	default:
		return true
	}
}

// idle fails unless s is back to n free slots, nobody holding or waiting.
func idle(t *testing.T, s *parseSlots, n int) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.free != n || len(s.held) != 0 || len(s.waiting) != 0 || len(s.turn) != 0 {
		t.Fatalf("free %d of %d, held %v, waiting %d, turn %v", s.free, n, s.held, len(s.waiting), s.turn)
	}
}

func TestParseSlotsShare(t *testing.T) {
	ctx := context.Background()
	t.Run("a user holds at most its share, others take the rest at once", func(t *testing.T) {
		s := newParseSlots(4, 2)
		for range 2 {
			if err := s.acquire(ctx, "attacker"); err != nil {
				t.Fatal(err)
			}
		}
		third := waitFor(s, ctx, "attacker")
		queued(t, s, "attacker", 1)
		for range 2 {
			if err := s.acquire(ctx, "analyst"); err != nil {
				t.Fatal(err)
			}
		}
		if !pending(third) {
			t.Fatal("the attacker's third statement took a slot past its share")
		}
		s.release("attacker")
		if err := <-third; err != nil {
			t.Fatal(err)
		}
		s.release("attacker")
		s.release("attacker")
		s.release("analyst")
		s.release("analyst")
		idle(t, s, 4)
	})
	t.Run("a freed slot goes to the waiting user holding fewest, whoever queued first", func(t *testing.T) {
		s := newParseSlots(4, 2)
		for _, u := range []string{"attacker", "attacker", "b", "b"} {
			if err := s.acquire(ctx, u); err != nil {
				t.Fatal(err)
			}
		}
		var flood []<-chan error
		for i := range 10 {
			flood = append(flood, waitFor(s, ctx, "attacker"))
			queued(t, s, "attacker", i+1)
		}
		analyst := waitFor(s, ctx, "analyst")
		queued(t, s, "analyst", 1)
		s.release("attacker")
		if err := <-analyst; err != nil {
			t.Fatal(err)
		}
		for _, ch := range flood {
			if !pending(ch) {
				t.Fatal("an attacker's statement went before the analyst's")
			}
		}
		// The attacker's statements then go in their own order, within
		// its share.
		s.release("analyst")
		s.release("b")
		s.release("b")
		for _, ch := range flood {
			if err := <-ch; err != nil {
				t.Fatal(err)
			}
			s.mu.Lock()
			if h := s.held["attacker"]; h > 2 {
				t.Fatalf("the attacker holds %d slots", h)
			}
			s.mu.Unlock()
			s.release("attacker")
		}
		s.release("attacker")
		idle(t, s, 4)
	})
	t.Run("a wait that ends leaves no trace, and its slot goes on", func(t *testing.T) {
		s := newParseSlots(2, 1)
		if err := s.acquire(ctx, "a"); err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithCancel(ctx)
		gone := waitFor(s, cctx, "a")
		queued(t, s, "a", 1)
		stays := waitFor(s, ctx, "a")
		queued(t, s, "a", 2)
		cancel()
		if err := <-gone; !errors.Is(err, context.Canceled) {
			t.Fatalf("got %v", err)
		}
		s.release("a")
		if err := <-stays; err != nil {
			t.Fatal(err)
		}
		s.release("a")
		idle(t, s, 2)
	})
}

// TestParseSlotsConcurrent: under random arrivals and cancellations no
// user ever holds more than its share nor the users more than the
// slots, and every slot comes back.
func TestParseSlotsConcurrent(t *testing.T) {
	const n, share = 4, 2
	s := newParseSlots(n, share)
	var total atomic.Int32
	var per [3]atomic.Int32
	users := []string{"a", "b", "c"}
	var wg sync.WaitGroup
	var bad atomic.Value
	for g := range 24 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(g), 1))
			u := g % 3
			for range 200 {
				ctx, cancel := context.WithTimeout(context.Background(), time.Duration(r.IntN(300))*time.Microsecond)
				err := s.acquire(ctx, users[u])
				cancel()
				if err != nil {
					continue
				}
				if k := total.Add(1); k > n {
					bad.Store("more slots held than there are")
				}
				if k := per[u].Add(1); k > share {
					bad.Store("a user past its share")
				}
				time.Sleep(time.Duration(r.IntN(50)) * time.Microsecond)
				per[u].Add(-1)
				total.Add(-1)
				s.release(users[u])
			}
		}()
	}
	wg.Wait()
	if v := bad.Load(); v != nil {
		t.Fatal(v)
	}
	idle(t, s, n)
}
