package statement

import (
	"sync"
	"sync/atomic"

	"github.com/pgveil/pgveil/rewrite"
)

// This file holds the Tracker's state. The Tracker is a state machine:
// its state changes only in its event methods, each of which takes its
// mutex, makes the transition, and returns what the session must do.
// The client relay's events (Query, Parse, Bind, Execute, Close, Sync)
// are in client.go, the backend relay's (the upstream's answers) in
// answers.go, and the statements and cursors made with SQL in sql.go.

// PolicyVersioner is a Rewriter whose policies can change while
// sessions run (server.Policies). Statements prepared and portals bound
// under an older version must not run under the new one: see Tracker.
type PolicyVersioner interface {
	PolicyVersion() string
}

// Info is what pgveil knows of a prepared statement or of a Query's
// text: the Rewriter's decision, the policy version that made it, and
// what the audit trail says of it.
//
// NOTE: once in the Tracker, a Info's prev and confirmed change only
// under the Tracker's mutex; the rest never changes.
type Info struct {
	SQL       string
	paramOIDs []uint32
	// res is the Rewriter's result; nil for a refused statement.
	Result *rewrite.Result
	// refusal is the refusal the client received, or nil.
	Refusal *Refusal
	// Replaced is Statement.Replaces: the refusal of SQL, which went
	// upstream as Result in its place; nil otherwise.
	Replaced *Refusal
	// version is the policy version that decided.
	Version string
	// Roles are the roles of the user whose policy decided, under
	// Version (Statement.Roles): what the audit trail says were in
	// force for an end user a BI service acts for.
	Roles []string
	// batch is the batch the Parse (or Close) was sent in.
	batch int64
	// execs is Tracker.execs when the Parse (or Close) was sent: the
	// Executes sent before it, one of which may drop the name with SQL.
	execs int64
	// closed marks a statement the client closed: the upstream dropped it,
	// unless the server skipped the Close after an error.
	closed bool
	// prev is what the name stood for before this Parse or Close, while
	// this one is not confirmed: a named statement whose Parse failed,
	// or whose Close was skipped, keeps the earlier statement upstream.
	prev *Info
	// confirmed is set once the upstream answered the Parse (or the
	// Close) that made the upstream's statement this one. Until then, and
	// forever when the server skipped that message after an error, the
	// upstream may still hold an older statement of the same name.
	confirmed bool
	// fl is the flight of the history this Info heads or is part of
	// (pushStmt), with policies that reload; nil for an Info no history
	// holds (a Query's, a Bind's of an unknown name).
	fl *flight
	// own is leaf(Version, Result), made at its first use (ownSummary):
	// each Bind and Execute of a prepared statement read it, and made it
	// anew, with a look-up of the shared version slices, each time.
	// NOTE: set under the Tracker's mutex; n is 0 until then (a leaf's
	// is 1). Version and Result never change once in the Tracker.
	own summary
}

// ownSummary returns leaf(info.Version, info.Result), made once (mu
// held).
func (info *Info) ownSummary() summary {
	if info.own.n == 0 {
		info.own = leaf(info.Version, info.Result)
	}
	return info.own
}

// NewInfo returns what a decision on st says: res, or refusal, under
// st's policy version; confirmed, as a Query's text is.
func NewInfo(st *Statement, res *rewrite.Result, refusal *Refusal) *Info {
	return &Info{SQL: st.Text, paramOIDs: st.ParamOIDs, Result: res, Refusal: refusal, Replaced: st.Replaces, Version: st.PolicyVersion, Roles: st.Roles, confirmed: true}
}

// Tracker is a session's bookkeeping of prepared statements, portals and
// executions, kept when the server audits (executions, for the audit
// trail) or when its policies can reload (statements prepared under an
// older policy are prepared again, portals bound under one refused).
// Sessions of a server that needs neither have none and pay nothing.
//
// It is a state machine both relays drive: the client relay with the
// messages it sends upstream, the backend relay with the answers it
// reads. Its state changes only in its event methods (named on…), each
// of which locks mu, makes its transition, unlocks, and returns what the
// session must do: messages to inject, a refusal to send, an answer to
// swallow, executions to record. The other methods are its helpers and
// run with mu held.
//
// NOTE: an event method never does I/O nor calls back into the session
// with mu held: the client relay blocked on a full upstream socket while
// holding it would keep the backend relay, which must read the upstream
// to unblock it, from taking it. The session decides under the lock and
// acts after it.
type Tracker struct {
	// audit: executions are recorded for the audit trail. Set at creation.
	audit bool
	// versions: the Rewriter's policies can change (PolicyVersioner).
	// Set at creation.
	versions PolicyVersioner

	// mu guards every field below, and the prev and confirmed fields of
	// the Info and portalEntry values they hold.
	mu sync.Mutex

	// sent is the number of the last batch the client relay closed
	// (OnBatchClosed), done that of the last the upstream answered
	// (OnReadyForQuery): the session's sent and done, as the Tracker saw
	// them.
	sent, done int64
	// backend is the process id of the upstream backend answering now
	// (SetBackend), 0 while the session holds none.
	backend uint32

	// What the client sent.

	// stmts maps prepared statement names ("" is the unnamed one) to the
	// history of their Parse and Close messages, and portals portal
	// names to the history of their Bind messages.
	stmts   map[string]*Info
	portals map[string]*portalEntry
	// sql maps, in each namespace, the statements prepared with SQL
	// PREPARE and the cursors declared with DECLARE to what checked
	// them: EXECUTE and FETCH run what was checked then.
	// NOTE: it changes only once the batch that creates or drops an
	// object is answered (objPending, objResolved): a PREPARE or DECLARE
	// of a name that exists fails and keeps the old object, a DEALLOCATE
	// or CLOSE that fails keeps it too. Until then candidates counts the
	// objects in flight as held.
	SQL [2]map[string]*sqlObject
	// heads are, per namespace, the names whose history got a new head,
	// with its batch, oldest first: what supersedeAll takes the names a
	// DEALLOCATE ALL or CLOSE ALL drops from (noteHead).
	heads [2][]headRec
	// pcSent counts the client's Parse and Close messages sent upstream,
	// bindSent its Bind messages. Injected messages are not counted.
	pcSent, bindSent int64
	// forgot is set once a name was dropped to stay in bounds: an
	// unknown name may then hold anything (candidates). sweepIn counts
	// the names to forget before remember sweeps the closed ones again.
	forgot  bool
	sweepIn int
	// execs counts the Executes sent upstream (OnExecuteDecided): one
	// may drop a statement or portal with SQL (DEALLOCATE, CLOSE,
	// COMMIT), so a message after it in its batch may succeed where one
	// before it could not (doomed).
	execs int64

	// What the Tracker holds for messages not answered yet, bounded by
	// MaxHeldMessages and MaxHeldBytes (held.go): load is the bytes of
	// each batch not answered, oldest first, loadBytes their sum; over
	// is set once either bound was passed. dirtyQ are the names whose
	// history grew while a batch was not answered, with that batch,
	// oldest first; walks is what compact knows of the names it walked
	// with messages still in flight (compact).
	load      []batchLoad
	loadBytes int64
	over      atomic.Bool
	dirtyQ    []dirtyName
	walks     map[historyKey]walkState
	// visit is compact's list of the names to walk, kept for its array.
	visit []historyKey
	// simple reports that the batch last closed is simple
	// (OnSimpleBatchClosed); simpleHeld counts the queues' entries of
	// simple batches, not counted against MaxHeldMessages.
	simple     bool
	simpleHeld int

	// What was sent and is not answered yet, in the order it was sent:
	// PostgreSQL answers in order.

	// pending are the executions sent and not answered yet.
	pending []*Execution
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
	// objResolved those answered, applied to sql at the next client
	// event that reads it (applyObjects).
	objPending, objResolved []*objChange
	// creating are, for each name an object change in objPending or
	// objResolved creates (PREPARE, DECLARE), those creations in order,
	// with their summary: what candidates counts as held, without
	// walking every change in flight (a pipeline of n checks of a cursor
	// cost n² when it did).
	// NOTE: noteObjects queues, applyObjects takes, in the order of
	// objPending: a name is in creating while a change creating it is in
	// flight, and not after.
	creating map[historyKey]*aggQueue[struct{}]

	// What the upstream answered.

	// cur is the Execution the upstream is answering.
	cur *Execution
	// finished are the executions of the batch being answered that
	// ended before its ReadyForQuery, in order: an error the batch ends
	// in after them (a deferred constraint failing at the implicit
	// commit of its Sync) undoes them too, and reaches their records
	// (OnReadyForQuery). At most maxFinished; past them the oldest is
	// recorded at once.
	finished []*Execution
	// late reports that the batch being answered had its first error
	// after finished, whoever's: lateCode and lateMsg;
	// errSeen that it had an error.
	late              bool
	lateCode, lateMsg string
	errSeen           bool
	// pcSeen counts the ParseComplete and CloseComplete answers forwarded
	// to the client, bindSeen the BindComplete answers. Answers to
	// injected messages are not counted.
	pcSeen, bindSeen int64
	// batchErr reports whether the batch being answered had an error.
	batchErr bool
	// bindParams are the parameter values of the Bind being planned
	// (OnBindParams), for the portal bind makes of it.
	bindParams string
	// spare is a portal entry compact cut from its history that nothing
	// holds any more (retired), for the next Bind to use: a client that
	// binds the unnamed portal and waits for each answer allocates none.
	// NOTE: nothing but spare points to it: a message of no history, of
	// no flight, of no queue.
	spare *portalEntry
	// kept are the portal entries holding parameter values, oldest
	// first, and keptBytes the bytes of those values (keepParams).
	kept      []keptParams
	keptBytes int
}

// keptParams is a portal entry whose params keepParams counts: s, as
// the entry held it then.
type keptParams struct {
	e *portalEntry
	s string
}

// The bounds of the parameter values portal entries keep
// (keepParams): the newest maxKeptParams entries, maxKeptParamsBytes
// of values at most.
const (
	maxKeptParams      = 256
	maxKeptParamsBytes = 1 << 20
)

// paramsNotKept is the params of an execution of a portal whose values
// keepParams let go.
const paramsNotKept = "(parameters not recorded: the session bound more portals with values since than pgveil keeps)"

// keepParams counts the parameter values e holds and lets the oldest
// entries' go past the bounds (mu held). Portals die upstream with
// their transaction, but the tracker remembers up to maxTrackedNames
// of them for as long as the session lasts: each holding its Bind's
// values (16 KiB of rendering, more with a large parameter_max_length),
// a session binding numbered portals kept over 150 MiB.
func (t *Tracker) keepParams(e *portalEntry) {
	if e.params == "" {
		return
	}
	t.kept = append(t.kept, keptParams{e: e, s: e.params})
	t.keptBytes += len(e.params)
	for len(t.kept) > maxKeptParams || t.keptBytes > maxKeptParamsBytes && len(t.kept) > 1 {
		k := t.kept[0]
		t.kept = PopFront(t.kept)
		t.keptBytes -= len(k.s)
		if k.e.params == k.s {
			k.e.params = paramsNotKept
		}
	}
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
	Info    *Info
	// size is what they hold, counted in the batch's load until the
	// Parse is answered.
	size int64
}

// portalEntry is a Bind or a Close of a portal: the statement it runs
// (none for a Close), the batch of the message and what the portal was
// before it, while the message is not confirmed. PostgreSQL keeps the
// earlier portal of the name when a Bind fails (a named portal that
// exists, or any Bind that fails before making its portal) or a Close is
// skipped after an error, and a savepoint can undo the error but not
// the portal.
//
// NOTE: confirmed is set once the BindComplete or CloseComplete came.
type portalEntry struct {
	Info      *Info
	batch     int64
	execs     int64
	closed    bool
	prev      *portalEntry
	confirmed bool
	// fl is the flight of the portal's history (pushPortal), with
	// policies that reload.
	fl *flight
	// params are the Bind's parameter values as the audit trail writes
	// them; "" unless audit.log_parameters.
	params string
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
	confirmed  *bool
	// size is what the message holds, counted in its batch's load until
	// it is answered.
	size int64
}

// batchMark is pcSent and bindSent when batch number batch was closed.
type batchMark struct {
	batch, pc, binds int64
	// simple: a Query closed it, with no extended-protocol message since
	// the last Sync (OnSimpleBatchClosed).
	simple bool
}

// maxFinished bounds the executions of one batch kept for its
// ReadyForQuery (Tracker.finished): a client that never closes its batch
// must not grow them.
const maxFinished = 1024

// maxTrackedNames bounds the names a session remembers in each map; past
// it one is forgotten, and an unknown name may then stand for anything
// (candidates).
const maxTrackedNames = 10000

// NewTracker returns the Tracker of a session: audit to follow
// executions for the audit trail, versions (nil when policies cannot
// change) to follow the policy version of each statement and portal.
func NewTracker(audit bool, versions PolicyVersioner) *Tracker {
	return &Tracker{
		audit: audit, versions: versions,
		stmts: map[string]*Info{}, portals: map[string]*portalEntry{},
		SQL:      [2]map[string]*sqlObject{{}, {}},
		creating: map[historyKey]*aggQueue[struct{}]{},
	}
}

// remember stores v under name in m, bounded by maxTrackedNames: at the
// bound, the closes answered are swept first (sweepClosed), and only then
// is a name forgotten (mu held).
func remember[V any](t *Tracker, m map[string]V, name string, v V) {
	// NOTE: the bound first: the look-up cost each Bind more than the
	// test of it.
	if len(m) >= maxTrackedNames {
		if _, ok := m[name]; !ok {
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
	}
	m[name] = v
}

// sweepClosed drops the statements and portals whose Close is answered:
// the upstream holds nothing under their names, as for a name never used.
// Clients that number their statements and portals (S_1, C_1, …) would
// otherwise fill the maps with them (mu held).
func (t *Tracker) sweepClosed() {
	for name, info := range t.stmts {
		if info.closed && info.confirmed {
			delete(t.stmts, name)
		}
	}
	for name, e := range t.portals {
		if e.closed && e.confirmed {
			delete(t.portals, name)
		}
	}
}

// Versions is the Rewriter whose policy versions the tracker follows,
// nil when the policies cannot change.
func (t *Tracker) Versions() PolicyVersioner { return t.versions }

// Audit reports whether the tracker follows executions for the audit
// trail.
func (t *Tracker) Audit() bool { return t.audit }
