package proxy

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
)

// Buffer sizes. Results stream through upstreamReadBuf and clientWriteBuf
// whatever their size; a session's memory is about the sum of these.
const (
	clientReadBuf   = 16 << 10
	clientWriteBuf  = 64 << 10
	upstreamReadBuf = 64 << 10
	upstreamWrite   = 16 << 10
	// maxUpstreamMessage caps what the upstream may announce (PostgreSQL's
	// own limit is 1 GiB); such messages are streamed, not buffered.
	maxUpstreamMessage = 1<<30 + wire.HeaderLen
	// maxDecodedUpstream caps the upstream messages pgveil must decode
	// (errors, parameter status): anything larger ends the session.
	maxDecodedUpstream = 16 << 20
)

// session is one authenticated client relayed to its own upstream backend.
//
// Two directions move the bytes: the client relay (client → upstream)
// decodes the messages that carry statements and passes every other one
// through; the backend relay (upstream → client) forwards results without
// decoding them and watches the few messages that change session state.
// On the goroutine path each direction is a goroutine; on an event loop
// (loop_linux.go) the loop runs both, handing the client direction to a
// worker goroutine for a message it must not handle inline.
//
// NOTE: cin and uout belong to the client relay (the client goroutine, or
// the loop, or its worker while lp.busy), uin to the backend relay. cout
// is shared and guarded by coutMu: the backend relay writes results, and
// end writes a final FATAL. Nothing holds coutMu while calling end.
type session struct {
	srv  *Server
	log  *zap.Logger
	info SessionInfo
	// reloadGen is Server.reloadGen when the session was made, before
	// its login was looked up: a reload's EndSessionsOf that ran since,
	// before the session joined Server.sessions, did not see it, and
	// handle checks it against that reload's keep instead.
	reloadGen uint64
	// ctx is cancelled when the session ends; the Rewriter gets it.
	ctx    context.Context
	cancel context.CancelFunc

	client net.Conn
	// clientIO reads and writes client (wire.NewRawIO).
	clientIO io.ReadWriter
	up       *upstreamConn

	cin    *wire.Reader
	coutMu sync.Mutex
	cout   *wire.Writer
	uin    *wire.Reader
	uout   *wire.Writer

	// pid and secret are the BackendKeyData this client was given.
	pid    uint32
	secret [4]byte
	// opened reports that open counted the session as started.
	// NOTE: from then on, its end must be counted too: by run, or by
	// failStartup when it never relays.
	opened bool
	// authenticated reports that the client authenticated: a refusal
	// before that is audited within refusalAudit's bounds (refused.go).
	authenticated bool
	// clientAddr is info.ClientAddr as text, for the audit trail's records.
	clientAddr string
	// countedAs is the login admitUser counted the session under, until
	// releaseUser gives its place back; "" when it holds none.
	// NOTE: guarded by srv.mu.
	countedAs string

	// markerPrefix names the relations of refusal markers; it holds a
	// random nonce so that no client can produce a marker error itself.
	// NOTE: the markers are statements sent upstream, which the user may
	// read: no path echoes one (the marker's own error becomes the
	// refusal; the PREPARE TRANSACTION of rollbackResult, prepared under
	// the client's name, fails naming it, or warns without it; the
	// statement views and functions are refused), and a user who read
	// the nonce could only turn an error of this session into a refusal
	// of this session: the map holds no other session's.
	markerPrefix string
	// refSeq numbers refusals (client relay only).
	refSeq uint64
	refMu  sync.Mutex
	// refusals waits for the upstream error each marker produces.
	// NOTE: guarded by refMu. An entry whose marker the server skipped (an
	// earlier error in the same pipeline, an aborted transaction) is
	// dropped at the ReadyForQuery that closes its batch.
	refusals map[uint64]pendingRefusal
	// refusalsPeak is the most entries refusals held since it was last
	// made anew: a map keeps the space of its peak (forgetRefusals).
	// NOTE: guarded by refMu.
	refusalsPeak int
	// refOrder lists the refusals in the order refuse numbered them, their
	// batches in order too: forgetRefusals drops them from its front, so
	// that a pipeline of many refused statements does not make every
	// ReadyForQuery walk all of them (quadratic). It may list refusals
	// takeRefusal took already.
	// NOTE: guarded by refMu.
	refOrder []refusalRef
	// overHeld is set once the client sent more messages without their
	// answers than pgveil follows (held.go; client relay only).
	overHeld bool

	// sent counts batch boundaries forwarded upstream (Query, Sync and
	// refused FunctionCall messages: each yields one ReadyForQuery); done
	// counts ReadyForQuery messages received. The session is idle when
	// done >= sent.
	// NOTE: a Sync the server reads while in COPY FROM STDIN is ignored by
	// the server and never answered. Those of a COPY that ends in its
	// CommandComplete are counted answered by the ReadyForQuery that
	// follows (copy_sync.go). Those of a COPY that fails are in doubt,
	// since whether the server read them before failing is not known:
	// where the client can count on none, they are closed and the backend
	// spoiled (settleCopy); otherwise sent stays ahead of done, and the
	// session's pooled backend stays its own until it ends. Counting one
	// answered that the server does answer would let a pooled backend go
	// with a statement running.
	sent atomic.Int64
	done atomic.Int64

	// serverCopyIn is true from the upstream's CopyInResponse to the end of
	// that COPY (CommandComplete, ErrorResponse or ReadyForQuery).
	// copyStarts counts CopyInResponses; copyEnds (client relay only)
	// counts the CopyDone/CopyFail the client sent. The client is inside
	// COPY FROM STDIN while serverCopyIn && copyStarts > copyEnds.
	serverCopyIn atomic.Bool
	copyStarts   atomic.Int64
	copyEnds     int64
	// copySyncs follows the Syncs COPYs ignore (copy_sync.go).
	copySyncs copySyncs
	// extSkips follows the Queries a failed extended batch skips
	// (ext_skip.go).
	extSkips extSkips

	// governed is set, by the client relay, once a statement of the
	// session named a governed relation: from then on a message raised by
	// code that runs in the server on the real rows (a DBA's trigger or
	// function) is withheld from the client (scrubRaised).
	//
	// NOTE: it never clears. A prepared statement runs long after the
	// Parse that was checked, a deferred trigger fires at COMMIT, a
	// pipeline mixes statements: none of them can be told apart from
	// the message alone, so the session, not the statement, decides
	// (fail closed). It is set before the statement goes upstream.
	governed atomic.Bool

	// upstreamFatal is set by the backend relay once it forwarded a FATAL
	// from the upstream: the connection loss that follows is expected.
	upstreamFatal bool
	draining      atomic.Bool
	// unsynced reports that an Execute was forwarded since the last batch
	// boundary (batchSent): the server may be running it although no
	// batch is counted in sent yet, so the session is not quiet. Set by
	// clientHeader before the Execute goes upstream, cleared by batchSent
	// after it counts the batch.
	// NOTE: quiet reads it before sent and done: a clear seen means the
	// batch is counted already.
	unsynced atomic.Bool
	endOnce  sync.Once
	// scratch is the backend relay's encoding buffer; cscratch the client
	// relay's.
	scratch, cscratch []byte
	// track follows prepared statements, portals and executions; nil
	// when the server neither audits nor reloads policies.
	track *statement.Tracker
	// bindPortal and bindStmt are the names the last Bind the tracker
	// saw named (trackPeek): a client binds the same ones again and
	// again, and a string made of each Bind's bytes was an allocation
	// per transaction.
	// NOTE: the client relay's only.
	bindPortal, bindStmt string
	// endReason is why the session ended, set once by end; endCode the
	// SQLSTATE of the error it was ended with, "" when none was sent.
	endReason, endCode string
	// statements counts the statement records the session wrote (finish):
	// its disconnect record's count, so that an auditor can tell a
	// session's trail is whole.
	//
	// NOTE: atomic: on goroutine relays, both relays finish executions.
	statements atomic.Int64
	// texts holds the statement text each recent batch sent, for the
	// Position of upstream errors (position.go).
	texts batchTexts
	// batchTimes holds when batch n was sent, at n % len, for the
	// upstream latency metric; bytesOut counts the bytes forwarded to
	// the client since the last ReadyForQuery (backend relay only).
	batchTimes [64]atomic.Int64
	bytesOut   int64
	// tagFor says why upstreamHeader chose to decode the CommandComplete
	// upstreamMessage then reads: tagWatched for the transaction's end
	// (decodesTag), tagAudited for the rows a write changed
	// (auditsTag), which upstreamMessage, not upstreamHeader, accounts
	// to its execution (backend relay only).
	tagFor tagReason

	// appName is the client's application_name since it last changed
	// it (SET application_name, as the upstream reported it in a
	// ParameterStatus), nil before: the audit trail records it rather
	// than the startup one. The backend relay writes it.
	appName atomic.Pointer[string]
	// acting is the end user a BI service's session acts for (SET ROLE,
	// SET pgveil.act_for), nil while it acts as its login. The client
	// relay changes it; the backend relay reads it.
	acting atomic.Pointer[actState]
	// actFound is the directory's answer about the end user the switch
	// mayAct checked last is to, for applyAct (client relay only).
	actFound *actTarget
	// actGroupsGen counts the directory answers the session acted under
	// (actStateFor).
	actGroupsGen atomic.Uint64
	// actTrack follows the transaction of a change of acting, which a
	// rollback undoes (actfor_tx.go).
	actTrack actTracking
	// directory holds a directory login's groups once a reload read
	// them again, nil before: RefreshDirectory writes it, the client
	// relay reads it.
	directory atomic.Pointer[directoryGroups]
	// versionMemo is the policy version actVersions made last (either
	// relay).
	versionMemo atomic.Pointer[versionMemo]
	// txStatus is the status byte of the last ReadyForQuery (backend
	// relay writes, client relay reads).
	txStatus atomic.Uint32
	// othersInBatch counts the Parse and Execute messages since the last
	// Sync but those of BEGIN and, for Parse, of a change of the acting
	// user (a switch, DISCARD ALL): any of them may fail upstream and
	// make the server skip the rest of the batch. batchRefused reports
	// that pgveil refused a message since then, which does the same
	// (client relay only).
	othersInBatch int
	batchRefused  bool
	// batchBegins reports a Parse or Execute of BEGIN since the last
	// Sync or Query: a switch after it in its batch runs in the block it
	// opens, where it keeps the session's backend (notePoolState,
	// pooledExecute) (client relay only).
	batchBegins bool
	// execsSent counts the Execute and Query messages read from the
	// client, streamed ones included (clientHeader), and batchExecs holds
	// execsSent when batch n was sent, at n % len (batchSent): the
	// messages sent since a batch that may have ended a transaction block
	// (surelyInBlock) (client relay only).
	execsSent  int64
	batchExecs [64]int64

	// lp is the session's share of its event loop, nil on the goroutine
	// path (loop_linux.go).
	// NOTE: set by adopt under lpMu, before the loop learns of the
	// session; ending is set by end under lpMu, so that a session is
	// never moved onto a loop after its end ran.
	lp     *loopState
	lpMu   sync.Mutex
	ending bool

	// spareKey is the session's key among the server's kept backends
	// (spares); keepUp, set by end, says that its backend is to be kept
	// when the session is finished rather than closed.
	// NOTE: keepUp is read after both relays are done (run), or after
	// the event loop freed the session (afterLoop).
	spareKey string
	keepUp   bool
	// keptConn is the backend's connection an event loop gave back to
	// Go's poller for keeping; nil on the goroutine path, where up.conn
	// still is.
	keptConn net.Conn
	// spoiled reports that the backend may still send answers no
	// session awaits: a cancel request was sent to it, which may reach
	// it late, in a later session's statement, or a COPY that failed
	// left Syncs in doubt (settleCopy). It is then not kept. released
	// reports that it was kept, after which no cancel request reaches
	// it. NOTE: both guarded by cancelMu.
	cancelMu sync.Mutex
	spoiled  bool
	// lastCancel is when a cancel request of the session was last
	// forwarded (UnixNano), and cancelling reports one being forwarded
	// (throttleCancel).
	lastCancel atomic.Int64
	cancelling atomic.Bool
	released   bool

	// endCancel is closed once the cancel request end sent for the
	// statement the session left running (cancelAtEnd) was delivered or
	// given up; nil when end sent none. Until then the session keeps its
	// place under its login's cap (and listen.max_connections), and a
	// pooled backend it held its slot (settleEnd).
	// NOTE: set by end, within endOnce; read once end returned (run,
	// runPooled, afterLoop: each calls end or follows the loop's
	// postEnded, which end posts).
	endCancel chan struct{}

	// pl is the session's hold on the transaction pool, nil in session
	// mode (pooled.go). With it, up, uin and uout are those of the
	// backend held, and change from one transaction to the next.
	pl *poolLink
}

// sessionEnd says why a session ends and what the client is told.
type sessionEnd struct {
	// resp is sent to the client before closing, when not nil.
	resp *pgproto3.ErrorResponse
	// reason is logged.
	reason string
	// err is logged when not nil.
	err error
	// warn logs the end as a warning rather than as information.
	warn bool
	// keep says that the client terminated with its backend clean
	// (keepable): the backend goes to the server's spares rather than
	// closing.
	keep bool
}

func newSession(s *Server, res *startupResult, log *zap.Logger) *session {
	var id [8]byte
	var nonce [12]byte
	if _, err := rand.Read(id[:]); err != nil {
		panic("pgveil: crypto/rand failed: " + err.Error())
	}
	if _, err := rand.Read(nonce[:]); err != nil {
		panic("pgveil: crypto/rand failed: " + err.Error())
	}
	ctx, cancel := context.WithCancel(s.baseContext())
	clientIO := wire.NewRawIO(res.conn)
	ss := &session{
		srv:       s,
		reloadGen: s.reloadGen.Load(),
		info: SessionInfo{
			ID:              hex.EncodeToString(id[:]),
			User:            res.params.user,
			Database:        res.params.database,
			ApplicationName: res.params.applicationName,
			ClientAddr:      res.conn.RemoteAddr(),
			TLS:             res.tls,
		},
		ctx:          ctx,
		cancel:       cancel,
		client:       res.conn,
		clientIO:     clientIO,
		cin:          wire.NewReader(clientIO, clientReadBuf, s.cfg.MaxMessageSize),
		cout:         wire.NewWriter(clientIO, clientWriteBuf),
		markerPrefix: "pgveil_refused_" + hex.EncodeToString(nonce[:]) + "_",
		refusals:     map[uint64]pendingRefusal{},
	}
	if a := ss.info.ClientAddr; a != nil {
		ss.clientAddr = a.String()
	}
	ss.log = log.With(zap.String("session", ss.info.ID), zap.String("user", ss.info.User))
	ss.txStatus.Store('I')
	if s.pool != nil {
		ss.pl = newPoolLink(s.pool, ss.info.ID)
	}
	if v, _ := s.rewriter.(statement.PolicyVersioner); s.audit != nil || v != nil {
		var versions statement.PolicyVersioner
		if v != nil {
			versions = actVersions{base: v, ss: ss}
		}
		ss.track = statement.NewTracker(s.audit != nil, versions)
	}
	return ss
}

// sendClient encodes msgs to the client and flushes.
func (ss *session) sendClient(msgs ...pgproto3.BackendMessage) error {
	ss.coutMu.Lock()
	defer ss.coutMu.Unlock()
	for _, m := range msgs {
		var err error
		if ss.scratch, err = m.Encode(ss.scratch[:0]); err != nil {
			return fmt.Errorf("encoding %T: %w", m, err)
		}
		if err := ss.cout.Write(ss.scratch); err != nil {
			return err
		}
	}
	return ss.cout.Flush()
}

// start authenticates the client, opens its upstream session and sends
// the client everything up to its first ReadyForQuery.
func (ss *session) start(res *startupResult) error {
	if res.minor > 0 || len(res.unrecognized) > 0 {
		if err := ss.sendClient(&pgproto3.NegotiateProtocolVersion{
			NewestMinorProtocol: 0, UnrecognizedOptions: res.unrecognized,
		}); err != nil {
			return err
		}
	}
	// NOTE: every login is throttled, known or not: a throttle that
	// spared unknown logins would tell which ones exist (throttle.go).
	key := throttleKey{host: hostOf(ss.info.ClientAddr), login: strings.ToLower(res.params.user)}
	limit := ss.srv.cfg.MaxAuthFailures
	throttled := limit > 0
	for waitUntil := time.Now().Add(cmp.Or(ss.srv.cfg.StartupTimeout, 10*time.Second)); throttled; {
		v, until := ss.srv.throttle.attempt(key, time.Now(), limit)
		if v == attemptGo {
			break
		}
		if v == attemptRefused {
			ss.srv.metrics.authThrottled()
			return &throttledError{fatalErr(CodeInvalidAuthorization,
				fmt.Sprintf("too many failed logins for user %q from this address", res.params.user),
				fmt.Sprintf("Try again after %s.", until.UTC().Format(time.RFC3339)), nil)}
		}
		if ce := ss.startCut(nil); ce != nil {
			return ce
		}
		if time.Now().After(waitUntil) {
			ss.srv.metrics.authThrottled()
			return &throttledError{fatalErr(CodeInvalidAuthorization,
				fmt.Sprintf("too many logins of user %q from this address are under way after failed ones", res.params.user), "", nil)}
		}
		// As many attempts under way as failures remain: this one's
		// turn comes when one ends.
		time.Sleep(10 * time.Millisecond)
	}
	if err := ss.authenticateTurn(res, key, limit, throttled); err != nil {
		return err
	}
	ss.authenticated = true
	if want := ss.srv.cfg.Database; res.params.database != want {
		return fatalErr(CodeInvalidCatalogName,
			fmt.Sprintf("database %q does not exist", res.params.database),
			fmt.Sprintf("pgveil serves the database %q.", want), nil)
	}
	if err := ss.srv.admitUser(ss); err != nil {
		return err
	}
	var params map[string]string
	if pl := ss.pl; pl != nil {
		// A backend of the client's key, borrowed for its parameters:
		// the session holds one only for its transactions.
		pl.forward, pl.key = res.params.forward, poolKey(res.params.forward)
		// NOTE: the login, not a user acted for: a service account's
		// sessions share its cap (upstream.pool.max_per_user).
		limit, _ := ss.srv.poolUserLimit(ss.info.User)
		pl.login = pl.pool.loginOf(ss.info.User, limit)
		if err := pl.makeAppTag(ss.info.User, ss.info.ApplicationName); err != nil {
			return fatalErr(CodeInternalError, "pgveil could not name the session upstream", "", err)
		}
		var ok bool
		if params, ok = pl.pool.startParams(pl.key); !ok {
			// The first session of its key: a backend started for it
			// says what to tell the client.
			// NOTE: counted for the login as any other it holds: a
			// login at its cap would otherwise hold one more per new
			// key, and clients choose keys (a statement_timeout of
			// their own each).
			// NOTE: watched, as a transaction's wait is: a client that
			// leaves must not hold its place in the queue until the
			// timeout, nor take the next backend freed.
			watch := func(stop <-chan struct{}) <-chan struct{} { return watchHangUp(stop, ss.client) }
			b, err := pl.pool.acquireFor(ss.ctx, pl.key, pl.forward, pl.login, watch)
			if errors.Is(err, errClientGone) {
				return err
			}
			if err != nil {
				if ce := ss.startCut(err); ce != nil {
					return ce
				}
			}
			if errors.Is(err, errPoolTimeout) {
				_, setting := ss.srv.poolUserLimit(ss.info.User)
				ce, _ := pl.pool.timeoutError(ss.info.User, pl.login, setting, err)
				ce.resp.Severity, ce.resp.SeverityUnlocalized = "FATAL", "FATAL"
				return ce
			} else if err != nil {
				return upstreamFailure("FATAL", err)
			}
			params = b.up.params
			pl.pool.release(b)
		}
	} else {
		if ss.srv.spares != nil {
			ss.spareKey = spareKey(ss.info.User, res.params.applicationName, res.params.forward)
		}
		up, err := ss.srv.dialUpstream(ss.ctx, ss.spareKey, ss.info.User, res.params)
		if err != nil {
			if ce := ss.startCut(err); ce != nil {
				return ce
			}
			return upstreamFailure("FATAL", err)
		}
		ss.up = up
		if ss.track != nil {
			ss.track.SetBackend(up.backend())
		}
		upIO := wire.NewRawIO(up.conn)
		ss.uin = wire.NewReader(upIO, upstreamReadBuf, maxUpstreamMessage)
		ss.uin.Preload(up.buffered)
		ss.uout = wire.NewWriter(upIO, upstreamWrite)
		params = up.params
	}
	ss.pid, ss.secret = ss.srv.cancels.register(ss)
	ss.info.Started = time.Now()

	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	msgs := make([]pgproto3.BackendMessage, 0, len(names)+2)
	for _, k := range names {
		v := params[k]
		switch k {
		case "application_name":
			v = ss.info.ApplicationName
		case "session_authorization":
			v = ss.info.User
		}
		msgs = append(msgs, &pgproto3.ParameterStatus{Name: k, Value: v})
	}
	msgs = append(msgs,
		&pgproto3.BackendKeyData{ProcessID: ss.pid, SecretKey: ss.secret[:]},
		&pgproto3.ReadyForQuery{TxStatus: 'I'})
	ss.open()
	return ss.sendClient(msgs...)
}

// authenticateTurn runs authenticate in the turn the throttle gave the
// attempt (when throttled), and ends the turn however authenticate ends.
// NOTE: a panic included (containStartup ends the connection only): a
// turn never given back counts as under way until the key's window
// passes, and the login's next attempts from the address wait for it
// and are refused.
func (ss *session) authenticateTurn(res *startupResult, key throttleKey, limit int, throttled bool) (err error) {
	if !throttled {
		return ss.authenticate(res)
	}
	o := attemptAborted
	defer func() {
		var af *authFailure
		if ss.srv.throttle.done(key, o, limit) && errors.As(err, &af) {
			af.throttles = true
		}
	}()
	err = ss.authenticate(res)
	switch {
	case err == nil:
		o = attemptSucceeded
	case errors.As(err, new(*authFailure)):
		o = attemptFailed
	}
	return err
}

// open counts the session as started in the log, the audit trail and the
// metrics. It runs before the client gets its first ReadyForQuery, so
// that whatever the client does next finds its session counted.
func (ss *session) open() {
	ss.log.Info("session started",
		zap.String("application_name", truncateAppName(ss.info.ApplicationName)),
		zap.Bool("tls", ss.info.TLS),
		zap.Bool("kept_backend", ss.up != nil && ss.up.kept))
	ss.auditEvent("connect", "", 0)
	ss.srv.metrics.sessionStarted()
	ss.opened = true
}

// startCut is the error of a start whose dial or wait (upstream, the
// pool, the directory, the throttle) ended with cause because the server
// closed (Server.base): the shutdown's, as handle gives a start that
// finds the server closing; nil while the server runs.
// NOTE: not cause's own: a dial or a directory cut short by the shutdown
// is no upstream failure (logged at error level, audited connect_failed)
// and no failed login (auth_failure, counted by the throttle).
func (ss *session) startCut(cause error) *clientError {
	if ss.srv.baseContext().Err() == nil {
		return nil
	}
	return fatalErr(CodeAdminShutdown, "the server is shutting down", "", cause)
}

// failStartup tells the client why its session could not start.
func (ss *session) failStartup(err error) {
	defer ss.cancel()
	defer ss.closeUpstream()
	defer ss.srv.releaseUser(ss)
	defer ss.forgetPoolLogin()
	if ss.pid != 0 {
		ss.srv.cancels.remove(ss)
	}
	var ce *clientError
	if errors.As(err, &ce) {
		_ = ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		_ = ss.sendClient(ce.resp)
	}
	if ss.opened {
		// The client had its ReadyForQuery (or was being sent it): this
		// ends a session that never relayed — the server began shutting
		// down, or the client left — rather than refusing a connection.
		reason, logEnd := "client disconnected", ss.log.Info
		switch {
		case ce != nil:
			reason = ce.resp.Message
		case errors.Is(err, errStartPanicked):
			// The panic itself is logged at error level, with its
			// stack, by startContained.
			reason, logEnd = errStartPanicked.Error(), ss.log.Warn
		}
		logEnd("session ended", zap.String("reason", reason))
		ss.srv.metrics.sessionEnded()
		ss.auditEvent("disconnect", reason, time.Since(ss.info.Started))
		return
	}
	if ce != nil {
		var af *authFailure
		switch {
		case errors.As(err, &af):
			ss.log.Warn("authentication failed", zap.String("method", af.methodName()), zap.String("reason", af.reason))
			ss.srv.metrics.authFailed()
			ss.auditAuthFailure(af.reason, ce.resp.Code)
			if af.throttles {
				max := ss.srv.cfg.MaxAuthFailures
				ss.log.Warn("failed logins throttled", zap.Int("failures", max), zap.Duration("window", authFailureWindow))
				ss.auditEvent("auth_throttled", fmt.Sprintf("%d failed logins within %s: the login's next attempts from this address are refused until the window ends", max, authFailureWindow), 0)
			}
		case errors.As(err, new(*throttledError)):
			// Counted by the metric only: an audit record or a log
			// line per attempt is what the throttle prevents.
		case ce.upstream:
			ss.log.Error("upstream connection failed", zap.Error(ce.cause))
			ss.auditRefusal("connect_failed", ce.resp)
		case !ss.authenticated:
			// A protocol error during authentication: bounded, as
			// the client has proved nothing yet.
			ss.log.Info("session refused", zap.String("reason", ce.Error()))
			if ss.srv.audit != nil {
				r := ss.auditRecord("connect_refused")
				r.Roles, r.Reason, r.SQLState = nil, ce.resp.Message, ce.resp.Code
				ss.srv.auditRefused(r, ss.info.ClientAddr)
			}
		default:
			ss.log.Info("session refused", zap.String("reason", ce.Error()))
			ss.auditRefusal("connect_refused", ce.resp)
		}
		return
	}
	if isClosedConn(err) {
		ss.log.Info("client disconnected during authentication")
		return
	}
	if errors.Is(err, errClientGone) {
		ss.log.Info("client disconnected while its session waited for an upstream connection to start")
		return
	}
	ss.log.Info("session startup failed", zap.Error(err))
}

// closeUpstream closes the upstream connection, if any.
func (ss *session) closeUpstream() {
	if ss.up != nil {
		ss.up.conn.Close()
	}
}

// run relays the session until one side ends it.
func (ss *session) run() {
	if ss.pl != nil {
		ss.runPooled()
		return
	}
	defer ss.srv.metrics.sessionEnded()
	backendDone := make(chan struct{})
	go func() {
		defer close(backendDone)
		ss.end(ss.contain("backend relay", ss.backendRelay))
	}()
	ss.end(ss.contain("client relay", ss.clientRelay))
	<-backendDone
	ss.relayed()
	if ss.keepUp {
		ss.keepUpstream()
	}
}

// keepable reports whether the session's backend may be kept once the
// client terminates now: the server keeps backends, and this one is idle
// outside a transaction with every batch answered (client relay only).
func (ss *session) keepable() bool {
	return ss.srv.spares != nil && ss.pl == nil && ss.spareKey != "" &&
		ss.idle() && ss.txStatus.Load() == 'I' && !ss.serverCopyIn.Load() && !ss.draining.Load()
}

// keepUpstream gives the backend of a session that ended keeping it
// (keepUp) to the server's spares, which reset it, unless bytes of it
// were read and not relayed: those would start the next session's
// stream in mid-message.
func (ss *session) keepUpstream() {
	// NOTE: a copy: a cancel request of the ended session may still
	// read ss.up.
	up := *ss.up
	if ss.keptConn != nil {
		up.conn = ss.keptConn
	}
	ss.cancelMu.Lock()
	ss.released = true
	spoiled := ss.spoiled
	ss.cancelMu.Unlock()
	if spoiled || ss.uin.Buffered() > 0 {
		up.conn.Close()
		return
	}
	up.buffered, up.kept = nil, false
	ss.srv.spares.keep(ss.spareKey, &up)
}

// relayed finishes a session both relays are done with.
func (ss *session) relayed() {
	ss.srv.cancels.remove(ss)
	if ss.auditing() {
		// Both relays are done: what is still awaited was cut short.
		for _, x := range ss.track.OnEnd() {
			ss.finish(x, "interrupted: the session ended")
		}
	}
	if ss.srv.audit != nil {
		r := ss.auditRecord("disconnect")
		r.Reason, r.SQLState, r.Duration = ss.endReason, ss.endCode, time.Since(ss.info.Started)
		// NOTE: a BI service's session acting for a viewer stops acting
		// for her here: with no act_for record after, this is the end.
		r.ActingFor = ss.actingFor()
		r.Count = ss.statements.Load()
		ss.srv.audit.Write(r)
	}
}

// forgetPoolLogin gives back, once, the session's hold on its login's
// count of pooled backends (pool.loginOf), when both relays are done.
//
// NOTE: pl.login stays: an event loop may still give back, after this,
// a slot the pool granted the session as it ended (giveBackGrant).
func (ss *session) forgetPoolLogin() {
	if pl := ss.pl; pl != nil && pl.login != nil && !pl.loginForgotten.Swap(true) {
		pl.pool.forgetLogin(pl.login)
	}
}

// auditing reports whether the session records executions.
func (ss *session) auditing() bool { return ss.track != nil && ss.track.Audit() }

// idle reports whether every batch sent upstream has been answered.
func (ss *session) idle() bool { return ss.done.Load() >= ss.sent.Load() }

// quiet reports that nothing the session sent upstream is running:
// every batch answered (idle) and no Execute sent since the last one
// (unsynced). A drain ends a session only when it is quiet: an Execute
// the server runs before its Sync comes (a client's Sync in a later
// read) is a running statement.
func (ss *session) quiet() bool { return !ss.unsynced.Load() && ss.idle() }

// drain ends the session as soon as it is quiet (now, if it is).
func (ss *session) drain() {
	ss.draining.Store(true)
	if ss.quiet() {
		ss.end(endAdminShutdown())
	}
}

func endAdminShutdown() sessionEnd {
	return sessionEnd{
		resp:   fatal(CodeAdminShutdown, "terminating connection due to administrator command", ""),
		reason: "server shutting down",
	}
}

// terminate ends the session with resp.
func (ss *session) terminate(resp *pgproto3.ErrorResponse, reason string) {
	ss.end(sessionEnd{resp: resp, reason: reason})
}

// end ends the session once: it optionally cancels the running statement
// upstream, sends the client its final message, and closes both
// connections, which unblocks both relays.
func (ss *session) end(e sessionEnd) {
	ss.endOnce.Do(func() {
		// NOTE: a pooled session cancels in endPooled, on the backend it
		// holds, if any, whatever ended it. So does a session-mode one
		// here: PostgreSQL notices the closed connection only when it
		// next writes, and a statement left running (a session ended
		// for a protocol violation in the middle of pg_sleep) would
		// hold its backend past the session, out of every per-user cap.
		// The cancel goes on a goroutine of its own (cancelAtEnd): end
		// runs on the session's event loop, whose other sessions would
		// wait for it, and under endOnce, which Close, a drain or a
		// reload would wait on.
		if !ss.idle() && ss.pl == nil {
			ss.endCancel = ss.cancelAtEnd(ss.up)
		}
		var resp []byte
		if e.resp != nil {
			// NOTE: a buffer of its own: the backend relay encodes into
			// ss.scratch without holding coutMu.
			resp, _ = e.resp.Encode(nil)
		}
		// NOTE: before the connections close: an event loop may free the
		// session, and its end be written, as soon as they do.
		fields := []zap.Field{zap.String("reason", e.reason), zap.Duration("duration", time.Since(ss.info.Started))}
		if e.err != nil {
			fields = append(fields, zap.Error(e.err))
		}
		if e.warn {
			ss.log.Warn("session ended", fields...)
		} else {
			ss.log.Info("session ended", fields...)
		}
		ss.endReason = e.reason
		if e.resp != nil {
			ss.endCode = e.resp.Code
		}
		ss.lpMu.Lock()
		ss.ending = true
		lp := ss.lp
		ss.lpMu.Unlock()
		if lp != nil {
			if ss.pl != nil {
				ss.endPooled()
			}
			ss.keepUp = e.keep
			lp.endLoop(ss, resp)
		} else if ss.pl != nil {
			ss.endPooled()
			ss.endClient(resp)
		} else {
			// Unblock a relay stuck on either connection so coutMu frees up.
			now := time.Now()
			if e.keep {
				// NOTE: the backend relay, waiting for the next message,
				// stops at its deadline; run keeps the backend once it
				// has.
				ss.keepUp = true
				_ = ss.up.conn.SetReadDeadline(now)
			} else {
				_ = ss.up.conn.SetDeadline(now)
			}
			_ = ss.client.SetDeadline(now)
			ss.endClient(resp)
			if !e.keep {
				ss.up.conn.Close()
			}
		}
		ss.cancel()
	})
}

// cancelAtEnd cancels, on a goroutine of its own, the statement an
// ending session leaves running on up, and returns a channel closed once
// the request was delivered or given up: within endCancelTimeout, a wait
// for its turn among maxEndCancels included.
//
// NOTE: a request that is not delivered leaves the statement running
// until it ends or the backend notices its closed connection
// (client_connection_check_interval): the session's places are given
// back anyway (settleEnd), as a cancel that hangs must not hold them.
func (ss *session) cancelAtEnd(up *upstreamConn) chan struct{} {
	done := make(chan struct{})
	r := &ss.srv.cancels
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), endCancelTimeout)
		defer cancel()
		dl, _ := ctx.Deadline()
		if !r.acquire(true, dl) {
			ss.srv.metrics.endCancel(endCancelBusy)
			ss.log.Warn("cancelling the running statement failed: too many being cancelled")
			return
		}
		defer r.release(true)
		if err := up.cancelUpstream(ctx); err != nil {
			ss.srv.metrics.endCancel(endCancelFailed)
			ss.log.Warn("cancelling the running statement failed", zap.Error(err))
			return
		}
		ss.srv.metrics.endCancel(endCancelDelivered)
	}()
	return done
}

// settleEnd waits for the cancel request end sent, if any, then closes
// the pooled backend the session held at its end, if any, which frees
// its slot in the pool: a statement left running holds its backend
// until its cancel was delivered or given up, and so within
// upstream.pool.size. It runs before the session gives its place under
// its login's cap back (sessionDone).
func (ss *session) settleEnd() {
	if ss.endCancel != nil {
		<-ss.endCancel
	}
	if pl := ss.pl; pl != nil {
		if b := pl.endedBackend(); b != nil {
			pl.pool.drop(b, "its session ended while holding it")
		}
	}
}

// endClient sends the client its final message, resp when not nil, and
// closes the connection.
func (ss *session) endClient(resp []byte) {
	_ = ss.client.SetDeadline(time.Now())
	ss.coutMu.Lock()
	if resp != nil {
		_ = ss.client.SetWriteDeadline(time.Now().Add(time.Second))
		if ss.cout.Write(resp) == nil {
			_ = ss.cout.Flush()
		}
	}
	ss.coutMu.Unlock()
	ss.client.Close()
}
