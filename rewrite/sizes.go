package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// sizeFunctions are the pg_catalog functions that measure relations,
// databases and tablespaces on disk: the class null of catalogFunctions.
// A governed table's size tells how many rows it really holds, whatever
// the user's scope, and the database's grows with every row: pgveil
// answers them NULL (the size is unknown to the user) rather than
// refusing the statement, so that psql's \dt+ and BI tools' table lists
// keep working. Each returns bigint (TestClassificationCoversUpstream
// checks it).
var sizeFunctions = func() map[string]bool {
	m := map[string]bool{}
	for name, c := range catalogFunctions {
		if c.class == classNull {
			m[name] = true
		}
	}
	return m
}()

// maskSize replaces n, a call fc of one of pg_catalog's size functions,
// by NULL::bigint, and reports whether it did. A call whose name could
// resolve to a function of another schema is left to function(), which
// refuses it: only pg_catalog's own functions are answered this way.
func (w *walker) maskSize(n *pg_query.Node, fc *pg_query.FuncCall) bool {
	var name string
	switch len(fc.Funcname) {
	case 1:
		name = fc.Funcname[0].GetString_().GetSval()
		if !sizeFunctions[name] {
			return false
		}
		if s := w.functionSchemas(name); len(s) != 1 || s[0] != "pg_catalog" {
			return false
		}
	case 2:
		name = fc.Funcname[1].GetString_().GetSval()
		if fc.Funcname[0].GetString_().GetSval() != "pg_catalog" || !sizeFunctions[name] {
			return false
		}
	default:
		return false
	}
	n.Node = &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{
		Arg: nullConst(),
		TypeName: &pg_query.TypeName{
			Names:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("int8")},
			Typemod: -1, Location: -1,
		},
		Location: -1,
	}}
	w.changed = true
	return true
}
