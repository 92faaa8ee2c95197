package proxy

import (
	"sync"
	"sync/atomic"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/rewrite"
)

// A change of the acting user is transactional, as PostgreSQL's SET ROLE
// is: pgveil forwards SET pgveil.act_for in its place, which a ROLLBACK
// undoes upstream, and pgveil follows PostgreSQL's answers to know
// whether it stays. From a switch to the end of its transaction
// (actTx):
//
//   - the switch happened only if its own SET (or RESET) answered: the
//     server skips it after an earlier error of its batch;
//   - a COMMIT (or the end of an implicit transaction without error)
//     keeps it;
//   - a ROLLBACK, a COMMIT the server answers ROLLBACK (a failed block), or
//     an error ending an implicit transaction undoes it, AND CHAIN or not:
//     the session acts for whom it acted for when the transaction began;
//   - a ROLLBACK TO SAVEPOINT returns to whom the session acted for when
//     that savepoint was set, as PostgreSQL undoes a SET ROLE made since
//     (PgJDBC's autosave=always sets one before each statement of a
//     transaction and rolls back to it after one that fails): pgveil
//     follows the savepoints set since the switch's transaction is
//     followed, each at its answer (actTx.saves). To one it did not
//     follow (set before, or whose answer went unread), whom the session
//     acts for is not known, and every statement but a switch and
//     transaction control is refused until the client switches again or
//     the transaction rolls back (actUnknown).
//
// Statements the client sends after a statement that ends the
// transaction would be checked before the outcome is known: they are
// refused until it is (actGate); drivers wait for the answer to a COMMIT
// or a ROLLBACK anyway. A statement checked while the outcome came in
// (its rewrite raced the backend relay's actSettle) is refused too: gen
// tells. (Statements pipelined after the switch itself are checked for
// the viewer it names: should its implicit transaction fail, the client
// is told, and either viewer is one the service may act for.)

// actTx follows the transaction in which the acting user changed.
type actTx struct {
	// before is whom the session acted for when the transaction began
	// ("" for its login); beforeUnknown that it was not known then.
	before        string
	beforeUnknown bool
	// beforeDir and prevDir are the directory's answers about before and
	// prev when they log in through it (actState.dir).
	beforeDir, prevDir *actTarget
	// prev and prevUnknown are whom the session acted for before the
	// last switch; awaitSet reports that the switch's own SET or RESET
	// has not answered yet.
	prev        string
	prevUnknown bool
	awaitSet    bool
	// ending is the TransactionEnd of the statement ending the
	// transaction the client sent, awaiting its tag ("" for none).
	ending string
	// outcome is what that tag, or the end of an implicit transaction,
	// said: outcomeCommit or outcomeRollback; "" while the transaction
	// goes on. failed records an error of the batch being answered.
	outcome string
	failed  bool
	// tagMissed reports a CommandComplete forwarded unread since the
	// switch (tagUnread): whether the switch's SET, or the COMMIT or
	// ROLLBACK, answered is not known, and so is not whom PostgreSQL's
	// pgveil.act_for names (actSettle).
	// NOTE: an event loop waits for a whole CommandComplete while a
	// switch is followed (watchesTags); this keeps a tag it missed from
	// passing for a switch not made.
	tagMissed bool
	// saves are the savepoints PostgreSQL set since the transaction is
	// followed, oldest first, as their answers said, with whom the
	// session acted for at each; savesSent the SAVEPOINT, RELEASE and
	// ROLLBACK TO statements forwarded, in order, awaiting theirs
	// (noteSavepoints, actTag), dropped when their batch is answered
	// without (failed, or skipped after an error: actSavesAnswered).
	// savesLost reports an answer that did not match: saves are not
	// known, and a ROLLBACK TO leaves the acting user unknown.
	saves     []actSavepoint
	savesSent []sentSavepoint
	savesLost bool
}

// actSavepoint is a savepoint set while the transaction is followed:
// its name, and whom the session acted for then (actTx.saves).
type actSavepoint struct {
	name    string
	acting  string
	unknown bool
	dir     *actTarget
}

// sentSavepoint is a SAVEPOINT, RELEASE or ROLLBACK TO forwarded, in the
// batch closed by ReadyForQuery number batch (actTx.savesSent).
type sentSavepoint struct {
	rewrite.Savepoint
	batch int64
}

// The values of actTx.outcome.
const (
	outcomeCommit   = "commit"
	outcomeRollback = "rollback"
)

// actTracking is the session's part of the above.
//
// NOTE: tx is guarded by mu; the client relay creates it at a switch, the
// backend relay settles it. watching reports tx != nil to both relays
// without mu; unknown that whom the session acts for is not known; gen
// counts the changes of the acting user (actAs). barrier is the batch of
// the last statement ending the transaction, whose answer the next
// statements wait for; endInBatch that the batch being sent holds one
// (client relay only).
type actTracking struct {
	mu         sync.Mutex
	tx         *actTx
	watching   atomic.Bool
	unknown    atomic.Bool
	gen        atomic.Uint64
	barrier    atomic.Int64
	endInBatch bool
}

// noteSwitch starts following the transaction of a switch about to be
// made (client relay).
func (ss *session) noteSwitch() {
	a := &ss.actTrack
	acting, unknown := ss.actingFor(), a.unknown.Load()
	var dir *actTarget
	if st := ss.acting.Load(); st != nil {
		dir = st.dir
	}
	a.mu.Lock()
	if a.tx == nil {
		a.tx = &actTx{before: acting, beforeUnknown: unknown, beforeDir: dir}
		a.watching.Store(true)
	}
	a.tx.prev, a.tx.prevUnknown, a.tx.prevDir, a.tx.awaitSet = acting, unknown, dir, true
	a.mu.Unlock()
	a.unknown.Store(false)
}

// actGate returns the refusal of res, run in batch and checked when the
// acting user's generation was gen, while the acting user's change is
// unsettled or unknown; nil when it may run (client relay). Switches are
// checked by switchReady instead. res is nil when the statement is not
// known (an Execute of a portal pgveil did not see bound): refused in
// doubt.
func (ss *session) actGate(res *rewrite.Result, batch int64, gen uint64) *Refusal {
	a := &ss.actTrack
	if gen != a.gen.Load() {
		return ActRefusal("the acting user changed while the statement was checked (a transaction that changed it ended): send it again")
	}
	if !a.watching.Load() && !a.unknown.Load() {
		return nil
	}
	if res != nil && res.Act != nil {
		return nil
	}
	control := res != nil && transactionControl(res)
	if a.unknown.Load() && !control {
		return ActRefusal("a ROLLBACK TO SAVEPOINT may have undone a change of the acting user, so whom the session acts for is not known: set it again (SET ROLE …, or RESET ROLE), or roll the transaction back")
	}
	if a.watching.Load() {
		barrier := a.barrier.Load()
		if batch > barrier && ss.done.Load() < barrier || batch == barrier && a.endInBatch {
			return ActRefusal("a statement must not be pipelined after the COMMIT or ROLLBACK of a transaction that changed the acting user: wait for its result first")
		}
		if res != nil && res.EndsTransaction && len(res.Kinds) > 1 {
			return ActRefusal("a COMMIT or ROLLBACK ending a transaction that changed the acting user must be the only statement of its text")
		}
	}
	return nil
}

// noteGated records that res, run in batch, passed actGate: a statement
// ending the transaction makes the next ones wait for its answer, and
// tells how to read it (client relay).
func (ss *session) noteGated(res *rewrite.Result, batch int64) {
	a := &ss.actTrack
	if res == nil || !res.EndsTransaction || !a.watching.Load() {
		return
	}
	a.barrier.Store(batch)
	a.endInBatch = true
	a.mu.Lock()
	if t := a.tx; t != nil {
		t.ending = res.TransactionEnd
	}
	a.mu.Unlock()
}

// noteSavepoints notes the SAVEPOINT, RELEASE and ROLLBACK TO
// statements of res, forwarded in batch, while a switch's transaction is
// followed (client relay, after the statement's switch, if any, was
// made: noteSwitch starts following).
func (ss *session) noteSavepoints(res *rewrite.Result, batch int64) {
	a := &ss.actTrack
	if res == nil || len(res.Savepoints) == 0 || !a.watching.Load() {
		return
	}
	a.mu.Lock()
	if t := a.tx; t != nil {
		for _, sp := range res.Savepoints {
			t.savesSent = append(t.savesSent, sentSavepoint{Savepoint: sp, batch: batch})
			if !plainSavepointName(sp.Name) {
				// Which savepoint PostgreSQL takes it for is not known.
				t.savesLost, t.saves = true, nil
			}
		}
	}
	a.mu.Unlock()
}

// plainSavepointName reports whether name, as the rewriter read it,
// names the savepoint the server's parser names, whatever the server's
// encoding: ASCII, and short of the lengths a truncated name has (a
// name of another encoding, or truncated, could name another savepoint
// upstream than the one pgveil follows).
// NOTE: the rewriter truncates a name of NAMEDATALEN bytes or more at a
// UTF-8 character boundary, at most 63 bytes: 62 ASCII bytes and a
// 2-byte character leave 62 ASCII bytes (60 with a 4-byte one), which
// a LATIN1 server keeps whole (63 bytes) and an SQL_ASCII one cuts
// inside the character. A name shorter than 60 bytes was not truncated.
func plainSavepointName(name string) bool {
	if len(name) >= 63-3 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] >= 0x80 {
			return false
		}
	}
	return true
}

// actSavesAnswered drops the savepoint statements of the batches up to
// done that got no answer: they failed, or the server skipped them
// (backend relay, at a ReadyForQuery).
func (ss *session) actSavesAnswered(done int64) {
	a := &ss.actTrack
	a.mu.Lock()
	if t := a.tx; t != nil {
		i := 0
		for i < len(t.savesSent) && t.savesSent[i].batch <= done {
			i++
		}
		t.savesSent = t.savesSent[i:]
	}
	a.mu.Unlock()
}

// actSavepointAnswered takes the oldest savepoint statement awaiting
// its answer, which must be of op (SAVEPOINT, RELEASE or ROLLBACK TO, by
// its tag), and returns its name; ok false when none of op awaits it:
// the savepoints are then not followed (a.mu held).
func (t *actTx) actSavepointAnswered(op string) (string, bool) {
	if len(t.savesSent) == 0 || t.savesSent[0].Op != op {
		t.savesLost, t.saves = true, nil
		return "", false
	}
	name := t.savesSent[0].Name
	t.savesSent = t.savesSent[1:]
	return name, !t.savesLost
}

// lastSave returns the index of the newest savepoint named name in
// t.saves, -1 for none.
func (t *actTx) lastSave(name string) int {
	for i := len(t.saves) - 1; i >= 0; i-- {
		if t.saves[i].name == name {
			return i
		}
	}
	return -1
}

// actBatchClosed follows a Sync or Query: a new batch begins (client
// relay).
func (ss *session) actBatchClosed() { ss.actTrack.endInBatch, ss.batchBegins = false, false }

// transactionControl reports whether res is transaction control only
// (BEGIN, COMMIT, ROLLBACK, SAVEPOINT…).
func transactionControl(res *rewrite.Result) bool {
	if len(res.Kinds) == 0 {
		return false
	}
	for _, k := range res.Kinds {
		if k != "transaction" {
			return false
		}
	}
	return true
}

// actTag notes a CommandComplete tag while a switch is unsettled (backend
// relay).
func (ss *session) actTag(tag string) {
	a := &ss.actTrack
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tx
	if t == nil {
		return
	}
	switch tag {
	case "SET", "RESET":
		// NOTE: only BEGINs precede the switch in its batch: the first
		// SET or RESET answering after it is its own.
		t.awaitSet = false
	case "SAVEPOINT":
		if name, ok := t.actSavepointAnswered(rewrite.SavepointSet); ok {
			// NOTE: a switch must be the only thing in flight, after a
			// BEGIN, SAVEPOINT or RELEASE of its own text at most: a
			// savepoint answering before the switch's SET does is set
			// before it, one answering after, after it, and no other
			// switch is made until both are answered.
			sp := actSavepoint{name: name, acting: t.prev, unknown: t.prevUnknown, dir: t.prevDir}
			if !t.awaitSet {
				sp.acting, sp.unknown, sp.dir = ss.actingFor(), a.unknown.Load(), nil
				if st := ss.acting.Load(); st != nil {
					sp.dir = st.dir
				}
			}
			t.saves = append(t.saves, sp)
		}
	case "RELEASE":
		if name, ok := t.actSavepointAnswered(rewrite.SavepointRelease); ok {
			// It releases the savepoints set after it too; one not
			// followed was set before all those followed.
			if i := t.lastSave(name); i >= 0 {
				t.saves = t.saves[:i]
			} else {
				t.saves = nil
			}
		}
	case "COMMIT", "ROLLBACK":
		ending := t.ending
		t.ending = ""
		switch {
		case ending == rewrite.EndRollbackTo:
			name, ok := t.actSavepointAnswered(rewrite.SavepointRollbackTo)
			i := -1
			if ok {
				i = t.lastSave(name)
			}
			if i < 0 {
				// To a savepoint not followed: it may have undone the
				// switch, or not. Those followed, set after it, are
				// gone.
				a.unknown.Store(true)
				t.saves = nil
				break
			}
			// PostgreSQL undid what was set since the savepoint, which
			// it keeps: the session acts for whom it did then.
			sp := t.saves[i]
			t.saves = t.saves[:i+1]
			if ss.actingFor() != sp.acting || a.unknown.Load() != sp.unknown {
				ss.log.Info("change of the acting user rolled back to a savepoint", zap.String("acting_for", sp.acting))
			}
			ss.actAs(sp.acting, sp.dir, "rolled back to a savepoint")
			a.unknown.Store(sp.unknown)
		case tag == "COMMIT":
			t.outcome = outcomeCommit
		default:
			// A ROLLBACK, AND CHAIN or not, or the COMMIT of a failed
			// block.
			t.outcome = outcomeRollback
		}
	}
}

// actTagUnread notes a CommandComplete forwarded unread while a switch
// is unsettled (backend relay).
func (ss *session) actTagUnread() {
	a := &ss.actTrack
	a.mu.Lock()
	if t := a.tx; t != nil {
		t.tagMissed = true
		t.savesLost, t.saves = true, nil
	}
	a.mu.Unlock()
}

// actError notes an ErrorResponse while a switch is unsettled (backend
// relay).
func (ss *session) actError() {
	a := &ss.actTrack
	a.mu.Lock()
	if t := a.tx; t != nil {
		t.failed = true
	}
	a.mu.Unlock()
}

// actSettle settles what the batch answered at its ReadyForQuery, of
// status (backend relay), before the client sees it: the client's next
// statement is checked for whom the session acts for then.
func (ss *session) actSettle(status byte) {
	a := &ss.actTrack
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tx
	if t == nil {
		return
	}
	failed := t.failed
	t.failed = false
	if t.tagMissed {
		// Made or not, committed or not: not known. Every statement
		// but a switch and transaction control is refused until the
		// client switches again (actGate); a ROLLBACK of the block
		// still returns to before.
		t.tagMissed, t.awaitSet = false, false
		a.unknown.Store(true)
		ss.log.Warn("acting user not known: an answer of the transaction that changed it was not read")
		if status == 'I' {
			a.tx = nil
			a.watching.Store(false)
		}
		return
	}
	if t.awaitSet {
		// The batch ended without the switch's answer: the server
		// skipped it, or it failed. It did not happen.
		t.awaitSet = false
		ss.actAs(t.prev, t.prevDir, "not made upstream")
		a.unknown.Store(t.prevUnknown)
		ss.log.Info("change of the acting user not made upstream", zap.String("acting_for", t.prev))
	}
	outcome := t.outcome
	if outcome == "" && status == 'I' {
		// The end of an implicit transaction, or of a block the server
		// ended otherwise (a FATAL ends the session anyway).
		outcome = outcomeCommit
		if failed {
			outcome = outcomeRollback
		}
	}
	switch outcome {
	case "":
		return
	case outcomeRollback:
		// PostgreSQL undid the SET pgveil.act_for too.
		if ss.actingFor() != t.before || a.unknown.Load() != t.beforeUnknown {
			ss.log.Info("change of the acting user rolled back with its transaction", zap.String("acting_for", t.before))
		}
		ss.actAs(t.before, t.beforeDir, "rolled back")
		a.unknown.Store(t.beforeUnknown)
	case outcomeCommit:
		if a.unknown.Load() {
			ss.log.Warn("acting user not known: its transaction was rolled back to a savepoint after a change of it, then committed")
		}
	}
	// Ended, or chained into a new transaction without a switch.
	a.tx = nil
	a.watching.Store(false)
}
