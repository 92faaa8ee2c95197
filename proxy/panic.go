package proxy

import (
	"errors"
	"fmt"
	"net"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
)

// contain runs one of the session's relays and turns a panic in it (a bug
// in pgveil, perhaps reached by a hostile statement) into the end of this
// session only: the client gets XX000 and a generic message, the log
// gets the value and the stack, the audit trail a "panic" event and the
// metrics pgveil_panics_total. Every other session of the process goes on.
//
// NOTE: the panic value may hold statement text or policy details, so it
// goes to the log only, never to the client.
func (ss *session) contain(relay string, run func() sessionEnd) (e sessionEnd) {
	defer func() {
		if p := recover(); p != nil {
			e = ss.panicked(relay, p)
		}
	}()
	return run()
}

// panicked records a panic of relay and returns how the session ends.
func (ss *session) panicked(relay string, p any) sessionEnd {
	reason := fmt.Sprintf("internal error in the %s", relay)
	ss.log.Error("session ended by an internal error", zap.String("relay", relay),
		zap.String("panic", fmt.Sprint(p)), zap.StackSkip("stack", 2))
	ss.srv.metrics.panicked()
	ss.auditEvent(audit.EventPanic, reason, 0)
	return sessionEnd{
		resp:   fatal(CodeInternalError, "pgveil: internal error; the session was ended", ""),
		reason: reason,
		warn:   true,
	}
}

// errStartPanicked ends a start that panicked (startContained).
var errStartPanicked = errors.New("internal error during startup")

// startContained is ss.start with a panic in it (a bug in pgveil)
// recorded as containStartup records one, and returned as an error, so
// that failStartup gives back what the start took: the login's place
// under its cap (admitUser), its pooled login, its cancel key and its
// upstream connection.
// NOTE: errStartPanicked is no clientError: the client gets no message,
// as with containStartup. A panic once the session counts as started
// (session.open: the last sendClient of a start) ends it as the panic
// it is, in the log and the audit trail, never as a client that
// disconnected (failStartup).
func (ss *session) startContained(res *startupResult) (err error) {
	defer func() {
		if p := recover(); p != nil {
			ss.log.Error("connection ended by an internal error during startup",
				zap.String("panic", fmt.Sprint(p)), zap.StackSkip("stack", 2))
			ss.srv.metrics.panicked()
			if ss.opened {
				// The audit trail has the session's connect record: it
				// gets the panic, as a relay's (panicked).
				ss.auditEvent(audit.EventPanic, errStartPanicked.Error(), 0)
			}
			err = errStartPanicked
		}
	}()
	return ss.start(res)
}

// containStartup is handle's last resort for a panic before the session
// relays (negotiation, authentication, the upstream dial): it records the
// panic, and handle's deferred closes then free the connection. Nothing
// is written to the client: the connection may be inside TLS by then.
func (s *Server) containStartup(conn net.Conn) {
	p := recover()
	if p == nil {
		return
	}
	s.log.Error("connection ended by an internal error during startup",
		zap.String("client", conn.RemoteAddr().String()),
		zap.String("panic", fmt.Sprint(p)), zap.StackSkip("stack", 2))
	s.metrics.panicked()
}
