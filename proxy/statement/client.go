package statement

import (
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/rewrite"
)

// This file holds the Tracker's events of the client relay: the Query,
// Parse, Bind, Execute, Close and Sync messages it sends upstream, the
// statements it prepares again and the executions it refuses; and the
// session's side of them, which acts on what the events return.

// OnBatchClosed is the event of the client relay closing batch number n
// (a Query, a Sync, a refused FunctionCall), after the client's Parse,
// Bind and Close messages counted so far.
func (t *Tracker) OnBatchClosed(n int64) { t.batchClosed(n, false) }

// OnSimpleBatchClosed is OnBatchClosed for a batch a Query closes with
// no extended-protocol message since the last Sync: it gets a
// ReadyForQuery of its own, as surely as a Sync does, so what it holds
// is bounded by the answers the client reads, and is not counted
// against MaxHeldMessages and MaxHeldBytes (held.go).
func (t *Tracker) OnSimpleBatchClosed(n int64) { t.batchClosed(n, true) }

func (t *Tracker) batchClosed(n int64, simple bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.sent = n
	t.simple = simple
	if t.versions != nil {
		t.batchPC = append(t.batchPC, batchMark{batch: n, pc: t.pcSent, binds: t.bindSent, simple: simple})
		if simple {
			t.simpleHeld++
		}
		t.checkHeld()
	}
}

// OnStatement is the event of a Query or a Parse about to be sent
// upstream, checked into res or refused with refusal: a Query is an
// Execution of its own, in the batch just closed; a Parse is remembered
// under its name, and audited now only when refused.
func (t *Tracker) OnStatement(st *Statement, res *rewrite.Result, refusal *Refusal) {
	st = serverNamed(st)
	t.mu.Lock()
	defer t.mu.Unlock()
	switch st.Source {
	case SourceQuery:
		if res != nil && len(res.Objects) > 0 {
			// A Query runs in its own batch. A Parse runs nothing: its
			// objects change at each Execute (OnExecuteDecided).
			t.noteObjects(res, st.PolicyVersion, t.sent, len(res.Kinds) > 1)
		}
		if t.audit {
			info := NewInfo(st, t.withObjects(res, t.sent), refusal)
			x := &Execution{Info: info, Start: time.Now(), untilReady: true, batch: t.sent}
			if t.simple {
				x.simple = true
				t.simpleHeld++
			} else {
				x.held = int64(len(st.Text)) + infoOverhead
				t.hold(t.sent, x.held)
			}
			t.pending = append(t.pending, x)
		}
	case SourceParse:
		info := NewInfo(st, res, refusal)
		info.batch, info.execs = t.sent+1, t.execs
		size := parseSize(st, res)
		// NOTE: counted once awaited: the answer's position is pcSent.
		defer func() { t.pcSent++ }()
		if t.versions != nil && st.Name != "" && t.doomedParse(t.stmts[st.Name]) {
			// It cannot change what the upstream holds: nothing to
			// follow but its audit record.
			if refusal != nil && t.audit {
				t.hold(info.batch, size)
				t.pending = append(t.pending, &Execution{Info: info, Start: time.Now(), batch: info.batch})
			}
			break
		}
		if st.Name != "" {
			info.prev = t.settle(st.Name, t.stmts[st.Name])
		}
		if t.versions != nil {
			// Confirmed by its ParseComplete; a refused one never is, and
			// a later Bind closes whatever the upstream kept of the name.
			info.confirmed = false
			t.hold(info.batch, size)
			if refusal == nil {
				t.await(info.batch, &info.confirmed, size)
			}
			t.dirty(st.Name, false, info.batch)
		}
		t.pushStmt(info)
		remember(t, t.stmts, st.Name, info)
		t.noteHead(nsStatement, st.Name, info.batch)
		if refusal != nil && t.audit {
			if t.versions == nil {
				t.hold(info.batch, size)
			}
			t.pending = append(t.pending, &Execution{Info: info, Start: time.Now(), batch: t.sent + 1})
		}
	}
	t.checkHeld()
}

// doomedParse reports whether a Parse of a named statement whose latest
// Parse or Close is head, about to be sent, can only fail or be skipped:
// head is a Parse of the same batch, with no Execute between them (mu
// held). The upstream then holds the name, or failed at head and skips
// the rest of the batch (held.go).
func (t *Tracker) doomedParse(head *Info) bool {
	return head != nil && !head.closed && !head.confirmed && head.batch == t.sent+1 && head.execs == t.execs
}

// OnClose is the event of a Close about to be sent upstream, of the
// statement (kind 'S') or portal (kind 'P') name; ok is false when the
// message is too short to name one. Without policies that reload, the
// statement or portal is forgotten; with them, it leaves a closed mark,
// confirmed by the CloseComplete, so that a Close the server skipped
// after an error cannot leave a statement or portal of an older policy
// runnable, for instance after a ROLLBACK TO SAVEPOINT.
func (t *Tracker) OnClose(kind byte, name string, ok bool) {
	name = ServerName(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	defer func() { t.pcSent++ }()
	if !ok {
		return
	}
	batch := t.sent + 1
	size := int64(len(name)) + infoOverhead
	switch kind {
	case 'S':
		old := t.stmts[name]
		if t.versions == nil || old == nil {
			delete(t.stmts, name)
			return
		}
		if old.closed && !old.confirmed && old.batch == batch && old.execs == t.execs {
			// A Close after a Close (held.go).
			return
		}
		mark := &Info{batch: batch, execs: t.execs, closed: true, prev: t.settle(name, old)}
		t.hold(batch, size)
		t.await(mark.batch, &mark.confirmed, size)
		t.pushStmt(mark)
		t.stmts[name] = mark
		t.noteHead(nsStatement, name, batch)
		t.dirty(name, false, batch)
	case 'P':
		old := t.portals[name]
		if t.versions == nil || old == nil {
			delete(t.portals, name)
			return
		}
		if old.closed && !old.confirmed && old.batch == batch && old.execs == t.execs {
			return
		}
		mark := &portalEntry{batch: batch, execs: t.execs, closed: true, prev: t.settlePortal(old)}
		t.hold(batch, size)
		t.await(mark.batch, &mark.confirmed, size)
		t.pushPortal(mark)
		t.portals[name] = mark
		t.noteHead(nsPortal, name, batch)
		t.dirty(name, true, batch)
	}
	t.checkHeld()
}

// BindPlan is what the session must do before forwarding a Bind: send
// inject upstream (their answers are swallowed), or, when again is set,
// check again under the policy in force the statement the upstream holds
// and report the outcome with OnReprepared.
type BindPlan struct {
	Inject []pgproto3.FrontendMessage
	Again  *Statement
}

// OnBind is the event of a Bind of portal to statement name about to be
// sent upstream; ok is false when the message is too short to name them.
// It remembers which statement portal runs and, when the upstream may
// hold under name a statement an older policy checked, plans to prepare
// it again under the policy in force before the Bind reaches the
// upstream.
func (t *Tracker) OnBind(portal, name string, ok bool) BindPlan {
	return t.OnBindParams(portal, name, "", ok)
}

// OnBindParams is OnBind for a Bind whose parameter values, rendered
// for the audit trail, are params: the Executions of the portal carry
// them (and when the plan is to prepare the statement again, the portal
// OnReprepared binds).
func (t *Tracker) OnBindParams(portal, name, params string, ok bool) BindPlan {
	// NOTE: the messages it asks for name the statement as the client
	// did: a name cut inside a character is not valid UTF-8 (22021).
	wire := name
	portal, name = ServerName(portal), ServerName(name)
	t.mu.Lock()
	defer t.mu.Unlock()
	t.bindParams = params
	plan := t.planBind(portal, name, wire, ok)
	if plan.Again == nil {
		t.bindParams = ""
	}
	t.checkHeld()
	return plan
}

// planBind is OnBindParams's transition, for a Bind whose values are in
// t.bindParams, of a statement the client names wire (mu held).
// NOTE: apart so that OnBindParams's one defer is open-coded: with its
// returns, their defers ran through the runtime's, at each Bind.
func (t *Tracker) planBind(portal, name, wire string, ok bool) BindPlan {
	if !ok {
		t.bindSent++
		return BindPlan{}
	}
	t.applyObjects()
	info := t.stmts[name]
	batch := t.sent + 1
	if info == nil {
		// A statement prepared with SQL PREPARE (or forgotten): it
		// keeps the version that checked it, and its Execute is
		// refused when that is not the one in force.
		if t.bindParams != "" {
			// NOTE: the trail records its text as EXECUTE "name",
			// which names no secret word whatever the PREPARE's text
			// did: its values are withheld as a secret's would be.
			t.bindParams = audit.ParamsWithheld
		}
		t.bind(portal, t.sqlNamed(nsStatement, name, batch), batch)
		t.bindSent++
		return BindPlan{}
	}
	if t.versions == nil {
		t.bind(portal, info, batch)
		t.bindSent++
		return BindPlan{}
	}
	cur := t.versions.PolicyVersion()
	held, sure := t.held(name, info)
	switch {
	case held == nil && sure:
		// Nothing upstream: the Bind fails as it would without pgveil.
		t.bindSent++
		return BindPlan{}
	case held != nil && sure && held.Version == cur:
		t.bind(portal, held, batch)
		t.bindSent++
		return BindPlan{}
	case held == nil:
		// Unknown: make sure nothing of an older policy stays.
		mark := &Info{batch: batch, execs: t.execs, closed: true, prev: info}
		t.pushStmt(mark)
		t.stmts[name] = mark
		t.noteHead(nsStatement, name, batch)
		t.dirty(name, false, batch)
		size := int64(len(name)) + infoOverhead
		t.hold(batch, size)
		t.injected = append(t.injected, &injection{after: t.pcSent, answers: 1, batch: batch, Info: mark, size: size})
		t.bindSent++
		return BindPlan{Inject: []pgproto3.FrontendMessage{&pgproto3.Close{ObjectType: 'S', Name: wire}}}
	}
	// The Bind is counted at OnReprepared.
	return BindPlan{Again: &Statement{Source: SourceParse, Text: held.SQL, Name: wire, ParamOIDs: held.paramOIDs}}
}

// OnReprepared completes OnBind's plan to prepare st again, in place:
// res is the Rewriter's result under the policy in force, or refusal its
// refusal. It returns the messages to send upstream before the Bind, a
// Close and a Parse of the new text, whose answers are swallowed. A
// statement the policy in force refuses is closed: the session then
// sends its refusal in the Bind's place, and nothing stays under the
// name.
func (t *Tracker) OnReprepared(portal string, st *Statement, res *rewrite.Result, refusal *Refusal) []pgproto3.FrontendMessage {
	wire := st.Name
	portal, st = ServerName(portal), serverNamed(st)
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.checkHeld()
	defer func() { t.bindSent++ }()
	name := st.Name
	// head is the name's latest Parse or Close: only the client relay
	// changes it, and it sent nothing since OnBind.
	head := t.stmts[name]
	batch := t.sent + 1
	closeMsg := &pgproto3.Close{ObjectType: 'S', Name: wire}
	t.dirty(name, false, batch)
	size := parseSize(st, res)
	t.hold(batch, size)
	if refusal != nil {
		refused := NewInfo(st, nil, refusal)
		mark := &Info{batch: batch, execs: t.execs, closed: true, prev: head}
		t.pushStmt(mark)
		t.stmts[name] = mark
		t.noteHead(nsStatement, name, batch)
		t.bind(portal, refused, batch)
		t.injected = append(t.injected, &injection{after: t.pcSent, answers: 1, batch: batch, Info: mark, size: size})
		return []pgproto3.FrontendMessage{closeMsg}
	}
	info := NewInfo(st, res, nil)
	info.batch, info.execs, info.prev, info.confirmed = batch, t.execs, head, false
	t.pushStmt(info)
	remember(t, t.stmts, name, info)
	t.noteHead(nsStatement, name, batch)
	t.bind(portal, info, batch)
	t.injected = append(t.injected, &injection{after: t.pcSent, answers: 2, batch: batch, Info: info, size: size})
	return []pgproto3.FrontendMessage{closeMsg, &pgproto3.Parse{Name: wire, Query: res.SQL, ParameterOIDs: st.ParamOIDs}}
}

// ExecPlan is the Tracker's view of an Execute: what the portal runs,
// in which batch, and the refusal the Tracker decided, if any.
type ExecPlan struct {
	Info *Info
	// bound: the portal was made by a Bind; otherwise info describes a
	// cursor declared with SQL, or a portal pgveil does not know.
	Bound   bool
	batch   int64
	Refusal *Refusal
	// params are the parameter values of the portal's Bind, for the
	// audit trail (portalEntry.params).
	params string
}

// OnExecute is the event of an Execute of portal read from the client.
// It refuses the Execute when the portal may run anything an older
// policy checked, or when its statement runs a prepared statement or
// fetches from a cursor that may. The session adds its own checks and
// reports the decision with OnExecuteDecided.
func (t *Tracker) OnExecute(portal string) ExecPlan {
	portal = ServerName(portal)
	t.mu.Lock()
	defer t.mu.Unlock()
	p := ExecPlan{batch: t.sent + 1}
	e := t.portals[portal]
	// What the portal runs, as far as the answers tell: a Bind or a
	// Close of an answered batch that no answer confirmed failed or was
	// skipped, and left the portal as it was (portalEntry), which a
	// ROLLBACK TO SAVEPOINT lets the client execute. The trail credits
	// the Execute to that statement, not to the failed Bind's.
	// NOTE: the latest entry stays e, for staleExecute.
	run := e
	if t.versions != nil {
		for run != nil && !run.confirmed && run.batch <= t.done {
			run = run.prev
		}
	}
	p.Bound = run != nil && !run.closed
	if p.Bound {
		p.Info, p.params = run.Info, run.params
	} else {
		// A cursor declared with SQL is a portal too.
		p.Info = t.sqlNamed(nsPortal, portal, p.batch)
	}
	if t.versions != nil {
		cur := t.versions.PolicyVersion()
		if t.staleExecute(portal, e, p.batch, cur) {
			p.Refusal = policyChanged("this portal")
		} else if differs, switches := t.unsettledPortal(run, portal, p.batch); switches {
			p.Refusal = firewall.New("act_for", "pgveil refused the statement: the portal's last Bind is not answered yet, and the portal may run a switch of the viewer or another statement: wait for the Bind's answer (firewall rule act_for)")
		} else if differs {
			p.Refusal = firewall.Deny("unsettled_portal", "the portal may run another statement than its last Bind's (that Bind not answered yet, or a cursor declared under its name): wait for the answers first, or bind a portal of another name")
		} else if p.Bound && p.Info.Result != nil && len(p.Info.Result.Objects) > 0 {
			// A Parse of EXECUTE or FETCH runs what the name holds now.
			p.Refusal = t.staleObjects(p.Info.Result, p.batch, cur)
		}
	}
	return p
}

// unsettledPortal reports, of run, the entry of portal as far as the
// answers tell when an Execute of batch at plans, whether the portal may
// run another statement: a cursor DECLAREd under its name since run's
// Bind, or in flight; or, when run is a Bind of an earlier batch not
// answered yet, which may fail and leave the portal as it was, an
// earlier Bind's statement (portalEntry) or a cursor of the name (on
// which PostgreSQL's Bind fails too). differs when one of them is not
// the Bind's statement with its values (the
// audit trail, the acting user and a pool's settings would follow the
// wrong one), switches when one of them switches the viewer
// (rewrite.Act, or a RESET ALL, resetAct) and another does not. A Bind
// of the Execute's own batch that fails makes the server skip the
// Execute (mu held).
//
// NOTE: a portal a transaction's end destroyed still has its entry: a
// client pipelining a Bind of its name, then an Execute in a later batch,
// is refused, and waits for the Bind's answer instead.
func (t *Tracker) unsettledPortal(run *portalEntry, portal string, at int64) (differs, switches bool) {
	t.applyObjects()
	cursor := t.SQL[nsPortal][portal]
	declaring := t.creating[historyKey{name: portal, portal: true}] != nil
	if run != nil && !run.closed && (cursor != nil && cursor.batch > run.batch || declaring) {
		// A cursor DECLAREd under the name since the Bind, which a
		// COMMIT made room for (pgveil keeps the portal's entry), or
		// one in flight: the Execute fetches from it.
		differs = true
	}
	done := t.done
	if run == nil || run.confirmed || run.batch <= done || run.batch >= at {
		return differs, false
	}
	// NOTE: a RESET ALL switches too, back to the login, while the
	// session acts for a user (proxy's resetAct): it has no Act, and
	// counts whether the session acts for one or not.
	acts := func(e *portalEntry) bool {
		if e.closed || e.Info == nil || e.Info.Result == nil {
			return false
		}
		res := e.Info.Result
		return res.Act != nil || slices.Contains(res.Resets, rewrite.ResetAll)
	}
	for x := run.prev; x != nil; x = x.prev {
		if x.confirmed || x.batch > done {
			// A candidate: confirmed, or not answered yet either.
			if acts(x) != acts(run) {
				switches = true
			}
			if !x.closed && (x.Info != run.Info || x.params != run.params) {
				differs = true
			}
			if x.confirmed {
				break
			}
		}
	}
	if cursor != nil || declaring {
		differs = true
	}
	return differs, switches
}

// OnExecuteDecided is the event of the Execute planned by p going
// upstream, or, refused with r, its marker going in its place: the
// Execution is queued for the audit trail, and the statements and
// cursors it prepares, declares or drops are noted.
func (t *Tracker) OnExecuteDecided(p ExecPlan, r *Refusal) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer t.checkHeld()
	t.execs++
	info := p.Info
	if r != nil {
		if t.audit {
			t.pending = append(t.pending, &Execution{Info: &Info{SQL: info.SQL, Refusal: r, Version: info.Version, Roles: info.Roles}, Params: p.params, Start: time.Now(), batch: p.batch})
		}
		return
	}
	if p.Bound && info.Result != nil && len(info.Result.Objects) > 0 {
		// Other messages of the batch may fail: several.
		t.noteObjects(info.Result, info.Version, p.batch, true)
		if t.audit {
			if res := t.withObjects(info.Result, p.batch); res != info.Result {
				info = &Info{SQL: info.SQL, Result: res, Version: info.Version, Roles: info.Roles}
			}
		}
	}
	if t.audit {
		x := &Execution{Info: info, Params: p.params, Start: time.Now(), batch: p.batch}
		x.OfRefusedParse = p.Bound && info.Refusal != nil
		t.pending = append(t.pending, x)
	}
}

// bind remembers that the Bind about to be sent, of batch batch, makes
// portal run info. With policies that reload it keeps, until the Bind is
// confirmed, what the portal was before (mu held).
func (t *Tracker) bind(portal string, info *Info, batch int64) {
	params := t.bindParams
	t.bindParams = ""
	if t.versions == nil {
		old := t.portals[portal]
		if old != nil && len(t.kept) == 0 {
			// Nothing else holds it (kept, the only other place, is
			// empty): the portal's entry changes in place.
			*old = portalEntry{Info: info, batch: batch, execs: t.execs, params: params, confirmed: true}
			t.keepParams(old)
			t.noteHead(nsPortal, portal, batch)
			return
		}
		e := &portalEntry{Info: info, batch: batch, execs: t.execs, params: params, confirmed: true}
		t.keepParams(e)
		remember(t, t.portals, portal, e)
		t.noteHead(nsPortal, portal, batch)
		return
	}
	old := t.portals[portal]
	if old != nil && !old.closed && !old.confirmed && old.batch == batch && old.execs == t.execs && (portal != "" || old.Info == info) {
		// A Bind after a Bind (held.go): the later one's values.
		old.params = params
		t.keepParams(old)
		return
	}
	e := t.spare
	if e != nil {
		t.spare = nil
		*e = portalEntry{Info: info, batch: batch, execs: t.execs, params: params}
	} else {
		e = &portalEntry{Info: info, batch: batch, execs: t.execs, params: params}
	}
	e.prev = t.settlePortal(old)
	t.awaitingBinds = append(t.awaitingBinds, awaitedBind{pos: t.bindSent, batch: batch, e: e})
	t.dirty(portal, true, batch)
	t.pushPortal(e)
	t.keepParams(e)
	remember(t, t.portals, portal, e)
	t.noteHead(nsPortal, portal, batch)
}

// settlePortal drops from the history of a portal, whose latest Bind is
// e, the Binds of answered batches that failed or were skipped, and all
// that came before a confirmed one (mu held).
func (t *Tracker) settlePortal(e *portalEntry) *portalEntry {
	for e != nil && !e.confirmed && e.batch <= t.done {
		e = e.prev
	}
	if e != nil && e.confirmed {
		e.prev = nil
	}
	return e
}

// await queues confirmed, of a message of batch batch, to be set by the
// answer to the Parse or Close about to be sent (mu held).
func (t *Tracker) await(batch int64, confirmed *bool, size int64) {
	t.awaiting = append(t.awaiting, awaited{pos: t.pcSent, batch: batch, confirmed: confirmed, size: size})
}

// settle drops from the history of name, whose latest Parse or Close is
// info, the messages whose batch is answered and which failed or were
// skipped, so that the history holds at most one settled statement and
// the messages still in flight: a client repeating a failing Parse
// cannot grow it (mu held).
func (t *Tracker) settle(name string, info *Info) *Info {
	for info != nil && !info.confirmed && info.batch <= t.done {
		if !info.closed && name == "" {
			return nil // a failed Parse of the unnamed statement dropped it
		}
		info = info.prev
	}
	if info != nil && info.confirmed {
		info.prev = nil
	}
	return info
}

// held returns the statement the upstream holds under name, whose latest
// Parse or Close is info, as far as the answers received tell; sure
// reports whether that is certain when the Bind about to be sent runs.
// nil means none (mu held).
//
// NOTE: a message is answered (confirmed) before the ReadyForQuery of its
// batch: an unconfirmed message of an answered batch failed or was
// skipped. A message of the Bind's own batch runs before the Bind, and
// when it fails the server skips the Bind too.
func (t *Tracker) held(name string, info *Info) (held *Info, sure bool) {
	bindBatch := t.sent + 1
	for info != nil {
		switch {
		case info.confirmed:
			info.prev = nil // settled: what came before no longer matters
			if info.closed {
				return nil, true
			}
			return info, true
		case info.batch > t.done:
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
			// An unanswered Parse of the unnamed statement: one that
			// failed dropped it, but one the server skipped after an
			// earlier error of its batch left the one before, which may
			// be of another policy or viewer. Not known: closed first.
			return nil, false
		}
	}
	return nil, false
}

// PortalAct returns the change of the acting user an Execute of portal
// would make, as far as the tracker knows now, nil for none; it changes
// nothing (an event loop asks before handling the Execute, see OnExecute).
func (t *Tracker) PortalAct(portal string) *rewrite.Act {
	portal = ServerName(portal)
	t.mu.Lock()
	defer t.mu.Unlock()
	run := t.portals[portal]
	if t.versions != nil {
		for run != nil && !run.confirmed && run.batch <= t.done {
			run = run.prev
		}
	}
	if run == nil || run.closed || run.Info == nil || run.Info.Result == nil {
		return nil
	}
	return run.Info.Result.Act
}
