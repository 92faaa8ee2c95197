package proxy

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
)

// ErrServerClosed is returned by Serve after Shutdown or Close.
var ErrServerClosed = errors.New("pgveil: server closed")

// Options are the optional parts of a Server.
type Options struct {
	// Logger receives the diagnostic log; zap.NewNop() when nil.
	Logger *zap.Logger
	// Rewriter sees every statement; PassThrough when nil.
	Rewriter Rewriter
	// Users looks up the user a login authenticates as; when nil, no
	// login is known (see StaticIdentities and server.Policies.Apply).
	Users func(login string) (*policy.User, bool)
	// Directory is the LDAP directory and the users it maps; when nil,
	// there is none.
	Directory Directory
	// MockIterations returns the PBKDF2 iteration count the SCRAM
	// exchange of an unknown login asks for: that of the configured
	// verifiers (policy.Identities.MockIterations). nil, or a result of
	// 0, is scram.DefaultIterations.
	MockIterations func() int
	// ScrubDataErrors removes values from upstream errors of classes 22
	// (data exception) and 23 (integrity constraint violation): their
	// DETAIL, WHERE and every quoted value of the message, so that a cast
	// or constraint error cannot echo data the user may not see; and
	// row positions, sizes and other sessions' ids from the others
	// (scrubError).
	ScrubDataErrors bool
	// StaleCatalog, when set, is called (and must return at once) when
	// a statement fails upstream on a relation or a column that does not
	// exist (SQLSTATE 42P01 or 42703): the rewriter's catalog snapshot
	// may lag a DBA's DDL.
	StaleCatalog func()
	// Audit receives the audit trail; nil for none.
	Audit Auditor
	// AuditParameters, when above zero, records the parameter values of
	// each Bind with the executions of its portal (audit.Record.Params),
	// each value cut to that many bytes (audit.log_parameters); 0 records
	// none.
	AuditParameters int
	// AuditFailing, when set, reports that the audit trail cannot be
	// written now: statements are then refused (firewall rule
	// audit_unavailable) rather than run unrecorded (audit.on_error =
	// "refuse"). nil runs them.
	AuditFailing func() bool
	// Metrics records the proxy's metrics; nil for none.
	Metrics *Metrics
}

// Server accepts client connections, authenticates them, and relays each
// one to its own upstream session.
type Server struct {
	cfg      Config
	log      *zap.Logger
	rewriter Rewriter
	// scrub is Options.ScrubDataErrors.
	scrub bool
	// staleCatalog is Options.StaleCatalog.
	staleCatalog func()
	// audit is Options.Audit; nil when the server does not audit.
	audit Auditor
	// auditParams is Options.AuditParameters, 0 without audit.
	auditParams int
	// auditFailing is Options.AuditFailing, nil without audit.
	auditFailing func() bool
	// metrics is Options.Metrics; nil when the server has none.
	metrics *Metrics
	// users is Options.Users.
	users func(login string) (*policy.User, bool)
	// directory is Options.Directory.
	directory Directory
	// mockIterations is Options.MockIterations; nil for the default.
	mockIterations func() int
	// upstream is the base pgconn configuration; sessions Copy it.
	upstream *pgconn.Config
	// tlsConfig is nil when the listen block has no tls block.
	tlsConfig *tls.Config
	// directTLSConfig is tlsConfig for connections that open with a
	// ClientHello (directTLS): the same, requiring the "postgresql" ALPN
	// protocol. nil when tlsConfig is.
	directTLSConfig *tls.Config
	// cbData is the tls-server-end-point channel-binding data of the
	// server certificate (nil without TLS).
	cbData []byte
	// mockSecret keys the mock SCRAM verifiers of unknown users.
	// NOTE: it must be secret (or an observer could compute an unknown
	// user's mock salt) and stable across restarts (or an unknown user's
	// salt would change while a real user's does not); see mockSecret.
	mockSecret []byte
	cancels    cancelRegistry
	// throttle counts failed logins by address and login (throttle.go).
	throttle authThrottle
	// refusals bounds the audit records of refused startups
	// (refused.go), and authFailures those of failed logins alike.
	refusals, authFailures refusalAudit

	// base is the context every session's derives from; stop cancels
	// it when the server closes (Close, or Shutdown past its deadline).
	// NOTE: so the dials a start runs (upstream, the pool, LDAP) and
	// its waits (the throttle, the pool's queue) end with the server:
	// Shutdown waits for no start past its deadline, whatever the
	// upstream's connect_timeout or the directory's timeout.
	base context.Context
	stop context.CancelFunc

	// actDir caches the directory's answers about the end users BI
	// services act for (actdirectory.go).
	actDir actDirectory

	mu sync.Mutex
	// NOTE: listeners, conns and sessions are guarded by mu. conns holds
	// connections still in their startup phase, with their client's
	// host, and startups counts them by host (throttle.go); sessions
	// holds the running ones.
	listeners map[net.Listener]struct{}
	conns     map[net.Conn]string
	startups  map[string]int
	sessions  map[*session]struct{}
	closing   bool
	// userSessions counts the sessions of each login admitUser let in
	// (see limits.go).
	// NOTE: guarded by mu, like droppedConns and droppedLogged: the
	// connections closed unread since the last log line saying so, and
	// when that line was written.
	userSessions map[string]int
	// reloadGen counts the calls of EndSessionsOf, and keep is the
	// last one's (nil before the first).
	// NOTE: both written under mu, after the reload swapped its policy
	// in; reloadGen is read without mu by newSession, before the login
	// is looked up. So a session made before a reload's EndSessionsOf
	// but registered after it (its login checked under the old policy)
	// has an older reloadGen, and handle applies keep to it under mu as
	// it registers: no session of a login a reload removed survives it.
	reloadGen     atomic.Uint64
	keep          func(login string) bool
	droppedConns  int
	droppedAddr   int
	droppedLogged time.Time
	// wg counts connection goroutines, and sessions on event loops.
	wg sync.WaitGroup
	// loops relays plaintext sessions; nil where there are none (outside
	// Linux, or when the configuration asks for goroutines).
	loops *eventLoops
	// pool shares the upstream backends in transaction mode; nil in
	// session mode.
	pool *pool
	// noCheckInterval is set once the upstream refused
	// client_connection_check_interval (PostgreSQL 13 or older): it is
	// pinned no more (dialBackend).
	// NOTE: cleared when a server at the address reports PostgreSQL 14 or
	// later (a failover, an upgrade): it is pinned again.
	noCheckInterval atomic.Bool
	// spares keeps the backends of ended sessions in session mode; nil
	// in transaction mode, or when upstream.pool.keep_idle is 0.
	spares *spares
}

// New returns a Server for cfg.
func New(cfg Config, opts Options) (*Server, error) {
	s := &Server{
		cfg:            cfg,
		log:            opts.Logger,
		rewriter:       opts.Rewriter,
		scrub:          opts.ScrubDataErrors,
		staleCatalog:   opts.StaleCatalog,
		audit:          opts.Audit,
		auditParams:    auditParams(opts),
		auditFailing:   opts.AuditFailing,
		metrics:        opts.Metrics,
		users:          opts.Users,
		directory:      opts.Directory,
		mockIterations: opts.MockIterations,
		listeners:      map[net.Listener]struct{}{},
		conns:          map[net.Conn]string{},
		startups:       map[string]int{},
		sessions:       map[*session]struct{}{},

		userSessions: map[string]int{},
	}
	s.base, s.stop = context.WithCancel(context.Background())
	if s.log == nil {
		s.log = zap.NewNop()
	}
	if s.rewriter == nil {
		s.rewriter = PassThrough{}
	}
	if s.users == nil {
		s.users = func(string) (*policy.User, bool) { return nil, false }
	}
	if s.directory == nil {
		s.directory = noDirectory{}
	}
	up, err := upstreamConfig(&cfg.Upstream)
	if err != nil {
		return nil, err
	}
	s.upstream = up
	if t := cfg.TLS; t != nil && t.Config != nil {
		s.tlsConfig = t.Config
		s.directTLSConfig = t.Config.Clone()
		s.directTLSConfig.NextProtos = []string{alpnPostgreSQL}
		if len(t.Config.Certificates) > 0 {
			cert := t.Config.Certificates[0]
			leaf := cert.Leaf
			if leaf == nil && len(cert.Certificate) > 0 {
				if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
					return nil, fmt.Errorf("parsing listen certificate: %w", err)
				}
			}
			if leaf != nil {
				s.cbData = scram.TLSServerEndPoint(leaf)
			}
		}
	}
	s.mockSecret = mockSecret(&cfg.Upstream)
	if cfg.Upstream.Pool.Mode == policy.PoolTransaction {
		s.pool = newPool(s)
		if s.metrics != nil {
			s.metrics.pool.Store(s.pool)
		}
	} else {
		idle := cfg.Upstream.Pool.IdleTimeout
		if idle <= 0 {
			idle = 10 * time.Minute
		}
		s.spares = newSpares(s.log, s.metrics, cfg.Upstream.Pool.KeepIdle, idle)
		if s.metrics != nil && s.spares != nil {
			s.metrics.spares.Store(s.spares)
		}
	}
	// NOTE: a transaction-mode session registers each backend it takes
	// on its loop, read with raw system calls: backends inside TLS keep
	// the sessions on goroutines.
	if cfg.Relay != policy.RelayGoroutines && (s.pool == nil || cfg.Upstream.TLS.Mode == policy.TLSDisable || cfg.Upstream.TLS.Mode == "") {
		s.loops = newEventLoops(s)
	}
	return s, nil
}

// ListenAndServe listens on the configured address and serves until
// Shutdown or Close.
func (s *Server) ListenAndServe() error {
	ln, err := net.Listen("tcp", s.cfg.Address)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", s.cfg.Address, err)
	}
	return s.Serve(ln)
}

// Serve accepts connections on ln until Shutdown or Close; it closes ln.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ln.Close()
		return ErrServerClosed
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
		ln.Close()
	}()
	s.log.Info("listening", zap.String("address", ln.Addr().String()), zap.Bool("tls", s.tlsConfig != nil))

	var backoff time.Duration
	for {
		conn, err := ln.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, errTooManyFiles) {
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				s.log.Warn("accept failed; retrying", zap.Error(err), zap.Duration("backoff", backoff))
				time.Sleep(backoff)
				continue
			}
			return fmt.Errorf("accepting connections: %w", err)
		}
		backoff = 0
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			conn.Close()
			return ErrServerClosed
		}
		over, drop := s.admitConn()
		host := startupHostOf(conn.RemoteAddr())
		if !drop && s.addressFull(host) {
			drop = true
		}
		if drop {
			s.dropped(host)
			s.mu.Unlock()
			conn.Close()
			continue
		}
		s.conns[conn] = host
		s.startups[host]++
		s.wg.Add(1)
		s.mu.Unlock()
		go s.handle(conn, over)
	}
}

// errTooManyFiles is the accept error that passes once descriptors free up.
var errTooManyFiles = syscall.EMFILE

// forgetConn drops c from the startup-phase connections.
func (s *Server) forgetConn(c net.Conn) {
	s.mu.Lock()
	s.startupDone(c)
	s.mu.Unlock()
}

// startupDone drops c from the startup-phase connections, if it is
// there (mu held).
func (s *Server) startupDone(c net.Conn) {
	host, ok := s.conns[c]
	if !ok {
		return
	}
	delete(s.conns, c)
	if s.startups[host]--; s.startups[host] <= 0 {
		delete(s.startups, host)
	}
}

// Shutdown stops accepting connections, ends idle sessions at once and
// every other session as soon as its running statement finishes; when ctx
// ends first, the remaining sessions are closed. It returns ctx.Err() in
// that case.
func (s *Server) Shutdown(ctx context.Context) error {
	for _, ss := range s.stopAccepting() {
		ss.drain()
	}

	done := make(chan struct{})
	go func() { s.wg.Wait(); s.loops.stopAll(); s.closePool(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		s.Close()
		<-done
		return ctx.Err()
	}
}

// Close closes every listener and connection at once, and ends the
// dials and waits of the connections still starting.
func (s *Server) Close() error {
	sessions := s.stopAccepting()
	for _, ss := range sessions {
		ss.terminate(fatal(CodeAdminShutdown, "terminating connection due to administrator command", ""), "server closed")
	}
	// NOTE: after stopAccepting: a start that registers from now on
	// finds the server closing and ends. And after the sessions are
	// ended: their contexts derive from base, and a session whose wait
	// (the pool's queue) ended with its context first would end as
	// sessionGone, its client told nothing, not as the shutdown.
	s.stop()
	// The loops stop once the sessions they hold are finished.
	go func() { s.wg.Wait(); s.loops.stopAll(); s.closePool() }()
	return nil
}

// baseContext is the context sessions derive theirs from: base, or the
// background for a Server New did not make.
func (s *Server) baseContext() context.Context {
	if s.base == nil {
		return context.Background()
	}
	return s.base
}

// closePool closes the transaction pool's free backends, or the
// backends session mode kept, if any.
func (s *Server) closePool() {
	if s.pool != nil {
		s.pool.close()
	}
	s.spares.close()
}

// stopAccepting marks the server closing, closes its listeners and the
// connections still in their startup, and returns the running sessions.
func (s *Server) stopAccepting() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closing = true
	for ln := range s.listeners {
		ln.Close()
	}
	for c := range s.conns {
		c.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	return sessions
}

// EndSessionsOf ends, with a FATAL error, every session whose user
// keep rejects: after a reload, the sessions of removed users. It
// returns how many it ended.
// Sessions still starting are checked against keep as they register
// (handle).
func (s *Server) EndSessionsOf(keep func(login string) bool) int {
	s.mu.Lock()
	s.keep = keep
	s.reloadGen.Add(1)
	var gone []*session
	for ss := range s.sessions {
		if !s.keeps(keep, ss) {
			gone = append(gone, ss)
		}
	}
	s.mu.Unlock()
	for _, ss := range gone {
		ss.end(sessionEnd{
			resp:   removedByReload(ss),
			reason: "user removed by a policy reload",
		})
	}
	return len(gone)
}

// keeps reports whether keep, a reload's (EndSessionsOf), keeps ss.
func (s *Server) keeps(keep func(login string) bool, ss *session) bool {
	if ss.info.Directory {
		// A directory login is kept while its groups (read at login,
		// or again by RefreshDirectory) still give it a role under
		// the new configuration.
		groups, _ := ss.directoryGroups()
		_, kept := s.directory.DirectoryUser(ss.info.User, groups)
		return kept
	}
	return keep(ss.info.User)
}

// removedByReload is the error that ends a session of a login a reload
// removed.
func removedByReload(ss *session) *pgproto3.ErrorResponse {
	return fatal(CodeInvalidAuthorization,
		fmt.Sprintf("pgveil ended the session: the user %q is no longer in the configuration", ss.info.User), "")
}

// SessionCount reports how many client connections the server holds:
// those still in their startup (negotiation, authentication, the
// upstream connection, a CancelRequest) and the sessions relaying.
// NOTE: a connection is counted from its accept until its last log line
// and audit record are written, without a gap: handle moves it from
// conns to sessions under mu. So, once a client has closed, a count of 0
// means the server is done with it, and the count always sees a session
// whose client had its first ReadyForQuery (sent before the session
// joins sessions). Connections closed unread past a cap (admitConn,
// addressFull) are never counted; as with listen.max_connections, which
// counts the same connections.
// The pgveil_sessions gauge counts less: sessions only, from just before
// their first ReadyForQuery (session.open) to their end.
func (s *Server) SessionCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns) + len(s.sessions)
}

// handle runs one client connection from its first byte to its end; over
// refuses its session (listen.max_connections reached) but serves its
// CancelRequest.
func (s *Server) handle(conn net.Conn, over bool) {
	defer s.wg.Done()
	defer conn.Close()
	defer s.forgetConn(conn)
	defer s.containStartup(conn)

	log := s.log.With(zap.String("client", conn.RemoteAddr().String()))
	_ = conn.SetDeadline(time.Now().Add(s.cfg.StartupTimeout))

	res, err := s.negotiate(conn)
	if err != nil {
		s.failStartup(log, res, conn, err)
		return
	}
	if res.cancel != nil {
		s.handleCancel(log, res.cancel)
		return
	}
	if over {
		s.metrics.connectionRefused(false)
		s.failStartup(log, res, conn, s.tooManyClients())
		return
	}
	ss := newSession(s, res, log)
	if err := ss.startContained(res); err != nil {
		ss.failStartup(err)
		return
	}
	_ = res.conn.SetDeadline(time.Time{})

	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		ss.failStartup(fatalErr(CodeAdminShutdown, "the server is shutting down", "", nil))
		ss.closeUpstream()
		return
	}
	if ss.reloadGen != s.reloadGen.Load() && !s.keeps(s.keep, ss) {
		// Started under a policy a reload replaced, whose EndSessionsOf
		// ran before the session registered.
		s.mu.Unlock()
		ss.failStartup(&clientError{resp: removedByReload(ss)})
		return
	}
	s.startupDone(conn)
	s.sessions[ss] = struct{}{}
	// NOTE: counted for a session an event loop adopts, whose end
	// (afterLoop) outlives this goroutine.
	s.wg.Add(1)
	s.mu.Unlock()

	if s.loops.adopt(ss) {
		return
	}
	ss.run()
	s.sessionDone(ss)
}

// sessionDone forgets a session that has ended, once the cancel its end
// sent, if any, is done (settleEnd).
func (s *Server) sessionDone(ss *session) {
	ss.settleEnd()
	s.releaseUser(ss)
	ss.forgetPoolLogin()
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.wg.Done()
}

// afterLoop finishes a session its event loop has freed.
func (s *Server) afterLoop(ss *session) {
	ss.relayed()
	if ss.keepUp {
		ss.keepUpstream()
	}
	s.metrics.sessionEnded()
	s.sessionDone(ss)
}

// afterLoopFailure finishes a session that could not move onto an event
// loop, its connections closed, before it relayed anything.
func (s *Server) afterLoopFailure(ss *session) {
	ss.end(sessionEnd{reason: "moving the session onto an event loop failed", warn: true})
	s.afterLoop(ss)
}

// failStartup reports err to a client that did not get past negotiation.
func (s *Server) failStartup(log *zap.Logger, res *startupResult, conn net.Conn, err error) {
	var ce *clientError
	if errors.As(err, &ce) {
		c := conn
		if res != nil && res.conn != nil {
			c = res.conn
		}
		if buf, e := ce.resp.Encode(nil); e == nil {
			_, _ = c.Write(buf)
		}
		log.Info("connection refused during startup", zap.String("reason", ce.Error()))
		var params startupParams
		if res != nil {
			params = res.params
		}
		s.auditRefused(refusedRecord(conn.RemoteAddr(), params, ce.resp), conn.RemoteAddr())
		return
	}
	if !isClosedConn(err) {
		log.Info("connection ended during startup", zap.Error(err))
	}
}

// handleCancel forwards a CancelRequest whose key pgveil issued; any
// other key cancels nothing. A session's requests are throttled
// (cancel.go).
func (s *Server) handleCancel(log *zap.Logger, cr *pgproto3.CancelRequest) {
	ss := s.cancels.lookup(cr.ProcessID, cr.SecretKey)
	if ss == nil {
		s.metrics.cancelRequest(cancelUnknown)
		log.Info("cancel request with an unknown key ignored")
		return
	}
	done, ok := ss.throttleCancel()
	if !ok {
		s.metrics.cancelRequest(cancelBusy)
		ss.log.Info("cancel request ignored: another of the session's is being forwarded")
		return
	}
	defer done()
	up := ss.runningUpstream()
	if up == nil {
		s.metrics.cancelRequest(cancelIdle)
		log.Info("cancel request for a session running nothing ignored")
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), cancelTimeout)
	defer cancel()
	dl, _ := ctx.Deadline()
	if !s.cancels.acquire(false, dl) {
		s.metrics.cancelRequest(cancelFailed)
		ss.log.Warn("cancel request not forwarded: too many being forwarded")
		return
	}
	defer s.cancels.release(false)
	ss.log.Info("cancel request forwarded upstream")
	if err := up.cancelUpstream(ctx); err != nil {
		s.metrics.cancelRequest(cancelFailed)
		ss.log.Warn("forwarding cancel request failed", zap.Error(err))
		return
	}
	s.metrics.cancelRequest(cancelForwarded)
}

// mockSecret derives the key of unknown users' mock verifiers from the
// upstream service account's password: secret, and stable for as long as
// that password is, like PostgreSQL's use of its system identifier. Without
// a password it falls back to a random key per process.
func mockSecret(u *policy.Upstream) []byte {
	if u.Password == "" {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			panic("pgveil: crypto/rand failed: " + err.Error())
		}
		return b
	}
	h := hmac.New(sha256.New, []byte("pgveil mock SCRAM secret v1"))
	for _, part := range []string{u.Address, u.Database, u.User, u.Password} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	return h.Sum(nil)
}
