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
// with answers still to come, for the next session to read. So only what
// is proven counts:
//   - a COPY's CommandComplete proves that the server read, in COPY mode,
//     every client message from where that COPY began to the CopyDone
//     that ended it;
//   - the COPY began at the Query or Execute that started it, or, for the
//     second COPY of one Query, at the CopyDone that ended the first;
//   - the CopyDone that ended it is the first CopyDone or CopyFail the
//     client relay forwarded after the COPY began. The client relay
//     claims a COPY for the first one it forwards while the backend relay
//     has seen that COPY's CopyInResponse and no claim has taken that
//     COPY yet (claims are by the COPY's number, copyStarts, which the
//     backend relay counts as CopyInResponses come: no later COPY can
//     start before the server reads this CopyDone). Once a CopyDone or
//     CopyFail goes without a claim (sent before its CopyInResponse was
//     seen, by a client pipelining data blindly), the server may have
//     ended a COPY with it: no claim is made until the next Query or
//     Execute.
//
// So the client relay notes, at such a CopyDone, the Syncs it forwarded
// since the COPY began, under the COPY's number; the backend relay, at
// that COPY's CommandComplete, adds them to the Syncs the next
// ReadyForQuery answers along with its own. A COPY that ends otherwise (an
// error, a CopyFail) drops its note: its Syncs stay unanswered (see
// session.sent). A CopyDone forwarded before the CopyInResponse was seen
// (a client pipelining data blindly) claims nothing, so its COPY's Syncs
// stay unanswered too.
type copySyncs struct {
	// NOTE: the fields below up to mu are the client relay's own.
	// sinceStart counts the Syncs forwarded since the last Query or
	// Execute, or since the last CopyDone or CopyFail that claimed a COPY.
	sinceStart int64
	// claimed is the number of the last COPY a CopyDone or CopyFail
	// claimed; blind reports that one went without a claim since the
	// last Query or Execute.
	claimed int64
	blind   bool

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

// run notes a Query or an Execute forwarded: a COPY it starts begins
// here (client relay).
func (c *copySyncs) run() { c.sinceStart, c.blind = 0, false }

// sync notes a Sync forwarded (client relay).
func (c *copySyncs) sync() { c.sinceStart++ }

// end notes a CopyDone (done true) or a CopyFail about to be forwarded,
// with started the number of the last COPY whose CopyInResponse the
// backend relay has seen and inCopy whether that COPY is still going on
// for it (client relay).
func (c *copySyncs) end(done bool, started int64, inCopy bool) {
	if c.blind || !inCopy || started <= c.claimed {
		c.blind = true
		return
	}
	c.claimed = started
	if done && c.sinceStart > 0 {
		c.mu.Lock()
		c.notes = append(c.notes, copyNote{copy: started, syncs: c.sinceStart})
		c.mu.Unlock()
	}
	// NOTE: a later COPY of the same Query begins here.
	c.sinceStart = 0
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

// answered returns the Syncs a ReadyForQuery answers: its own and those
// ignored since the last one (backend relay).
func (c *copySyncs) answered() int64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 1 + c.ignored
	c.ignored = 0
	return n
}
