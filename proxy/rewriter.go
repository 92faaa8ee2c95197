package proxy

import (
	"context"
	"net"
	"time"

	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/rewrite"
)

// Statement, Source and its values are the statement package's: the
// statement a session hands the Rewriter and the tracker follows.
type (
	Statement = statement.Statement
	Source    = statement.Source
)

// The messages that carry a statement (statement.Source).
const (
	SourceQuery   = statement.SourceQuery
	SourceParse   = statement.SourceParse
	sourceExecute = statement.SourceExecute
)

// SessionInfo describes an authenticated client session. It is immutable
// once the session starts.
type SessionInfo struct {
	// ID identifies the session in logs (and later the audit trail).
	ID string
	// User is the login the client authenticated as; for the Rewriter of
	// a BI service's session acting for an end user, that end user.
	User string
	// Service is, for the Rewriter of a session acting for an end user,
	// the login the client authenticated as (a BI service); "" otherwise.
	Service string
	// Roles are the user's roles when the session started.
	Roles []string
	// Database is the database name the client asked for.
	Database string
	// ApplicationName is the client's own application_name.
	ApplicationName string
	// ClientAddr is the client's remote address.
	ClientAddr net.Addr
	// TLS reports whether the client connection is encrypted.
	TLS bool
	// Started is when authentication succeeded.
	Started time.Time
	// Directory reports a login authenticated by the LDAP directory: its
	// roles and groups are those DirectoryGroups map to, under the
	// configuration in force at each statement.
	Directory bool
	// DirectoryGroups are the DNs of the user's directory groups: read at
	// login, or again at a policy reload (Server.RefreshDirectory).
	DirectoryGroups []string
	// ActingDirectory reports, for the Rewriter of a session acting for
	// an end user who logs in through the LDAP directory, that
	// ActingGroups are her groups' DNs, read as the ldap block's bind DN
	// when the service switched to her (or again at a reload): her roles
	// are those her own login would get. ActingRefused, when set, is why
	// the session may not act for her with them.
	// NOTE: DirectoryGroups stay the service's own.
	ActingDirectory bool
	ActingGroups    []string
	ActingRefused   string
}

// Rewriter is the statement hook: every statement text from a Query or a
// Parse message goes through Rewrite before it is forwarded. It returns
// the text to forward (Result.SQL) with what the audit trail says of it,
// or an error to refuse the statement; a *Refusal chooses the SQLSTATE
// and message the client receives, any other error is refused with 42501
// (fail closed). The Result may be shared and must not be modified.
//
// NOTE: Rewrite is called from the session's client-reading goroutine, one
// statement at a time per session, and concurrently across sessions.
type Rewriter interface {
	Rewrite(ctx context.Context, s *SessionInfo, st *Statement) (*rewrite.Result, error)
}

// cachedRewriter is a Rewriter that can answer from its caches alone.
// RewriteCached is Rewrite for a statement it has an answer for, and
// reports false, having done nothing, for one that needs the parser:
// the event loop checks the first kind inline and hands the second to a
// worker goroutine (loop_linux.go). A Rewriter without it has every
// statement checked on a worker.
type cachedRewriter interface {
	RewriteCached(s *SessionInfo, st *Statement) (*rewrite.Result, bool, error)
}

// PassThrough is the Rewriter that forwards every statement unchanged.
type PassThrough struct{}

// RewriteCached returns st.Text: forwarding needs no parse.
func (PassThrough) RewriteCached(_ *SessionInfo, st *Statement) (*rewrite.Result, bool, error) {
	return &rewrite.Result{SQL: st.Text}, true, nil
}

// Rewrite returns st.Text.
func (PassThrough) Rewrite(_ context.Context, _ *SessionInfo, st *Statement) (*rewrite.Result, error) {
	return &rewrite.Result{SQL: st.Text}, nil
}
