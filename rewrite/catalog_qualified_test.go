package rewrite

import (
	"encoding/json"
	"fmt"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// TestCatalogSQLNamesOnlyPGCatalog: the catalog read runs on the pinned
// search_path, where a DBA may define an operator, function or type that
// PostgreSQL prefers to pg_catalog's (a better match for the operands, or
// a schema listed before pg_catalog). So every operator in its SQL is
// OPERATOR(pg_catalog.op), every function and type is qualified, and the
// forms whose = has no qualified spelling (IN, simple CASE, NULLIF, IS
// DISTINCT FROM, BETWEEN, LIKE) are not used
// (TestCatalogReadIgnoresOperatorsOnTheSearchPath).
func TestCatalogSQLNamesOnlyPGCatalog(t *testing.T) {
	for name, sql := range map[string]string{
		"catalogRelationsSQL": catalogRelationsSQL, "catalogKeysSQL": catalogKeysSQL,
		"catalogInheritsSQL": catalogInheritsSQL, "catalogViewReadsSQL": catalogViewReadsSQL,
		"catalogViewCallsSQL": catalogViewCallsSQL, "catalogFunctionsSQL": catalogFunctionsSQL,
		"catalogCallsSQL": catalogCallsSQL, "catalogResultsSQL": catalogResultsSQL,
		"catalogNamesSQL": catalogNamesSQL,
	} {
		t.Run(name+" resolves nothing along the search_path", func(t *testing.T) {
			js, err := pg_query.ParseToJSON(sql)
			if err != nil {
				t.Fatal(err)
			}
			var tree any
			if err := json.Unmarshal([]byte(js), &tree); err != nil {
				t.Fatal(err)
			}
			for _, p := range unqualifiedNames(tree) {
				t.Error(p)
			}
		})
	}
}

// unqualifiedNames lists what a parse tree (as JSON) looks up along the
// search_path.
func unqualifiedNames(v any) (out []string) {
	switch x := v.(type) {
	case map[string]any:
		for k, c := range x {
			m, _ := c.(map[string]any)
			at := func() string { return fmt.Sprintf("at %v", m["location"]) }
			switch k {
			case "A_Expr":
				kind, _ := m["kind"].(string)
				if kind == "" {
					kind = "AEXPR_OP"
				}
				if names, _ := m["name"].([]any); kind != "AEXPR_OP" && kind != "AEXPR_OP_ANY" && kind != "AEXPR_OP_ALL" || len(names) != 2 {
					out = append(out, fmt.Sprintf("%s %v %s", kind, m["name"], at()))
				}
			case "CaseExpr":
				if m["arg"] != nil {
					out = append(out, "CASE x WHEN "+at())
				}
			case "SubLink":
				if t, _ := m["subLinkType"].(string); (t == "ANY_SUBLINK" || t == "ALL_SUBLINK") && m["operName"] == nil {
					out = append(out, "IN (SELECT …) "+at())
				}
			case "FuncCall":
				if n, _ := m["funcname"].([]any); len(n) != 2 {
					out = append(out, fmt.Sprintf("function %v %s", n, at()))
				}
			case "TypeName":
				if n, _ := m["names"].([]any); len(n) != 2 {
					out = append(out, fmt.Sprintf("type %v %s", n, at()))
				}
			case "CollateClause":
				if n, _ := m["collname"].([]any); len(n) != 2 {
					out = append(out, fmt.Sprintf("collation %v %s", n, at()))
				}
			case "NullIfExpr", "BooleanTest", "MinMaxExpr":
				if k == "NullIfExpr" {
					out = append(out, "NULLIF "+at())
				}
			}
			out = append(out, unqualifiedNames(c)...)
		}
	case []any:
		for _, c := range x {
			out = append(out, unqualifiedNames(c)...)
		}
	}
	return out
}
