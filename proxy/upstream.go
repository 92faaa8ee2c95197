package proxy

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// upstreamConfig builds the pgconn configuration shared by every session:
// the service account, the TLS settings and the pinned parameters. Each
// session copies it and adds its own application_name and forwarded
// parameters.
func upstreamConfig(u *policy.Upstream) (*pgconn.Config, error) {
	// ParseConfig is the only supported way to obtain a Config; every
	// field it may have taken from PG* environment variables is
	// overwritten below.
	cfg, err := pgconn.ParseConfig("")
	if err != nil {
		return nil, fmt.Errorf("preparing upstream connection settings: %w", err)
	}
	host, port, err := net.SplitHostPort(u.Address)
	if err != nil {
		return nil, fmt.Errorf("upstream address %q: %w", u.Address, err)
	}
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("upstream address %q: bad port: %w", u.Address, err)
	}
	cfg.Host, cfg.Port = host, uint16(p)
	cfg.Database, cfg.User, cfg.Password = u.Database, u.User, u.Password
	cfg.ConnectTimeout = u.ConnectTimeout
	cfg.Fallbacks = nil
	cfg.KerberosSrvName, cfg.KerberosSpn = "", ""
	cfg.ValidateConnect, cfg.AfterConnect = nil, nil
	cfg.ChannelBinding = "prefer"
	switch u.TLS.Mode {
	case policy.TLSRequire:
		cfg.TLSConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12} // #nosec G402 -- sslmode=require semantics, documented
	case policy.TLSVerifyFull:
		name := u.TLS.ServerName
		if name == "" {
			name = host
		}
		cfg.TLSConfig = &tls.Config{RootCAs: u.TLS.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
	default:
		cfg.TLSConfig = nil
	}
	cfg.RuntimeParams = map[string]string{}
	return cfg, nil
}

// upstreamConn is a hijacked upstream session.
type upstreamConn struct {
	conn net.Conn
	// pid and secret are the upstream backend's cancel key.
	pid    uint32
	secret []byte
	// params are the ParameterStatus values reported during startup.
	params map[string]string
	// buffered holds bytes pgconn read past the startup, re-encoded.
	buffered []byte
	cfg      *pgconn.Config
	tlsCfg   *tls.Config
	// kept reports that an earlier session used it (spares).
	kept bool
	// backendPID is the backend's own process id, read back when a
	// pooler in between announced its own cancel key as pid (see
	// behindPooler); 0 otherwise.
	// NOTE: pid stays the cancel key: a cancel goes through the pooler.
	backendPID uint32
}

// backend returns the upstream backend's process id, as the audit trail
// and the logs name it.
func (uc *upstreamConn) backend() uint32 {
	if uc.backendPID != 0 {
		return uc.backendPID
	}
	return uc.pid
}

// dialUpstream opens the upstream session for one client: the service
// account, the pinned settings, application_name naming the user, and the
// client's forwarded parameters.
// A backend an earlier session of the same spareKey key left (spares)
// serves first.
func (s *Server) dialUpstream(ctx context.Context, key, login string, p startupParams) (*upstreamConn, error) {
	if up := s.spares.take(key); up != nil {
		return up, nil
	}
	up, err := s.dialBackend(ctx, "pgveil:"+login+":"+p.applicationName, p.forward, false)
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == CodeTooManyConnections && s.spares.dropAll() {
		// The backends kept for other sessions held the slots: closed,
		// they free them once their processes exit.
		s.log.Info("upstream connection slots full; closed the kept backends and trying again")
		for try := 0; try < 5; try++ {
			select {
			case <-ctx.Done():
				return nil, err
			case <-time.After(20 * time.Millisecond):
			}
			up, err = s.dialBackend(ctx, "pgveil:"+login+":"+p.applicationName, p.forward, false)
			if !errors.As(err, &pe) || pe.Code != CodeTooManyConnections {
				break
			}
		}
	}
	return up, err
}

// dialBackend opens an upstream session as the service account with the
// pinned settings, application_name appName and the client parameters
// forward. With check, it first reads back the pinned settings the
// server does not report: a role or database default must not have
// overridden them.
func (s *Server) dialBackend(ctx context.Context, appName string, forward map[string]string, check bool) (*upstreamConn, error) {
	cfg := s.upstream.Copy()
	rp := make(map[string]string, len(forward)+5)
	for k, v := range forward {
		rp[k] = v
	}
	// Pinned settings are written last: nothing the client sent can
	// replace them (forwardedParams never lists them anyway).
	rp["application_name"] = truncateAppName(appName)
	rp["client_encoding"] = "UTF8"
	rp["standard_conforming_strings"] = "on"
	rp["client_min_messages"] = "notice"
	rp["search_path"] = s.cfg.Upstream.SearchPath
	iv := s.cfg.Upstream.ClientConnectionCheckInterval
	pinCheck := iv > 0 && !s.noCheckInterval.Load()
	if pinCheck {
		// NOTE: within PostgreSQL's range, which the decoder checks; a
		// Config built in Go is clamped, as a refused value would refuse
		// every connection.
		rp[checkIntervalParam] = checkIntervalValue(iv)
	}
	cfg.RuntimeParams = rp

	ctx, cancel := context.WithTimeout(ctx, s.cfg.Upstream.ConnectTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, cfg)
	if pinCheck && unknownParam(err, checkIntervalParam) {
		// PostgreSQL 13 or older: it has no such setting.
		if !s.noCheckInterval.Swap(true) {
			s.log.Info("the upstream server has no client_connection_check_interval (PostgreSQL 13 or older): a statement an ended session leaves running stops only once cancelled, or once it writes")
		}
		delete(rp, checkIntervalParam)
		pc, err = pgconn.ConnectConfig(ctx, cfg)
	}
	if err == nil && iv > 0 && !pinCheck && serverMajor(pc) >= 14 && s.noCheckInterval.Swap(false) {
		// NOTE: the server at the address has the setting now (a
		// failover or an upgrade from PostgreSQL 13): this session and
		// the next pin it again, rather than leave statements of ended
		// sessions running until a restart.
		s.log.Info("the upstream server now has client_connection_check_interval (PostgreSQL 14 or later): pinning it again")
		pc.Close(context.Background())
		rp[checkIntervalParam] = checkIntervalValue(iv)
		pc, err = pgconn.ConnectConfig(ctx, cfg)
		if unknownParam(err, checkIntervalParam) {
			s.noCheckInterval.Store(true)
			delete(rp, checkIntervalParam)
			pc, err = pgconn.ConnectConfig(ctx, cfg)
		}
	}
	if err != nil {
		return nil, poolerHint(err)
	}
	var backendPID uint32
	if check || behindPooler(s.cfg.Upstream.Address) {
		// NOTE: behind a pooler, every new connection is read back: the
		// pooler's configuration may change while pgveil runs.
		if backendPID, err = s.checkPinned(ctx, pc); err != nil {
			pc.Close(context.Background())
			return nil, err
		}
		if backendPID == pc.PID() {
			backendPID = 0
		}
	}
	if err := pc.SyncConn(ctx); err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	hj, err := pc.Hijack()
	if err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	uc := &upstreamConn{
		conn:   hj.Conn,
		pid:    hj.PID,
		secret: hj.SecretKey,
		params: hj.ParameterStatuses,
		cfg:    hj.Config,
		tlsCfg: hj.TLSConfig,

		backendPID: backendPID,
	}
	// NOTE: pgconn reads through its own buffer. Anything it read past the
	// final ReadyForQuery must reach the relay first, or it would be lost.
	for hj.Frontend.ReadBufferLen() > 0 {
		msg, err := hj.Frontend.Receive()
		if err != nil {
			hj.Conn.Close()
			return nil, fmt.Errorf("draining upstream buffer: %w", err)
		}
		if uc.buffered, err = msg.Encode(uc.buffered); err != nil {
			hj.Conn.Close()
			return nil, fmt.Errorf("re-encoding buffered upstream message: %w", err)
		}
	}
	return uc, nil
}

// checkIntervalParam is the setting upstream.client_connection_check_interval
// pins: a backend running a statement checks every so often whether its
// client's connection is still open, and ends when it is not. So a
// statement an ended session left running stops once pgveil closed its
// connection, though the cancel request sent for it was ignored (a
// function that catches query_canceled) or never delivered.
const checkIntervalParam = "client_connection_check_interval"

// serverMajor returns the major version the server reported at startup
// (server_version), 0 when it reported none pgveil reads.
func serverMajor(pc *pgconn.PgConn) int {
	v := pc.ParameterStatus("server_version")
	if i := strings.IndexFunc(v, func(r rune) bool { return r < '0' || r > '9' }); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0
	}
	return n
}

// unknownParam reports whether err is a server's refusal of the
// startup parameter name: 42704, unrecognized configuration parameter.
func unknownParam(err error, name string) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42704" && strings.Contains(pe.Message, `"`+name+`"`)
}

// checkPinned reads back the pinned settings of a new backend, and
// returns its process id.
func (s *Server) checkPinned(ctx context.Context, pc *pgconn.PgConn) (uint32, error) {
	for k, v := range map[string]string{"client_encoding": "UTF8", "standard_conforming_strings": "on", "server_encoding": "UTF8"} {
		if got := pc.ParameterStatus(k); got != v {
			return 0, fmt.Errorf("the upstream connection reports %s = %q, not %q", k, got, v)
		}
	}
	res, err := pc.Exec(ctx, pinnedReadback).ReadAll()
	if err != nil {
		return 0, fmt.Errorf("reading back the pinned settings: %w", err)
	}
	if len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 6 {
		return 0, errors.New("reading back the pinned settings: unexpected answer")
	}
	row := res[0].Rows[0]
	if err := checkMessages(string(row[2]), s.cfg.Upstream.User); err != nil {
		return 0, err
	}
	if got, want := SearchPath(string(row[0]), s.cfg.Upstream.User), SearchPath(s.cfg.Upstream.SearchPath, s.cfg.Upstream.User); !slices.Equal(got, want) {
		return 0, fmt.Errorf("the upstream connection's search_path is %q, not %q: a role or database setting overrides it, or a pooler dropped the startup parameter; %s", row[0], s.cfg.Upstream.SearchPath, poolerAdvice)
	}
	if got := string(row[1]); got != "notice" {
		return 0, fmt.Errorf("the upstream connection's client_min_messages is %q, not \"notice\"; %s", got, poolerAdvice)
	}
	// NOTE: what RESET ALL and DISCARD ALL restore (a client's own, a
	// kept backend's reset, the pool's before replaying settings) is the
	// startup packet's value, or the role's a pooler left in force; not
	// one a pooler SET after connecting (PgBouncer's connect_query).
	if got, want := SearchPath(string(row[4]), s.cfg.Upstream.User), SearchPath(s.cfg.Upstream.SearchPath, s.cfg.Upstream.User); !slices.Equal(got, want) {
		return 0, fmt.Errorf("the upstream connection's search_path resets to %q, not %q: a pooler set it after connecting, and a RESET ALL would lose it; %s", row[4], s.cfg.Upstream.SearchPath, poolerAdvice)
	}
	if got := string(row[5]); got != "notice" {
		return 0, fmt.Errorf("the upstream connection's client_min_messages resets to %q, not \"notice\": a pooler set it after connecting, and a RESET ALL would lose it; %s", got, poolerAdvice)
	}
	return backendPID(row[3])
}

// pinnedReadback reads back, on a new session or pool connection, the
// pinned settings the server does not report, lc_messages and the
// backend's process id, then the values RESET ALL would restore of the
// pinned settings.
const pinnedReadback = `SELECT pg_catalog.current_setting('search_path'), pg_catalog.current_setting('client_min_messages'), ` +
	`pg_catalog.current_setting('lc_messages'), pg_catalog.pg_backend_pid()::pg_catalog.text, ` +
	`(SELECT reset_val FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'search_path'), ` +
	`(SELECT reset_val FROM pg_catalog.pg_settings WHERE name OPERATOR(pg_catalog.=) 'client_min_messages')`

// truncateAppName keeps application_name within PostgreSQL's NAMEDATALEN-1
// bytes without splitting a UTF-8 sequence.
func truncateAppName(s string) string {
	const maxLen = 63
	if len(s) <= maxLen {
		return s
	}
	i := maxLen
	for i > 0 && s[i]&0xC0 == 0x80 {
		i--
	}
	return s[:i]
}

// cancelTimeout bounds the forwarding of a cancel request, a wait for
// its turn included.
const cancelTimeout = 5 * time.Second

// endCancelTimeout bounds the cancel request of an ending session
// (cancelAtEnd), a wait for its turn included.
// NOTE: a variable for tests only, which lengthen it before a server
// starts (SetEndCancelTimeout).
var endCancelTimeout = cancelTimeout

// cancelUpstream asks the upstream server to cancel whatever the backend
// of uc is running, the way libpq does: a new connection, encrypted like
// the session's, carrying a CancelRequest. It gives up at ctx's
// deadline, or after cancelTimeout when ctx has none.
func (uc *upstreamConn) cancelUpstream(ctx context.Context) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, cancelTimeout)
		defer cancel()
	}
	addr := uc.conn.RemoteAddr()
	c, err := uc.cfg.DialFunc(ctx, addr.Network(), addr.String())
	if err != nil {
		return fmt.Errorf("dialing upstream for cancel: %w", err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if uc.tlsCfg != nil {
		var req [8]byte
		binary.BigEndian.PutUint32(req[0:], 8)
		binary.BigEndian.PutUint32(req[4:], sslRequestCode)
		if _, err := c.Write(req[:]); err != nil {
			return fmt.Errorf("cancel: ssl request: %w", err)
		}
		var b [1]byte
		if _, err := c.Read(b[:]); err != nil {
			return fmt.Errorf("cancel: ssl response: %w", err)
		}
		if b[0] != 'S' {
			return fmt.Errorf("cancel: upstream refused TLS")
		}
		tc := tls.Client(c, uc.tlsCfg.Clone())
		if err := tc.HandshakeContext(ctx); err != nil {
			return fmt.Errorf("cancel: tls handshake: %w", err)
		}
		c = tc
		defer tc.Close()
	}
	buf, err := (&pgproto3.CancelRequest{ProcessID: uc.pid, SecretKey: uc.secret}).Encode(nil)
	if err != nil {
		return fmt.Errorf("encoding cancel request: %w", err)
	}
	if _, err := c.Write(buf); err != nil {
		return fmt.Errorf("sending cancel request: %w", err)
	}
	// The server closes the connection once it has read the request.
	var b [1]byte
	_, _ = c.Read(b[:])
	return nil
}

// ConnectService opens a connection as the upstream service account with
// the pinned session settings, for pgveil's own queries; purpose names it
// in application_name.
func ConnectService(ctx context.Context, cfg *policy.Config, purpose string) (*pgconn.PgConn, error) {
	return connectService(ctx, cfg, purpose, true)
}

// connectService is ConnectService; retry says whether a memo of a
// refused check interval found stale may connect once more.
func connectService(ctx context.Context, cfg *policy.Config, purpose string, retry bool) (*pgconn.PgConn, error) {
	base, err := upstreamConfig(&cfg.Upstream)
	if err != nil {
		return nil, err
	}
	base.RuntimeParams = map[string]string{
		"application_name":            "pgveil:" + purpose,
		"client_encoding":             "UTF8",
		"standard_conforming_strings": "on",
		"client_min_messages":         "notice",
		"search_path":                 cfg.Upstream.SearchPath,
		// NOTE: pgveil's own statements (catalog, identities, the
		// checks' EXPLAINs) take no lock a session would wait on for
		// long: a DDL holding one must not hang a start or a reload.
		"lock_timeout": "5s",
	}
	iv := cfg.Upstream.ClientConnectionCheckInterval
	memoSkipped := iv > 0 && noServiceCheckInterval(cfg.Upstream.Address)
	if iv > 0 && !memoSkipped {
		// NOTE: pinned here too, though pgveil's own statements need it
		// less, so that a pooler refusing or dropping it stops the start
		// rather than every session.
		base.RuntimeParams[checkIntervalParam] = checkIntervalValue(iv)
	}
	// NOTE: only messagesProbe's notice is read; later ones are ignored,
	// as they were before.
	var probing bool
	var notices []string
	base.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		if probing {
			notices = append(notices, n.Message)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Upstream.ConnectTimeout)
	defer cancel()
	pc, err := pgconn.ConnectConfig(ctx, base)
	if unknownParam(err, checkIntervalParam) {
		// PostgreSQL 13 or older: it has no such setting.
		noCheckIntervalAt.Store(cfg.Upstream.Address, true)
		delete(base.RuntimeParams, checkIntervalParam)
		pc, err = pgconn.ConnectConfig(ctx, base)
	}
	if err != nil {
		return nil, poolerHint(err)
	}
	if err := checkEncoding(pc); err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	res, err := pc.Exec(ctx, serviceReadback).ReadAll()
	if err == nil && (len(res) != 1 || len(res[0].Rows) != 1 || len(res[0].Rows[0]) != 6) {
		err = errors.New("unexpected answer")
	}
	if err != nil {
		pc.Close(context.Background())
		return nil, fmt.Errorf("reading back the upstream connection's settings: %w", err)
	}
	row := res[0].Rows[0]
	if memoSkipped && row[5] != nil && retry {
		// NOTE: the server at this address has the setting, though one
		// there refused it: a failover or an upgrade (PostgreSQL 13 to
		// 14 or later). Forget the refusal and pin it, rather than
		// refuse this connection for a pin it was not asked to hold.
		noCheckIntervalAt.Delete(cfg.Upstream.Address)
		pc.Close(context.Background())
		return connectService(ctx, cfg, purpose, false)
	}
	lc := string(row[0])
	if err := checkMessages(lc, cfg.Upstream.User); err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	if err := checkServicePins(cfg, row); err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	pid, err := backendPID(row[1])
	if err == nil {
		poolers.Store(cfg.Upstream.Address, pid != pc.PID())
	}
	if err == nil && pid != pc.PID() {
		// The process id announced is not the backend's: a pooler's
		// cancel key.
		err = checkSharedBackends(ctx, base, pc, pid)
	}
	if err == nil && string(row[4]) != "5s" {
		if err = pc.Exec(ctx, serviceLockTimeout).Close(); err != nil {
			err = fmt.Errorf("setting lock_timeout on the upstream connection: %w", err)
		}
	}
	if err != nil {
		pc.Close(context.Background())
		return nil, err
	}
	if lc != "C" && lc != "POSIX" {
		probing = true
		err := pc.Exec(ctx, messagesProbe).Close()
		probing = false
		if err == nil && (len(notices) != 1 || notices[0] != messagesProbeWant) {
			err = fmt.Errorf("it says %q, not %q", notices, messagesProbeWant)
		}
		if err != nil {
			pc.Close(context.Background())
			return nil, fmt.Errorf("the upstream's messages may be translated although its lc_messages is %q "+
				"(a LANGUAGE variable in the server's environment translates any locale but C): %w; "+
				"as a superuser, run ALTER ROLE %s SET lc_messages = 'C'", lc, err,
				`"`+strings.ReplaceAll(cfg.Upstream.User, `"`, `""`)+`"`)
		}
	}
	return pc, nil
}

// noCheckIntervalAt holds the upstream addresses whose server refused
// client_connection_check_interval at startup (PostgreSQL 13 or older):
// ConnectService pins it there no more, as dialBackend does after its
// first refusal (Server.noCheckInterval).
// NOTE: each refusal is a FATAL in the server's log and a connection
// more, and /readyz connects as often as an orchestrator asks.
// NOTE: forgotten when a connection made without the pin reads the
// setting back (connectService): the address now reaches PostgreSQL 14
// or later, after a failover or an upgrade.
var noCheckIntervalAt sync.Map

// noServiceCheckInterval reports whether the server at address refused
// client_connection_check_interval.
func noServiceCheckInterval(address string) bool {
	_, ok := noCheckIntervalAt.Load(address)
	return ok
}

// messagesProbe has the server say a message of its own, which it does
// not log (a NOTICE, below log_min_messages' default): ConnectService
// reads it to know that the messages are untranslated, whatever the
// locale's name says. GNU gettext translates by the LANGUAGE variable of
// the server's environment over any lc_messages but C (C.UTF-8 and
// en_US.UTF-8 included); the service connection and every backend share
// that environment, and the service account's role and database
// settings.
// NOTE: a division by zero PL/pgSQL catches: PostgreSQL 13–18 word it
// messagesProbeWant.
const messagesProbe = `DO $pgveil$BEGIN PERFORM 1/0; EXCEPTION WHEN division_by_zero THEN RAISE NOTICE '%', SQLERRM; END$pgveil$`

// messagesProbeWant is messagesProbe's notice in PostgreSQL's own words.
const messagesProbeWant = "division by zero"

// checkEncoding refuses an upstream database whose encoding is not UTF8.
// pgveil reads statements as UTF-8, and cuts and folds names as
// PostgreSQL does in a UTF8 database; in another encoding PostgreSQL
// cuts a name at 63 bytes of its own encoding, so a name pgveil reads as
// a CTE's could be a governed table's upstream (a red team read every
// row of one in a LATIN1 database).
func checkEncoding(pc *pgconn.PgConn) error {
	if enc := pc.ParameterStatus("server_encoding"); enc != "UTF8" {
		return fmt.Errorf("the upstream database's encoding is %q: pgveil serves UTF8 databases only (it reads names as PostgreSQL does in UTF8)", enc)
	}
	return nil
}

// checkMessages refuses an upstream whose messages may not be in English
// (lc_messages, read back for the service account user). pgveil reads
// what PostgreSQL's errors say: it scrubs the values they quote (a
// check's failing row, an invalid input, a row's position in a lock
// wait) by the English wording and its double quotes; a translation
// quotes otherwise (the French one with « »), and those values would
// reach the client.
// NOTE: lc_messages is a superuser's setting: the service account
// cannot pin it at startup as it does the others.
func checkMessages(lcMessages, user string) error {
	if englishMessages(lcMessages) {
		return nil
	}
	return fmt.Errorf("the upstream's lc_messages is %q: pgveil reads PostgreSQL's error messages in English "+
		"(it scrubs the values they quote); as a superuser, run ALTER ROLE %s SET lc_messages = 'C'", lcMessages,
		`"`+strings.ReplaceAll(user, `"`, `""`)+`"`)
}

// englishMessages reports whether an lc_messages setting gives
// PostgreSQL's own messages, untranslated: C, POSIX or an English
// locale, as initdb writes them (C.UTF-8, en_US.UTF-8, English_United
// States.1252 on Windows). "" leaves the choice to the server's
// environment.
func englishMessages(v string) bool {
	v = strings.ToLower(v)
	for _, base := range []string{"c", "posix", "en", "english"} {
		rest, ok := strings.CutPrefix(v, base)
		if ok && (rest == "" || strings.ContainsRune("._@-", rune(rest[0]))) {
			return true
		}
	}
	return false
}

// SearchPath returns the schemas a search_path setting names, read as
// PostgreSQL reads it for a session whose user is user: names separated
// by commas, a quoted one kept as written (`""` for a quote), an
// unquoted one in lower case, each cut to 63 bytes, and `$user` the
// user's own name. The rewriter resolves unqualified names through them
// as the upstream does: split naively, `"$user", public` (PostgreSQL's
// default) named a schema "$user" instead of the service account's own,
// so an unqualified call of a function there went through unchecked (a
// red team read the emails of every country through one).
func SearchPath(setting, user string) []string {
	var out []string
	for s := setting; ; {
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s == "" {
			return out
		}
		var name string
		if s[0] == '"' {
			var b strings.Builder
			i := 1
			for ; i < len(s); i++ {
				if s[i] == '"' {
					if i+1 < len(s) && s[i+1] == '"' {
						b.WriteByte('"')
						i++
						continue
					}
					break
				}
				b.WriteByte(s[i])
			}
			name, s = b.String(), s[min(i+1, len(s)):]
		} else {
			i := strings.IndexAny(s, ", \t\n\r\f\v")
			if i < 0 {
				i = len(s)
			}
			name, s = downcaseIdent(s[:i]), s[i:]
		}
		if name == "$user" {
			name = user
		}
		if name = identCut(name); name != "" {
			out = append(out, name)
		}
		s = strings.TrimLeft(s, " \t\n\r\f\v")
		if s != "" && s[0] == ',' {
			s = s[1:]
		} else if s != "" {
			// Not a list PostgreSQL accepts: it refuses the setting;
			// the rest names nothing.
			return out
		}
	}
}

// downcaseIdent lower-cases an unquoted identifier as PostgreSQL does
// in a UTF8 database: ASCII letters only.
func downcaseIdent(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// identCut cuts an identifier to NAMEDATALEN-1 (63) bytes without
// splitting a UTF-8 sequence, as PostgreSQL's lexer does.
func identCut(s string) string { return truncateAppName(s) }
