package firewall

import (
	"fmt"

	"github.com/pgveil/pgveil/internal/sqlstate"
)

// Refusal is the error returned for a statement pgveil refuses: the client
// receives an ErrorResponse with these fields in the refused statement's
// position, the audit trail records Rule, and the session stays usable.
type Refusal struct {
	// Code is the SQLSTATE: 42501 for policy, 42601 for syntax; the
	// proxy sends 42501 when it is empty.
	Code string
	// Rule names the firewall rule that refused, for the client's message
	// and the audit trail.
	Rule string
	// Message is the primary, human-readable message.
	Message string
	// Detail and Hint are optional.
	Detail string
	Hint   string
	// Tables are the relations the statement named that the rewriter
	// had resolved when it refused it, as "schema.name" in order, for the
	// audit trail (nil when none, or when the refusal is not the
	// rewriter's).
	Tables []string
	// Kind is the kind of the statement refused, for the audit trail
	// (select, copy, drop, create_function…, as rewrite names them), when
	// the rewriter refused it; "" otherwise.
	Kind string
	// Fingerprint is pg_query's fingerprint of the refused text, when the
	// rewriter knows it (rewrite.Engine.SetFingerprints): computed once
	// and cached with the refusal, so that the audit writer need not
	// parse the text of each refused statement again. "" otherwise.
	Fingerprint string
	// EndsTransaction: the statement refused is one whose failure ends
	// the transaction block in PostgreSQL (PREPARE TRANSACTION fails
	// into a ROLLBACK), so its refusal must end it too.
	//
	// NOTE: clients rely on it: postgres.js (sql.begin with sql.prepare)
	// releases its connection only on a ReadyForQuery of status I.
	EndsTransaction bool
}

// Error returns the primary message.
func (r *Refusal) Error() string { return r.Message }

// SQLState returns the SQLSTATE the client receives.
func (r *Refusal) SQLState() string { return r.Code }

// HintText returns the hint the client receives.
func (r *Refusal) HintText() string { return r.Hint }

// RuleName returns the firewall rule that refused, for the audit trail.
func (r *Refusal) RuleName() string { return r.Rule }

// Deny builds the refusal of a statement by the registered rule named
// rule: its SQLSTATE and hint come from the registry, and the message
// names the rule. A name the registry lacks still refuses, with 42501
// (TestRulesInCode keeps the code's names registered).
func Deny(rule, format string, args ...any) *Refusal {
	return New(rule, "pgveil refused the statement: "+fmt.Sprintf(format, args...)+" (firewall rule "+rule+")")
}

// New builds a refusal by the registered rule named rule with message as
// it is, and the rule's SQLSTATE and hint.
func New(rule, message string) *Refusal {
	r := Lookup(rule)
	return &Refusal{Code: r.Code, Rule: rule, Message: message, Hint: r.Hint}
}

// defaultCode is the SQLSTATE of a rule the registry lacks.
const defaultCode = sqlstate.InsufficientPrivilege
