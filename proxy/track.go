package proxy

import (
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
	// confirmed is false while a re-prepare of the statement upstream
	// (see reprepare) has not been answered: until then the upstream may
	// still hold the statement of an older policy.
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
	// then.
	sqlObjects map[string]string
	// pcSent counts the client's Parse and Close messages sent upstream;
	// pcSeen the ParseComplete and CloseComplete answers forwarded to the
	// client. Injected messages are counted by neither.
	pcSent, pcSeen int64
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
	for len(t.batchPC) > 0 && t.batchPC[0].batch <= done {
		t.pcSeen = t.batchPC[0].pc
		t.batchPC = t.batchPC[1:]
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
	info := newStmtInfo(st, res, refusal)
	if t.versions != nil && res != nil {
		t.noteObjects(res.Objects, st.PolicyVersion)
	}
	switch st.Source {
	case SourceQuery:
		if t.audit {
			t.push(&execution{info: info, start: time.Now(), untilReady: true, batch: ss.sent.Load()})
		}
	case SourceParse:
		t.pcSent++
		t.remember(t.stmts, st.Name, info)
		if refusal != nil && t.audit {
			t.push(&execution{info: info, start: time.Now(), batch: ss.sent.Load() + 1})
		}
	}
}

// noteObjects follows the SQL prepared statements and cursors a
// statement creates and drops (client relay).
func (t *tracker) noteObjects(objs []rewrite.SessionObject, version string) {
	for _, o := range objs {
		switch o.Op {
		case "prepare":
			t.sqlObjects["p"+o.Name] = version
		case "declare":
			t.sqlObjects["c"+o.Name] = version
		case "deallocate", "close":
			kind := "p"
			if o.Op == "close" {
				kind = "c"
			}
			if o.Name != "" {
				delete(t.sqlObjects, kind+o.Name)
				continue
			}
			for k := range t.sqlObjects {
				if k[0] == kind[0] {
					delete(t.sqlObjects, k)
				}
			}
		case "discard":
			clear(t.sqlObjects)
		}
	}
}

// staleSQLObject returns a refusal when res runs a statement prepared,
// or fetches from a cursor declared, with SQL under another policy
// version than version, the one in force.
func (ss *session) staleSQLObject(res *rewrite.Result, version string) *Refusal {
	t := ss.track
	if t == nil || t.versions == nil || len(t.sqlObjects) == 0 {
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

// trackPeek shows the tracker the start of a Bind, Execute or Close
// message, which names a statement or portal, and forwards the message;
// a Bind of a statement prepared under an older policy first prepares it
// again, and an Execute of a portal bound under one is refused.
func (ss *session) trackPeek(typ byte, total int) error {
	b, err := ss.cin.peek(min(total, maxPeek))
	if err != nil {
		return err
	}
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
		t.pcSent++
		if len(body) >= 2 {
			if name, _, ok := cstring(body[1:]); ok {
				switch body[0] {
				case 'S':
					delete(t.stmts, name)
				case 'P':
					delete(t.portals, name)
				}
			}
		}
	}
	return ss.cin.forward(total, ss.uout)
}

// maxPeek is how much of a Bind, Execute or Close message trackPeek
// reads: enough for two names of any length PostgreSQL keeps.
const maxPeek = 1024

// checkBind remembers which statement portal runs and, when that
// statement was prepared under an older policy, prepares it again
// before the Bind reaches the upstream (client relay).
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
	if info.version == cur && info.confirmed.Load() {
		t.remember(t.portals, portal, info)
		return nil
	}
	return ss.reprepare(portal, name, info)
}

// reprepare prepares statement name again under the policy in force, in
// place: a Close and a Parse of the new text go upstream before the
// client's Bind, and their answers are not forwarded. A statement the new
// policy refuses is closed and its refusal takes the Bind's place.
func (ss *session) reprepare(portal, name string, old *stmtInfo) error {
	t := ss.track
	st := &Statement{Source: SourceParse, Text: old.sql, Name: name, ParamOIDs: old.paramOIDs}
	res, rerr := ss.rewrite(st)
	var info *stmtInfo
	if rerr != nil {
		info = newStmtInfo(st, nil, asRefusal(rerr))
	} else {
		info = newStmtInfo(st, res, nil)
	}
	info.confirmed.Store(false)
	t.remember(t.stmts, name, info)
	t.remember(t.portals, portal, info)

	in := &injection{after: t.pcSent, answers: 1, batch: ss.sent.Load() + 1, info: info}
	var err error
	ss.cscratch, err = (&pgproto3.Close{ObjectType: 'S', Name: name}).Encode(ss.cscratch[:0])
	if err != nil {
		return err
	}
	if rerr == nil {
		in.answers = 2
	}
	t.mu.Lock()
	t.injected = append(t.injected, in)
	t.mu.Unlock()
	if err := ss.uout.write(ss.cscratch); err != nil {
		return err
	}
	if rerr != nil {
		return ss.refuse(SourceParse, name, info.refusal)
	}
	ss.cscratch, err = (&pgproto3.Parse{Name: name, Query: res.SQL, ParameterOIDs: old.paramOIDs}).Encode(ss.cscratch[:0])
	if err != nil {
		return err
	}
	return ss.uout.write(ss.cscratch)
}
