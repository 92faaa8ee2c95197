package rewrite

import (
	"fmt"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/internal/sqlstate"
)

// SQLSTATE codes of refusals, under the names rewrite's callers know;
// the codes themselves are defined once, in internal/sqlstate.
const (
	CodeInsufficientPrivilege = sqlstate.InsufficientPrivilege
	CodeSyntaxError           = sqlstate.SyntaxError
	CodeUndefinedTable        = sqlstate.UndefinedTable
	CodeDuplicateColumn       = sqlstate.DuplicateColumn
)

// Refused is the error Rewrite returns for a statement the firewall
// refuses: firewall.Refusal, the one refusal type rewrite and proxy
// share. Its Rule names the firewall rule, for the client's message and
// the audit log.
type Refused = firewall.Refusal

// deny builds a refusal by the firewall rule named rule, with the rule's
// SQLSTATE and hint from the registry (firewall.Rules).
func deny(rule, format string, args ...any) *Refused {
	return firewall.Deny(rule, format, args...)
}

// UnknownRelationError reports a relation, or an operator or a type, the
// catalog snapshot does not hold. The statement is refused; a caller may
// refresh its snapshot and try once more, since the object may be newer
// than the snapshot: an operator or a cast created since could call a
// function the policy refuses.
type UnknownRelationError struct {
	Name string
	// Kind is "" for a relation, or KindOperator, KindType or KindColumn.
	Kind string
}

// Kinds of UnknownRelationError other than relations.
const (
	KindOperator = "operator"
	KindType     = "type"
)

func (e *UnknownRelationError) Error() string {
	switch e.Kind {
	case KindOperator:
		return fmt.Sprintf("operator does not exist: %s", e.Name)
	case KindType:
		return fmt.Sprintf("type %q does not exist", e.Name)
	case KindColumn:
		return fmt.Sprintf("column %q does not exist", e.Name)
	}
	return fmt.Sprintf("relation %q does not exist", e.Name)
}

// Refusal is the refusal of a statement naming the unknown object, with
// PostgreSQL's SQLSTATE for it, by the firewall rule unknown_relation.
func (e *UnknownRelationError) Refusal() *Refused {
	code := CodeUndefinedTable
	switch e.Kind {
	case KindOperator:
		code = sqlstate.UndefinedFunction
	case KindType:
		code = sqlstate.UndefinedObject
	case KindColumn:
		code = sqlstate.UndefinedColumn
	}
	return &Refused{Code: code, Rule: "unknown_relation", Message: e.Error()}
}

// denySyntax builds a refusal of a statement pgveil will not pass on as
// written (42601, firewall rule syntax).
func denySyntax(format string, args ...any) *Refused {
	return deny("syntax", format, args...)
}
