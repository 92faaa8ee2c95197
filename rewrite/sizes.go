package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// sizeFunctions are the pg_catalog functions answered NULL: the class
// null of catalogFunctions. Most measure relations, databases and
// tablespaces on disk: a governed table's size tells how many rows it
// really holds, whatever the user's scope, and the database's grows with
// every row. pg_tablespace_location shows a directory of the server
// (rule files). pgveil answers them NULL (unknown to the user) rather
// than refusing the statement, so that psql's \dt+ and \db and BI
// tools' table and tablespace lists keep working.
//
// NOTE: each returns bigint but those nullTypes names
// (TestClassificationCoversUpstream checks it).
var sizeFunctions = func() map[string]bool {
	m := map[string]bool{}
	for name, c := range catalogFunctions {
		if c.class == classNull {
			m[name] = true
		}
	}
	return m
}()

// nullTypes are the types, other than bigint (pg_catalog.int8), of the
// functions of sizeFunctions: the NULL answering a call is cast to it.
var nullTypes = map[string]string{"pg_tablespace_location": "text"}

// nullType returns the type name (in pg_catalog) of the NULL a call of
// the function name of sizeFunctions is answered with.
func nullType(name string) string {
	if t, ok := nullTypes[name]; ok {
		return t
	}
	return "int8"
}

// maskSize replaces n, a call fc of one of pg_catalog's size functions,
// by NULL cast to its type (nullType), and reports whether it did. A call whose name could
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
			Names:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode(nullType(name))},
			Typemod: -1, Location: -1,
		},
		Location: -1,
	}}
	w.changed = true
	return true
}
