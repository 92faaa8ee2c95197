package proxy

import (
	"fmt"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// This file holds the tracker's events of the client relay: the Parse,
// Bind, Execute, Close and Sync messages it sends upstream, the
// statements it prepares again and the executions it refuses.

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

// push queues an execution (client relay).
func (t *tracker) push(x *execution) {
	t.shared.mu.Lock()
	t.shared.pending = append(t.shared.pending, x)
	t.shared.mu.Unlock()
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
