package statement

import (
	"slices"

	"github.com/pgveil/pgveil/rewrite"
)

// What the Tracker holds for messages not answered yet.
//
// After an error in an extended-protocol batch PostgreSQL discards every
// message up to the next Sync, unanswered and keeping nothing of them, so
// nothing slows a client that keeps sending: the Tracker must not keep
// what each of them would cost. It keeps, for a message in flight, what
// its answer settles: an entry of a queue (awaiting, awaitingBinds,
// pending, injected, batchPC, objPending), and for a Parse its texts.
// Those are bounded, for the whole session, by MaxHeldMessages entries
// and MaxHeldBytes bytes; past either the Tracker is Over, and the
// session ends (54000). Answers release them: the queues drain as the
// answers come, a Parse's texts at its ParseComplete, and what a batch
// still holds at its ReadyForQuery (the batch's load). A client that
// reads its answers holds only what is in flight between it and the
// server, however long its batch; one whose batch failed holds what it
// sent since the error, until the Sync. A Query with no
// extended-protocol message since the last Sync is not counted
// (OnSimpleBatchClosed): it gets a ReadyForQuery of its own, so a client
// that pipelines Queries is held back by the answers it does not read.
//
// Messages that cannot change what the upstream holds keep nothing
// (doomed): a Parse of a named statement after one of the same name in
// the same batch, a Bind of a portal after one of the same portal (for
// the unnamed portal, of the same statement), a Close after a Close of
// the same name, with no Execute between them (one may drop the name
// with SQL). The first either succeeds, and the second fails ("already
// exists"), or fails, and the server skips the second; the unnamed
// portal's second Bind, or the second Close, succeeds only if the
// first did and leaves what it left. And at a ReadyForQuery the
// histories of the names its batches touched drop the messages that
// failed or were skipped (compact), so that what a long failed batch
// sent is not kept after it.

// MaxHeldMessages bounds the messages the Tracker follows that are not
// answered yet, in all of a session's batches in flight: the entries of
// its queues. PgJDBC sends a Sync every few hundred messages of a batch
// and pgx at the end of each batch; a client that reads its answers
// holds only what is in flight.
const MaxHeldMessages = 100_000

// MaxHeldBytes bounds the statement texts (the client's and the
// rewritten, and the names) the Tracker keeps for messages not answered
// yet: 64 MiB, sixty-four statements of the 1 MiB the Rewriter accepts.
const MaxHeldBytes = 64 << 20

// infoOverhead is what an Info and its queue entries cost besides their
// texts.
const infoOverhead = 160

// batchLoad is the bytes held for messages of batch number batch.
type batchLoad struct {
	batch, bytes int64
}

// parseSize is what the Tracker holds for a Parse of st checked into res.
func parseSize(st *Statement, res *rewrite.Result) int64 {
	n := int64(len(st.Text)+len(st.Name)+4*len(st.ParamOIDs)) + infoOverhead
	if res != nil && res.SQL != st.Text {
		n += int64(len(res.SQL))
	}
	return n
}

// hold counts n bytes held for a message of batch (mu held).
func (t *Tracker) hold(batch, n int64) {
	if k := len(t.load); k > 0 && t.load[k-1].batch >= batch {
		t.load[k-1].bytes += n
	} else {
		t.load = append(t.load, batchLoad{batch: batch, bytes: n})
	}
	t.loadBytes += n
}

// release gives back n bytes held for a message of batch, answered
// (mu held).
func (t *Tracker) release(batch, n int64) {
	for i := range t.load {
		if l := &t.load[i]; l.batch == batch {
			n = min(n, l.bytes)
			l.bytes -= n
			t.loadBytes -= n
			return
		} else if l.batch > batch {
			return
		}
	}
}

// releaseBatches gives back what the batches up to done held (mu held).
func (t *Tracker) releaseBatches(done int64) {
	n := 0
	for n < len(t.load) && t.load[n].batch <= done {
		t.loadBytes -= t.load[n].bytes
		n++
	}
	t.load = DropFront(t.load, n)
}

// heldMessages returns the entries of the queues of messages not
// answered yet (mu held).
func (t *Tracker) heldMessages() int {
	return len(t.awaiting) + len(t.awaitingBinds) + len(t.pending) + len(t.injected) +
		len(t.batchPC) + len(t.objPending) + len(t.objResolved) - t.simpleHeld
}

// checkHeld marks the Tracker Over when it holds more than its bounds,
// after a client event (mu held).
func (t *Tracker) checkHeld() {
	if t.heldMessages() > MaxHeldMessages || t.loadBytes > MaxHeldBytes {
		t.over.Store(true)
	}
}

// Over reports that the session sent more messages, or statement text,
// without their answers than the Tracker follows (MaxHeldMessages,
// MaxHeldBytes): the session must end.
func (t *Tracker) Over() bool { return t.over.Load() }

// Held returns the messages and the bytes the Tracker holds for messages
// not answered yet.
func (t *Tracker) Held() (messages int, bytes int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.heldMessages(), t.loadBytes
}

// historyKey names a history: of a prepared statement, or of a portal.
type historyKey struct {
	name   string
	portal bool
}

// dirtyName is a message that made the history of key grow, in batch.
type dirtyName struct {
	key   historyKey
	batch int64
}

// walkState is, for a history compact walked and found holding messages
// in flight, how many it found (inFlight), and how many messages of the
// history were answered since (answered).
type walkState struct {
	inFlight, answered int
}

// dirty notes that the history of name (a portal's when portal is set)
// grew with a message of batch (mu held): compact visits it once the
// batch is answered.
func (t *Tracker) dirty(name string, portal bool, batch int64) {
	t.dirtyQ = append(t.dirtyQ, dirtyName{key: historyKey{name: name, portal: portal}, batch: batch})
}

// compact drops, from the histories that grew with messages of the
// batches answered since it last ran, the messages of answered batches
// that failed or were skipped, which held, candidates and settle step
// over, and all that came before a confirmed one; the latest Parse of a
// named statement that failed keeps no texts, which nothing reads again
// (mu held, at a ReadyForQuery).
//
// A walk goes from a history's newest message back over those still in
// flight. So that a client pipelining many batches does not make each
// answer walk everything sent after it (24,000 pipelined transactions
// cost the relay 4 to 11 s of CPU, quadratic in their number), a
// history walked with k messages in flight is walked again only once k
// more of its messages are answered, or when nothing is in flight any
// more: each answer costs a bounded amount of walking.
func (t *Tracker) compact() {
	n := 0
	for n < len(t.dirtyQ) && t.dirtyQ[n].batch <= t.done {
		n++
	}
	if n == 0 {
		return
	}
	visit := t.visit[:0]
	if len(t.walks) == 0 && n == len(t.dirtyQ) && n <= maxQuickVisit {
		// Nothing in flight any more and no walk waiting: what the
		// loop below would put in walks, only to walk all of it,
		// is the names of these few messages (a client that waits
		// for each answer, whose every ReadyForQuery paid for a map's
		// writes and walk).
		for _, d := range t.dirtyQ[:n] {
			if !slices.Contains(visit, d.key) {
				visit = append(visit, d.key)
			}
		}
		t.dirtyQ = DropFront(t.dirtyQ, n)
	} else {
		if t.walks == nil {
			t.walks = map[historyKey]walkState{}
		}
		for _, d := range t.dirtyQ[:n] {
			w, seen := t.walks[d.key]
			if seen && w.answered >= w.inFlight {
				// Already to be walked.
				continue
			}
			w.answered++
			if !seen || w.answered == w.inFlight {
				visit = append(visit, d.key)
			}
			t.walks[d.key] = w
		}
		t.dirtyQ = DropFront(t.dirtyQ, n)
		if len(t.dirtyQ) == 0 {
			// Nothing in flight: every history is walked, for the last
			// time until it grows again.
			visit = visit[:0]
			for k := range t.walks {
				visit = append(visit, k)
			}
		}
	}
	for i, k := range visit {
		visit[i] = historyKey{}
		var inFlight int
		if k.portal {
			head := t.portals[k.name]
			spare := t.retired(head)
			inFlight = compactPortal(head, t.done)
			if head != nil && head.fl != nil {
				// Let go of what the chain no longer holds.
				t.cleanup(head.fl, nsPortal, k.name)
			}
			if spare != nil && head.prev == nil {
				t.spare = spare
			}
		} else {
			inFlight = t.compactStmt(k.name)
			if head := t.stmts[k.name]; head != nil && head.fl != nil {
				t.cleanup(head.fl, nsStatement, k.name)
			}
		}
		if inFlight == 0 {
			if len(t.walks) > 0 {
				delete(t.walks, k)
			}
		} else {
			if t.walks == nil {
				t.walks = map[historyKey]walkState{}
			}
			t.walks[k] = walkState{inFlight: inFlight}
		}
	}
	t.visit = visit[:0]
}

// retired returns the message before head in its portal's history when
// compact is about to cut it and nothing else holds it, for the next Bind
// (Tracker.spare): head is confirmed, the message before it is a
// confirmed one that begins the history, was never pushed to a flight
// (its fl is nil), and no portal keeps its parameter values (kept is
// empty); a confirmed message waits for no answer (awaitingBinds).
// Otherwise nil (mu held).
//
// NOTE: a message dropped from the history before (a failed Bind that
// settlePortal or compact stepped over) may still have it as prev, but
// nothing walks from a dropped message: walks start at the head.
func (t *Tracker) retired(head *portalEntry) *portalEntry {
	if head == nil || !head.confirmed || len(t.kept) > 0 {
		return nil
	}
	if p := head.prev; p != nil && p.confirmed && p.prev == nil && p.fl == nil {
		return p
	}
	return nil
}

// maxQuickVisit bounds the messages whose names compact dedups in a
// list, when nothing is in flight any more, rather than in its walks.
const maxQuickVisit = 8

// compactStmt compacts the history of the statement name, and returns
// how many of its messages are still in flight, after t.done (mu held).
func (t *Tracker) compactStmt(name string) int {
	head := t.stmts[name]
	if head != nil && !head.confirmed && head.batch <= t.done && !head.closed && name != "" && head.SQL != "" {
		// Failed or skipped: only its place in the history counts.
		head = &Info{batch: head.batch, execs: head.execs, prev: head.prev, Version: head.Version, fl: head.fl}
		t.stmts[name] = head
	}
	return compactStmt(name, head, t.done)
}

// compactStmt compacts the history of the statement name from head, and
// returns how many of its messages are still in flight, after done.
func compactStmt(name string, head *Info, done int64) (inFlight int) {
	for kept := head; kept != nil; {
		if kept.confirmed {
			kept.prev = nil
			return inFlight
		}
		if kept.batch > done {
			inFlight++
		} else if name == "" && !kept.closed {
			// A failed Parse of the unnamed statement dropped it: held
			// and candidates stop there.
			kept.prev = nil
			return inFlight
		}
		e := kept.prev
		for e != nil && !e.confirmed && e.batch <= done && (e.closed || name != "") {
			e = e.prev
		}
		kept.prev = e
		kept = e
	}
	return inFlight
}

// compactPortal compacts the history of a portal from head, and returns
// how many of its Binds and Closes are still in flight, after done.
func compactPortal(head *portalEntry, done int64) (inFlight int) {
	for kept := head; kept != nil; {
		if kept.confirmed {
			kept.prev = nil
			return inFlight
		}
		if kept.batch > done {
			inFlight++
		}
		e := kept.prev
		for e != nil && !e.confirmed && e.batch <= done {
			e = e.prev
		}
		kept.prev = e
		kept = e
	}
	return inFlight
}
