package proxy

import (
	"context"
	"net"
	"time"

	"github.com/pgveil/pgveil/rewrite"
)

// Source tells which frontend message carried a statement.
type Source byte

const (
	// SourceQuery is a simple-protocol Query message; its text may hold
	// several statements separated by semicolons.
	SourceQuery Source = 'Q'
	// SourceParse is an extended-protocol Parse message: one statement.
	SourceParse Source = 'P'
	// sourceExecute is an Execute message pgveil refuses in its place
	// (refuse); it carries no statement.
	sourceExecute Source = 'E'
)

// Statement is one statement text on its way upstream.
type Statement struct {
	// Source is the message that carried Text.
	Source Source
	// Text is the SQL exactly as the client sent it.
	Text string
	// Name is the prepared statement name of a Parse message ("" for the
	// unnamed statement and for Query messages).
	Name string
	// ParamOIDs are the parameter types a Parse message declares.
	ParamOIDs []uint32
	// PolicyVersion is set by the Rewriter: the version of the policy
	// that decided, for the audit trail.
	PolicyVersion string
}

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

// PassThrough is the Rewriter that forwards every statement unchanged.
type PassThrough struct{}

// Rewrite returns st.Text.
func (PassThrough) Rewrite(_ context.Context, _ *SessionInfo, st *Statement) (*rewrite.Result, error) {
	return &rewrite.Result{SQL: st.Text}, nil
}
