package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// SetList splits sql, a text the rewriter allowed, into the SETs a
// transaction pool can keep for the session one by one, when it is only
// that: SETs of a value (not LOCAL, not of the transaction) and SHOWs,
// after one BEGIN or START TRANSACTION at most (begins). psqlODBC sends
// SET DateStyle = 'ISO';SET extra_float_digits = 2;show
// transaction_isolation on connecting, and BEGIN;SET … with autocommit
// off. sets are the SETs' own texts, in order, cut from sql where the
// parser says each statement is; ok is false for any other text.
func SetList(sql string) (sets []string, begins, ok bool) {
	tree, err := pg_query.Parse(sql)
	if err != nil || len(tree.Stmts) < 2 {
		return nil, false, false
	}
	texts, err := pg_query.SplitWithParser(sql, true)
	if err != nil || len(texts) != len(tree.Stmts) {
		return nil, false, false
	}
	for i, raw := range tree.Stmts {
		switch s := raw.Stmt.GetNode().(type) {
		case *pg_query.Node_TransactionStmt:
			k := s.TransactionStmt.Kind
			if i != 0 || k != pg_query.TransactionStmtKind_TRANS_STMT_BEGIN && k != pg_query.TransactionStmtKind_TRANS_STMT_START {
				return nil, false, false
			}
			begins = true
		case *pg_query.Node_VariableSetStmt:
			v := s.VariableSetStmt
			if v.IsLocal || v.Kind != pg_query.VariableSetKind_VAR_SET_VALUE || isActSetting(v.Name) {
				return nil, false, false
			}
			sets = append(sets, texts[i])
		case *pg_query.Node_VariableShowStmt:
		default:
			return nil, false, false
		}
	}
	return sets, begins, len(sets) > 0
}
