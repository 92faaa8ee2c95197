package proxy

import (
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/statement"
)

// Connection caps.
//
// listen.max_connections bounds the client connections open at once,
// those in their startup included; a connection past it still reads its
// startup packet, to serve a CancelRequest or to answer a StartupMessage
// with PostgreSQL's own "sorry, too many clients already" (53300), and
// is closed. refuseHeadroom more than that are closed at once, unread:
// a flood of connections costs a bounded number of goroutines and
// descriptors, and each refused one at most listen.startup_timeout.
//
// listen.max_user_connections (or a user block's max_connections) bounds
// the sessions of one login, counted from its authentication until its
// session ends; one past it gets 53300 too, before any upstream backend
// is taken for it. A service account's sessions count under its own
// login, whoever it acts for.

// refuseHeadroom is how many connections past listen.max_connections
// may be reading their startup packet to be refused with a message.
const refuseHeadroom = 64

// refuseLogEvery spaces the log lines of connections closed unread.
const refuseLogEvery = 10 * time.Second

// admitConn reports, with s.mu held, how the server takes a connection
// just accepted: served, refused once its startup packet is read
// (over), or closed at once (drop).
func (s *Server) admitConn() (over, drop bool) {
	max := s.cfg.MaxConnections
	if max <= 0 {
		return false, false
	}
	n := len(s.conns) + len(s.sessions)
	return n >= max, n >= max+refuseHeadroom
}

// addressFull reports whether host holds listen.max_startup_per_address
// connections in their startup already (s.mu held).
func (s *Server) addressFull(host string) bool {
	max := s.cfg.MaxStartupPerAddress
	return max > 0 && host != "" && s.startups[host] >= max
}

// dropped counts and logs, at most once per refuseLogEvery, a
// connection of host closed unread past a cap (s.mu held).
func (s *Server) dropped(host string) {
	if s.addressFull(host) {
		s.droppedAddr++
		s.metrics.addressRefused()
	} else {
		s.droppedConns++
		s.metrics.connectionRefused(false)
	}
	if now := time.Now(); now.Sub(s.droppedLogged) >= refuseLogEvery {
		s.log.Warn("connections closed unread: listen.max_connections or listen.max_startup_per_address reached",
			zap.Int("max_connections", s.cfg.MaxConnections), zap.Int("closed", s.droppedConns),
			zap.Int("max_startup_per_address", s.cfg.MaxStartupPerAddress), zap.Int("closed_for_one_address", s.droppedAddr))
		s.droppedLogged, s.droppedConns, s.droppedAddr = now, 0, 0
	}
}

// tooManyClients is the answer to a StartupMessage past
// listen.max_connections: PostgreSQL's own message and code.
func (s *Server) tooManyClients() *clientError {
	return fatalErr(CodeTooManyConnections, "sorry, too many clients already",
		fmt.Sprintf("pgveil serves at most %d client connections at once (listen.max_connections).", s.cfg.MaxConnections), nil)
}

// userLimit returns the most sessions login may hold at once, 0 for no
// cap.
func (s *Server) userLimit(login string) (limit int, byUser bool) {
	if u, ok := s.users(login); ok && u.MaxConnections > 0 {
		return u.MaxConnections, true
	}
	return s.cfg.MaxUserConnections, false
}

// poolUserLimit returns the most pooled backends login's sessions may
// hold at once, 0 for no cap, and the setting that says so: a user
// block's max_pool_backends, or upstream.pool.max_per_user.
func (s *Server) poolUserLimit(login string) (int, string) {
	if u, ok := s.users(login); ok && u.MaxPoolBackends > 0 {
		return u.MaxPoolBackends, fmt.Sprintf("max_pool_backends of user %q", login)
	}
	return s.cfg.Upstream.Pool.MaxPerUser, "upstream.pool.max_per_user"
}

// admitUser counts the authenticated session ss against its login's
// cap, or refuses it with 53300 when the login holds as many sessions
// as its cap already. A session it counted gives its place back with
// releaseUser.
func (s *Server) admitUser(ss *session) error {
	login := ss.info.User
	limit, byUser := s.userLimit(login)
	s.mu.Lock()
	defer s.mu.Unlock()
	if limit > 0 && s.userSessions[login] >= limit {
		s.metrics.connectionRefused(true)
		setting := "listen.max_user_connections"
		if byUser {
			setting = fmt.Sprintf("max_connections of user %q", login)
		}
		return fatalErr(CodeTooManyConnections, fmt.Sprintf("too many connections for user %q", login),
			fmt.Sprintf("The user may hold %s at once (%s); close one and try again.", sessionsText(limit), setting), nil)
	}
	s.userSessions[login]++
	ss.countedAs = login
	return nil
}

// releaseUser gives back the place admitUser counted for ss, once.
func (s *Server) releaseUser(ss *session) {
	s.mu.Lock()
	defer s.mu.Unlock()
	login := ss.countedAs
	if login == "" {
		return
	}
	ss.countedAs = ""
	if s.userSessions[login]--; s.userSessions[login] <= 0 {
		delete(s.userSessions, login)
	}
}

// sessionsText is "1 session" or "n sessions".
func sessionsText(n int) string {
	if n == 1 {
		return "1 session"
	}
	return fmt.Sprintf("%d sessions", n)
}

// Messages without their answers.
//
// After an error in an extended-protocol batch PostgreSQL discards every
// message up to the next Sync, unanswered, so nothing slows a client
// that keeps sending; what pgveil follows of each message until its
// answer (the statement tracker's queues and texts, the Queries a
// failed batch skips, the refusals waiting for their markers' errors,
// a pooled session's Parses in flight) is bounded: each by
// statement.MaxHeldMessages entries, the tracker's texts by
// statement.MaxHeldBytes. Past them the session ends with 54000, as
// PostgreSQL ends a statement past one of its program limits. A client
// that reads its answers holds only what is in flight, however long its
// batch; PgJDBC sends a Sync every few hundred messages. Queries outside
// an extended batch each get a ReadyForQuery and are not counted.

// heldOver returns the end of a session whose client sent more messages
// without their answers than pgveil follows, nil otherwise (client
// relay, after each message).
func (ss *session) heldOver() *sessionEnd {
	if !ss.overHeld && !ss.extSkips.over && (ss.track == nil || !ss.track.Over()) {
		return nil
	}
	msg := fmt.Sprintf("too many messages sent without their answers: pgveil follows at most %d, of %d MiB of statement text, until they are answered",
		statement.MaxHeldMessages, statement.MaxHeldBytes>>20)
	return &sessionEnd{
		resp: fatal(CodeProgramLimitExceeded, msg,
			"After an error PostgreSQL skips every message up to the next Sync: end each batch with a Sync, and read its answers."),
		reason: msg, warn: true,
	}
}
