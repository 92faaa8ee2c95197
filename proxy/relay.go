package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// pendingRefusal is a refusal waiting for its marker's error upstream.
type pendingRefusal struct {
	r *Refusal
	// batch is the number of the ReadyForQuery that closes the batch the
	// marker was sent in.
	batch int64
}

// isCopyFrontend reports whether typ may be sent while in COPY FROM STDIN:
// copy messages, plus Flush and Sync which the server ignores there.
func isCopyFrontend(typ byte) bool {
	switch typ {
	case 'd', 'c', 'f', 'H', 'S':
		return true
	}
	return false
}

// clientRelay moves client messages upstream until the session ends, on
// its own goroutine (the event loop's sessions use clientMessage too).
func (ss *session) clientRelay() sessionEnd {
	for {
		// Before a read that may block, send what is batched: the client may
		// be waiting for answers to it.
		if ss.cin.Buffered() < wire.HeaderLen {
			if err := ss.uout.Flush(); err != nil {
				return ss.upstreamGone(err)
			}
		}
		typ, total, err := ss.cin.Header()
		if err != nil {
			return ss.clientReadFailed(err)
		}
		if e := ss.clientHeader(typ); e != nil {
			return *e
		}
		if e, err := ss.clientMessage(typ, total); e != nil {
			return *e
		} else if err != nil {
			return ss.clientFailed(err)
		}
	}
}

// clientHeader checks the type of the next client message before it is
// read: the end of the session when it must end there.
func (ss *session) clientHeader(typ byte) *sessionEnd {
	if !frontendType(typ) {
		// NOTE: before anything waits for its body, a backend or a
		// skipped batch's end (frontendType).
		e := invalidFrontendType(typ)
		return &e
	}
	if ss.draining.Load() && ss.quiet() {
		e := endAdminShutdown()
		return &e
	}
	if ss.serverCopyIn.Load() && ss.copyStarts.Load() > ss.copyEnds && !isCopyFrontend(typ) {
		e := protocolViolation(fmt.Sprintf("unexpected message type %q during COPY from stdin", typ))
		return &e
	}
	// NOTE: here, not in clientMessage, which an event loop skips for
	// copy data and an Execute it streams (copy_sync.go).
	switch typ {
	case 'Q', 'E':
		if typ == 'E' {
			ss.unsynced.Store(true)
		}
		ss.execsSent++
		done := ss.done.Load()
		quiet := ss.sent.Load() == done && !ss.serverCopyIn.Load()
		ss.copySyncs.run(quiet, ss.copyStarts.Load(), done)
	case 'S', 'H', 'd', 'c', 'f':
	default:
		ss.copySyncs.other()
	}
	if typ != 'S' && typ != 'H' {
		ss.copySyncs.taint()
	}
	return nil
}

// frontendType reports whether typ is the type of a client message
// pgveil accepts after authentication: those clientMessage handles.
//
// NOTE: an event loop checks it before it waits for a message's body:
// PostgreSQL refuses a message of another type at its type byte, and a
// startup packet sent mid-session (a retried SSLRequest) reads as one of
// type 0 announcing a length its client never sends.
func frontendType(typ byte) bool {
	switch typ {
	case 'Q', 'P', 'B', 'E', 'C', 'D', 'H', 'S', 'd', 'c', 'f', 'F', 'X':
		return true
	}
	return false
}

// invalidFrontendType ends a session at a message of a type
// frontendType refuses.
func invalidFrontendType(typ byte) sessionEnd {
	return protocolViolation(fmt.Sprintf("invalid frontend message type %q", typ))
}

// clientMessage handles the next client message, of type typ and total
// bytes. It is the one place that lists every frontend message pgveil
// accepts after authentication. It returns the end of the session when
// the message ends it, or the error that does.
//
// NOTE: an event loop calls it only once the message is buffered whole,
// or is one clientPassThrough streams; the loop's "inline" mode makes a
// statement the Rewriter cannot answer from its caches return
// errDeferred, having consumed nothing, for a worker to handle.
func (ss *session) clientMessage(typ byte, total int) (*sessionEnd, error) {
	var err error
	switch typ {
	case 'Q':
		err = ss.relayQuery(total)
	case 'P':
		err = ss.relayParse(total)
	case 'B', 'E', 'C':
		// Bind, Execute and Close name statements and portals the
		// server already holds; they carry no SQL text. The tracker
		// follows which statement each Execute runs.
		if ss.track != nil {
			err = ss.trackPeek(typ, total)
		} else {
			err = ss.forwardNamed(typ, total)
		}
	case 'D':
		// Describe.
		err = ss.forwardNamed(typ, total)
	case 'H':
		// Flush.
		err = ss.cin.Forward(total, ss.uout)
	case 'S':
		ss.othersInBatch, ss.batchRefused = 0, false
		ss.setPortalsEnd("a Sync")
		ss.actBatchClosed()
		ss.batchSent(true)
		inCopy := ss.serverCopyIn.Load()
		ss.copySyncs.sync(inCopy, ss.copyStarts.Load())
		err = ss.cin.Forward(total, ss.uout)
	case 'd':
		err = ss.cin.Forward(total, ss.uout)
	case 'c', 'f':
		ss.copyEnds++
		// NOTE: serverCopyIn before copyStarts: a COPY the backend relay
		// has seen end may be the last started, never a newer one.
		inCopy := ss.serverCopyIn.Load()
		ss.copySyncs.end(typ == 'c', ss.copyStarts.Load(), inCopy, ss.done.Load())
		err = ss.cin.Forward(total, ss.uout)
	case 'F':
		// The fast-path interface calls a function by OID, bypassing
		// every statement check.
		if err = ss.cin.Skip(total); err == nil {
			ss.batchSent(false)
			r := firewall.New("function_call", "pgveil refused a fast-path function call (FunctionCall message)")
			st := &Statement{Source: SourceQuery, Text: "(fast-path function call)", PolicyVersion: ss.uncheckedVersion()}
			ss.noteStatement(st, nil, r)
			err = ss.refuse(SourceQuery, "", r)
		}
	case 'X':
		if ss.keepable() {
			// NOTE: not forwarded: the backend outlives the session.
			if err = ss.cin.Skip(total); err == nil {
				return &sessionEnd{reason: "client terminated the session", keep: true}, nil
			}
			break
		}
		if err = ss.cin.Forward(total, ss.uout); err == nil {
			err = ss.uout.Flush()
		}
		if err == nil {
			return &sessionEnd{reason: "client terminated the session"}, nil
		}
	default:
		// NOTE: every type frontendType refuses.
		e := invalidFrontendType(typ)
		return &e, nil
	}
	if err == nil {
		ss.noteExtended(typ)
		if e := ss.heldOver(); e != nil {
			return e, nil
		}
	}
	return nil, err
}

// noteExtended counts a client message of type typ written upstream, or
// the refusal's marker written in its place, when it is an
// extended-protocol message the server answers one by one (ext_skip.go).
func (ss *session) noteExtended(typ byte) {
	switch typ {
	case 'P', 'B', 'E', 'C', 'D':
		ss.extSkips.message()
	}
}

// clientPassThrough reports whether a client message of type typ passes
// upstream unread, so that an event loop may stream it as it arrives.
func (ss *session) clientPassThrough(typ byte) bool {
	switch typ {
	case 'd', 'H':
		return true
	case 'D':
		return ss.pl == nil
	case 'B', 'E', 'C':
		return ss.track == nil && ss.pl == nil
	}
	return false
}

// clientFailed classifies an error of clientMessage.
func (ss *session) clientFailed(err error) sessionEnd {
	var ce *clientError
	if errors.As(err, &ce) {
		return sessionEnd{resp: ce.resp, reason: ce.Error(), warn: true}
	}
	if wire.IsWriteErr(err) {
		return ss.upstreamGone(err)
	}
	return ss.clientReadFailed(err)
}

func protocolViolation(msg string) sessionEnd {
	return sessionEnd{resp: fatal(CodeProtocolViolation, msg, ""), reason: msg, warn: true}
}

// clientReadFailed classifies a read error on the client connection.
func (ss *session) clientReadFailed(err error) sessionEnd {
	if errors.Is(err, wire.ErrMessageTooLarge) || errors.Is(err, wire.ErrBadLength) {
		return protocolViolation(err.Error())
	}
	return sessionEnd{reason: "client disconnected", err: quietErr(err)}
}

// upstreamGone ends the session after an upstream write failed.
func (ss *session) upstreamGone(err error) sessionEnd {
	return sessionEnd{
		resp:   fatal(CodeConnectionFailure, "lost connection to the upstream server", ""),
		reason: "upstream connection lost", err: quietErr(err), warn: true,
	}
}

// quietErr drops errors that only say a connection was closed.
func quietErr(err error) error {
	if isClosedConn(err) {
		return nil
	}
	return err
}

// statementText returns the NUL-terminated string at the start of b and
// what follows it.
func cstring(b []byte) (string, []byte, bool) {
	for i, c := range b {
		if c == 0 {
			return string(b[:i]), b[i+1:], true
		}
	}
	return "", nil, false
}

// nulQueryText is what the audit trail records of the text of a Query
// message body refused for a NUL byte inside it, or none at its end: the
// text up to the first NUL, then a comment saying how many bytes were
// not recorded after it. A comment, so that the record's text still
// parses (and its literals can be redacted) when the part kept does.
func nulQueryText(body []byte) string {
	i := bytes.IndexByte(body, 0)
	if i < 0 {
		return string(body) + " /* pgveil: the Query message ended without a NUL byte */"
	}
	return fmt.Sprintf("%s /* pgveil: a NUL byte, then %d more bytes not recorded */", body[:i], len(body)-i-1)
}

// uncheckedVersion is the policy version, acting user included, of a
// statement refused before check (a FunctionCall, a Query holding a NUL
// byte): the version check would have tagged it with, so that its
// record names the end user a BI service's session acts for, and the
// policy in force.
func (ss *session) uncheckedVersion() string {
	if ss.track != nil {
		if v := ss.track.Versions(); v != nil {
			return v.PolicyVersion()
		}
	}
	return versionFor("", ss.actingFor())
}

// relayQuery handles a simple-protocol Query: its text goes through the
// Rewriter, then upstream.
func (ss *session) relayQuery(total int) error {
	msg, err := ss.cin.Message(total)
	if err != nil {
		return err
	}
	defer ss.cin.Release()
	text, rest, ok := cstring(msg[wire.HeaderLen:])
	if !ok || len(rest) != 0 {
		// A NUL inside the text, or none at its end: PostgreSQL answers
		// ERROR and goes on, the message's length being sound; so does
		// pgveil, through the refusal marker, so that a transaction
		// block aborts upstream as the client is told it did.
		ss.batchSent(false)
		st := &Statement{Source: SourceQuery, Text: nulQueryText(msg[wire.HeaderLen:]), PolicyVersion: ss.uncheckedVersion()}
		r := &Refusal{Code: CodeProtocolViolation, Rule: "syntax", Message: "invalid message format: Query (a NUL byte inside the statement text, or none at its end)"}
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceQuery, "", r)
	}
	st := &Statement{Source: SourceQuery, Text: text}
	gen := ss.actTrack.gen.Load()
	res, rerr := ss.rewriteNow(st)
	if rerr == errDeferred {
		ss.cin.Unread(total)
		return rerr
	}
	ss.batchSent(false)
	ss.setPortalsEnd("a Query")
	// NOTE: after actGate: a Query after an Execute ending a transaction
	// without a Sync between is of the same batch.
	defer ss.actBatchClosed()
	if rerr != nil {
		r := asRefusal(rerr)
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceQuery, "", r)
	}
	if r := ss.auditUnavailable(res); r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceQuery, "", r)
	}
	if r := ss.staleObjects(res, ss.sent.Load(), st.PolicyVersion); r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceQuery, "", r)
	}
	dealloc, r := ss.poolRefusal(res, SourceQuery, "")
	if r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceQuery, "", r)
	}
	batch := ss.sent.Load()
	if r := ss.actGate(res, batch, gen); r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceQuery, "", r)
	}
	// NOTE: r is nil here (poolRefusal's, which refused otherwise).
	act := res.Act
	if act == nil {
		if act = ss.resetAct(res); act != nil {
			r = resetEndsText(res)
		}
	}
	if act != nil {
		if r == nil {
			r = ss.mayAct(act)
		}
		if r == nil {
			r = ss.switchReady(false)
		}
		if r != nil {
			r = withKind(r, res)
			ss.noteStatement(st, nil, r)
			return ss.refuse(SourceQuery, "", r)
		}
	}
	if dealloc != nil && dealloc.sql != res.SQL {
		// The audit records the text forwarded: the DEALLOCATEs name
		// the statements upstream. A copy: res may be the engine's.
		c := *res
		c.SQL, c.Rewritten = dealloc.sql, true
		res = &c
	}
	ss.noteStatement(st, res, nil)
	ss.notePoolState(res, SourceQuery, "")
	ss.dropUnnamed()
	ss.noteGated(res, batch)
	if act != nil {
		ss.applyAct(act)
	} else {
		ss.discardEnds(res, false)
	}
	ss.noteSavepoints(res, batch)
	out := res.SQL
	if dealloc != nil {
		if err := ss.applyDeallocate(dealloc); err != nil {
			return err
		}
		out = dealloc.sql
	}
	ss.texts.note(ss.sent.Load(), queryName, text, out)
	for _, o := range res.Objects {
		if o.Op == "execute" || o.Op == "fetch" {
			ss.texts.opaque(ss.sent.Load())
			break
		}
	}
	if out == text {
		return ss.uout.Write(msg)
	}
	ss.cscratch, err = (&pgproto3.Query{String: out}).Encode(ss.cscratch[:0])
	if err != nil {
		return fmt.Errorf("encoding rewritten query: %w", err)
	}
	return ss.uout.Write(ss.cscratch)
}

// relayParse handles an extended-protocol Parse: its text goes through the
// Rewriter, then upstream under the same statement name.
func (ss *session) relayParse(total int) error {
	msg, err := ss.cin.Message(total)
	if err != nil {
		return err
	}
	defer ss.cin.Release()
	var p pgproto3.Parse
	if err := p.Decode(msg[wire.HeaderLen:]); err != nil {
		return fatalErr(CodeProtocolViolation, "invalid message format: Parse", "", err)
	}
	st := &Statement{Source: SourceParse, Text: p.Query, Name: p.Name, ParamOIDs: p.ParameterOIDs}
	gen := ss.actTrack.gen.Load()
	res, rerr := ss.rewriteNow(st)
	if rerr == errDeferred {
		ss.cin.Unread(total)
		return rerr
	}
	if rerr != nil {
		r := asRefusal(rerr)
		if !r.EndsTransaction || !ss.surelyInBlock(0) {
			ss.noteStatement(st, nil, r)
			return ss.refuse(SourceParse, p.Name, r)
		}
		res = ss.rollbackResult(r)
		st.Replaces = r
	}
	if r := ss.staleObjects(res, ss.sent.Load()+1, st.PolicyVersion); r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceParse, p.Name, r)
	}
	if _, r := ss.poolRefusal(res, SourceParse, p.Name); r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceParse, p.Name, r)
	}
	if r := ss.pooledStmtCap(statement.ServerName(p.Name), len(res.SQL)); r != nil {
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceParse, p.Name, r)
	}
	if gen != ss.actTrack.gen.Load() {
		// Checked for one viewer, recorded for another (actGate).
		r := withKind(ActRefusal("the acting user changed while the statement was checked (a transaction that changed it ended): send it again"), res)
		ss.noteStatement(st, nil, r)
		return ss.refuse(SourceParse, p.Name, r)
	}
	if res.Act != nil {
		// Checked now for a clear error; made at its Execute.
		if r := ss.mayAct(res.Act); r != nil {
			r = withKind(r, res)
			ss.noteStatement(st, nil, r)
			return ss.refuse(SourceParse, p.Name, r)
		}
	} else if res.Begins {
		ss.batchBegins = true
	} else if !discardsAll(res) && !resetsAll(res) {
		// NOTE: a RESET ALL may end acting for a user at its Execute
		// (resetAct), as a switch does: its Parse does not count either.
		ss.othersInBatch++
	}
	ss.noteStatement(st, res, nil)
	ss.notePoolState(res, SourceParse, p.Name)
	out := res.SQL
	ss.texts.note(ss.sent.Load()+1, p.Name, p.Query, out)
	if ss.pl != nil {
		// Under the statement's name upstream (pooled_stmt.go).
		p.Query = out
		b, err := ss.pooledParse(&p)
		if err != nil {
			return fmt.Errorf("encoding rewritten parse: %w", err)
		}
		if p.Name == "" && deallocatesAll(res) {
			ss.noteDeallocateAll()
		}
		return ss.uout.Write(b)
	}
	if out == p.Query {
		return ss.uout.Write(msg)
	}
	p.Query = out
	ss.cscratch, err = p.Encode(ss.cscratch[:0])
	if err != nil {
		return fmt.Errorf("encoding rewritten parse: %w", err)
	}
	return ss.uout.Write(ss.cscratch)
}

// batchSent counts a batch boundary sent upstream (Query, Sync, refused
// FunctionCall) and notes when, for the upstream latency metric; sync
// tells a Sync from a Query (the client's or a refusal's marker), which a
// failed extended batch skips (ext_skip.go).
func (ss *session) batchSent(sync bool) {
	n := ss.sent.Add(1)
	// NOTE: after sent: see session.unsynced.
	ss.unsynced.Store(false)
	ss.batchExecs[n%int64(len(ss.batchExecs))] = ss.execsSent
	ss.extSkips.boundary(n, sync)
	if ss.srv.metrics != nil {
		ss.batchTimes[n%int64(len(ss.batchTimes))].Store(time.Now().UnixNano())
	}
	if ss.track != nil {
		if !sync && !ss.extSkips.window {
			// A Query with no extended message since the last Sync: it
			// gets its own ReadyForQuery (statement/held.go).
			ss.track.OnSimpleBatchClosed(n)
		} else {
			ss.track.OnBatchClosed(n)
		}
	}
}

// errDeferred is rewriteNow's answer, in an event loop's inline mode, for
// a statement the Rewriter cannot answer from its caches: the message is
// left unread for a worker goroutine.
var errDeferred = errors.New("statement deferred to a worker")

// rewriteNow is rewrite, except that in an event loop's inline mode a
// statement the Rewriter would have to parse is left for a worker: it
// returns errDeferred, having changed nothing.
func (ss *session) rewriteNow(st *Statement) (*rewrite.Result, error) {
	return ss.check(st, ss.lp != nil && ss.lp.inline)
}

// rewrite runs the Rewriter on st, refusing text PostgreSQL would read
// differently from pgveil.
func (ss *session) rewrite(st *Statement) (*rewrite.Result, error) {
	return ss.check(st, false)
}

// check is rewrite, answered from the Rewriter's caches alone when
// cachedOnly is set: errDeferred when they cannot answer.
func (ss *session) check(st *Statement, cachedOnly bool) (*rewrite.Result, error) {
	var cr cachedRewriter
	if cachedOnly {
		var ok bool
		if cr, ok = ss.srv.rewriter.(cachedRewriter); !ok {
			return nil, errDeferred
		}
	}
	var began time.Time
	if ss.srv.metrics != nil {
		began = time.Now()
	}
	info, gen := ss.rewriterInfo()
	var res *rewrite.Result
	var err error
	if cachedOnly {
		var hit bool
		if res, hit, err = cr.RewriteCached(info, st); !hit {
			return nil, errDeferred
		}
		if err == nil && res.Act != nil && ss.actWouldLookUp(res.Act.Login) {
			// The switch waits for the directory: on a worker, not on
			// the loop every session of it shares.
			return nil, errDeferred
		}
		if err == nil && res.Act != nil && res.Act.Login != "" && res.Act.Login == ss.info.User {
			// rewrite.ActToLogin parses: on a worker.
			return nil, errDeferred
		}
	} else {
		res, err = ss.srv.rewriter.Rewrite(ss.ctx, info, st)
	}
	if ce := ss.log.Check(zap.DebugLevel, "statement"); ce != nil {
		ce.Write(zap.String("source", string(rune(st.Source))), zap.String("sql", st.Text))
	}
	// A statement checked for an end user, or under directory groups a
	// reload read again, is of that user's and those groups' version.
	st.PolicyVersion = versionFor(groupsVersion(st.PolicyVersion, gen), ss.actingFor())
	if ss.srv.metrics != nil {
		ss.srv.metrics.statement(err == nil && res.Rewritten, err != nil, time.Since(began))
	}
	if err != nil {
		// The text may hold personal data in its literals: it is logged at
		// debug level only (the audit trail will record it, redactable).
		ss.log.Info("statement refused", zap.Error(err))
		if ce := ss.log.Check(zap.DebugLevel, "refused statement text"); ce != nil {
			ce.Write(zap.String("sql", st.Text))
		}
		return nil, err
	}
	if res.Act != nil && res.Act.Login != "" && res.Act.Login == ss.info.User {
		// SET ROLE <its own login>: forwarded as SET ROLE NONE is.
		if res, err = rewrite.ActToLogin(res); err != nil {
			return nil, ActRefusal(err.Error())
		}
	}
	if strings.IndexByte(res.SQL, 0) >= 0 {
		return nil, &Refusal{Code: CodeProtocolViolation, Message: "pgveil refused a statement containing a NUL byte", Rule: "syntax"}
	}
	if len(res.Tables) > 0 && !ss.governed.Load() {
		// Before the statement goes upstream: its triggers may speak.
		ss.governed.Store(true)
	}
	return res, nil
}

// refuse sends upstream, in place of the refused message, a statement
// that fails with a marker error; the backend relay replaces that error
// with r. Going through the server keeps PostgreSQL's own semantics for
// the refusal: its position among pipelined results, the aborted
// transaction, and the skipping of extended-protocol messages up to Sync.
//
// NOTE: the marker text holds only pgveil's own nonce and a counter, never
// client input. It names a relation in pg_catalog, where no unprivileged
// role can create one, so it always fails with 42P01.
func (ss *session) refuse(src Source, name string, r *Refusal) error {
	batch := ss.sent.Load()
	if src != SourceQuery {
		// A Parse or an Execute belongs to the batch its next Sync
		// closes.
		batch++
		ss.batchRefused = true
	}
	seq := ss.pendRefusal(r, batch)

	marker := "SELECT FROM pg_catalog." + ss.markerPrefix + strconv.FormatUint(seq, 10)
	if src == SourceQuery && r.EndsTransaction {
		// The failing PREPARE TRANSACTION first: PostgreSQL ends the
		// block with it, open or aborted, as the client's would have.
		marker = rollbackMarker(ss.markerPrefix, seq) + "; " + marker
	}
	if src == SourceQuery || src == SourceParse && name == "" {
		// The marker's Query, or its failed Parse, drops the unnamed
		// statement upstream.
		ss.dropUnnamed()
	}
	if src == SourceParse && name == "" && ss.pl != nil {
		// NOTE: a Bind of the unnamed statement then runs no SET or
		// RESET parsed earlier: it fails upstream or, when the server
		// skipped the marker after an error, the tracker refuses it as
		// the refused statement's. A PgJDBC session (Metabase) refused
		// once after a switch keeps no backend (bindUnnamed). Not for a
		// Query (dropUnnamed).
		ss.pl.unnamedSet = 0
	}
	var err error
	switch src {
	case SourceParse:
		if ss.pl != nil && name != "" {
			// A name of the session's own, which no statement has: the
			// client's may be another session's upstream.
			name = ss.pl.prefix + "refused"
		}
		ss.cscratch, err = (&pgproto3.Parse{Name: name, Query: marker}).Encode(ss.cscratch[:0])
	case sourceExecute:
		// An Execute of a portal that cannot exist fails with 34000,
		// naming the marker.
		ss.cscratch, err = (&pgproto3.Execute{Portal: ss.markerPrefix + strconv.FormatUint(seq, 10)}).Encode(ss.cscratch[:0])
	default:
		ss.cscratch, err = (&pgproto3.Query{String: marker}).Encode(ss.cscratch[:0])
	}
	if err != nil {
		return fmt.Errorf("encoding refusal marker: %w", err)
	}
	return ss.uout.Write(ss.cscratch)
}

// pendRefusal numbers r, refused in batch, and keeps it until the
// upstream's answer to its marker names that number (takeRefusal).
func (ss *session) pendRefusal(r *Refusal, batch int64) uint64 {
	ss.refSeq++
	seq := ss.refSeq
	ss.refMu.Lock()
	defer ss.refMu.Unlock()
	ss.refusals[seq] = pendingRefusal{r: r, batch: batch}
	ss.refOrder = append(ss.refOrder, refusalRef{seq: seq, batch: batch})
	ss.refusalsPeak = max(ss.refusalsPeak, len(ss.refusals))
	if len(ss.refusals) > statement.MaxHeldMessages {
		ss.overHeld = true
	}
	return seq
}

// gidSize is PostgreSQL's GIDSIZE: a PREPARE TRANSACTION whose
// identifier is that long or longer always fails.
const gidSize = 200

// rollbackMarker is a PREPARE TRANSACTION that always fails, naming the
// refusal seq, in place of a refused one (Refusal.EndsTransaction).
// PostgreSQL checks the identifier's length when the transaction is
// already ending: in a transaction block, the block is rolled back, and
// the error names the marker (22023); in an aborted block it is a
// ROLLBACK; outside a block, in the implicit block of a Query of several
// statements, it fails the same way.
//
// NOTE: only pgveil's nonce, a counter and padding: never client input.
// Padded past gidSize, it can never prepare a transaction, whatever
// max_prepared_transactions is.
func rollbackMarker(prefix string, seq uint64) string {
	gid := prefix + strconv.FormatUint(seq, 10) + "_"
	if n := gidSize - len(gid); n > 0 {
		gid += strings.Repeat("x", n)
	}
	return "PREPARE TRANSACTION '" + gid + "'"
}

// rollbackResult is what a Parse of a refused statement that must end
// the transaction (Refusal.EndsTransaction) prepares upstream: the
// rollbackMarker of a refusal registered as refuse does, which fails at
// its Execute as the client's statement would have. A failing Parse
// would leave the block open and aborted.
func (ss *session) rollbackResult(r *Refusal) *rewrite.Result {
	// Its batch is the Parse's: executed in a later one, the marker
	// still fails, as a refusal of no rule (takeRefusal).
	ss.batchRefused = true
	seq := ss.pendRefusal(r, ss.sent.Load()+1)
	return &rewrite.Result{SQL: rollbackMarker(ss.markerPrefix, seq), Rewritten: true, Kinds: []string{"transaction"},
		EndsTransaction: true, TransactionEnd: rewrite.EndRollback}
}

// surelyInBlock reports that the session is in a transaction block,
// open or aborted, now that the client relay has read execs Executes of
// its own since the last batch answered: its last ReadyForQuery said so,
// and no other Execute or Query sent since can have ended the block.
//
// NOTE: a rollbackResult goes upstream only then. Outside a block,
// PostgreSQL answers an extended-protocol PREPARE TRANSACTION with a
// warning and ROLLBACK, no error: the refused statement would seem to
// have run. When in doubt (an Execute or a Query since, a BEGIN among
// them), the ordinary marker fails it, leaving a block, if any, open and
// aborted. done before txStatus: the status is then that of batch done
// or a later one, whose Executes count too.
func (ss *session) surelyInBlock(execs int) bool {
	done := ss.done.Load()
	if ss.txStatus.Load() == 'I' || done == 0 || ss.sent.Load()-done >= int64(len(ss.batchExecs)) {
		return false
	}
	return ss.execsSent-ss.batchExecs[done%int64(len(ss.batchExecs))] <= int64(execs)
}

// takeRefusal returns the refusal numbered by the marker named in msg.
func (ss *session) takeRefusal(msg string) (*Refusal, bool) {
	i := strings.Index(msg, ss.markerPrefix)
	if i < 0 {
		return nil, false
	}
	digits := msg[i+len(ss.markerPrefix):]
	j := 0
	for j < len(digits) && digits[j] >= '0' && digits[j] <= '9' {
		j++
	}
	seq, err := strconv.ParseUint(digits[:j], 10, 64)
	ss.refMu.Lock()
	defer ss.refMu.Unlock()
	p, ok := ss.refusals[seq]
	if err != nil || !ok {
		// A marker error always becomes a refusal; never forward it.
		return &Refusal{Code: CodeInsufficientPrivilege, Message: "pgveil refused the statement"}, true
	}
	delete(ss.refusals, seq)
	return p.r, true
}

// keepRefusals is the most refusals the map may have held and keep its
// space once empty.
const keepRefusals = 1024

// refusalRef is a refusal of refOrder: its number and its batch.
type refusalRef struct {
	seq   uint64
	batch int64
}

// forgetRefusals drops refusals whose batch has been answered.
func (ss *session) forgetRefusals(done int64) {
	ss.refMu.Lock()
	n := 0
	for n < len(ss.refOrder) && ss.refOrder[n].batch <= done {
		delete(ss.refusals, ss.refOrder[n].seq)
		n++
	}
	ss.refOrder = statement.DropFront(ss.refOrder, n)
	if len(ss.refusals) == 0 && ss.refusalsPeak > keepRefusals {
		// A failed batch the client kept sending refused statements to:
		// the session does not keep the map's space.
		ss.refusals, ss.refusalsPeak = map[uint64]pendingRefusal{}, 0
	}
	ss.refMu.Unlock()
}

// backendRelay moves upstream messages to the client until the session
// ends, on its own goroutine (the event loop's sessions use
// upstreamHeader and upstreamMessage too).
func (ss *session) backendRelay() sessionEnd {
	e, _ := ss.relayBackend()
	return e
}

// relayBackend is backendRelay; in a transaction-mode session it returns
// detached, and no end, once the session let its backend go (detach).
func (ss *session) relayBackend() (_ sessionEnd, detached bool) {
	for {
		if ss.uin.Buffered() < wire.HeaderLen {
			ss.coutMu.Lock()
			err := ss.cout.Flush()
			ss.coutMu.Unlock()
			if err != nil {
				return ss.clientWriteFailed(err), false
			}
		}
		typ, total, err := ss.uin.Header()
		if err != nil && ss.pl != nil && ss.pl.woken.Swap(false) && isTimeout(err) {
			// Woken by the client relay (wakeParked): try again.
			ss.pl.mu.Lock()
			if b := ss.pl.b; b != nil {
				_ = b.up.conn.SetReadDeadline(time.Time{})
			}
			ss.pl.mu.Unlock()
			if ss.detach() {
				ss.coutMu.Lock()
				err := ss.cout.Flush()
				if err == nil {
					ss.cout.Idle()
				}
				ss.coutMu.Unlock()
				if err != nil {
					return ss.clientWriteFailed(err), false
				}
				return sessionEnd{}, true
			}
			continue
		}
		if err != nil {
			return ss.upstreamReadFailed(err), false
		}
		if pl := ss.pl; pl != nil {
			if pl.swallow > 0 {
				// The answers to prepareOnTake's batch.
				if err := ss.swallowTaken(typ, total); err != nil {
					return ss.upstreamReadFailed(err), false
				}
				continue
			}
			if ss.pooledNote(typ) {
				// A ParseComplete the client did not ask for.
				if err := ss.uin.Skip(total); err != nil {
					return ss.upstreamReadFailed(err), false
				}
				continue
			}
		}
		how, e := ss.upstreamHeader(typ, total)
		switch how {
		case upstreamEnds:
			return *e, false
		case upstreamDecode:
			msg, err := ss.uin.Message(total)
			if err != nil {
				return ss.upstreamReadFailed(err), false
			}
			e, err := ss.upstreamMessage(typ, msg)
			ss.uin.Release()
			if err != nil {
				return ss.clientWriteFailed(err), false
			}
			if e != nil {
				return *e, false
			}
			if typ == 'Z' && ss.pl != nil {
				ss.onBatchAnswered(ss.done.Load())
			}
			if typ == 'Z' && ss.pl != nil && ss.detach() {
				ss.coutMu.Lock()
				err := ss.cout.Flush()
				if err == nil {
					ss.cout.Idle()
				}
				ss.coutMu.Unlock()
				if err != nil {
					return ss.clientWriteFailed(err), false
				}
				return sessionEnd{}, true
			}
			continue
		case upstreamSkip:
			if err := ss.uin.Skip(total); err != nil {
				return ss.upstreamReadFailed(err), false
			}
			continue
		}
		ss.coutMu.Lock()
		err = ss.uin.Forward(total, ss.cout)
		ss.coutMu.Unlock()
		if err != nil {
			if wire.IsWriteErr(err) {
				return ss.clientWriteFailed(err), false
			}
			return ss.upstreamReadFailed(err), false
		}
	}
}

// isTimeout reports a deadline's error.
func isTimeout(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) && ne.Timeout()
}

// upstreamHow says what becomes of an upstream message.
type upstreamHow int

const (
	// upstreamForward passes the message to the client undecoded.
	upstreamForward upstreamHow = iota
	// upstreamDecode reads it whole for upstreamMessage.
	upstreamDecode
	// upstreamSkip drops it: the answer to a message pgveil added.
	upstreamSkip
	// upstreamEnds ends the session.
	upstreamEnds
)

// upstreamHeader decides, from its type and size, what becomes of the
// next upstream message, and notes what its start changes. It is the one
// place that lists the backend messages pgveil looks at; every other
// message is forwarded without being decoded.
func (ss *session) upstreamHeader(typ byte, total int) (upstreamHow, *sessionEnd) {
	how := upstreamForward
	switch typ {
	case 'Z', 'E', 'S':
		// ReadyForQuery, ErrorResponse, ParameterStatus: decoded.
		if total > maxDecodedUpstream {
			return upstreamEnds, &sessionEnd{resp: fatal(CodeProtocolViolation, "upstream sent an oversized message", ""),
				reason: "oversized upstream message", warn: true}
		}
		if typ == 'E' {
			ss.extSkips.answer(typ)
		}
		return upstreamDecode, nil
	case 'N':
		// NoticeResponse: decoded, to be scrubbed as an error is
		// (onNotice). Notices are rare and small; one too large to
		// decode is dropped, unread (fail closed).
		if ss.srv.scrub {
			how = upstreamDecode
			if total > maxDecodedUpstream {
				how = upstreamSkip
			}
		}
	case 'G':
		// CopyInResponse: the client may now send copy data only.
		ss.copyStarts.Add(1)
		ss.serverCopyIn.Store(true)
	case 'C':
		// CommandComplete ends a COPY FROM STDIN too: a COPY that
		// succeeded ignored the Syncs sent within it (copy_sync.go).
		if ss.serverCopyIn.Swap(false) {
			ss.copySyncs.copyEnded(ss.copyStarts.Load(), true)
		}
		if ss.decodesTag(total) {
			// Its tag may end a transaction block whose settings a
			// transaction-mode session awaits (pooled_settings.go).
			how, ss.tagFor = upstreamDecode, tagWatched
		} else {
			ss.tagUnread()
		}
		if ss.track != nil && ss.auditsTag(total) {
			// Its tag says the rows a write changed, for its audit
			// record: upstreamMessage accounts it, tag and all.
			// NOTE: upstreamMessage clears tagFor.
			ss.tagFor |= tagAudited
			return upstreamDecode, nil
		}
	case 'W':
		return upstreamEnds, &sessionEnd{resp: fatal(CodeFeatureNotSupported, "COPY BOTH is not supported through pgveil", ""),
			reason: "upstream started COPY BOTH", warn: true}
	case 'R', 'K', 'v':
		return upstreamEnds, &sessionEnd{resp: fatal(CodeProtocolViolation, "unexpected message from the upstream server", ""),
			reason: fmt.Sprintf("unexpected upstream message %q", typ), warn: true}
	}
	// Everything else — DataRow, RowDescription, CommandComplete,
	// CopyData, notifications, notices when nothing is scrubbed… —
	// passes through undecoded.
	ss.extSkips.answer(typ)
	if t := ss.track; t != nil {
		swallow, done := t.OnAnswer(typ, total, "", "", false)
		if done != nil {
			ss.finish(done, "")
		}
		if swallow {
			// The answer to a Close or Parse pgveil added.
			return upstreamSkip, nil
		}
	}
	ss.bytesOut += int64(total)
	return how, nil
}

// tagReason says why the backend relay decodes a CommandComplete.
type tagReason uint8

const (
	// tagWatched: for the end of a transaction (watchesTags).
	tagWatched tagReason = 1 << iota
	// tagAudited: for the rows a write changed (auditsTag).
	tagAudited
)

// auditsTag reports whether the backend relay decodes a CommandComplete
// of total bytes for the audit trail: in an audited session, when it
// ends an execution of a write (statement.Tracker.WantsTag), and on an
// event loop only when it is buffered whole. Unaudited sessions, and
// every other CommandComplete, pay nothing more.
func (ss *session) auditsTag(total int) bool {
	t := ss.track
	return t != nil && t.Audit() && total <= maxDecodedUpstream && (ss.lp == nil || ss.uin.Buffered() >= total) && t.WantsTag()
}

// auditsTags reports whether an event loop waits for a CommandComplete
// to be buffered whole, for auditsTag to decide on it: in an audited
// session (no lock: a CommandComplete is small).
func (ss *session) auditsTags() bool {
	t := ss.track
	return t != nil && t.Audit()
}

// auditTag accounts msg, a CommandComplete upstreamHeader left to
// upstreamMessage (tagAudited), to the execution it ends, with the rows
// its tag says a write changed.
func (ss *session) auditTag(msg []byte) {
	ss.extSkips.answer('C')
	tag, _, _ := bytes.Cut(msg[wire.HeaderLen:], []byte{0})
	if done := ss.track.OnCommandComplete(len(msg), tag); done != nil {
		ss.finish(done, "")
	}
	ss.bytesOut += int64(len(msg))
}

// upstreamMessage handles a message upstreamHeader chose to decode, msg
// (header included): the end of the session when it ends it, or an error
// writing to the client.
func (ss *session) upstreamMessage(typ byte, msg []byte) (*sessionEnd, error) {
	switch typ {
	case 'Z':
		return ss.onReadyForQuery(msg)
	case 'E':
		return nil, ss.onError(msg)
	case 'N':
		return nil, ss.onNotice(msg)
	case 'C':
		why := ss.tagFor
		ss.tagFor = 0
		if why&tagAudited != 0 {
			ss.auditTag(msg)
		}
		if why&tagWatched != 0 {
			ss.onCommandComplete(msg)
		}
		return nil, ss.writeClient(msg)
	default:
		return ss.onParameterStatus(msg)
	}
}

// writeClient writes one message to the client under coutMu.
func (ss *session) writeClient(b []byte) error {
	ss.coutMu.Lock()
	defer ss.coutMu.Unlock()
	return ss.cout.Write(b)
}

// settleCopy closes, in session mode, the n batches a failed COPY left
// in doubt (copy_sync.go), and marks the backend spoiled: it may still
// answer them. It returns the batches answered (backend relay).
func (ss *session) settleCopy(n int64) int64 {
	ss.cancelMu.Lock()
	ss.spoiled = true
	ss.cancelMu.Unlock()
	done, finished := ss.closeDoubt(n)
	ss.settled(finished)
	return done
}

// closeDoubt closes the n batches of a failed COPY's doubt: the doubt is
// used up, done counts them, and the tracker too, whose finished
// executions it returns for settled. In transaction mode letGo calls it
// under the link's lock, in the step that takes the spoiled backend away.
//
// NOTE: all of it at once, before anyone else reads the doubt: a relay of
// the session's next backend, at its first ReadyForQuery, would otherwise
// find the same doubt and close more batches than were sent (review).
func (ss *session) closeDoubt(n int64) (int64, []statement.Finished) {
	ss.copySyncs.forget()
	var finished []statement.Finished
	if t := ss.track; t != nil {
		finished = t.OnReadyForQuery(0, n, byte(ss.txStatus.Load()))
	}
	return ss.done.Add(n), finished
}

// settled audits what closeDoubt finished, and says why the backend goes.
func (ss *session) settled(finished []statement.Finished) {
	for _, f := range finished {
		ss.finish(f.Exec, f.Note)
	}
	ss.log.Info("a failed COPY left Syncs the server may or may not answer: its upstream connection will not be reused")
}

// onReadyForQuery closes a batch.
func (ss *session) onReadyForQuery(msg []byte) (*sessionEnd, error) {
	ss.serverCopyIn.Store(false)
	if len(msg) > wire.HeaderLen {
		ss.txStatus.Store(uint32(msg[wire.HeaderLen]))
		if ss.actTrack.watching.Load() {
			ss.actSettle(msg[wire.HeaderLen])
		}
	}
	// The batches of the Syncs a COPY ignored close with this one, and
	// those of the Queries a failed extended batch skipped.
	unanswered := ss.sent.Load() - ss.done.Load()
	batches := ss.copySyncs.answered(unanswered)
	if n := ss.extSkips.closes(ss.done.Load(), unanswered); n > batches {
		batches = n
	}
	if t := ss.track; t != nil {
		for _, f := range t.OnReadyForQuery(len(msg), batches, byte(ss.txStatus.Load())) {
			ss.finish(f.Exec, f.Note)
		}
	}
	done := ss.done.Add(batches)
	if ss.actTrack.watching.Load() {
		ss.actSavesAnswered(done)
	}
	// NOTE: a transaction-mode session settles in letGo, under its link's
	// lock, as it lets the backend go: no batch of the client's may start
	// on it in between.
	if sent := ss.sent.Load(); ss.pl == nil && sent > done && ss.txStatus.Load() == 'I' && ss.copySyncs.settled(sent-done) {
		done = ss.settleCopy(sent - done)
	} else if sent <= done {
		ss.copySyncs.forget()
	}
	ss.forgetRefusals(done)
	if m := ss.srv.metrics; m != nil {
		var took time.Duration
		if ss.sent.Load()-done < int64(len(ss.batchTimes)) {
			if t := ss.batchTimes[done%int64(len(ss.batchTimes))].Load(); t != 0 {
				took = time.Duration(time.Now().UnixNano() - t)
			}
		}
		m.batchDone(took, ss.bytesOut+int64(len(msg)))
		ss.bytesOut = 0
	}
	if ss.pl != nil && len(msg) > wire.HeaderLen {
		if n := ss.holdNotices(done, msg[wire.HeaderLen]); len(n) > 0 {
			if err := ss.writeClient(n); err != nil {
				return nil, err
			}
		}
	}
	if err := ss.writeClient(msg); err != nil {
		return nil, err
	}
	if ss.draining.Load() && ss.quiet() {
		e := endAdminShutdown()
		return &e, nil
	}
	return nil, nil
}

// onError forwards an ErrorResponse, replacing the error of a refusal
// marker with the refusal itself.
func (ss *session) onError(msg []byte) error {
	if ss.serverCopyIn.Swap(false) {
		ss.copySyncs.copyEnded(ss.copyStarts.Load(), false)
	}
	if ss.track != nil {
		ss.track.OnError()
	}
	if ss.pl != nil {
		ss.dropHolds(ss.done.Load() + 1)
	}
	var er pgproto3.ErrorResponse
	if err := er.Decode(msg[wire.HeaderLen:]); err != nil {
		if ss.auditing() {
			ss.auditResult('E', len(msg), "XX000", "malformed error response", false)
		}
		return ss.writeClient(msg)
	}
	if er.Severity == "FATAL" || er.Severity == "PANIC" || er.SeverityUnlocalized == "FATAL" || er.SeverityUnlocalized == "PANIC" {
		ss.upstreamFatal = true
	}
	if ss.actTrack.watching.Load() {
		ss.actError()
	}
	moved := false
	if er.Position != 0 {
		// An index into the text sent: the client's own only where
		// both texts agree (position.go).
		client, sent, ok := ss.texts.at(ss.done.Load() + 1)
		pos := int32(0)
		if ok {
			pos = errorPosition(er.Position, client, sent)
		}
		moved = pos != er.Position
		er.Position = pos
	}
	if er.Code == codeUndefinedColumn && ss.governed.Load() && systemColumnMissing(er.Message) {
		// A governed table is read through a scoped subquery, which has
		// no system columns: say why, or "does not exist" reads as a
		// broken table. PostgreSQL's own hint, a near column name, is
		// replaced.
		er.Hint, moved = systemColumnHint, true
	}
	if pl := ss.pl; pl != nil && (er.Code == codeUndefinedStatement || er.Code == codeDuplicateStatement) {
		// The session's statements have other names upstream
		// (pooled_stmt.go).
		if m := pl.clientNames(er.Message, ss.done.Load()+1); m != er.Message {
			er.Message, moved = m, true
		}
	}
	if er.Code == "42P01" || er.Code == codeInvalidCursorName || er.Code == codeInvalidParameterValue {
		// Before scrubbing, which would hide the marker of a
		// rollbackMarker (22023).
		if r, ok := ss.takeRefusal(er.Message); ok {
			if ss.auditing() {
				ss.auditRefused(len(msg), r)
			}
			resp := errorResponse("ERROR", r.Code, r.Message, r.Detail, r.Hint)
			var err error
			if ss.scratch, err = resp.Encode(ss.scratch[:0]); err != nil {
				return fmt.Errorf("encoding refusal: %w", err)
			}
			return ss.writeClient(ss.scratch)
		}
	}
	if ss.srv.scrub && scrubAll(&er, ss.governed.Load()) {
		var err error
		if ss.scratch, err = er.Encode(ss.scratch[:0]); err != nil {
			return fmt.Errorf("encoding scrubbed error: %w", err)
		}
		if ss.auditing() {
			ss.auditResult('E', len(msg), er.Code, er.Message, false)
		}
		return ss.writeClient(ss.scratch)
	}
	if (er.Code == codeUndefinedTable || er.Code == codeUndefinedColumn) && ss.srv.staleCatalog != nil {
		// The snapshot names a relation or a column the upstream no
		// longer has (a DBA's DDL), or a client named a column that
		// does not exist: either way, reading the catalog again is
		// cheap, rate-limited, and heals the first.
		ss.srv.staleCatalog()
	}
	if ss.auditing() {
		ss.auditResult('E', len(msg), er.Code, er.Message, false)
	}
	if moved {
		var err error
		if ss.scratch, err = er.Encode(ss.scratch[:0]); err != nil {
			return fmt.Errorf("encoding error: %w", err)
		}
		return ss.writeClient(ss.scratch)
	}
	return ss.writeClient(msg)
}

// systemColumnHint is the HINT of an undefined-column error naming a
// system column, in a session that named a governed relation.
//
// NOTE: it says what holds of every governed table, nothing of the
// statement's: no relation, scope or column of the policy.
const systemColumnHint = "System columns (tableoid, ctid, xmin, xmax, cmin, cmax) are not available on tables pgveil governs: " +
	"each is read through a subquery, which has none (as a view has none)."

// systemColumnMissing reports whether msg, the message of an
// undefined-column error as PostgreSQL writes it (column "ctid" does not
// exist, column e.xmin does not exist), names a system column.
//
// NOTE: called on the error path only. A message in another language
// (lc_messages) does not match: the error goes without the hint.
func systemColumnMissing(msg string) bool {
	name, ok := strings.CutPrefix(msg, "column ")
	if !ok {
		return false
	}
	if name, ok = strings.CutSuffix(name, " does not exist"); !ok {
		return false
	}
	if i := strings.LastIndexByte(name, '.'); i >= 0 && !strings.HasPrefix(name, `"`) {
		name = name[i+1:]
	}
	switch strings.Trim(name, `"`) {
	case "tableoid", "ctid", "xmin", "xmax", "cmin", "cmax":
		return true
	}
	return false
}

// onNotice forwards a NoticeResponse upstreamHeader decoded, scrubbed as
// an error is: a notice or warning may name values too (a DBA's trigger
// that raises NEW, a lock wait's row position). A notice pgveil cannot
// decode is dropped: it may carry anything (fail closed).
func (ss *session) onNotice(msg []byte) error {
	var n pgproto3.NoticeResponse
	if err := n.Decode(msg[wire.HeaderLen:]); err != nil {
		return nil
	}
	er := (*pgproto3.ErrorResponse)(&n)
	if !scrubAll(er, ss.governed.Load()) {
		return ss.writeClient(msg)
	}
	var err error
	if ss.scratch, err = n.Encode(ss.scratch[:0]); err != nil {
		return fmt.Errorf("encoding scrubbed notice: %w", err)
	}
	return ss.writeClient(ss.scratch)
}

// pinned lists the settings that must never change during a session and
// the value each must keep.
func (ss *session) pinned(name string) (string, bool) {
	switch name {
	case "client_encoding":
		return "UTF8", true
	case "standard_conforming_strings":
		return "on", true
	case "search_path":
		return ss.srv.cfg.Upstream.SearchPath, true
	}
	return "", false
}

// onParameterStatus forwards a ParameterStatus, ending the session when a
// pinned setting moved.
func (ss *session) onParameterStatus(msg []byte) (*sessionEnd, error) {
	var ps pgproto3.ParameterStatus
	if err := ps.Decode(msg[wire.HeaderLen:]); err != nil {
		e := sessionEnd{resp: fatal(CodeProtocolViolation, "malformed ParameterStatus from the upstream server", ""),
			reason: "malformed upstream ParameterStatus", warn: true}
		return &e, nil
	}
	if want, ok := ss.pinned(ps.Name); ok && ps.Value != want {
		e := sessionEnd{
			resp: fatal(CodeInsufficientPrivilege,
				fmt.Sprintf("pgveil ended the session: the pinned setting %s changed to %q", ps.Name, ps.Value), ""),
			reason: "pinned setting changed", warn: true,
		}
		return &e, nil
	}
	rewritten := false
	switch ps.Name {
	case "session_authorization":
		ps.Value, rewritten = ss.info.User, true
	case "application_name":
		// Upstream, application_name starts with pgveil's tag naming the
		// user (set at startup, kept by the rewriter on SET); the client
		// sees its own name.
		if v, ok := strings.CutPrefix(ps.Value, "pgveil:"+ss.info.User+":"); ok {
			ps.Value, rewritten = v, true
		} else if ss.pl != nil && ps.Value == poolAppName {
			// A pooled backend's startup name, after RESET: the
			// client's own, as a session-mode RESET restores it.
			ps.Value, rewritten = ss.info.ApplicationName, true
		} else if a := ss.acting.Load(); a != nil {
			// Set while acting: the end user's tag.
			if v, ok := strings.CutPrefix(ps.Value, "pgveil:"+a.login+":"); ok {
				ps.Value, rewritten = v, true
			}
		}
	}
	if rewritten && ps.Name == "application_name" {
		v := ps.Value
		ss.appName.Store(&v)
	}
	if rewritten {
		var err error
		if ss.scratch, err = ps.Encode(ss.scratch[:0]); err != nil {
			return nil, fmt.Errorf("encoding parameter status: %w", err)
		}
		return nil, ss.writeClient(ss.scratch)
	}
	return nil, ss.writeClient(msg)
}

// clientWriteFailed ends a session whose client stopped reading.
func (ss *session) clientWriteFailed(err error) sessionEnd {
	return sessionEnd{reason: "client disconnected", err: quietErr(err)}
}

// upstreamReadFailed ends a session whose upstream connection broke.
func (ss *session) upstreamReadFailed(err error) sessionEnd {
	if ss.upstreamFatal {
		return sessionEnd{reason: "upstream ended the session"}
	}
	if errors.Is(err, wire.ErrMessageTooLarge) || errors.Is(err, wire.ErrBadLength) {
		return sessionEnd{resp: fatal(CodeProtocolViolation, "invalid message from the upstream server", ""),
			reason: "invalid upstream message", err: err, warn: true}
	}
	return ss.upstreamGone(err)
}
