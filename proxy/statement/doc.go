// Package statement is the statement stage of a session: the Statement a
// session hands the Rewriter, and the Tracker, the state machine that
// follows what the upstream holds of each statement — prepared
// statements, portals, cursors, executions — so that nothing checked
// under an older policy runs under a newer one, and each execution
// reaches the audit trail with what it read.
//
// The Tracker's state changes only in its event methods: the client
// relay's (OnStatement, OnBind, OnReprepared, OnExecute,
// OnExecuteDecided, OnClose, OnBatchClosed, StaleObjects) and the
// backend relay's (OnAnswer, OnError, OnReadyForQuery, OnEnd). Each
// takes the Tracker's one mutex, makes the transition and returns what
// the session must do; the session does it after, never under the lock
// (see Tracker). What it keeps for messages not answered yet is bounded
// (held.go): past MaxHeldMessages or MaxHeldBytes it is Over, and the
// session ends. TestTrackerMachine feeds it sequences of events
// directly; the proxy's TestTrackerSequences drives it through both
// relays.
package statement
