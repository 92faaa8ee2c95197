package proxy

import (
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Sessions idle in a transaction, in transaction mode.
//
// A session holds its backend from its first message to the end of its
// transaction: a client that leaves a transaction block open, or never
// closes its batch with a Sync, keeps a backend of the shared pool from
// every other session, on purpose or not. PostgreSQL's
// idle_in_transaction_session_timeout covers the first only, and a user
// may SET it. So pgveil ends, with FATAL 25P03, a session that has held a
// backend for upstream.pool.idle_transaction_timeout while neither the
// client nor the backend had anything under way, and closes the backend
// (PostgreSQL rolls the transaction back).
//
// "Nothing under way": every batch the client closed is answered, every
// Parse, Bind, Describe, Close and Execute of the batch it has not closed
// yet is answered (or skipped after an error), pgveil has written the
// client everything, and the client sent nothing meanwhile. (What the
// kernel still holds for a client reading slowly is not seen: the clock
// may start while the client reads the last of its results.) A session idle between
// transactions that keeps its backend on purpose (a WITH HOLD cursor,
// set_config; poolLink.keeps) is not idle in a transaction.
//
// NOTE: a COPY FROM STDIN is under way until its CommandComplete: after
// CopyDone the server may still run triggers and foreign-key checks, and
// while it does not read, the client cannot send. A client that stops in
// the middle of its data keeps the backend, as one that stops reading
// results does.

// askKinds counts the kinds of client messages the server answers one by
// one in an extended-protocol batch: Parse, Bind, Describe, Close,
// Execute.
const askKinds = 5

// askKind returns the kind of a client message (upstream false) or of the
// server's last answer to one (upstream true), and whether it is one:
// ParseComplete, BindComplete, CloseComplete; a Describe's RowDescription
// or NoData; an Execute's CommandComplete, EmptyQueryResponse or
// PortalSuspended.
func askKind(typ byte, upstream bool) (int, bool) {
	switch {
	case !upstream && typ == 'P', upstream && typ == '1':
		return 0, true
	case !upstream && typ == 'B', upstream && typ == '2':
		return 1, true
	case !upstream && typ == 'D', upstream && (typ == 'T' || typ == 'n'):
		return 2, true
	case !upstream && typ == 'C', upstream && typ == '3':
		return 3, true
	case !upstream && typ == 'E', upstream && (typ == 'C' || typ == 'I' || typ == 's'):
		return 4, true
	}
	return 0, false
}

// noteAnswered counts an answer, of type typ, to a message of the batch
// the client has not closed yet (backend relay).
//
// NOTE: an answer counts only while no batch the client closed is
// unanswered: until then it answers one of those. Under mu, a Sync the
// client relay forwards meanwhile either comes after (the answer belongs
// to the batch it closes, whose counts it resets) or before (the answer is
// not counted). ParseCompletes are counted by onParseAnswer.
func (ss *session) noteAnswered(typ byte) {
	k, ok := askKind(typ, true)
	if !ok {
		return
	}
	pl := ss.pl
	pl.mu.Lock()
	if ss.sent.Load() == ss.done.Load() {
		pl.answered[k]++
	}
	pl.mu.Unlock()
}

// idleHeld reports whether the session holds a backend with nothing under
// way in a transaction, and how many messages its client has sent holding
// one.
func (ss *session) idleHeld() (idle bool, msgs uint64) {
	// NOTE: results pgveil has yet to write to the client are under way;
	// coutMu is never taken under mu.
	ss.coutMu.Lock()
	writing := ss.cout.Pending() > 0
	ss.coutMu.Unlock()
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.b == nil || pl.ended || pl.flushing || writing {
		return false, pl.clientMsgs
	}
	answered := ss.sent.Load() == ss.done.Load()
	for k := range askKinds {
		answered = answered && (pl.askFailed || pl.answered[k] >= pl.asked[k])
	}
	inTx := ss.txStatus.Load() != 'I' || pl.open
	return answered && inTx, pl.clientMsgs
}

// watchIdleTransactions ends the sessions idle in a transaction for
// longer than idleTx, looking at every transaction-mode session about ten
// times per idleTx (between 100 ms and 5 s), until the pool closes.
func (p *pool) watchIdleTransactions() {
	tick := time.NewTicker(min(max(p.idleTx/10, 100*time.Millisecond), 5*time.Second))
	defer tick.Stop()
	type seen struct {
		msgs  uint64
		since time.Time
	}
	idle := map[*session]seen{}
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			next := make(map[*session]seen, len(idle))
			for _, ss := range p.srv.pooledSessions() {
				held, msgs := ss.idleHeld()
				if !held {
					continue
				}
				prev, ok := idle[ss]
				if !ok || prev.msgs != msgs {
					next[ss] = seen{msgs: msgs, since: now}
					continue
				}
				if now.Sub(prev.since) < p.idleTx {
					next[ss] = prev
					continue
				}
				ss.log.Warn("ending a session idle in a transaction, holding an upstream connection of the pool",
					zap.Duration("idle_transaction_timeout", p.idleTx))
				ss.end(sessionEnd{
					resp: fatal(CodeIdleInTransaction, fmt.Sprintf(
						"pgveil ended the session: it held an upstream connection of the pool idle in a transaction for longer than %s",
						p.idleTx), "A transaction block left open, or an extended-protocol batch without Sync, keeps a connection other sessions wait for; see upstream.pool.idle_transaction_timeout."),
					reason: "idle in a transaction past upstream.pool.idle_transaction_timeout",
				})
			}
			idle = next
		}
	}
}

// pooledSessions returns the running transaction-mode sessions.
func (s *Server) pooledSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		if ss.pl != nil {
			out = append(out, ss)
		}
	}
	return out
}
