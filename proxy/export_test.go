package proxy

import "time"

// DelayPooledFlushes makes every pooled flush wait d between its write
// and its bookkeeping, until the returned func undoes it.
func DelayPooledFlushes(d time.Duration) (undo func()) {
	f := func() { time.Sleep(d) }
	afterPooledFlush.Store(&f)
	return func() { afterPooledFlush.Store(nil) }
}

// TrackerHeld returns what the statement trackers of s's sessions hold
// for messages not answered yet, in all: entries of their queues and
// bytes of statement text; and the sessions that have a tracker.
func TrackerHeld(s *Server) (messages int, bytes int64, tracked int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if ss.track != nil {
			m, b := ss.track.Held()
			messages, bytes, tracked = messages+m, bytes+b, tracked+1
		}
	}
	return messages, bytes, tracked
}

// SetEndCancelTimeout makes the cancel requests of ending sessions wait
// up to d, for their turn and their delivery, until the returned func
// undoes it. Call it before the server starts, and undo it after it
// stopped.
func SetEndCancelTimeout(d time.Duration) (undo func()) {
	old := endCancelTimeout
	endCancelTimeout = d
	return func() { endCancelTimeout = old }
}

// SweepKept runs the janitor of s's kept backends now (spares.expire),
// as it runs every few seconds while some are kept.
func SweepKept(s *Server) {
	if s.spares != nil {
		s.spares.expire()
	}
}

// ExpireActLookups ages every directory answer about the people BI
// services act for past actLookupAge, as a minute would.
func ExpireActLookups(s *Server) {
	s.actDir.mu.Lock()
	defer s.actDir.mu.Unlock()
	for _, e := range s.actDir.entries {
		e.at = e.at.Add(-actLookupAge)
	}
}

// KeptBackends returns how many transaction-mode sessions of s keep
// their backend to their end (poolLink.keeps), and why each does.
func KeptBackends(s *Server) (n int, why []string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if pl := ss.pl; pl != nil {
			pl.mu.Lock()
			if pl.keeps != "" {
				n++
				why = append(why, pl.keeps)
			}
			pl.mu.Unlock()
		}
	}
	return n, why
}

// ActLookups returns how many directory answers about the people BI
// services act for are kept.
func ActLookups(s *Server) int {
	s.actDir.mu.Lock()
	defer s.actDir.mu.Unlock()
	return len(s.actDir.entries)
}
