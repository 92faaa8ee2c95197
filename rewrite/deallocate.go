package rewrite

import (
	"errors"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// RenameDeallocations returns sql, a text of DEALLOCATE and transaction
// control statements only, with the statement each DEALLOCATE names
// renamed by names: in transaction pooling the proxy prepares a
// session's protocol-level statements upstream under names of its own,
// and psqlODBC drops the statements it prepared with SQL (SAVEPOINT …;
// DEALLOCATE "_PLAN…"; RELEASE …). The change is made on the syntax tree
// and deparsed, and the deparse must parse back into that tree. It fails
// on any other statement, on DEALLOCATE ALL, and on a name names lacks:
// a text renamed in part would reach statements the session does not
// hold.
func RenameDeallocations(sql string, names map[string]string) (string, error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return "", err
	}
	for _, raw := range tree.Stmts {
		switch s := raw.Stmt.GetNode().(type) {
		case *pg_query.Node_TransactionStmt:
		case *pg_query.Node_DeallocateStmt:
			to, ok := names[s.DeallocateStmt.Name]
			if s.DeallocateStmt.Isall || s.DeallocateStmt.Name == "" || !ok {
				return "", errors.New("a DEALLOCATE of a statement not renamed")
			}
			s.DeallocateStmt.Name = to
		default:
			return "", errors.New("a statement other than DEALLOCATE or transaction control")
		}
	}
	out, err := pg_query.Deparse(tree)
	if err != nil {
		return "", err
	}
	if !deparsedFaithfully(out, tree) {
		return "", errors.New("the renamed text did not re-parse")
	}
	return out, nil
}
