package proxy

import (
	"errors"

	"github.com/jackc/pgx/v5/pgproto3"
)

// SQLSTATE codes pgveil sends itself.
const (
	CodeInsufficientPrivilege = "42501"
	CodeSyntaxError           = "42601"
	CodeProtocolViolation     = "08P01"
	CodeConnectionFailure     = "08006"
	CodeCannotConnect         = "08001"
	CodeInvalidAuthorization  = "28000"
	CodeInvalidPassword       = "28P01"
	CodeInvalidCatalogName    = "3D000"
	CodeFeatureNotSupported   = "0A000"
	CodeAdminShutdown         = "57P01"
	CodeInternalError         = "XX000"
	// codeInvalidCursorName is what an Execute of an unknown portal
	// fails with.
	codeInvalidCursorName = "34000"
)

// Refusal is the error a Rewriter returns to refuse a statement: the client
// receives an ErrorResponse with these fields, in the position of the
// refused statement, and the session stays usable.
type Refusal struct {
	// Code is the SQLSTATE; 42501 when empty.
	Code string
	// Message is the primary, human-readable message.
	Message string
	// Detail and Hint are optional.
	Detail string
	Hint   string
	// Rule names the firewall rule that refused, for the audit trail.
	Rule string
}

func (r *Refusal) Error() string { return r.Message }

// asRefusal converts any error from a Rewriter into the refusal sent to
// the client. Errors that carry their own SQLSTATE and hint (such as
// rewrite.Refused) keep them. An error that is not a *Refusal is a bug or an unexpected
// condition: the statement is refused all the same (fail closed) with a
// generic message that reveals nothing of the error.
func asRefusal(err error) *Refusal {
	var coded interface {
		error
		SQLState() string
		HintText() string
		RuleName() string
	}
	if errors.As(err, &coded) {
		return &Refusal{Code: coded.SQLState(), Message: coded.Error(), Hint: coded.HintText(), Rule: coded.RuleName()}
	}
	var r *Refusal
	if errors.As(err, &r) {
		if r.Code == "" {
			rr := *r
			rr.Code = CodeInsufficientPrivilege
			return &rr
		}
		return r
	}
	return &Refusal{
		Code:    CodeInsufficientPrivilege,
		Message: "pgveil refused the statement: it could not be checked against the policy",
		Rule:    "internal_error",
	}
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
