package proxy

import (
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/rewrite"
)

// policyVersioner is a Rewriter whose policies can change while sessions
// run (Policies). Statements prepared and portals bound under an older
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
// NOTE: stmts, portals, sqlVersions and pcSent belong to the client
// relay; cur and pcSeen to the backend relay. The queues under mu are
// filled by the client relay in the order it sends messages upstream and
// emptied by the backend relay in the same order, since PostgreSQL
// answers in order.
type tracker struct {
	// audit: executions are recorded for the audit trail.
	audit bool
	// versions: the Rewriter's policies can change (policyVersioner).
	versions policyVersioner

	// stmts maps prepared statement names ("" is the unnamed one) and
	// portals portal names to the statement they run.
	stmts   map[string]*stmtInfo
	portals map[string]*stmtInfo
	// sqlObjects maps the statements prepared with SQL PREPARE ("p" and
	// the name) and the cursors declared ("c" and the name) to the policy
	// version that checked them: EXECUTE and FETCH run what was checked
	// then. "" marks a name whose statement may be of any version.
	// NOTE: it changes only once the batch that creates or drops an
	// object is answered (objPending, objResolved): a PREPARE or DECLARE
	// of a name that exists fails and keeps the old object, a DEALLOCATE
	// or CLOSE that fails keeps it too.
	sqlObjects map[string]string
	// objPending are the object changes of batches not answered yet,
	// objResolved those answered, for the client relay to apply (guarded
	// by mu); resolvedN counts objResolved, read without mu.
	objPending, objResolved []*objChange
	resolvedN               atomic.Int32
	// batchErr reports whether the batch being answered had an error
	// (backend relay only).
	batchErr bool
	// pcSent counts the client's Parse and Close messages sent upstream;
	// pcSeen the ParseComplete and CloseComplete answers forwarded to the
	// client. Injected messages are counted by neither.
	pcSent, pcSeen int64
	// awaiting are the client's Parse and Close messages of statements
	// whose answer confirms them, in order (guarded by mu).
	awaiting []awaited
	// forgot is set once remember dropped a name to stay in bounds.
	forgot bool

	mu      sync.Mutex
	pending []*execution
	// injected are the answers to messages pgveil added, which the
	// client must not see; batchPC the value of pcSent when each batch
	// was closed.
	injected []*injection
	batchPC  []batchMark

	cur *execution
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

// objChange is what a statement text does to SQL prepared statements and
// cursors, applied once its batch is answered.
type objChange struct {
	batch   int64
	objs    []rewrite.SessionObject
	version string
	// several: the text holds several statements, so an error in its
	// batch does not say which of them ran.
	several bool
	failed  bool
}

// awaited is a client Parse or Close whose answer confirms info: it is
// answer number pos of the ParseComplete and CloseComplete answers.
type awaited struct {
	pos, batch int64
	info       *stmtInfo
}

// batchMark is pcSent when batch number batch was closed.
type batchMark struct {
	batch, pc int64
}

// maxTrackedNames bounds the statement and portal names a session
// remembers; past it the oldest are forgotten (an unknown statement is
// then treated as one prepared with SQL PREPARE, see checkBind).
const maxTrackedNames = 10000

func newTracker(audit bool, versions policyVersioner) *tracker {
	return &tracker{
		audit: audit, versions: versions,
		stmts: map[string]*stmtInfo{}, portals: map[string]*stmtInfo{}, sqlObjects: map[string]string{},
	}
}

// remember stores v under name in m, bounded by maxTrackedNames.
func (t *tracker) remember(m map[string]*stmtInfo, name string, v *stmtInfo) {
	if _, ok := m[name]; !ok && len(m) >= maxTrackedNames {
		for k := range m {
			delete(m, k)
			break
		}
		t.forgot = true
	}
	m[name] = v
}

// push queues an execution (client relay).
func (t *tracker) push(x *execution) {
	t.mu.Lock()
	t.pending = append(t.pending, x)
	t.mu.Unlock()
}

// next returns the execution the upstream's next answer belongs to,
// taking it from the queue when it belongs to the batch being answered
// (backend relay). It returns nil when nothing is awaited.
func (t *tracker) next(answering int64) *execution {
	if t.cur != nil {
		return t.cur
	}
	t.mu.Lock()
	if len(t.pending) > 0 && t.pending[0].batch <= answering {
		t.cur = t.pending[0]
		t.pending[0] = nil
		t.pending = t.pending[1:]
	}
	t.mu.Unlock()
	return t.cur
}

// closeBatch returns the executions of the batches answered so far that
// are still waiting: the server skipped them after an error (backend
// relay).
func (t *tracker) closeBatch(done int64) []*execution {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for n < len(t.pending) && t.pending[n].batch <= done {
		n++
	}
	if n == 0 {
		return nil
	}
	out := make([]*execution, n)
	copy(out, t.pending[:n])
	clear(t.pending[:n])
	t.pending = t.pending[n:]
	return out
}

// batchClosed notes that batch n is closed, after the client's Parse and
// Close messages counted so far (client relay).
func (t *tracker) batchClosed(n int64) {
	if t.versions == nil {
		return
	}
	t.mu.Lock()
	t.batchPC = append(t.batchPC, batchMark{batch: n, pc: t.pcSent})
	t.mu.Unlock()
}

// swallow reports whether a ParseComplete or CloseComplete answers an
// injected message, which the client must not see (backend relay).
func (t *tracker) swallow(answering int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.injected) > 0 {
		in := t.injected[0]
		if in.batch == answering && in.after == t.pcSeen {
			in.answers--
			if in.answers == 0 {
				// The Parse is answered: the upstream holds the
				// statement of in.info's policy.
				in.info.confirmed.Store(true)
				t.injected = t.injected[1:]
			}
			return true
		}
	}
	if len(t.awaiting) > 0 && t.awaiting[0].pos == t.pcSeen {
		t.awaiting[0].info.confirmed.Store(true)
		t.awaiting = t.awaiting[1:]
	}
	t.pcSeen++
	return false
}

// readyForQuery closes batch number done: injections the server skipped
// after an error are dropped (their statements stay unconfirmed and are
// prepared again at their next Bind), and the client's skipped Parse and
// Close messages are counted as answered (backend relay).
func (t *tracker) readyForQuery(done int64) {
	if t.versions == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	for len(t.injected) > 0 && t.injected[0].batch <= done {
		t.injected = t.injected[1:]
	}
	for len(t.awaiting) > 0 && t.awaiting[0].batch <= done {
		t.awaiting = t.awaiting[1:]
	}
	for len(t.batchPC) > 0 && t.batchPC[0].batch <= done {
		t.pcSeen = t.batchPC[0].pc
		t.batchPC = t.batchPC[1:]
	}
	for len(t.objPending) > 0 && t.objPending[0].batch <= done {
		c := t.objPending[0]
		c.failed = t.batchErr
		t.objResolved = append(t.objResolved, c)
		t.resolvedN.Add(1)
		t.objPending = t.objPending[1:]
	}
	t.batchErr = false
}

// sawError notes an ErrorResponse of the batch being answered (backend
// relay).
func (t *tracker) sawError() {
	if t.versions != nil {
		t.batchErr = true
	}
}

// noteStatement records a statement the client relay is about to send
// upstream: a Query is an execution of its own; a Parse is remembered
// under its name, and audited now only when refused.
func (ss *session) noteStatement(st *Statement, res *rewrite.Result, refusal *Refusal) {
	t := ss.track
	if t == nil {
		return
	}
	if t.versions != nil && res != nil && len(res.Objects) > 0 {
		batch := ss.sent.Load()
		if st.Source == SourceParse {
			batch++
		}
		t.mu.Lock()
		t.objPending = append(t.objPending, &objChange{batch: batch, objs: res.Objects, version: st.PolicyVersion, several: len(res.Kinds) > 1})
		t.mu.Unlock()
	}
	switch st.Source {
	case SourceQuery:
		if t.audit {
			info := newStmtInfo(st, res, refusal)
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
				t.await(info)
			}
		}
		t.pcSent++
		t.remember(t.stmts, st.Name, info)
		if refusal != nil && t.audit {
			t.push(&execution{info: info, start: time.Now(), batch: ss.sent.Load() + 1})
		}
	}
}

// applyObjects applies the object changes of the batches answered so far
// (client relay): a batch without error did what it said; after an error,
// a single statement did nothing, while of several it is unknown which
// ran, so the objects they create may be of any version.
func (t *tracker) applyObjects() {
	if t.resolvedN.Load() == 0 {
		return
	}
	t.mu.Lock()
	done := t.objResolved
	t.objResolved = nil
	t.resolvedN.Store(0)
	t.mu.Unlock()
	for _, c := range done {
		for _, o := range c.objs {
			kind := "p"
			if o.Op == "declare" || o.Op == "fetch" || o.Op == "close" {
				kind = "c"
			}
			switch {
			case c.failed && !c.several:
			case o.Op == "prepare" || o.Op == "declare":
				if c.failed {
					t.sqlObjects[kind+o.Name] = ""
				} else {
					t.sqlObjects[kind+o.Name] = c.version
				}
			case c.failed:
				// A drop that may not have run: keep what is known.
			case o.Op == "discard":
				clear(t.sqlObjects)
			case (o.Op == "deallocate" || o.Op == "close") && o.Name != "":
				delete(t.sqlObjects, kind+o.Name)
			case o.Op == "deallocate" || o.Op == "close":
				for k := range t.sqlObjects {
					if k[0] == kind[0] {
						delete(t.sqlObjects, k)
					}
				}
			}
		}
	}
}

// staleSQLObject returns a refusal when res runs a statement prepared,
// or fetches from a cursor declared, with SQL under another policy
// version than version, the one in force.
func (ss *session) staleSQLObject(res *rewrite.Result, version string) *Refusal {
	t := ss.track
	if t == nil || t.versions == nil {
		return nil
	}
	t.applyObjects()
	if len(t.sqlObjects) == 0 {
		return nil
	}
	for _, o := range res.Objects {
		key := ""
		switch o.Op {
		case "execute":
			key = "p" + o.Name
		case "fetch":
			key = "c" + o.Name
		default:
			continue
		}
		if v, ok := t.sqlObjects[key]; ok && v != version {
			return policyChanged("the statement or cursor " + quoteName(o.Name))
		}
	}
	return nil
}

// quoteName quotes an identifier for a message.
func quoteName(s string) string { return `"` + s + `"` }

func policyChanged(what string) *Refusal {
	return &Refusal{
		Code:    CodeInsufficientPrivilege,
		Message: "pgveil refused the statement: the policy changed since " + what + " was checked (firewall rule policy_changed)",
		Hint:    "Reconnect, or prepare the statement again, to run it under the policy in force.",
		Rule:    "policy_changed",
	}
}

// trackPeek shows the tracker the names a Bind, Execute or Close message
// starts with, read whole whatever their length, and forwards the
// message; a Bind of a statement prepared under an older policy first
// prepares it again, and an Execute of a portal bound under one is
// refused. A message too short for its names goes upstream as it is,
// and the upstream refuses it.
func (ss *session) trackPeek(typ byte, total int) error {
	skip, n := 0, 1
	switch typ {
	case 'B':
		n = 2
	case 'C':
		skip = 1
	}
	b, err := ss.cin.peekStrings(total, skip, n)
	if err != nil {
		return err
	}
	defer ss.cin.release()
	body := b[headerLen:]
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
	case 'E':
		portal, _, ok := cstring(body)
		if ok {
			info := t.portals[portal]
			stale := false
			if t.versions != nil {
				t.applyObjects()
				cur := t.versions.PolicyVersion()
				if info != nil {
					stale = info.version != cur
				} else if v, ok := t.sqlObjects["c"+portal]; ok {
					// A cursor declared with SQL is a portal too.
					stale = v != cur
					info = &stmtInfo{sql: "FETCH FROM " + portal, version: v}
				}
			}
			if stale {
				// A portal bound under an older policy: refuse its
				// Execute in its place.
				if err := ss.cin.skip(total); err != nil {
					return err
				}
				r := policyChanged("this portal")
				if t.audit {
					t.push(&execution{info: &stmtInfo{sql: info.sql, refusal: r, version: info.version}, start: time.Now(), batch: ss.sent.Load() + 1})
				}
				return ss.refuse(sourceExecute, "", r)
			}
			if t.audit {
				if info == nil {
					info = &stmtInfo{}
				}
				t.push(&execution{info: info, start: time.Now(), batch: ss.sent.Load() + 1})
			}
		}
	case 'C':
		if len(body) >= 2 {
			if name, _, ok := cstring(body[1:]); ok {
				switch body[0] {
				case 'S':
					ss.noteClose(name)
				case 'P':
					delete(t.portals, name)
				}
			}
		}
		t.pcSent++
	}
	return ss.cin.forward(total, ss.uout)
}

// await queues info for confirmation by the answer to the Parse or
// Close about to be sent (client relay).
func (t *tracker) await(info *stmtInfo) {
	t.mu.Lock()
	t.awaiting = append(t.awaiting, awaited{pos: t.pcSent, batch: info.batch, info: info})
	t.mu.Unlock()
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
	t.await(mark)
	t.stmts[name] = mark
}

// checkBind remembers which statement portal runs and, when the upstream
// may hold under name a statement an older policy checked, prepares it
// again under the policy in force before the Bind reaches the upstream
// (client relay).
func (ss *session) checkBind(portal, name string) error {
	t := ss.track
	info := t.stmts[name]
	if t.versions == nil {
		if info == nil {
			// A statement prepared with SQL PREPARE: its text was
			// audited then.
			info = &stmtInfo{sql: "EXECUTE " + name}
		}
		t.remember(t.portals, portal, info)
		return nil
	}
	cur := t.versions.PolicyVersion()
	if info == nil {
		t.applyObjects()
		// A statement prepared with SQL PREPARE (or forgotten): it
		// keeps the version that checked it, and its Execute is
		// refused when that is not the one in force.
		info = &stmtInfo{sql: "EXECUTE " + name, version: cur}
		if v, ok := t.sqlObjects["p"+name]; ok {
			info.version = v
		} else if t.forgot {
			info.version = "" // perhaps forgotten: fail closed
		}
		t.remember(t.portals, portal, info)
		return nil
	}
	held, sure := ss.held(name, info)
	switch {
	case held == nil && sure:
		// Nothing upstream: the Bind fails as it would without pgveil.
		return nil
	case held != nil && sure && held.version == cur:
		t.remember(t.portals, portal, held)
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
	t.mu.Lock()
	t.injected = append(t.injected, in)
	t.mu.Unlock()
	for _, m := range msgs {
		var err error
		if ss.cscratch, err = m.Encode(ss.cscratch[:0]); err != nil {
			return fmt.Errorf("encoding %T: %w", m, err)
		}
		if err := ss.uout.write(ss.cscratch); err != nil {
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
		t.remember(t.portals, portal, refused)
		if err := ss.inject(&injection{after: t.pcSent, answers: 1, batch: batch, info: mark}, closeMsg); err != nil {
			return err
		}
		return ss.refuse(SourceParse, name, refused.refusal)
	}
	info := newStmtInfo(st, res, nil)
	info.batch, info.prev = batch, head
	info.confirmed.Store(false)
	t.remember(t.stmts, name, info)
	t.remember(t.portals, portal, info)
	return ss.inject(&injection{after: t.pcSent, answers: 2, batch: batch, info: info},
		closeMsg, &pgproto3.Parse{Name: name, Query: res.SQL, ParameterOIDs: held.paramOIDs})
}
