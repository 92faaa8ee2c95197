package rewrite

import "fmt"

// SQLSTATE codes of refusals.
const (
	CodeInsufficientPrivilege = "42501"
	CodeSyntaxError           = "42601"
	CodeUndefinedTable        = "42P01"
)

// Refused is the error Rewrite returns for a statement the firewall
// refuses. Rule names the firewall rule, for the client's message and the
// audit log.
type Refused struct {
	// Code is the SQLSTATE: 42501 for policy, 42601 for syntax.
	Code string
	// Rule is the name of the firewall rule that refused.
	Rule string
	// Message is the primary message for the client.
	Message string
	// Hint is an optional suggestion for the client.
	Hint string
}

func (d *Refused) Error() string {
	return d.Message
}

// SQLState returns the SQLSTATE the client receives.
func (d *Refused) SQLState() string { return d.Code }

// HintText returns the hint the client receives.
func (d *Refused) HintText() string { return d.Hint }

// RuleName returns the firewall rule that refused, for the audit trail.
func (d *Refused) RuleName() string { return d.Rule }

// deny builds a policy refusal naming rule.
func deny(rule, format string, args ...any) *Refused {
	return &Refused{
		Code:    CodeInsufficientPrivilege,
		Rule:    rule,
		Message: "pgveil refused the statement: " + fmt.Sprintf(format, args...) + " (firewall rule " + rule + ")",
		Hint:    ruleHints[rule],
	}
}

// UnknownRelationError reports a relation the catalog snapshot does not
// hold. The statement is refused; a caller may refresh its snapshot and
// try once more, since the relation may be newer than the snapshot.
type UnknownRelationError struct {
	Name string
}

func (e *UnknownRelationError) Error() string {
	return fmt.Sprintf("relation %q does not exist", e.Name)
}

// denySyntax builds a refusal of a statement pgveil will not pass on as
// written (42601).
func denySyntax(format string, args ...any) *Refused {
	r := deny("syntax", format, args...)
	r.Code = CodeSyntaxError
	return r
}
