package rewrite_test

import (
	"context"
	"slices"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestAuditColumnsReadWithoutTheirNames checks that the audit's masked
// and readable columns list a column a statement reads without naming
// it: the audit says "never fewer than it read", and an auditor's search
// for a column (pgveil audit search --masked-column, --column) must find
// the statement. responses' third column is contact, masked for marie.
func TestAuditColumnsReadWithoutTheirNames(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	for _, tc := range []struct {
		name, sql string
	}{
		{"a column alias list on the table renames contact", "SELECT x FROM responses AS t(a, b, x)"},
		{"a column alias list on a join renames contact", "SELECT c FROM (responses r JOIN countries k ON k.code = r.country) AS j(a, b, c)"},
		{"a NATURAL join compares contact in its condition", "SELECT count(*) FROM responses a NATURAL JOIN responses b"},
		{"a USING join compares contact in its condition", "SELECT count(*) FROM responses a JOIN responses b USING (contact)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res, err := e.Rewrite(context.Background(), "marie", 'Q', tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(res.MaskedRead, "public.responses.contact") {
				t.Errorf("masked %v, columns %v: want public.responses.contact among the masked columns read", res.MaskedRead, res.Columns)
			}
		})
	}
}
