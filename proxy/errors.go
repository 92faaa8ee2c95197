package proxy

import (
	"errors"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/internal/sqlstate"
)

// SQLSTATE codes pgveil sends itself, under the names the proxy's code
// uses; the codes themselves are defined once, in internal/sqlstate.
const (
	CodeInsufficientPrivilege = sqlstate.InsufficientPrivilege
	CodeSyntaxError           = sqlstate.SyntaxError
	CodeProtocolViolation     = sqlstate.ProtocolViolation
	CodeConnectionFailure     = sqlstate.ConnectionFailure
	CodeCannotConnect         = sqlstate.CannotConnect
	CodeInvalidAuthorization  = sqlstate.InvalidAuthorization
	CodeInvalidPassword       = sqlstate.InvalidPassword
	CodeInvalidCatalogName    = sqlstate.InvalidCatalogName
	CodeInvalidParameterValue = sqlstate.InvalidParameterValue
	CodeFeatureNotSupported   = sqlstate.FeatureNotSupported
	CodeAdminShutdown         = sqlstate.AdminShutdown
	CodeCannotConnectNow      = sqlstate.CannotConnectNow
	CodeInternalError         = sqlstate.InternalError
	CodeTooManyConnections    = sqlstate.TooManyConnections
	CodeIdleInTransaction     = sqlstate.IdleInTransactionTimeout
	CodeProgramLimitExceeded  = sqlstate.ProgramLimitExceeded
	// codeInvalidCursorName is what an Execute of an unknown portal
	// fails with.
	codeInvalidCursorName = sqlstate.InvalidCursorName
	// codeInvalidParameterValue is what a rollbackMarker fails with.
	codeInvalidParameterValue = sqlstate.InvalidParameterValue
	// codeUndefinedStatement and codeDuplicateStatement name a prepared
	// statement, which transaction mode renames upstream.
	codeUndefinedStatement = sqlstate.InvalidStatementName
	codeDuplicateStatement = sqlstate.DuplicatePreparedStatement
	// codeUndefinedTable and codeUndefinedColumn, from upstream, may
	// mean the catalog snapshot lags a DBA's DDL (Options.StaleCatalog).
	codeUndefinedTable  = sqlstate.UndefinedTable
	codeUndefinedColumn = sqlstate.UndefinedColumn
)

// Refusal is the error a Rewriter returns to refuse a statement: the client
// receives an ErrorResponse with its fields, in the position of the
// refused statement, and the session stays usable. It is
// firewall.Refusal, the one refusal type proxy and rewrite share (a
// rewrite.Refused is a Refusal); its Code is 42501 when empty.
type Refusal = firewall.Refusal

// asRefusal converts any error from a Rewriter into the refusal sent to
// the client, as a copy the caller may keep. A *Refusal keeps its
// SQLSTATE (42501 when empty), hint and rule; other errors that carry
// their own SQLSTATE and hint keep them. Any other error is a bug or an
// unexpected condition: the statement is refused all the same (fail
// closed, firewall rule internal_error) with a generic message that
// reveals nothing of the error.
func asRefusal(err error) *Refusal {
	var r *Refusal
	if errors.As(err, &r) {
		rr := *r
		if rr.Code == "" {
			rr.Code = CodeInsufficientPrivilege
		}
		return &rr
	}
	var coded interface {
		error
		SQLState() string
		HintText() string
		RuleName() string
	}
	if errors.As(err, &coded) {
		return &Refusal{Code: coded.SQLState(), Message: coded.Error(), Hint: coded.HintText(), Rule: coded.RuleName()}
	}
	return firewall.New("internal_error", "pgveil refused the statement: it could not be checked against the policy")
}

// errorResponse builds an ErrorResponse with severity sev ("ERROR" or
// "FATAL").
func errorResponse(sev, code, msg, detail, hint string) *pgproto3.ErrorResponse {
	return &pgproto3.ErrorResponse{
		Severity:            sev,
		SeverityUnlocalized: sev,
		Code:                code,
		Message:             msg,
		Detail:              detail,
		Hint:                hint,
	}
}

// fatal builds a FATAL ErrorResponse.
func fatal(code, msg, hint string) *pgproto3.ErrorResponse {
	return errorResponse("FATAL", code, msg, "", hint)
}

// clientError is an error that ends a session and carries the FATAL
// message the client must receive first.
type clientError struct {
	resp *pgproto3.ErrorResponse
	// cause is logged, never sent.
	cause error
	// upstream marks a failure to open the session's backend
	// (upstreamFailure): logged as an error and audited as
	// connect_failed, whatever its SQLSTATE.
	upstream bool
}

func (e *clientError) Error() string {
	if e.cause != nil {
		return e.resp.Message + ": " + e.cause.Error()
	}
	return e.resp.Message
}

func (e *clientError) Unwrap() error { return e.cause }

// fatalErr returns a clientError with a FATAL response.
func fatalErr(code, msg, hint string, cause error) *clientError {
	return &clientError{resp: fatal(code, msg, hint), cause: cause}
}

// upstreamFailure returns the clientError, of severity sev, of a session
// that could not open its backend because of cause.
func upstreamFailure(sev string, cause error) *clientError {
	return &clientError{resp: upstreamConnectError(sev, cause), cause: cause, upstream: true}
}

// upstreamConnectError returns what a client is told, with severity sev,
// when pgveil could not open a backend because of err: the class of the
// server's refusal when the client can act on it (53300, no slot free;
// 57P03, starting up or shutting down: both worth retrying shortly),
// 08001 otherwise, each with a hint.
//
// NOTE: never the server's own text, which names the service account,
// the database or the host; the log has it (clientError.cause).
func upstreamConnectError(sev string, err error) *pgproto3.ErrorResponse {
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		switch pe.Code {
		case CodeTooManyConnections:
			return errorResponse(sev, CodeTooManyConnections, "the upstream server has no connection slot free for pgveil", "",
				"Try again shortly. If it persists, ask the DBA to raise the upstream's max_connections or the service account's connection limit.")
		case CodeCannotConnectNow:
			return errorResponse(sev, CodeCannotConnectNow, "the upstream server is starting up or shutting down", "",
				"Try again in a few seconds.")
		}
	}
	return errorResponse(sev, CodeCannotConnect, "pgveil could not connect to the upstream server", "",
		"The upstream server is down, unreachable or refused pgveil's service account. Try again shortly; if it persists, tell the DBA: pgveil's log says why.")
}
