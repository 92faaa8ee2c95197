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
// written (42601, firewall rule syntax).
func denySyntax(format string, args ...any) *Refused {
	return deny("syntax", format, args...)
}
