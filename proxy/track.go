package proxy

import (
	"sync"
	"sync/atomic"

	"github.com/pgveil/pgveil/rewrite"
)

// This file holds the tracker's state and who owns it. The client
// relay's events (Parse, Bind, Execute, Close, Sync) are in
// track_client.go, the backend relay's (the upstream's answers) in
// track_answers.go, and the statements and cursors made with SQL in
// track_sql.go.

// policyVersioner is a Rewriter whose policies can change while
// sessions run (server.Policies). Statements prepared and portals bound
// under an older version must not run under the new one: see tracker.
type policyVersioner interface {
	PolicyVersion() string
}

// stmtInfo is what pgveil knows of a prepared statement or of a Query's
// text: the Rewriter's decision, the policy version that made it, and
// what the audit trail says of it.
//
// NOTE: a stmtInfo is never modified once built, but for confirmed.
type stmtInfo struct {
	sql       string
	paramOIDs []uint32
	// res is the Rewriter's result; nil for a refused statement.
	res *rewrite.Result
	// refusal is the refusal the client received, or nil.
	refusal *Refusal
	// version is the policy version that decided.
	version string
	// batch is the batch the Parse (or Close) was sent in.
	batch int64
	// closed marks a statement the client closed: the upstream dropped it,
	// unless the server skipped the Close after an error.
	closed bool
	// prev is what the name stood for before this Parse or Close, while
	// this one is not confirmed: a named statement whose Parse failed,
	// or whose Close was skipped, keeps the earlier statement upstream.
	// NOTE: client relay only.
	prev *stmtInfo
	// confirmed is set once the upstream answered the Parse (or the
	// Close) that made the upstream's statement this one. Until then, and
	// forever when the server skipped that message after an error, the
	// upstream may still hold an older statement of the same name.
	confirmed atomic.Bool
}

func newStmtInfo(st *Statement, res *rewrite.Result, refusal *Refusal) *stmtInfo {
	info := &stmtInfo{sql: st.Text, paramOIDs: st.ParamOIDs, res: res, refusal: refusal, version: st.PolicyVersion}
	info.confirmed.Store(true)
	return info
}

// tracker is a session's bookkeeping of prepared statements, portals and
// executions, kept when the server audits (executions, for the audit
// trail) or when its policies can reload (statements prepared under an
// older policy are prepared again, portals bound under one refused).
// Sessions of a server that needs neither have none and pay nothing.
//
// NOTE: every field has one owner. audit and versions are set at
// creation and only read. The client relay alone uses the fields of the
// first group below, the backend relay alone those of the second. What
// one relay tells the other goes through shared, under its mutex, and
// through the confirmed flags of stmtInfo and portalEntry, which the
// backend relay sets and the client relay reads.
type tracker struct {
	// audit: executions are recorded for the audit trail.
	audit bool
	// versions: the Rewriter's policies can change (policyVersioner).
	versions policyVersioner

	// The client relay's.

	// stmts maps prepared statement names ("" is the unnamed one) to the
	// history of their Parse and Close messages, and portals portal
	// names to the history of their Bind messages.
	stmts   map[string]*stmtInfo
	portals map[string]*portalEntry
	// sql maps, in each namespace, the statements prepared with SQL
	// PREPARE and the cursors declared with DECLARE to what checked
	// them: EXECUTE and FETCH run what was checked then.
	// NOTE: it changes only once the batch that creates or drops an
	// object is answered (shared.objPending, shared.objResolved): a
	// PREPARE or DECLARE of a name that exists fails and keeps the old
	// object, a DEALLOCATE or CLOSE that fails keeps it too. Until then
	// candidates counts the objects in flight as held.
	sql [2]map[string]*sqlObject
	// pcSent counts the client's Parse and Close messages sent upstream,
	// bindSent its Bind messages. Injected messages are not counted.
	pcSent, bindSent int64
	// forgot is set once a name was dropped to stay in bounds: an
	// unknown name may then hold anything (candidates). sweepIn counts
	// the names to forget before remember sweeps the closed ones again.
	forgot  bool
	sweepIn int

	// The backend relay's.

	// cur is the execution the upstream is answering.
	cur *execution
	// pcSeen counts the ParseComplete and CloseComplete answers forwarded
	// to the client, bindSeen the BindComplete answers. Answers to
	// injected messages are not counted.
	pcSeen, bindSeen int64
	// batchErr reports whether the batch being answered had an error.
	batchErr bool

	// shared is what the client relay hands the backend relay and back.
	shared handoff
}

// handoff is the only state of a tracker both relays use: queues the
// client relay fills in the order it sends messages upstream and the
// backend relay empties in the same order, since PostgreSQL answers in
// order; and the object changes the backend relay resolves for the
// client relay to apply.
//
// NOTE: every field but resolvedN is guarded by mu.
type handoff struct {
	mu sync.Mutex
	// pending are the executions sent and not answered yet.
	pending []*execution
	// injected are the answers to messages pgveil added, which the
	// client must not see.
	injected []*injection
	// batchPC holds pcSent and bindSent when each batch was closed.
	batchPC []batchMark
	// awaiting are the client's Parse and Close messages of statements
	// whose answer confirms them, in order.
	awaiting []awaited
	// awaitingBinds are the client's Bind messages whose BindComplete
	// confirms them, in order.
	awaitingBinds []awaitedBind
	// objPending are the object changes of batches not answered yet,
	// objResolved those answered, for the client relay to apply.
	objPending, objResolved []*objChange
	// resolvedN counts objResolved; the client relay reads it without mu
	// to skip applyObjects when nothing is resolved.
	resolvedN atomic.Int32
}

// injection is a Close and a Parse pgveil sent to prepare a statement
// again; their CloseComplete and ParseComplete are not forwarded.
type injection struct {
	// after is pcSent when they were sent: they are answered once the
	// client's earlier Parse and Close messages are.
	after int64
	// answers is how many of them are still to come.
	answers int
	batch   int64
	info    *stmtInfo
}

// portalEntry is a Bind or a Close of a portal: the statement it runs
// (none for a Close), the batch of the message and what the portal was
// before it, while the message is not confirmed. PostgreSQL keeps the
// earlier portal of the name when a Bind fails (a named portal that
// exists, or any Bind that fails before making its portal) or a Close is
// skipped after an error, and a savepoint can undo the error but not
// the portal.
//
// NOTE: confirmed is set by the backend relay once the BindComplete or
// CloseComplete came; everything else belongs to the client relay.
type portalEntry struct {
	info      *stmtInfo
	batch     int64
	closed    bool
	prev      *portalEntry
	confirmed atomic.Bool
}

// awaitedBind is a client Bind whose answer confirms e: it is answer
// number pos of the BindComplete answers.
type awaitedBind struct {
	pos, batch int64
	e          *portalEntry
}

// awaited is a client Parse or Close whose answer confirms a statement
// or a portal's Close (sets confirmed): it is answer number pos of the
// ParseComplete and CloseComplete answers.
type awaited struct {
	pos, batch int64
	confirmed  *atomic.Bool
}

// batchMark is pcSent and bindSent when batch number batch was closed.
type batchMark struct {
	batch, pc, binds int64
}

// maxTrackedNames bounds the names a session remembers in each map; past
// it one is forgotten, and an unknown name may then stand for anything
// (candidates).
const maxTrackedNames = 10000

func newTracker(audit bool, versions policyVersioner) *tracker {
	return &tracker{
		audit: audit, versions: versions,
		stmts: map[string]*stmtInfo{}, portals: map[string]*portalEntry{},
		sql: [2]map[string]*sqlObject{{}, {}},
	}
}

// remember stores v under name in m, bounded by maxTrackedNames: at the
// bound, the closes answered are swept first (sweepClosed), and only then
// is a name forgotten.
func remember[V any](t *tracker, m map[string]V, name string, v V) {
	if _, ok := m[name]; !ok && len(m) >= maxTrackedNames {
		if t.sweepIn > 0 {
			t.sweepIn--
		} else {
			t.sweepClosed()
			t.sweepIn = maxTrackedNames / 10
		}
		if len(m) >= maxTrackedNames {
			for k := range m {
				delete(m, k)
				break
			}
			t.forgot = true
		}
	}
	m[name] = v
}

// sweepClosed drops the statements and portals whose Close is answered:
// the upstream holds nothing under their names, as for a name never used.
// Clients that number their statements and portals (S_1, C_1, …) would
// otherwise fill the maps with them (client relay).
func (t *tracker) sweepClosed() {
	for name, info := range t.stmts {
		if info.closed && info.confirmed.Load() {
			delete(t.stmts, name)
		}
	}
	for name, e := range t.portals {
		if e.closed && e.confirmed.Load() {
			delete(t.portals, name)
		}
	}
}
