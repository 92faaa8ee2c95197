package rewrite

import (
	"context"
	"sync"
)

// parseSlots bounds the statements an Engine parses at once, and shares
// them fairly between users.
//
// NOTE: a slot is held for the whole cold path of a statement: its guard
// (whose scanner is pg_query's), its parse, its rewrite. A user holds at
// most perUser slots at once; the statements of a user at that share
// queue behind that user's own, and a slot that frees goes to the
// waiting user under its share that holds the fewest, the next in turn
// (round robin) among equals, so one
// user's flood of expensive statements, from however many sessions,
// leaves the other slots to everyone else and, once those are busy too,
// waits its turn with the others. A session checks one statement at a
// time, so a user with a single session never waits for its own.
type parseSlots struct {
	mu sync.Mutex
	// free is how many slots no statement holds.
	free int
	// perUser is the most slots one user holds at once.
	perUser int
	// held counts the slots of each user that holds one.
	held map[string]int
	// waiting holds each waiting user's statements, first come first;
	// turn lists the users that wait, in their turn order, and next is
	// the index in turn of the one served next.
	waiting map[string][]*slotWaiter
	turn    []string
	next    int
}

// slotWaiter is a statement waiting for a slot: ready is closed when it
// has one.
type slotWaiter struct {
	ready   chan struct{}
	granted bool
}

func newParseSlots(n, perUser int) *parseSlots {
	return &parseSlots{free: n, perUser: max(1, min(perUser, n)), held: map[string]int{}, waiting: map[string][]*slotWaiter{}}
}

// acquire takes a slot for user, waiting for one until ctx ends.
func (s *parseSlots) acquire(ctx context.Context, user string) error {
	s.mu.Lock()
	// NOTE: no waiter could take a free slot (dispatch would have given
	// it one), so a free slot under the user's share is this user's
	// turn.
	if s.free > 0 && s.held[user] < s.perUser {
		s.free--
		s.held[user]++
		s.mu.Unlock()
		return nil
	}
	w := &slotWaiter{ready: make(chan struct{})}
	if len(s.waiting[user]) == 0 {
		s.turn = append(s.turn, user)
	}
	s.waiting[user] = append(s.waiting[user], w)
	s.mu.Unlock()
	select {
	case <-w.ready:
		return nil
	case <-ctx.Done():
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if w.granted {
		// Granted as the wait ended: give the slot back.
		s.releaseLocked(user)
		return ctx.Err()
	}
	q := s.waiting[user]
	for i, x := range q {
		if x == w {
			q = append(q[:i:i], q[i+1:]...)
			break
		}
	}
	if len(q) == 0 {
		delete(s.waiting, user)
		s.dropTurn(user)
	} else {
		s.waiting[user] = q
	}
	return ctx.Err()
}

// release gives back a slot user took.
func (s *parseSlots) release(user string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.releaseLocked(user)
}

func (s *parseSlots) releaseLocked(user string) {
	if s.held[user]--; s.held[user] <= 0 {
		delete(s.held, user)
	}
	s.free++
	s.dispatch()
}

// dispatch gives free slots to waiting users under their share, one
// statement each in turn.
func (s *parseSlots) dispatch() {
	for s.free > 0 && len(s.turn) > 0 {
		// The waiting user under its share that holds the fewest slots,
		// the first in turn among equals.
		found := -1
		for k := range len(s.turn) {
			i := (s.next + k) % len(s.turn)
			if h := s.held[s.turn[i]]; h < s.perUser && (found < 0 || h < s.held[s.turn[found]]) {
				found = i
			}
		}
		if found < 0 {
			return
		}
		user := s.turn[found]
		q := s.waiting[user]
		w := q[0]
		q[0] = nil
		q = q[1:]
		w.granted = true
		s.free--
		s.held[user]++
		close(w.ready)
		if len(q) == 0 {
			delete(s.waiting, user)
			s.turn = append(s.turn[:found], s.turn[found+1:]...)
			s.next = found
		} else {
			s.waiting[user] = q
			s.next = found + 1
		}
		if len(s.turn) > 0 {
			s.next %= len(s.turn)
		} else {
			s.next = 0
		}
	}
}

// dropTurn removes user, who waits no more, from the turn order.
func (s *parseSlots) dropTurn(user string) {
	for i, u := range s.turn {
		if u == user {
			s.turn = append(s.turn[:i], s.turn[i+1:]...)
			if i < s.next {
				s.next--
			}
			break
		}
	}
	if len(s.turn) == 0 || s.next >= len(s.turn) {
		s.next = 0
	}
}

// of returns how many slots user holds, and how many of its statements
// wait for one.
func (s *parseSlots) of(user string) (held, waiting int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.held[user], len(s.waiting[user])
}
