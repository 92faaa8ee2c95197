package proxy

// This file lets the external tests see the event loops' state.

// LoopBuffers is what a session on an event loop holds, read on its loop.
type LoopBuffers struct {
	// Held is the capacity of the read and write buffers it holds.
	Held int
	// ClientPending is what waits to be written to the client.
	ClientPending int
}

// LoopStats reports how many of s's sessions relay on event loops, how
// many sessions s runs, and how many client messages loops handed to
// workers.
func LoopStats(s *Server) (onLoops, sessions int, deferred uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		ss.lpMu.Lock()
		if ss.lp != nil {
			onLoops++
		}
		ss.lpMu.Unlock()
	}
	if s.loops != nil {
		deferred = s.loops.deferred.Load()
	}
	return onLoops, len(s.sessions), deferred
}

// LoopSessionBuffers returns the buffers of each session on an event
// loop, read on the loop's goroutine.
func LoopSessionBuffers(s *Server) []LoopBuffers {
	s.mu.Lock()
	var on []*session
	for ss := range s.sessions {
		ss.lpMu.Lock()
		if ss.lp != nil {
			on = append(on, ss)
		}
		ss.lpMu.Unlock()
	}
	s.mu.Unlock()
	out := make([]LoopBuffers, len(on))
	for i, ss := range on {
		done := make(chan struct{})
		ss.lp.loop.post(loopPost{kind: postCall, fn: func() {
			defer close(done)
			ss.coutMu.Lock()
			defer ss.coutMu.Unlock()
			out[i] = LoopBuffers{
				Held:          ss.cin.Held() + ss.uin.Held() + ss.cout.Held() + ss.uout.Held(),
				ClientPending: ss.cout.Pending(),
			}
		}})
		<-done
	}
	return out
}

// LoopCount exposes loopCount.
var LoopCount = loopCount

// LoopOf returns the index of the event loop relaying the session whose
// client was given the BackendKeyData pid, -1 when no loop relays it.
func LoopOf(s *Server, pid uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ss := range s.sessions {
		if ss.pid != pid {
			continue
		}
		ss.lpMu.Lock()
		lp := ss.lp
		ss.lpMu.Unlock()
		if lp == nil {
			return -1
		}
		for i, l := range s.loops.loops {
			if l == lp.loop {
				return i
			}
		}
	}
	return -1
}
