package proxy

import (
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// The session's side of the statement tracker (proxy/statement): the
// tracker decides under its lock, the session acts after it (writes
// upstream, refusals, audit records).

// noteStatement shows the tracker, if any, a statement the client relay
// is about to send upstream (OnStatement).
func (ss *session) noteStatement(st *Statement, res *rewrite.Result, refusal *Refusal) {
	if ss.track != nil {
		ss.track.OnStatement(st, res, refusal)
	}
}

// trackPeek shows the tracker the names a Bind, Execute or Close message
// starts with, read whole whatever their length, and forwards the
// message; a Bind of a statement prepared under an older policy first
// prepares it again (trackBind), and an Execute of a portal bound under
// one is refused (trackExecute). A message too short for its names goes
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
		params := ""
		if max := ss.srv.auditParams; max > 0 && len(b) < total {
			// NOTE: the values' head only: the rest streams.
			names := len(b)
			if b, err = ss.cin.PeekAtMost(total, names+maxParamsPeek); err != nil {
				return err
			}
			body = b[wire.HeaderLen:]
			params = bindParams(b[names:], max)
		}
		portal, rest, ok := cstringAs(body, ss.bindPortal)
		name, _, ok2 := cstringAs(rest, ss.bindStmt)
		ss.bindPortal, ss.bindStmt = portal, name
		ss.texts.bind(ss.sent.Load()+1, name)
		if err := ss.trackBind(portal, name, params, ok && ok2); err != nil {
			return err
		}
	case 'E':
		if portal, _, ok := cstring(body); ok {
			return ss.trackExecute(portal, total)
		}
	case 'C':
		var kind byte
		name, ok := "", false
		if len(body) >= 2 {
			kind = body[0]
			name, _, ok = cstring(body[1:])
		}
		t.OnClose(kind, name, ok)
	}
	return ss.forwardNamed(typ, total)
}

// cstringAs is cstring, returning last when the string is the same:
// no string is made for it.
func cstringAs(b []byte, last string) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			if string(b[:i]) == last {
				return last, b[i+1:], true
			}
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// trackBind carries out the tracker's plan for a Bind of portal to
// statement name (OnBind): it sends the messages that prepare the
// statement again, checking its text under the policy in force first
// when needed, or the refusal of that text in the Bind's place.
func (ss *session) trackBind(portal, name, params string, ok bool) error {
	t := ss.track
	plan := t.OnBindParams(portal, name, params, ok)
	if plan.Again == nil {
		return ss.inject(plan.Inject)
	}
	st := plan.Again
	// NOTE: rewriteNow: on an event loop, a text the caches cannot
	// answer waits for the login's parse slot on a worker, not on the
	// loop every session of it shares (OnBind changed nothing for this
	// plan, so the worker starts the Bind over).
	res, rerr := ss.rewriteNow(st)
	if rerr == errDeferred {
		return rerr
	}
	var r *Refusal
	if rerr != nil {
		res, r = nil, asRefusal(rerr)
		if r.EndsTransaction && ss.surelyInBlock(0) {
			// As relayParse prepares it: its Execute ends the block.
			res, st.Replaces, r = ss.rollbackResult(r), r, nil
		}
	}
	if err := ss.inject(t.OnReprepared(portal, st, res, r)); err != nil {
		return err
	}
	if r != nil {
		// Closed, then refused: the refusal's marker fails in the
		// Bind's place, and nothing stays under the name. (The Bind
		// follows it upstream, skipped after its error: the marker is
		// one extended message more, ext_skip.go.)
		ss.extSkips.message()
		return ss.refuse(SourceParse, name, r)
	}
	return nil
}

// trackExecute follows an Execute of portal, a message of total bytes:
// it is refused when the tracker refuses it (OnExecute) or when it would
// change the acting user at the wrong time; otherwise it is forwarded,
// and in both cases the tracker is told (OnExecuteDecided).
func (ss *session) trackExecute(portal string, total int) error {
	t := ss.track
	if ss.lp != nil && ss.lp.inline {
		if a := t.PortalAct(portal); a != nil && ss.actWouldLookUp(a.Login) {
			// Its switch waits for the directory: on a worker, not on
			// the loop (nothing was read or changed yet).
			return errDeferred
		}
	}
	gen := ss.actTrack.gen.Load()
	p := t.OnExecute(portal)
	r := p.Refusal
	info := p.Info
	var act *rewrite.Act
	batch := ss.sent.Load() + 1
	var res *rewrite.Result
	if p.Bound {
		res = info.Result
	}
	if r == nil && p.Bound && info.Replaced != nil && !ss.surelyInBlock(1) {
		// A rollbackMarker maybe outside a transaction block: PostgreSQL
		// only warns there, and the refused statement would seem to
		// have run. (The one Execute of the batch is this one.)
		r = info.Replaced
	}
	if r == nil {
		r = ss.auditUnavailable(res)
	}
	if r == nil && res != nil && res.Act != nil {
		act = res.Act
		if r = ss.mayAct(act); r == nil {
			r = ss.switchReady(true)
		}
	}
	if r == nil && act == nil {
		r = ss.actGate(res, batch, gen)
		if r == nil && p.Bound {
			// A RESET ALL while acting for a user ends it, as a switch.
			if act = ss.resetAct(res); act != nil {
				if r = ss.mayAct(act); r == nil {
					r = ss.switchReady(true)
				}
			}
		}
	}
	// NOTE: counted once this Execute's switch was checked and made. A
	// BEGIN does not count (see rewrite.Result.Begins).
	if !p.Bound || info.Result == nil || !info.Result.Begins {
		defer func() { ss.othersInBatch++ }()
	} else {
		defer func() { ss.batchBegins = true }()
	}
	if r != nil {
		if err := ss.cin.Skip(total); err != nil {
			return err
		}
		r = withKind(r, res)
		t.OnExecuteDecided(p, r)
		return ss.refuse(sourceExecute, "", r)
	}
	t.OnExecuteDecided(p, nil)
	ss.noteGated(res, batch)
	ss.noteHolds(res, SourceParse) // the cursors this Execute declares
	ss.pooledExecute(portal, res)
	if act != nil {
		ss.applyAct(act)
	} else if p.Bound {
		ss.discardEnds(info.Result, true)
	}
	ss.noteSavepoints(res, batch)
	return ss.cin.Forward(total, ss.uout)
}

// inject sends msgs upstream in the client's stream, ahead of the
// client's message; the tracker swallows their answers (client relay).
func (ss *session) inject(msgs []pgproto3.FrontendMessage) error {
	for _, m := range msgs {
		switch m.(type) {
		case *pgproto3.Parse, *pgproto3.Bind, *pgproto3.Close, *pgproto3.Describe, *pgproto3.Execute:
			ss.extSkips.message()
		}
		var err error
		if ss.pl != nil {
			// Under the statements' names upstream (pooled_stmt.go).
			switch m := m.(type) {
			case *pgproto3.Parse:
				p := *m
				b, err := ss.pooledParse(&p)
				if err != nil {
					return fmt.Errorf("encoding %T: %w", m, err)
				}
				if err := ss.uout.Write(b); err != nil {
					return err
				}
				continue
			case *pgproto3.Close:
				if m.ObjectType == 'S' {
					c := *m
					// NOTE: the session knows its statements by the
					// name the server keys them by; the tracker sends
					// the client's spelling (a review: a Close of a
					// 64-byte name closed nothing, and a statement
					// refused after a reload ran at its next Bind).
					c.Name = ss.pl.closeStmt(statement.ServerName(m.Name), ss.sent.Load()+1)
					m = &c
				} else {
					ss.pl.mu.Lock()
					ss.pl.noteClose(ss.sent.Load() + 1)
					ss.pl.mu.Unlock()
				}
				if ss.cscratch, err = m.Encode(ss.cscratch[:0]); err != nil {
					return fmt.Errorf("encoding %T: %w", m, err)
				}
				if err := ss.uout.Write(ss.cscratch); err != nil {
					return err
				}
				continue
			}
		}
		if ss.cscratch, err = m.Encode(ss.cscratch[:0]); err != nil {
			return fmt.Errorf("encoding %T: %w", m, err)
		}
		if err := ss.uout.Write(ss.cscratch); err != nil {
			return err
		}
	}
	return nil
}

// staleObjects returns, for a session with a tracker whose policies can
// reload, the refusal of res run in batch at under version, the policy
// in force, when it runs a statement or fetches from a cursor checked
// under another (statement.Tracker.StaleObjects).
func (ss *session) staleObjects(res *rewrite.Result, at int64, version string) *Refusal {
	t := ss.track
	if t == nil || t.Versions() == nil {
		return nil
	}
	return t.StaleObjects(res, at, version)
}
