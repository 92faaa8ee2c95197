package proxy

import (
	"sync"
	"sync/atomic"
)

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
//
// A COPY of that shape that fails leaves a doubt: the server read the
// Syncs before its data in COPY mode, and ignored them, unless an error
// (a cancel, a timeout) came before it read them; then it answered them.
// Nothing the server sends tells which. The Syncs in doubt are those sent
// before the backend relay saw the COPY end: one sent after it saw the
// error reaches the server after the error, which answers it. The doubt
// is the failed COPY's note: while the client sends only Syncs and
// Flushes after the COPY's CopyDone or CopyFail (the note not tainted),
// every batch still unanswered is a Sync's, and when no more are
// unanswered than the Syncs in doubt, the client has had an answer for
// each Sync the server surely answers. Its backend may still owe answers to the Syncs in
// doubt, which no client can count on, since PostgreSQL may never send
// them: so the backend is closed, never reused, and the session goes on
// on another one (settled). Any other message from the client ends the
// doubt's use: the backend then stays with the session, as before.
type copySyncs struct {
	// NOTE: the fields below up to mu are the client relay's own.
	// armed reports that the last Query or Execute may have its COPY's
	// Syncs noted; startsAt is copyStarts when it went out, syncs the
	// Syncs forwarded since.
	armed    bool
	startsAt int64
	syncs    int64
	// doubtful counts the Syncs forwarded since that Query or Execute
	// before the backend relay saw its COPY end (sync); doneAt is
	// session.done when it went out.
	doubtful int64
	doneAt   int64

	mu sync.Mutex
	// notes are the Syncs of claimed COPYs whose end is still to come, by
	// COPY number, oldest first; ignored the Syncs the next ReadyForQuery
	// answers along with its own. NOTE: guarded by mu.
	notes   []copyNote
	ignored int64
	// doubt is the note of a COPY that failed, nil when there is none.
	// NOTE: guarded by mu.
	doubt *copyNote
	// held reports that notes or doubt may hold something: taint and
	// forget, which run at every message and ReadyForQuery, take mu only
	// then. Set under mu by whoever adds one.
	held atomic.Bool
}

// copyNote is the number of Syncs a COPY ignores if it succeeds.
type copyNote struct {
	copy, syncs int64
	// doubtful counts the Syncs the server answers only if the COPY
	// failed before it read them.
	doubtful int64
	// tainted reports that the client sent a message other than a Sync
	// or a Flush since the COPY's CopyDone or CopyFail; fails that it
	// was a CopyFail.
	tainted bool
	fails   bool
}

// run notes a Query or an Execute about to be forwarded, with quiet
// whether every batch sent is answered and no COPY is going on, and
// starts the CopyInResponses seen so far (client relay). It may come twice
// for one message (a message waiting for a pooled backend): the second
// sees the same state.
func (c *copySyncs) run(quiet bool, starts, done int64) {
	c.armed, c.startsAt, c.syncs, c.doubtful, c.doneAt = quiet, starts, 0, 0, done
}

// other notes a message other than a Sync, a Flush or copy data about to
// be forwarded (client relay).
func (c *copySyncs) other() { c.armed = false }

// taint notes a message other than a Sync or a Flush about to be
// forwarded: the notes made and the doubt can no longer settle a
// backend (client relay).
func (c *copySyncs) taint() {
	if !c.held.Load() {
		return
	}
	c.mu.Lock()
	for i := range c.notes {
		c.notes[i].tainted = true
	}
	if c.doubt != nil {
		c.doubt.tainted = true
	}
	c.mu.Unlock()
}

// sync notes a Sync about to be forwarded, given inCopy whether the
// backend relay sees a COPY going on and then started the CopyInResponses
// it has seen (client relay, in that order). The Sync is in doubt unless
// the COPY of the last Query or Execute has started and ended for the
// backend relay: then the server has sent its end, and reads the Sync
// after it.
func (c *copySyncs) sync(inCopy bool, started int64) {
	c.syncs++
	if c.armed && (inCopy || started == c.startsAt) {
		c.doubtful++
	}
}

// end notes a CopyDone (done true) or a CopyFail about to be forwarded,
// with started the CopyInResponses the backend relay has seen, inCopy
// whether the last one's COPY is still going on for it, and answered
// the batches it has counted answered, session.done (client relay).
//
// NOTE: a COPY that is no longer going on when its CopyDone or CopyFail
// goes out, the only one since the Query or Execute, failed: a COPY FROM
// STDIN ends before them only in an error. And only while no
// ReadyForQuery came since that Query or Execute are the Syncs in doubt
// for the client: one that came answered a Sync the COPY's error
// preceded, and the client, having seen it, counts on an answer to each
// Sync it sends after (a review's sequence: bad data and a Sync, its
// answer, then Sync, CopyDone, Sync). It also means that a note or doubt
// is always about the backend that ran the COPY: letting that backend
// go takes a ReadyForQuery.
func (c *copySyncs) end(done bool, started int64, inCopy bool, answered int64) {
	if c.armed && started == c.startsAt+1 && c.syncs > 0 && answered == c.doneAt {
		n := copyNote{copy: started, syncs: c.syncs, doubtful: c.doubtful, fails: !done}
		c.mu.Lock()
		if inCopy {
			c.notes = append(c.notes, n)
		} else {
			c.doubt = &n
		}
		c.held.Store(true)
		c.mu.Unlock()
	}
	c.armed = false
}

// copyEnded notes the end of COPY number n: its CommandComplete when ok,
// an error otherwise (backend relay). The note of a COPY that failed
// becomes the doubt.
func (c *copySyncs) copyEnded(n int64, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	i := 0
	for ; i < len(c.notes) && c.notes[i].copy <= n; i++ {
		if c.notes[i].copy != n {
			continue
		}
		switch {
		case !ok:
			d := c.notes[i]
			c.doubt = &d
		case !c.notes[i].fails:
			c.ignored += c.notes[i].syncs
		}
	}
	c.notes = c.notes[i:]
	c.held.Store(len(c.notes) > 0 || c.doubt != nil)
}

// settled reports whether a session whose unanswered batches are
// unanswered owes its client no answer it can count on: some are
// unanswered, all are Syncs after a COPY that failed, no more than the
// Syncs in doubt, and the client sent only Syncs and Flushes since that
// COPY's CopyDone or CopyFail (backend relay: at a ReadyForQuery in
// session mode, in letGo in transaction mode).
func (c *copySyncs) settled(unanswered int64) bool {
	if !c.held.Load() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	d := c.doubt
	return d != nil && !d.tainted && unanswered > 0 && unanswered <= d.doubtful
}

// forget drops the doubt, once the backend it was about is gone or every
// batch is answered (backend relay).
func (c *copySyncs) forget() {
	if !c.held.Load() {
		return
	}
	c.mu.Lock()
	c.doubt = nil
	c.held.Store(len(c.notes) > 0)
	c.mu.Unlock()
}

// answered returns the batches a ReadyForQuery closes, given unanswered,
// the batches sent and not answered yet: its own and those whose Syncs a
// COPY ignored since the last one, never more than were sent. A
// ReadyForQuery with none unanswered closes none: only a backend a doubt
// spoiled sends one (settled), and it answers no batch sent since
// (backend relay).
func (c *copySyncs) answered(unanswered int64) int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if unanswered <= 0 {
		c.ignored = 0
		return 0
	}
	n := 1 + min(c.ignored, unanswered-1)
	c.ignored = 0
	return n
}
