package proxy

import (
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// policyVersioner is a Rewriter whose policies can change while sessions
// run (server.Policies). Statements prepared and portals bound under an older
// version must not run under the new one: see tracker.
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

// namespace is one of the two namespaces of names the upstream keeps per
// session, whichever message or statement made the name: prepared
// statements (Parse, PREPARE) and portals (Bind, DECLARE).
type namespace int

const (
	nsStatement namespace = iota
	nsPortal
)

// namespaceOf returns the namespace of the name a SessionObject's Op
// acts on.
func namespaceOf(op string) namespace {
	switch op {
	case "declare", "fetch", "close":
		return nsPortal
	}
	return nsStatement
}

// sqlObject is a statement prepared with PREPARE or a cursor declared
// with DECLARE.
type sqlObject struct {
	// version is the policy version that checked it; "" when it may be
	// of any version.
	version string
	// res is the Rewriter's result on the text that made it.
	res *rewrite.Result
	// batch is the batch that made it.
	batch int64
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

// objChange is what a statement text does to prepared statements and
// cursors through SQL, applied once its batch is answered.
type objChange struct {
	batch   int64
	objs    []rewrite.SessionObject
	version string
	// res is the Rewriter's result on the text.
	res *rewrite.Result
	// several: the text holds several statements, so an error in its
	// batch does not say which of them ran.
	several bool
	failed  bool
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

// bind remembers that the Bind about to be sent, of batch batch, makes
// portal run info. With policies that reload it keeps, until the Bind is
// confirmed, what the portal was before (client relay).
func (t *tracker) bind(portal string, info *stmtInfo, batch int64, done int64) {
	e := &portalEntry{info: info, batch: batch}
	if t.versions == nil {
		e.confirmed.Store(true)
	} else {
		e.prev = settlePortal(t.portals[portal], done)
		t.shared.mu.Lock()
		t.shared.awaitingBinds = append(t.shared.awaitingBinds, awaitedBind{pos: t.bindSent, batch: batch, e: e})
		t.shared.mu.Unlock()
	}
	remember(t, t.portals, portal, e)
}

// closePortal follows a Close of portal name about to be sent: without
// policies that reload, the portal is forgotten; with them, it leaves a
// closed mark, confirmed by the CloseComplete, so that a Close the server
// skipped after an error cannot leave a portal of an older policy
// runnable, for instance after a ROLLBACK TO SAVEPOINT (client relay).
func (ss *session) closePortal(name string) {
	t := ss.track
	old := t.portals[name]
	if t.versions == nil || old == nil {
		delete(t.portals, name)
		return
	}
	mark := &portalEntry{batch: ss.sent.Load() + 1, closed: true, prev: settlePortal(old, ss.done.Load())}
	t.await(mark.batch, &mark.confirmed)
	t.portals[name] = mark
}

// settlePortal drops from the history of a portal, whose latest Bind is
// e, the Binds of answered batches that failed or were skipped, and all
// that came before a confirmed one (client relay).
func settlePortal(e *portalEntry, done int64) *portalEntry {
	for e != nil && !e.confirmed.Load() && e.batch <= done {
		e = e.prev
	}
	if e != nil && e.confirmed.Load() {
		e.prev = nil
	}
	return e
}

// bindComplete notes a BindComplete the upstream sent (backend relay).
func (t *tracker) bindComplete() {
	t.shared.mu.Lock()
	if len(t.shared.awaitingBinds) > 0 && t.shared.awaitingBinds[0].pos == t.bindSeen {
		t.shared.awaitingBinds[0].e.confirmed.Store(true)
		t.shared.awaitingBinds[0].e = nil
		t.shared.awaitingBinds = t.shared.awaitingBinds[1:]
	}
	t.bindSeen++
	t.shared.mu.Unlock()
}

// push queues an execution (client relay).
func (t *tracker) push(x *execution) {
	t.shared.mu.Lock()
	t.shared.pending = append(t.shared.pending, x)
	t.shared.mu.Unlock()
}

// next returns the execution the upstream's next answer belongs to,
// taking it from the queue when it belongs to the batch being answered
// (backend relay). It returns nil when nothing is awaited.
func (t *tracker) next(answering int64) *execution {
	if t.cur != nil {
		return t.cur
	}
	t.shared.mu.Lock()
	if len(t.shared.pending) > 0 && t.shared.pending[0].batch <= answering {
		t.cur = t.shared.pending[0]
		t.shared.pending[0] = nil
		t.shared.pending = t.shared.pending[1:]
	}
	t.shared.mu.Unlock()
	return t.cur
}

// closeBatch returns the executions of the batches answered so far that
// are still waiting: the server skipped them after an error (backend
// relay).
func (t *tracker) closeBatch(done int64) []*execution {
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	n := 0
	for n < len(t.shared.pending) && t.shared.pending[n].batch <= done {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*execution, n)
	copy(out, t.shared.pending[:n])
	clear(t.shared.pending[:n])
	t.shared.pending = t.shared.pending[n:]
	return out
}

// batchClosed notes that batch n is closed, after the client's Parse and
// Close messages counted so far (client relay).
func (t *tracker) batchClosed(n int64) {
	if t.versions == nil {
		return
	}
	t.shared.mu.Lock()
	t.shared.batchPC = append(t.shared.batchPC, batchMark{batch: n, pc: t.pcSent, binds: t.bindSent})
	t.shared.mu.Unlock()
}

// swallow reports whether a ParseComplete or CloseComplete answers an
// injected message, which the client must not see (backend relay).
func (t *tracker) swallow(answering int64) bool {
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	if len(t.shared.injected) > 0 {
		in := t.shared.injected[0]
		if in.batch == answering && in.after == t.pcSeen {
			in.answers--
			if in.answers == 0 {
				// The Parse is answered: the upstream holds the
				// statement of in.info's policy.
				in.info.confirmed.Store(true)
				t.shared.injected = t.shared.injected[1:]
			}
			return true
		}
	}
	if len(t.shared.awaiting) > 0 && t.shared.awaiting[0].pos == t.pcSeen {
		t.shared.awaiting[0].confirmed.Store(true)
		t.shared.awaiting = t.shared.awaiting[1:]
	}
	t.pcSeen++
	return false
}

// readyForQuery closes batch number done: the object changes of its
// statements are resolved, injections the server skipped after an error
// are dropped (their statements stay unconfirmed and are prepared again
// at their next Bind), and the client's skipped Parse and Close messages
// are counted as answered (backend relay).
func (t *tracker) readyForQuery(done int64) {
	t.shared.mu.Lock()
	defer t.shared.mu.Unlock()
	for len(t.shared.objPending) > 0 && t.shared.objPending[0].batch <= done {
		c := t.shared.objPending[0]
		c.failed = t.batchErr
		t.shared.objResolved = append(t.shared.objResolved, c)
		t.shared.resolvedN.Add(1)
		t.shared.objPending = t.shared.objPending[1:]
	}
	t.batchErr = false
	if t.versions == nil {
		return
	}
	for len(t.shared.injected) > 0 && t.shared.injected[0].batch <= done {
		t.shared.injected = t.shared.injected[1:]
	}
	for len(t.shared.awaiting) > 0 && t.shared.awaiting[0].batch <= done {
		t.shared.awaiting = t.shared.awaiting[1:]
	}
	for len(t.shared.awaitingBinds) > 0 && t.shared.awaitingBinds[0].batch <= done {
		t.shared.awaitingBinds[0].e = nil
		t.shared.awaitingBinds = t.shared.awaitingBinds[1:]
	}
	for len(t.shared.batchPC) > 0 && t.shared.batchPC[0].batch <= done {
		t.pcSeen, t.bindSeen = t.shared.batchPC[0].pc, t.shared.batchPC[0].binds
		t.shared.batchPC = t.shared.batchPC[1:]
	}
}

// sawError notes an ErrorResponse of the batch being answered (backend
// relay).
func (t *tracker) sawError() {
	t.batchErr = true
}

// noteStatement records a statement the client relay is about to send
// upstream: a Query is an execution of its own; a Parse is remembered
// under its name, and audited now only when refused.
func (ss *session) noteStatement(st *Statement, res *rewrite.Result, refusal *Refusal) {
	t := ss.track
	if t == nil {
		return
	}
	switch st.Source {
	case SourceQuery:
		if res != nil && len(res.Objects) > 0 {
			// A Query runs in its own batch. A Parse runs nothing: its
			// objects change at each Execute (trackExecute).
			t.noteObjects(res, st.PolicyVersion, ss.sent.Load(), len(res.Kinds) > 1)
		}
		if t.audit {
			info := newStmtInfo(st, ss.withObjects(res, ss.sent.Load()), refusal)
			t.push(&execution{info: info, start: time.Now(), untilReady: true, batch: ss.sent.Load()})
		}
	case SourceParse:
		info := newStmtInfo(st, res, refusal)
		info.batch = ss.sent.Load() + 1
		if st.Name != "" {
			info.prev = ss.settle(st.Name, t.stmts[st.Name])
		}
		if t.versions != nil {
			// Confirmed by its ParseComplete; a refused one never is, and
			// a later Bind closes whatever the upstream kept of the name.
			info.confirmed.Store(false)
			if refusal == nil {
				t.await(info.batch, &info.confirmed)
			}
		}
		t.pcSent++
		remember(t, t.stmts, st.Name, info)
		if refusal != nil && t.audit {
			t.push(&execution{info: info, start: time.Now(), batch: ss.sent.Load() + 1})
		}
	}
}

// noteObjects queues the object changes of res, checked under version,
// run in batch number batch; several says whether other statements may
// run in the same batch. The changes answered so far are applied first,
// so that the queues stay as short as the batches in flight (client
// relay).
func (t *tracker) noteObjects(res *rewrite.Result, version string, batch int64, several bool) {
	t.applyObjects()
	t.shared.mu.Lock()
	t.shared.objPending = append(t.shared.objPending, &objChange{batch: batch, objs: res.Objects, version: version, res: res, several: several})
	t.shared.mu.Unlock()
}

// applyObjects applies the object changes of the batches answered so far
// (client relay): a batch without error did what it said; after an error,
// a single statement did nothing, while of several it is unknown which
// ran, so the objects they create may be of either version.
func (t *tracker) applyObjects() {
	if t.shared.resolvedN.Load() == 0 {
		return
	}
	t.shared.mu.Lock()
	done := t.shared.objResolved
	t.shared.objResolved = nil
	t.shared.resolvedN.Store(0)
	t.shared.mu.Unlock()
	for _, c := range done {
		for _, o := range c.objs {
			ns := namespaceOf(o.Op)
			m := t.sql[ns]
			switch {
			case c.failed && !c.several:
			case o.Op == "prepare" || o.Op == "declare":
				obj := &sqlObject{version: c.version, res: c.res, batch: c.batch}
				if old := m[o.Name]; c.failed && old != nil {
					// Perhaps the old object stays.
					obj.batch = old.batch
					if old.version != obj.version {
						obj.version = ""
					}
				}
				remember(t, m, o.Name, obj)
				if !c.failed {
					t.supersede(ns, o.Name, c.batch)
				}
			case c.failed:
				// A drop that may not have run: keep what is known.
			case o.Op == "discard":
				for ns := range t.sql {
					clear(t.sql[ns])
					t.supersedeAll(namespace(ns), c.batch)
				}
			case (o.Op == "deallocate" || o.Op == "close") && o.Name != "":
				delete(m, o.Name)
				t.supersede(ns, o.Name, c.batch)
			case o.Op == "deallocate" || o.Op == "close":
				clear(m)
				t.supersedeAll(ns, c.batch)
			}
		}
	}
}

// supersede forgets the protocol's statement or portal name in ns when
// all the tracker knows of it comes before batch, whose statement dropped
// or created the name with SQL and succeeded: that is what the upstream
// holds now (client relay).
func (t *tracker) supersede(ns namespace, name string, batch int64) {
	if ns == nsStatement {
		if info := t.stmts[name]; info != nil && info.batch < batch {
			delete(t.stmts, name)
		}
		return
	}
	if e := t.portals[name]; e != nil && e.batch < batch {
		delete(t.portals, name)
	}
}

// supersedeAll is supersede for every name of ns a DEALLOCATE ALL, CLOSE
// ALL or DISCARD ALL dropped: all but the unnamed ones, which they may
// keep.
func (t *tracker) supersedeAll(ns namespace, batch int64) {
	if ns == nsStatement {
		for name := range t.stmts {
			if name != "" {
				t.supersede(ns, name, batch)
			}
		}
		return
	}
	for name := range t.portals {
		if name != "" {
			t.supersede(ns, name, batch)
		}
	}
}

// candidates calls fn with the policy version and the Rewriter's result
// of each thing the upstream may hold under name in ns when a message of
// batch number at runs, whichever way it was made: Parse or PREPARE, Bind
// or DECLARE, answered or still in flight. An unknown name in a session
// that forgot names may hold anything: fn gets version "" and a nil
// result. fn must not lock t.shared.mu (client relay).
//
// NOTE: a message in flight in batch at runs before the one asking:
// when it fails, the server skips that one too, so what came before it
// no longer matters.
func (ss *session) candidates(ns namespace, name string, at int64, fn func(version string, res *rewrite.Result)) {
	t := ss.track
	t.applyObjects()
	found := false
	done := ss.done.Load()
	// settled is the batch of the protocol's latest answered Parse, Bind
	// or Close of the name: an SQL object of an earlier batch is gone.
	settled := int64(-1)
	if ns == nsStatement {
		for info := t.stmts[name]; info != nil; info = info.prev {
			// A refused Parse went upstream as a marker that fails.
			held := info.confirmed.Load() && info.refusal == nil
			inFlight := !info.confirmed.Load() && info.batch > done
			if !info.closed && info.refusal == nil && (held || inFlight) {
				found = true
				fn(info.version, info.res)
			}
			if held {
				settled = info.batch
				break
			}
			if inFlight && info.batch == at {
				break
			}
			if name == "" && !info.closed && !inFlight {
				break // a failed Parse of the unnamed statement dropped it
			}
		}
	} else {
		for e := t.portals[name]; e != nil; e = e.prev {
			inFlight := !e.confirmed.Load() && e.batch > done
			if !e.closed && (e.confirmed.Load() || inFlight) {
				found = true
				fn(e.info.version, e.info.res)
			}
			if e.confirmed.Load() {
				settled = e.batch
				break
			}
			if inFlight && e.batch == at {
				break
			}
		}
	}
	if o := t.sql[ns][name]; o != nil && o.batch >= settled {
		found = true
		fn(o.version, o.res)
	}
	create := "prepare"
	if ns == nsPortal {
		create = "declare"
	}
	t.shared.mu.Lock()
	for _, cs := range [2][]*objChange{t.shared.objResolved, t.shared.objPending} {
		for _, c := range cs {
			for _, o := range c.objs {
				if o.Op == create && o.Name == name {
					found = true
					fn(c.version, c.res)
				}
			}
		}
	}
	t.shared.mu.Unlock()
	if !found && t.forgot {
		fn("", nil)
	}
}

// stale reports whether the upstream may hold under name in ns, for a
// message of batch at, something checked under another policy version
// than cur (client relay).
func (ss *session) stale(ns namespace, name string, at int64, cur string) bool {
	stale := false
	ss.candidates(ns, name, at, func(v string, _ *rewrite.Result) {
		if v != cur {
			stale = true
		}
	})
	return stale
}

// staleObjects returns a refusal when res, run in batch at, runs a
// prepared statement, or fetches from a portal, the upstream may hold
// under a name from another policy version than version, the one in
// force: whether Parse or PREPARE made the statement, Bind or DECLARE
// the portal.
func (ss *session) staleObjects(res *rewrite.Result, at int64, version string) *Refusal {
	t := ss.track
	if t == nil || t.versions == nil {
		return nil
	}
	for _, o := range res.Objects {
		ns, ok := runsNamespace(o.Op)
		if !ok {
			continue
		}
		if ss.stale(ns, o.Name, at, version) {
			return policyChanged("the statement or cursor " + quoteName(o.Name))
		}
	}
	return nil
}

// runsNamespace returns the namespace of the object an SQL statement's
// op runs (EXECUTE a statement, FETCH or MOVE a portal), or false for an
// op that runs none.
func runsNamespace(op string) (ns namespace, ok bool) {
	switch op {
	case "execute":
		return nsStatement, true
	case "fetch":
		return nsPortal, true
	}
	return 0, false
}

// withObjects returns res, or for a text run in batch at that runs
// prepared statements or fetches from cursors a copy of it that names
// also the tables, rules and columns they read, for the audit trail
// (client relay).
func (ss *session) withObjects(res *rewrite.Result, at int64) *rewrite.Result {
	if res == nil {
		return nil
	}
	out := res
	for _, o := range res.Objects {
		ns, ok := runsNamespace(o.Op)
		if !ok {
			continue
		}
		ss.candidates(ns, o.Name, at, func(_ string, r *rewrite.Result) {
			if r == nil || r == res {
				return
			}
			if out == res {
				cp := *res
				out = &cp
			}
			mergeReads(out, r)
		})
	}
	return out
}

// mergeReads adds to dst the tables, rules and columns r reads. It makes
// new slices: dst's may be shared with a cached result.
func mergeReads(dst, r *rewrite.Result) {
	dst.Tables = union(dst.Tables, r.Tables)
	dst.Rules = union(dst.Rules, r.Rules)
	dst.Masked = union(dst.Masked, r.Masked)
	dst.Columns = union(dst.Columns, r.Columns)
}

// union returns the sorted union of a and b: a itself when b is empty,
// otherwise a new slice, so that neither is ever written to.
func union(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// quoteName quotes an identifier for a message or an audit record.
func quoteName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// policyChanged refuses running what was checked under an older policy
// (firewall rule policy_changed).
func policyChanged(what string) *Refusal {
	return firewall.Deny("policy_changed", "the policy changed since %s was checked", what)
}

// trackPeek shows the tracker the names a Bind, Execute or Close message
// starts with, read whole whatever their length, and forwards the
// message; a Bind of a statement prepared under an older policy first
// prepares it again, and an Execute of a portal bound under one is
// refused (trackExecute). A message too short for its names goes
// upstream as it is, and the upstream refuses it.
func (ss *session) trackPeek(typ byte, total int) error {
	skip, n := 0, 1
	switch typ {
	case 'B':
		n = 2
	case 'C':
		skip = 1
	}
	b, err := ss.cin.PeekStrings(total, skip, n)
	if err != nil {
		return err
	}
	defer ss.cin.Release()
	body := b[wire.HeaderLen:]
	t := ss.track
	switch typ {
	case 'B':
		portal, rest, ok := cstring(body)
		name, _, ok2 := cstring(rest)
		if ok && ok2 {
			if err := ss.checkBind(portal, name); err != nil {
				return err
			}
		}
		t.bindSent++
	case 'E':
		if portal, _, ok := cstring(body); ok {
			return ss.trackExecute(portal, total)
		}
	case 'C':
		if len(body) >= 2 {
			if name, _, ok := cstring(body[1:]); ok {
				switch body[0] {
				case 'S':
					ss.noteClose(name)
				case 'P':
					ss.closePortal(name)
				}
			}
		}
		t.pcSent++
	}
	return ss.cin.Forward(total, ss.uout)
}

// trackExecute follows an Execute of portal, a message of total bytes:
// it is refused when the portal may run anything an older policy
// checked, or when its statement runs a prepared statement or fetches
// from a cursor that may; otherwise it is forwarded, audited, and the
// statements and cursors it prepares, declares or drops are noted.
func (ss *session) trackExecute(portal string, total int) error {
	t := ss.track
	at := ss.sent.Load() + 1
	e := t.portals[portal]
	bound := e != nil && !e.closed
	var info *stmtInfo
	if bound {
		info = e.info
	} else {
		// A cursor declared with SQL is a portal too.
		info = ss.sqlNamed(nsPortal, portal, at)
	}
	var r *Refusal
	if t.versions != nil {
		cur := t.versions.PolicyVersion()
		if ss.stale(nsPortal, portal, at, cur) {
			r = policyChanged("this portal")
		} else if bound && info.res != nil && len(info.res.Objects) > 0 {
			// A Parse of EXECUTE or FETCH runs what the name holds now.
			r = ss.staleObjects(info.res, at, cur)
		}
	}
	var act *rewrite.Act
	if r == nil && bound && info.res != nil && info.res.Act != nil {
		act = info.res.Act
		if r = ss.mayAct(act); r == nil {
			r = ss.switchReady(true)
		}
	}
	// NOTE: counted once this Execute's switch was checked and made. A
	// BEGIN does not count (see rewrite.Result.Begins).
	if !bound || info.res == nil || !info.res.Begins {
		defer func() { ss.othersInBatch++ }()
	}
	if r != nil {
		if err := ss.cin.Skip(total); err != nil {
			return err
		}
		if t.audit {
			t.push(&execution{info: &stmtInfo{sql: info.sql, refusal: r, version: info.version}, start: time.Now(), batch: at})
		}
		return ss.refuse(sourceExecute, "", r)
	}
	if bound && info.res != nil && len(info.res.Objects) > 0 {
		// Other messages of the batch may fail: several.
		t.noteObjects(info.res, info.version, at, true)
		if t.audit {
			if res := ss.withObjects(info.res, at); res != info.res {
				info = &stmtInfo{sql: info.sql, res: res, version: info.version}
			}
		}
	}
	if t.audit {
		t.push(&execution{info: info, start: time.Now(), batch: at})
	}
	if act != nil {
		ss.applyAct(act)
	} else if bound {
		ss.discardEnds(info.res, true)
	}
	return ss.cin.Forward(total, ss.uout)
}

// sqlNamed describes, for the audit trail and the policy check, what a
// Bind or Execute that names a statement or portal pgveil did not see
// made runs: one prepared with PREPARE, a cursor declared with DECLARE,
// or one forgotten, for a message of batch at. Its version is one that is
// not in force when the name may hold one checked under such a policy
// (client relay).
func (ss *session) sqlNamed(ns namespace, name string, at int64) *stmtInfo {
	t := ss.track
	info := &stmtInfo{sql: "EXECUTE " + quoteName(name)}
	if ns == nsPortal {
		info.sql = "FETCH FROM " + quoteName(name)
	}
	cur := ""
	if t.versions != nil {
		cur = t.versions.PolicyVersion()
	}
	info.version = cur
	ss.candidates(ns, name, at, func(v string, res *rewrite.Result) {
		if v != cur {
			info.version = v
		}
		if res == nil {
			return
		}
		if info.res == nil {
			info.res = &rewrite.Result{Kinds: []string{"execute"}}
			if ns == nsPortal {
				info.res.Kinds[0] = "fetch"
			}
		}
		mergeReads(info.res, res)
	})
	return info
}

// await queues confirmed, of a message of batch batch, to be set by the
// answer to the Parse or Close about to be sent (client relay).
func (t *tracker) await(batch int64, confirmed *atomic.Bool) {
	t.shared.mu.Lock()
	t.shared.awaiting = append(t.shared.awaiting, awaited{pos: t.pcSent, batch: batch, confirmed: confirmed})
	t.shared.mu.Unlock()
}

// noteClose follows a Close of statement name about to be sent: without
// policies that reload, the statement is forgotten; with them, it leaves
// a closed mark, confirmed by the CloseComplete, so that a Close the
// server skipped cannot leave a statement of an older policy runnable
// (see checkBind).
func (ss *session) noteClose(name string) {
	t := ss.track
	old := t.stmts[name]
	if t.versions == nil || old == nil {
		delete(t.stmts, name)
		return
	}
	mark := &stmtInfo{batch: ss.sent.Load() + 1, closed: true, prev: ss.settle(name, old)}
	t.await(mark.batch, &mark.confirmed)
	t.stmts[name] = mark
}

// checkBind remembers which statement portal runs and, when the upstream
// may hold under name a statement an older policy checked, prepares it
// again under the policy in force before the Bind reaches the upstream
// (client relay).
func (ss *session) checkBind(portal, name string) error {
	t := ss.track
	t.applyObjects()
	info := t.stmts[name]
	batch := ss.sent.Load() + 1
	if info == nil {
		// A statement prepared with SQL PREPARE (or forgotten): it
		// keeps the version that checked it, and its Execute is
		// refused when that is not the one in force.
		t.bind(portal, ss.sqlNamed(nsStatement, name, batch), batch, ss.done.Load())
		return nil
	}
	if t.versions == nil {
		t.bind(portal, info, batch, ss.done.Load())
		return nil
	}
	cur := t.versions.PolicyVersion()
	held, sure := ss.held(name, info)
	switch {
	case held == nil && sure:
		// Nothing upstream: the Bind fails as it would without pgveil.
		return nil
	case held != nil && sure && held.version == cur:
		t.bind(portal, held, batch, ss.done.Load())
		return nil
	case held == nil:
		// Unknown: make sure nothing of an older policy stays.
		mark := &stmtInfo{batch: ss.sent.Load() + 1, closed: true, prev: info}
		t.stmts[name] = mark
		return ss.inject(&injection{after: t.pcSent, answers: 1, batch: mark.batch, info: mark},
			&pgproto3.Close{ObjectType: 'S', Name: name})
	}
	return ss.reprepare(portal, name, held, info)
}

// settle drops from the history of name, whose latest Parse or Close is
// info, the messages whose batch is answered and which failed or were
// skipped, so that the history holds at most one settled statement and
// the messages still in flight: a client repeating a failing Parse
// cannot grow it (client relay).
func (ss *session) settle(name string, info *stmtInfo) *stmtInfo {
	done := ss.done.Load()
	for info != nil && !info.confirmed.Load() && info.batch <= done {
		if !info.closed && name == "" {
			return nil // a failed Parse of the unnamed statement dropped it
		}
		info = info.prev
	}
	if info != nil && info.confirmed.Load() {
		info.prev = nil
	}
	return info
}

// held returns the statement the upstream holds under name, whose latest
// Parse or Close is info, as far as the answers received tell; sure
// reports whether that is certain when the Bind about to be sent runs.
// nil means none.
//
// NOTE: a message is answered (confirmed) before the ReadyForQuery of its
// batch: an unconfirmed message of an answered batch failed or was
// skipped. A message of the Bind's own batch runs before the Bind, and
// when it fails the server skips the Bind too.
func (ss *session) held(name string, info *stmtInfo) (held *stmtInfo, sure bool) {
	done, bindBatch := ss.done.Load(), ss.sent.Load()+1
	for info != nil {
		switch {
		case info.confirmed.Load():
			info.prev = nil // settled: what came before no longer matters
			if info.closed {
				return nil, true
			}
			return info, true
		case info.batch > done:
			// Not answered yet: certain only in the Bind's own batch.
			if info.closed {
				return nil, info.batch == bindBatch
			}
			return info, info.batch == bindBatch
		case info.closed || name != "":
			// A skipped Close, or a failed Parse of a named statement:
			// the earlier statement stays.
			info = info.prev
		default:
			// A failed Parse of the unnamed statement dropped it.
			return nil, true
		}
	}
	return nil, false
}

// inject sends msgs upstream in the client's stream; their answers, in
// announces, are not forwarded to the client (client relay).
func (ss *session) inject(in *injection, msgs ...pgproto3.FrontendMessage) error {
	t := ss.track
	t.shared.mu.Lock()
	t.shared.injected = append(t.shared.injected, in)
	t.shared.mu.Unlock()
	for _, m := range msgs {
		var err error
		if ss.cscratch, err = m.Encode(ss.cscratch[:0]); err != nil {
			return fmt.Errorf("encoding %T: %w", m, err)
		}
		if err := ss.uout.Write(ss.cscratch); err != nil {
			return err
		}
	}
	return nil
}

// reprepare prepares held, the statement the upstream holds (or will)
// under name, again under the policy in force, in place: a Close and a
// Parse of its text go upstream before the client's Bind, and their
// answers are not forwarded. A statement the policy in force refuses is
// closed, and its refusal takes the Bind's place. head is the name's
// latest Parse or Close.
func (ss *session) reprepare(portal, name string, held, head *stmtInfo) error {
	t := ss.track
	st := &Statement{Source: SourceParse, Text: held.sql, Name: name, ParamOIDs: held.paramOIDs}
	res, rerr := ss.rewrite(st)
	batch := ss.sent.Load() + 1
	closeMsg := &pgproto3.Close{ObjectType: 'S', Name: name}
	if rerr != nil {
		// Closed, then refused: the refusal's marker fails in the
		// Bind's place, and nothing stays under the name.
		refused := newStmtInfo(st, nil, asRefusal(rerr))
		mark := &stmtInfo{batch: batch, closed: true, prev: head}
		t.stmts[name] = mark
		t.bind(portal, refused, batch, ss.done.Load())
		if err := ss.inject(&injection{after: t.pcSent, answers: 1, batch: batch, info: mark}, closeMsg); err != nil {
			return err
		}
		return ss.refuse(SourceParse, name, refused.refusal)
	}
	info := newStmtInfo(st, res, nil)
	info.batch, info.prev = batch, head
	info.confirmed.Store(false)
	remember(t, t.stmts, name, info)
	t.bind(portal, info, batch, ss.done.Load())
	return ss.inject(&injection{after: t.pcSent, answers: 2, batch: batch, info: info},
		closeMsg, &pgproto3.Parse{Name: name, Query: res.SQL, ParameterOIDs: held.paramOIDs})
}
