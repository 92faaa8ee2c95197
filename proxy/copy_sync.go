package proxy

import "sync"

// Syncs a COPY FROM STDIN ignores.
//
// PostgreSQL ignores a Sync (or Flush) it reads while in COPY FROM STDIN:
// libpq sends an extended-protocol COPY as Parse, Bind, Execute and Sync,
// and the server reads that Sync in COPY mode, answering nothing. pgveil
// counts every Sync it forwards as a batch a ReadyForQuery will close
// (session.sent), so it must learn which ones the server ignored, or it
// waits forever for their answers: a pooled backend then stays with its
// session, and a graceful shutdown waits for its deadline.
//
// Counting one as ignored that the server answers is far worse: done
// would run ahead of sent, and a pooled backend would go back to the pool
// with answers still to come, for the next session to read. Two reviews
// broke looser rules (a stray CopyDone, a CopyDone sent before its
// CopyInResponse, a later Query or Execute). So only this one case
// counts, which libpq's PQexecParams COPY is:
//   - a Query or an Execute M goes out while the session is quiescent:
//     every batch sent is answered and no COPY is going on. A COPY of an
//     earlier run of the open batch would read M in COPY mode and fail:
//     a COPY that ends in its CommandComplete after M is M's;
//   - after M the client sends only Syncs, Flushes and copy data, then a
//     CopyDone, which goes out once the backend relay has seen exactly one
//     CopyInResponse since M, and that COPY still going on;
//   - the server read everything from M to that CopyDone in COPY mode if
//     the COPY ends in its CommandComplete: the Syncs in between were
//     ignored. The client relay notes them under the COPY's number
//     before forwarding the CopyDone; the backend relay applies the note
//     at that COPY's CommandComplete and drops it at an error.
//
// Anything else (another message type, a CopyDone sent before the
// CopyInResponse, a second COPY of the same Query) makes no note: those
// Syncs stay unanswered (see session.sent), which only keeps a backend.
// And no ReadyForQuery counts more batches than were sent.
type copySyncs struct {
	// NOTE: the fields below up to mu are the client relay's own.
	// armed reports that the last Query or Execute may have its COPY's
	// Syncs noted; startsAt is copyStarts when it went out, syncs the
	// Syncs forwarded since.
	armed    bool
	startsAt int64
	syncs    int64

	mu sync.Mutex
	// notes are the Syncs of claimed COPYs whose end is still to come, by
	// COPY number, oldest first; ignored the Syncs the next ReadyForQuery
	// answers along with its own. NOTE: guarded by mu.
	notes   []copyNote
	ignored int64
}

// copyNote is the number of Syncs a COPY ignores if it succeeds.
type copyNote struct {
	copy, syncs int64
}

// run notes a Query or an Execute about to be forwarded, with quiet
// whether every batch sent is answered and no COPY is going on, and
// starts the CopyInResponses seen so far (client relay). It may come twice
// for one message (a message waiting for a pooled backend): the second
// sees the same state.
func (c *copySyncs) run(quiet bool, starts int64) {
	c.armed, c.startsAt, c.syncs = quiet, starts, 0
}

// other notes a message other than a Sync, a Flush or copy data about to
// be forwarded (client relay).
func (c *copySyncs) other() { c.armed = false }

// sync notes a Sync forwarded (client relay).
func (c *copySyncs) sync() { c.syncs++ }

// end notes a CopyDone (done true) or a CopyFail about to be forwarded,
// with started the CopyInResponses the backend relay has seen and inCopy
// whether the last one's COPY is still going on for it (client relay).
func (c *copySyncs) end(done bool, started int64, inCopy bool) {
	if c.armed && done && inCopy && started == c.startsAt+1 && c.syncs > 0 {
		c.mu.Lock()
		c.notes = append(c.notes, copyNote{copy: started, syncs: c.syncs})
		c.mu.Unlock()
	}
	c.armed = false
}

// copyEnded notes the end of COPY number n: its CommandComplete when ok,
// an error otherwise (backend relay).
func (c *copySyncs) copyEnded(n int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for ; i < len(c.notes) && c.notes[i].copy <= n; i++ {
		if ok && c.notes[i].copy == n {
			c.ignored += c.notes[i].syncs
		}
	}
	c.notes = c.notes[i:]
}

// answered returns the batches a ReadyForQuery closes, given unanswered,
// the batches sent and not answered yet: its own and those whose Syncs a
// COPY ignored since the last one, never more than were sent (backend
// relay).
func (c *copySyncs) answered(unanswered int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 1 + max(0, min(c.ignored, unanswered-1))
	c.ignored = 0
	return n
}
