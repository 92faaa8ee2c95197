package rewrite_test

import (
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// TestApplicationNameSQL checks that the statement naming a pooled
// session's user sets exactly the value given, whatever it holds.
func TestApplicationNameSQL(t *testing.T) {
	for _, value := range []string{
		"pgveil:marie:psql",
		"pgveil:hq:Tableau 2024.1",
		`pgveil:o'brien:x'; DROP TABLE responses; --`,
		`pgveil:a:"quoted" \ back`,
		"pgveil:a:$$dollar$$",
	} {
		t.Run(value, func(t *testing.T) {
			sql, err := rewrite.ApplicationNameSQL(value)
			if err != nil {
				t.Fatal(err)
			}
			tree, err := pg_query.Parse(sql)
			if err != nil || len(tree.Stmts) != 1 {
				t.Fatalf("%q: %v", sql, err)
			}
			set := tree.Stmts[0].Stmt.GetVariableSetStmt()
			if set == nil || set.Name != "application_name" || set.IsLocal || len(set.Args) != 1 ||
				set.Args[0].GetAConst().GetSval().GetSval() != value {
				t.Fatalf("%q does not set application_name to %q", sql, value)
			}
		})
	}
}
