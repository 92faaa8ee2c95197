package proxy

import (
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
)

// poolLink is a transaction-mode session's hold on the pool (pool.go).
// The session holds a backend from the first message it sends while
// idle until the ReadyForQuery that leaves it idle again with nothing
// outstanding; then the backend goes back to the pool, unless the
// session left state on it (keeps), in which case the session keeps it
// to its end and the backend is closed then.
//
// The client relay attaches a backend (hold) and writes to it; the
// backend relay reads it and lets it go (detach). Both directions share
// the decision through mu.
//
// NOTE: the client relay marks the batch open (open, under mu, while b
// is its backend) before it writes a message to the backend, and only
// the message's end may close it; the backend relay lets the backend go
// only with the batch closed and every batch answered. So a backend
// given back is never written to by the session that gave it, and the
// backend relay never waits for a client relay blocked on its socket:
// it only waits for a flush to finish updating its batch (pooledFlush).
type poolLink struct {
	pool *pool
	// forward are the client's forwarded startup parameters, which the
	// backends the session may run on started with; key is their
	// poolKey.
	forward map[string]string
	key     string
	// login counts the backends the session's login holds, against
	// upstream.pool.max_per_user; nil when no login is capped. Set at
	// the session's start, given back at its end (forgetPoolLogin),
	// which sets loginForgotten.
	login          *poolLogin
	loginForgotten atomic.Bool

	mu sync.Mutex
	// flushed is signalled when flushing clears.
	flushed *sync.Cond
	// NOTE: b, open, flushing, keeps and ended are guarded by mu.
	// b is the backend held, nil between transactions.
	b *backend
	// open reports that the client relay is writing a message to b, or
	// sent b messages after the last batch boundary (Query, Sync): the
	// batch is not closed yet. wasOpen is open before the message the
	// client relay is writing (client relay only).
	open, wasOpen bool
	// flushing reports that the client relay is flushing what it
	// batched for b: detach waits for it (see pooledFlush).
	flushing bool
	// keeps says why the session keeps its backend to its end ("" when
	// it does not): state left on the backend (rewrite.Result.Keeps) or
	// a change of the acting user.
	keeps string
	// holds are the WITH HOLD cursors declared and not yet told of to the
	// client, each with the batch that declared it (noteHolds): the
	// backend relay sends a NoticeResponse for each once its batch is
	// answered outside a transaction block (holdNotices).
	holds []heldCursor
	// held reports that holds is not empty, read without mu on every
	// ReadyForQuery (holdNotices).
	// NOTE: written under mu.
	held  atomic.Bool
	ended bool
	// parked reports that the backend relay found the session done with
	// its answers at a ReadyForQuery but could not let the backend go
	// (the batch was open); woken that the client relay woke it since
	// (review fix: wakePark).
	parked bool
	woken  atomic.Bool
	// endB is the backend the session held at its end, which settleEnd
	// closes (endPooled).
	endB *backend
	// relays counts the backend relays running: one at most, that of
	// the backend held, but for the moment one that let its backend go
	// takes to return.
	relays sync.WaitGroup
	// failing is set (client relay only) while the messages of an
	// extended-protocol batch that found no backend are skipped up to
	// its Sync; failure is the error the Sync then gets.
	failing bool
	failure *pgproto3.ErrorResponse

	// prefix starts the upstream names of the session's prepared
	// statements; seq numbers them (pooled_stmt.go).
	// NOTE: an upstream name is "pgveil_", the session's random id (its
	// audit trail's session), "_" and a counter (or "unknown",
	// "refused"): no client text, nothing of another session or user.
	// Errors quoting one reach the client with its own name instead
	// (clientNames; one it cannot map tells the client its own session's
	// id only), and no other session can read a backend's statements
	// (pg_prepared_statements is refused).
	prefix string
	seq    int
	// NOTE: stmts, pending, parses, unnamed and unnamedGen are guarded
	// by mu; unnamed and unnamedGen change in the client relay only.
	// stmts are the session's prepared statements by the client's names;
	// pending those whose Parse awaits its ParseComplete.
	stmts, pending map[string]*pooledStmt
	// byServer gives the client's name of each statement of stmts and
	// pending by its upstream name (clientNames).
	byServer map[string]string
	// parses are the Parses in flight, oldest first.
	parses []sentParse
	// closes are the Closes in flight, oldest first: a statement a
	// Close forgets leaves its backend at the CloseComplete, and the
	// session holds it again when the server skips the Close.
	closes []sentClose
	// lazyAt is, by upstream name, the batch of the last Parse of a
	// statement ensureStmt added that awaits its answer: until then the
	// backend may lack it (the server may skip it after an error).
	lazyAt map[string]int64
	// unknowns are the first statement name the session never prepared
	// of each batch in flight that named one, oldest first, for the
	// error PostgreSQL gives (clientNames).
	unknowns []unknownStmt
	// unnamed is the session's last Parse of the unnamed statement, as
	// sent upstream; nil before one, and since a Query or a refused
	// Parse of it, which drop it in PostgreSQL. unnamedGen counts its
	// changes: a backend whose backend.unnamedGen differs holds an
	// older one, or none (setUnnamed).
	unnamed    []byte
	unnamedGen uint64
	// swallow counts, for the backend relay, the ReadyForQuery messages
	// up to which the answers to what prepareOnTake wrote are skipped;
	// prepareFailed reports that some of it failed: the backend is then
	// closed, not given back.
	swallow       int
	prepareFailed bool
	// stmtBytes is the size of the Parses of stmts and pending, upstream
	// (pooledStmtCap).
	// NOTE: guarded by mu.
	stmtBytes int

	// settings are the session's settings, replayed on the backends it
	// takes; settingsKey is their queries end to end, to compare with
	// backend.settings; batchErr reports an error in the batch being
	// answered (pooled_settings.go).
	// NOTE: guarded by mu.
	settings    []*pooledSetting
	settingsKey string
	batchErr    bool
	// appTag is the Query that sets application_name to name the
	// session's user and application, as on a session-mode connection,
	// on each backend the session takes (replaySettings), encoded.
	// NOTE: set before the session's first transaction, then only read.
	appTag string
	// txSets are the SETs and RESETs noted in the transaction under
	// way, in order, awaiting its end: an implicit one (txImplicit),
	// whose batch its first SET opened, or a block. txEnd follows the
	// CommandComplete tags that end or rewind it meanwhile
	// (pooled_settings.go).
	// NOTE: guarded by mu. watchTags reports len(txSets) > 0 to the
	// backend relay without mu: it then decodes CommandComplete.
	txSets     []*pendingSetting
	txImplicit bool
	txEnd      txEnd
	watchTags  atomic.Bool
	// clientMsgs counts the client messages the session sent holding a
	// backend; asked counts, by kind (askKind), the messages of the batch
	// it has not closed yet that the server answers, answered the
	// answers to them, counted while no closed batch is unanswered, and
	// askFailed the error after which the server skips the rest
	// (pool_idle.go).
	// NOTE: guarded by mu.
	clientMsgs      uint64
	asked, answered [askKinds]int
	askFailed       bool
	// unnamedSet is the batch of the client's last Parse of the unnamed
	// statement when that statement is a SET or RESET, 0 otherwise
	// (bindUnnamed).
	// NOTE: the client relay's own.
	unnamedSet int64
	// unnamedPend is the setting noted for the client's last Parse of
	// the unnamed statement, nil when it noted none; setPortals maps each
	// portal bound from it, by the name the server keys it by
	// (statement.ServerName), to it. The setting takes effect at the first
	// Execute of one of them (pooledExecute), not at its Parse.
	// NOTE: guarded by mu; both forgotten with the noted settings, at
	// the end of their transaction, which ends the portals too.
	unnamedPend *pendingSetting
	setPortals  map[string]*pendingSetting

	// deallocs are the DEALLOCATE ALLs forwarded whose batch is not
	// answered yet, oldest first (pooled_stmt.go); deallocUnread reports
	// a CommandComplete forwarded unread meanwhile (tagUnread), and
	// watchDealloc that deallocs is not empty, to the backend relay
	// without mu: it then decodes CommandComplete.
	// NOTE: guarded by mu, watchDealloc written under it.
	deallocs      []pendingDealloc
	deallocUnread bool
	watchDealloc  atomic.Bool
	// deallocUnnamed is the unnamedGen of the session's unnamed
	// statement when that statement is a DEALLOCATE ALL, 0 otherwise;
	// deallocPortals are the portals bound from it, by the name the
	// server keys them by, each with the number of the ReadyForQuery
	// closing its Bind's batch; forgotten at a ReadyForQuery reporting
	// their transaction ended (onBatchAnswered). One that no longer
	// exists upstream (closed, or ended with a transaction the client
	// relay did not see end) fails at its Execute, and the session holds
	// its statements again (settleDeallocs).
	// NOTE: guarded by mu.
	deallocUnnamed uint64
	deallocPortals map[string]int64
}

func newPoolLink(p *pool, sessionID string) *poolLink {
	pl := &poolLink{pool: p,
		prefix: "pgveil_" + sessionID + "_",
		stmts:  map[string]*pooledStmt{}, pending: map[string]*pooledStmt{}, byServer: map[string]string{}, lazyAt: map[string]int64{}}
	pl.flushed = sync.NewCond(&pl.mu)
	return pl
}

// runPooled relays a transaction-mode session until one side ends it.
// The client relay runs here; each backend the session takes gets a
// backend relay of its own, which ends when the session lets it go: an
// idle session holds one goroutine and no buffer.
func (ss *session) runPooled() {
	defer ss.srv.metrics.sessionEnded()
	ss.end(ss.contain("client relay", ss.pooledClientRelay))
	ss.pl.relays.Wait()
	ss.relayed()
}

// sessionGone is what a relay returns once the session ended elsewhere.
var sessionGone = sessionEnd{reason: "session ended"}

// pooledClientRelay is clientRelay for a transaction-mode session: it
// holds a backend before each message it forwards.
func (ss *session) pooledClientRelay() sessionEnd {
	pl := ss.pl
	for {
		if ss.cin.Buffered() < wire.HeaderLen {
			if err := ss.pooledFlush(); err != nil {
				return ss.upstreamGone(err)
			}
			ss.wakeParked()
		}
		if ss.cin.Buffered() == 0 {
			// Wait for the client with no buffer held: most waits end
			// a transaction, and an idle session must hold none.
			ss.cin.Idle()
			if err := wire.WaitReadable(ss.clientIO); err != nil {
				return ss.clientReadFailed(err)
			}
		}
		typ, total, err := ss.cin.Header()
		if err != nil {
			return ss.clientReadFailed(err)
		}
		if e := ss.clientHeader(typ); e != nil {
			return *e
		}
		if pl.failing {
			if e, err := ss.skipFailed(typ, total); e != nil {
				return *e
			} else if err != nil {
				return ss.clientFailed(err)
			}
			continue
		}
		held, e := ss.hold(typ, total)
		if e != nil {
			return *e
		}
		if !held {
			continue
		}
		before := ss.sent.Load()
		e, err = ss.clientMessage(typ, total)
		ss.unhold(ss.sent.Load() != before, typ)
		if e != nil {
			return *e
		} else if err != nil {
			return ss.clientFailed(err)
		}
	}
}

// hold makes sure the session holds a backend before the client message
// of type typ is forwarded, and marks the batch open. It
// reports false, having answered the message, when no backend could be
// had; or the end of the session. It waits for a backend: an event loop
// tries holdNow first, and leaves the wait to a worker.
func (ss *session) hold(typ byte, total int) (bool, *sessionEnd) {
	return ss.holdWith(typ, total, false)
}

// holdWith is hold; withSlot says that the pool counted a slot for the
// session already, for a backend it dials (an event loop's waiter was
// given one).
func (ss *session) holdWith(typ byte, total int, withSlot bool) (bool, *sessionEnd) {
	if ss.holdHeld() {
		if withSlot {
			ss.pl.pool.freeSlot(ss.pl.login)
		}
		return true, nil
	}
	if typ == 'X' {
		if withSlot {
			ss.pl.pool.freeSlot(ss.pl.login)
		}
		// Terminate between transactions: nothing upstream to tell.
		return false, &sessionEnd{reason: "client terminated the session"}
	}
	if strayMessage(typ) {
		if withSlot {
			ss.pl.pool.freeSlot(ss.pl.login)
		}
		if err := ss.cin.Skip(total); err != nil {
			e := ss.clientFailed(err)
			return false, &e
		}
		return false, nil
	}
	pl := ss.pl
	parseName, e := ss.parseNameOf(typ, total)
	if e != nil {
		if withSlot {
			pl.pool.freeSlot(pl.login)
		}
		return false, e
	}
	var b *backend
	var err error
	if withSlot {
		b, err = pl.pool.dial(ss.ctx, pl.key, pl.forward, pl.login)
	} else {
		// NOTE: an event loop's session waits here on a worker; its
		// client socket is the loop's, ss.client closed (wire.TakeFD).
		watch := func(stop <-chan struct{}) <-chan struct{} { return watchHangUp(stop, ss.client) }
		if lp := ss.lp; lp != nil {
			watch = lp.watchClientHangUp
		}
		b, err = pl.pool.acquireFor(ss.ctx, pl.key, pl.forward, pl.login, watch)
	}
	if err != nil {
		if ss.ctx.Err() != nil {
			return false, &sessionGone
		}
		if errors.Is(err, errClientGone) {
			return false, &sessionEnd{reason: "client disconnected while waiting for an upstream connection"}
		}
		return false, ss.answerNoBackend(typ, total, err)
	}
	return ss.attach(b, typ, parseName)
}

// strayMessage reports whether a client message of type typ, sent while
// the session holds no backend, is one PostgreSQL ignores there: copy
// messages outside a COPY, and a Flush with nothing to flush. It is
// dropped rather than given a backend: it opens no transaction, and
// nothing would end the one it took (no ReadyForQuery answers it).
func strayMessage(typ byte) bool {
	return typ == 'd' || typ == 'c' || typ == 'f' || typ == 'H'
}

// answerNoBackend answers the client message of type typ, which found no
// backend because of err, and logs and audits why. It returns the end of
// the session when the answer fails.
func (ss *session) answerNoBackend(typ byte, total int, err error) *sessionEnd {
	pl := ss.pl
	var resp *pgproto3.ErrorResponse
	switch {
	case errors.Is(err, errPoolTimeout):
		_, setting := ss.srv.poolUserLimit(ss.info.User)
		ce, capped := pl.pool.timeoutError(ss.info.User, pl.login, setting, err)
		resp = ce.resp
		if capped {
			ss.log.Warn("no upstream connection became free: the login's cap held it back",
				zap.Duration("waited", pl.pool.wait), zap.String("cap", setting), zap.Int32("max", pl.login.max.Load()))
		} else {
			ss.log.Warn("no upstream connection became free", zap.Duration("waited", pl.pool.wait))
		}
		ss.srv.metrics.poolTimedOut(capped)
	default:
		resp = upstreamConnectError("ERROR", err)
		ss.log.Error("upstream connection failed", zap.Error(err))
	}
	ss.auditPoolRefused(typ, total, resp)
	if err := ss.answerUnheld(typ, total, resp); err != nil {
		e := ss.clientFailed(err)
		return &e
	}
	return nil
}

// holdHeld is hold for a session that holds a backend already: it marks
// the batch open and reports true; false when the session holds none.
func (ss *session) holdHeld() bool {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.b == nil {
		return false
	}
	// NOTE: pl.parked stays: a message that gets no ReadyForQuery (copy
	// data, a Flush) leaves the relay parked (review: clearing it here
	// lost the wake, and the idle session kept its backend).
	pl.wasOpen, pl.open = pl.open, true
	return true
}

// parseNameOf returns the statement a Parse prepares, buffered whole:
// its own unnamed one needs no preparing again. "" for other messages.
func (ss *session) parseNameOf(typ byte, total int) (string, *sessionEnd) {
	if typ != 'P' {
		return "", nil
	}
	b, err := ss.cin.PeekStrings(total, 0, 1)
	if err != nil {
		e := ss.clientFailed(err)
		return "", &e
	}
	if name, _, ok := cstring(b[wire.HeaderLen:]); ok {
		return name, nil
	}
	return "?", nil
}

// attach makes b the session's backend, restores the session's settings
// and statements on it, and marks the batch open; a session on the
// goroutine path starts its backend relay, one on an event loop has the
// loop register b (loopAttach).
func (ss *session) attach(b *backend, typ byte, parseName string) (bool, *sessionEnd) {
	pl := ss.pl
	pl.mu.Lock()
	if pl.ended {
		pl.mu.Unlock()
		pl.returnUnused(b)
		return false, &sessionGone
	}
	if lp := ss.lp; lp != nil {
		lp.backendMode(b)
	} else {
		wire.SetNonBlocking(b.io, false, false)
	}
	pl.b, pl.open, pl.wasOpen = b, true, false
	if ss.track != nil {
		ss.track.SetBackend(b.up.backend())
	}
	ss.uout = b.out
	ss.uin = b.in
	zs, err := ss.prepareOnTake(typ, parseName)
	pl.swallow, pl.prepareFailed = zs, false
	pl.mu.Unlock()
	if ss.lp == nil {
		pl.relays.Add(1)
		go func() {
			defer pl.relays.Done()
			detached := false
			e := ss.contain("backend relay", func() sessionEnd {
				var e sessionEnd
				e, detached = ss.relayBackend()
				return e
			})
			if !detached {
				ss.end(e)
			}
		}()
	}
	if err != nil {
		e := ss.upstreamGone(err)
		return false, &e
	}
	return true, nil
}

// unhold ends the client relay's message of type typ to its backend;
// boundary reports that the message closed a batch.
//
// NOTE: the copy messages of a COPY FROM STDIN belong to the batch of its
// Query, which closed it: they leave the batch as they found it, so that
// the backend goes back to the pool at the ReadyForQuery after CopyDone
// or CopyFail. A Flush opens no batch either.
func (ss *session) unhold(boundary bool, typ byte) {
	pl := ss.pl
	pl.mu.Lock()
	switch {
	case boundary:
		pl.open = false
	case typ == 'd' || typ == 'c' || typ == 'f' || typ == 'H':
		pl.open = pl.wasOpen
	default:
		pl.open = true
	}
	pl.clientMsgs++
	if boundary {
		pl.asked, pl.answered, pl.askFailed = [askKinds]int{}, [askKinds]int{}, false
	} else if k, ok := askKind(typ, false); ok {
		pl.asked[k]++
	}
	pl.mu.Unlock()
}

// afterPooledFlush, nil but in tests, runs between a pooled flush's write
// and its bookkeeping: the relay's thread preempted there.
var afterPooledFlush atomic.Pointer[func()]

// pooledFlush sends what the client relay batched for its backend.
//
// NOTE: bytes batched belong to a batch still open or unanswered, so the
// backend cannot be let go while they wait. But the upstream may answer
// the last of them while Flush, its bytes sent, still updates the
// batch: detach waits for flushing to clear, a wait bounded by that
// bookkeeping, never by the network.
func (ss *session) pooledFlush() error {
	pl := ss.pl
	pl.mu.Lock()
	w := ss.uout
	if pl.b == nil || w.Pending() == 0 {
		pl.mu.Unlock()
		return nil
	}
	pl.flushing = true
	pl.mu.Unlock()
	err := w.Flush()
	if f := afterPooledFlush.Load(); f != nil {
		(*f)()
	}
	pl.mu.Lock()
	pl.flushing = false
	pl.flushed.Broadcast()
	pl.mu.Unlock()
	return err
}

// wakeParked wakes a backend relay parked after a ReadyForQuery it
// could not let the backend go at, once the batch is closed and flushed:
// it then tries again (relayBackend).
func (ss *session) wakeParked() {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if !pl.parked || pl.open || pl.b == nil || pl.b.out.Pending() > 0 || !ss.idle() {
		return
	}
	pl.parked = false
	pl.woken.Store(true)
	_ = pl.b.up.conn.SetReadDeadline(time.Now())
}

// answerUnheld answers a client message of type typ that found no
// backend with resp, as PostgreSQL answers a failed message: at once
// for a Query, at the batch's Sync for the extended protocol, skipping
// the batch's other messages.
func (ss *session) answerUnheld(typ byte, total int, resp *pgproto3.ErrorResponse) error {
	pl := ss.pl
	if err := ss.cin.Skip(total); err != nil {
		return err
	}
	switch typ {
	case 'Q', 'S', 'F':
		return ss.sendClient(resp, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	pl.failing, pl.failure = true, resp
	return nil
}

// skipFailed skips a message of a batch that found no backend, and
// answers its Sync; a Terminate ends the session.
func (ss *session) skipFailed(typ byte, total int) (*sessionEnd, error) {
	pl := ss.pl
	if err := ss.cin.Skip(total); err != nil {
		return nil, err
	}
	switch typ {
	case 'X':
		return &sessionEnd{reason: "client terminated the session"}, nil
	case 'S':
		pl.failing = false
		return nil, ss.sendClient(pl.failure, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	}
	return nil, nil
}

// detach gives the session's backend back to the pool if the session is
// done with it: idle, every batch answered, the batch closed (the client
// relay not writing), no state left on it. It reports whether it did (backend
// relay, after a ReadyForQuery).
func (ss *session) detach() bool {
	b, failed, settled := ss.letGo(true)
	if b == nil {
		return false
	}
	if settled != nil {
		ss.settled(settled)
	}
	ss.pl.giveBack(b, failed)
	return true
}

// letGo is detach's decision: it returns the backend the session no
// longer holds, whether restoring the session's state on it failed, and,
// when it closed the batches a failed COPY left in doubt (closeDoubt),
// the backend then spoiled, what the caller must pass to settled (not
// nil then); nil when the session keeps it.
// With wait, it waits for a flush's bookkeeping (pooledFlush); without,
// as on an event loop, where no flush can run meanwhile, it keeps the
// backend instead.
//
// NOTE: the doubt is settled here, under mu, with pl.open false: the
// client relay starts a batch only under mu (hold), so none starts on
// the spoiled backend, whose late answers would close it.
func (ss *session) letGo(wait bool) (*backend, bool, []statement.Finished) {
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	var b *backend
	var settle int64
	// NOTE: every check again after a wait for a flush, which releases
	// mu: the client relay may have started its next message on b
	// meanwhile (pl.open), and b must then stay (a review gave the
	// loader's next statement to another user's session).
	for {
		b = pl.b
		settle = 0
		if u := ss.sent.Load() - ss.done.Load(); u > 0 && ss.copySyncs.settled(u) {
			settle = u
		}
		if wait && b != nil && !pl.ended && pl.open {
			// The client relay wakes the backend relay once it closed
			// the batch (wakeParked).
			pl.parked = true
		}
		if b == nil || pl.ended || pl.keeps != "" || pl.open || !ss.idle() && settle == 0 ||
			ss.txStatus.Load() != 'I' || ss.serverCopyIn.Load() || ss.uin.Buffered() > 0 {
			return nil, false, nil
		}
		if !pl.flushing {
			// NOTE: no client message is being written (pl.open is
			// false), and one written before is flushed: bytes left
			// would go to the backend's next session.
			if b.out.Pending() > 0 {
				return nil, false, nil
			}
			break
		}
		if !wait {
			return nil, false, nil
		}
		pl.flushed.Wait()
	}
	var finished []statement.Finished
	if settle > 0 {
		b.spoiled = true
		_, finished = ss.closeDoubt(settle)
		if finished == nil {
			finished = []statement.Finished{}
		}
	}
	if pl.woken.Swap(false) {
		// A wake the relay did not see: no deadline goes with b.
		_ = b.up.conn.SetReadDeadline(time.Time{})
	}
	pl.parked = false
	pl.b = nil
	if ss.track != nil {
		ss.track.SetBackend(0)
	}
	return b, pl.prepareFailed, finished
}

// giveBack returns a backend a session let go of to the pool, or closes
// it when it must not be reused.
func (pl *poolLink) giveBack(b *backend, failed bool) {
	switch {
	case failed:
		pl.pool.drop(b, "restoring a session's settings or statements on it failed")
	case b.spoiled:
		pl.pool.drop(b, "a cancel request was sent to it, or a failed COPY left answers in doubt")
	case b.stmtsUnknown:
		pl.pool.drop(b, "whether a DEALLOCATE ALL ran on it is not known")
	case b.overfull():
		pl.pool.drop(b, "it holds too many prepared statements")
	default:
		pl.pool.release(b)
	}
}

// pooledNote notes, at the start of an upstream message of type typ,
// what a transaction-mode session tracks of its batch's answers. It
// reports an answer to a message pgveil added in the client's batch (a
// statement prepared lazily, ensureStmt), which the caller skips: the
// client, the tracker and the batch's counts never see it.
func (ss *session) pooledNote(typ byte) (skip bool) {
	switch typ {
	case '1':
		return ss.onParseAnswer()
	case '3':
		if ss.onCloseAnswer() {
			return true
		}
		if ss.pl.pool.idleTx > 0 {
			ss.noteAnswered(typ)
		}
	case 'E':
		pl := ss.pl
		pl.mu.Lock()
		pl.batchErr = true
		if ss.sent.Load() == ss.done.Load() {
			pl.askFailed = true
		}
		pl.mu.Unlock()
	case '2', 'T', 'n', 'C', 'I', 's':
		if ss.pl.pool.idleTx > 0 {
			ss.noteAnswered(typ)
		}
	}
	return false
}

// keepBackend makes the session keep its backend to its end: why names
// the state it leaves there.
func (ss *session) keepBackend(why string) {
	pl := ss.pl
	if pl == nil || why == "" {
		return
	}
	pl.mu.Lock()
	first := pl.keeps == ""
	if first {
		pl.keeps = why
	}
	pl.mu.Unlock()
	if first {
		ss.log.Info("session keeps its upstream connection to its end", zap.String("because", why))
	}
}

// endPooled is end's work on the backend of a transaction-mode session:
// a backend held at the end is closed, never reused, after its running
// statement is cancelled, whatever ended the session. The cancel goes on
// a goroutine (cancelAtEnd); the backend is closed, and its slot freed,
// once the cancel was delivered or given up and the session's relays are
// done with it (settleEnd). On an event loop, the loop first takes it
// off its epoll instance (maybeFree): until then its descriptor must not
// be reused.
//
// NOTE: always cancelled, not only when the client left: the pool frees
// the backend's slot as it closes it, while PostgreSQL notices a closed
// connection only when it next writes. A statement left running (a
// session ended for a protocol violation in the middle of pg_sleep)
// would keep its backend upstream past upstream.pool.size: a red team's
// loop of such sessions opened them up to the server's max_connections.
func (ss *session) endPooled() {
	pl := ss.pl
	pl.mu.Lock()
	pl.ended = true
	b := pl.b
	pl.b = nil
	pl.endB = b
	pl.flushed.Broadcast()
	pl.mu.Unlock()
	if b == nil {
		return
	}
	if !ss.idle() {
		ss.endCancel = ss.cancelAtEnd(b.up)
	}
	// NOTE: wakes a relay or worker waiting on it.
	_ = b.up.conn.SetDeadline(time.Now())
}

// endedBackend returns, once, the backend the session held at its end,
// for settleEnd to close.
func (pl *poolLink) endedBackend() *backend {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	b := pl.endB
	pl.endB = nil
	return b
}

// heldAtEnd returns the backend the session held at its end, if any,
// leaving it to endedBackend.
func (pl *poolLink) heldAtEnd() *backend {
	pl.mu.Lock()
	defer pl.mu.Unlock()
	return pl.endB
}

// runningUpstream returns the upstream connection running the session's
// statements, for a cancel request; nil when a transaction-mode session
// holds none, or when a session-mode session's backend was kept for
// another session (keepUpstream).
//
// NOTE: a cancel may reach the server after the statement it was meant
// for ended. The backend it names is marked, and closed rather than
// given back when the session lets it go (detach), so that the cancel
// can never stop another session's statement. In session mode the
// session is marked, and its backend not kept (keepUpstream).
func (ss *session) runningUpstream() *upstreamConn {
	pl := ss.pl
	if pl == nil {
		ss.cancelMu.Lock()
		defer ss.cancelMu.Unlock()
		if ss.released {
			// Kept for another session (keepUpstream).
			return nil
		}
		ss.spoiled = true
		return ss.up
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.b == nil {
		return nil
	}
	pl.b.spoiled = true
	return pl.b.up
}
