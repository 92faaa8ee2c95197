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
//   - a COMMIT (or the end of an implicit transaction without error)
//     keeps it;
//   - a ROLLBACK, a COMMIT the server answers ROLLBACK (a failed block), or
//     an error ending an implicit transaction undoes it: the session acts
//     for whom it acted for when the transaction began;
//   - a ROLLBACK TO SAVEPOINT after it may or may not undo it: if the
//     transaction then commits, whom the session acts for is not known,
//     and every statement but a switch and transaction control is refused
//     until the client switches again (actUnknown).
//
// Statements the client pipelines after a statement that ends the
// transaction would be checked before the outcome is known: they are
// refused until it is (actGate); drivers wait for the answer to a COMMIT
// or a ROLLBACK anyway. (Statements pipelined after the switch itself
// are checked for the viewer it names: should its implicit transaction
// fail, the client is told, and either viewer is one the service may act
// for.)

// actTx follows the transaction in which the acting user changed.
type actTx struct {
	// before is whom the session acted for when the transaction began
	// ("" for its login); beforeUnknown that it was not known then.
	before        string
	beforeUnknown bool
	// rewound records a ROLLBACK TO SAVEPOINT after a switch.
	rewound bool
	// commit, rollback and failed are what the answers of the batch being
	// answered said: a COMMIT tag, a ROLLBACK tag, an error.
	commit, rollback, failed bool
}

// actTracking is the session's part of the above.
//
// NOTE: tx is guarded by mu; the client relay creates it at a switch, the
// backend relay settles it at a ReadyForQuery. watching reports tx != nil
// to both relays without mu. barrier is the batch of the last statement
// ending the transaction, whose answer the next statements wait for;
// endInBatch that the batch being sent holds one (client relay only).
type actTracking struct {
	mu         sync.Mutex
	tx         *actTx
	watching   atomic.Bool
	unknown    atomic.Bool
	barrier    atomic.Int64
	endInBatch bool
}

// noteSwitch starts following the transaction of a switch about to be
// made (client relay).
func (ss *session) noteSwitch() {
	a := &ss.actTrack
	a.mu.Lock()
	if a.tx == nil {
		a.tx = &actTx{before: ss.actingFor(), beforeUnknown: a.unknown.Load()}
		a.watching.Store(true)
	}
	a.mu.Unlock()
	a.unknown.Store(false)
}

// actGate returns the refusal of res, run in batch, while the acting
// user's change is unsettled or unknown; nil when it may run (client
// relay). Switches are checked by switchReady instead. res is nil when
// the statement is not known (an Execute of a portal pgveil did not see
// bound): refused in doubt.
func (ss *session) actGate(res *rewrite.Result, batch int64) *Refusal {
	a := &ss.actTrack
	if !a.watching.Load() && !a.unknown.Load() {
		return nil
	}
	if res != nil && res.Act != nil {
		return nil
	}
	control := res != nil && transactionControl(res)
	if a.unknown.Load() && !control {
		return ActRefusal("a transaction that changed the acting user was rolled back to a savepoint and then committed, so whom the session acts for is not known: set it again (SET ROLE …, or RESET ROLE)")
	}
	if a.watching.Load() {
		barrier := a.barrier.Load()
		if batch > barrier && ss.done.Load() < barrier || batch == barrier && a.endInBatch {
			return ActRefusal("a statement must not be pipelined after a change of the acting user, or after the COMMIT or ROLLBACK of its transaction: wait for their results first")
		}
		if res != nil && res.EndsTransaction && len(res.Kinds) > 1 {
			return ActRefusal("a COMMIT or ROLLBACK ending a transaction that changed the acting user must be the only statement of its text")
		}
	}
	return nil
}

// noteGated records that res, run in batch, passed actGate: a statement
// ending the transaction makes the next ones wait for its answer (client
// relay).
func (ss *session) noteGated(res *rewrite.Result, batch int64) {
	a := &ss.actTrack
	if res != nil && res.EndsTransaction && a.watching.Load() {
		a.barrier.Store(batch)
		a.endInBatch = true
	}
}

// actBatchClosed follows a Sync or Query: a new batch begins (client
// relay).
func (ss *session) actBatchClosed() { ss.actTrack.endInBatch = false }

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
	if t := a.tx; t != nil {
		switch tag {
		case "COMMIT":
			t.commit = true
		case "ROLLBACK":
			t.rollback = true
		}
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

// actSettle settles the switch at a ReadyForQuery of status (backend
// relay), before the client sees it: the client's next statement is
// checked for whom the session acts for then.
func (ss *session) actSettle(status byte) {
	a := &ss.actTrack
	a.mu.Lock()
	defer a.mu.Unlock()
	t := a.tx
	if t == nil {
		return
	}
	commit, rollback, failed := t.commit, t.rollback, t.failed
	t.commit, t.rollback, t.failed = false, false, false
	if status != 'I' {
		switch {
		case commit && !rollback:
			// COMMIT AND CHAIN: committed, and a new transaction began.
		case rollback:
			// Still in the block: a ROLLBACK TO SAVEPOINT.
			t.rewound = true
			return
		default:
			return
		}
	}
	a.tx = nil
	a.watching.Store(false)
	switch {
	case commit && !rollback || !commit && !rollback && !failed:
		// Committed, by a COMMIT or at the end of an implicit
		// transaction.
		if t.rewound {
			a.unknown.Store(true)
			ss.log.Warn("acting user not known: its transaction was rolled back to a savepoint after a change of it, then committed")
		}
	case t.beforeUnknown:
		a.unknown.Store(true)
	default:
		// Rolled back: PostgreSQL undid the SET pgveil.act_for too.
		if ss.actingFor() != t.before {
			ss.log.Info("change of the acting user rolled back with its transaction", zap.String("acting_for", t.before))
		}
		ss.actAs(t.before)
	}
}
