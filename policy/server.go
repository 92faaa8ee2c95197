package policy

import (
	"context"
	"errors"
	"strings"
)

// Server is the upstream PostgreSQL as LoadIdentities and the live checks
// (CheckCatalog, CheckServiceAccount, CheckMaskKeys) query it: one
// connection as the service account with the pinned settings. This
// package decides what to ask and what the answers mean; policy/live
// asks, over a pgconn connection (live.New). The package itself does no
// database I/O.
//
// An error for a statement PostgreSQL rejected has a method
// ServerMessage() (message, detail string); any other error means the
// connection failed.
type Server interface {
	// Exec runs sql, one or more statements, with the simple query
	// protocol, and discards their results.
	Exec(ctx context.Context, sql string) error
	// Query runs one statement with the extended protocol and params
	// as its text parameters, and returns its columns and its rows in
	// text format (a nil value is NULL).
	Query(ctx context.Context, sql string, params ...string) ([]Field, [][][]byte, error)
	// Describe prepares sql as the unnamed statement and returns its
	// columns.
	Describe(ctx context.Context, sql string) ([]Field, error)
}

// Field describes a column of a result.
//
// NOTE: an alias of a struct type, not a defined type, so that a Server
// returns it without importing this package (policy/live does not, so
// that this package's tests can use it).
type Field = struct {
	// Name is the column's name.
	Name string
	// OID is the column's type.
	OID uint32
}

// serverRejection is the error of a statement PostgreSQL rejected (see
// Server).
type serverRejection interface {
	error
	ServerMessage() (message, detail string)
}

// rejection returns the message of err, with its detail, when it is a
// statement PostgreSQL rejected; ok is false when the connection failed.
func rejection(err error) (msg string, ok bool) {
	var r serverRejection
	if !errors.As(err, &r) {
		return "", false
	}
	msg, detail := r.ServerMessage()
	if detail != "" {
		msg += " (" + strings.TrimSuffix(detail, ".") + ")"
	}
	return msg, true
}

// serverHint returns the hint PostgreSQL gave with the rejection err,
// or "" (the Server's errors need not carry one).
func serverHint(err error) string {
	var h interface{ ServerHint() string }
	if !errors.As(err, &h) {
		return ""
	}
	return h.ServerHint()
}
