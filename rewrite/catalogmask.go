package rewrite

import (
	pg_query "github.com/pganalyze/pg_query_go/v5"
)

// pgClassStats are the columns of pg_catalog.pg_class that estimate how
// many rows a relation holds: they would tell a user how many rows a
// governed table has beyond those they may see.
var pgClassStats = map[string]string{
	"reltuples":     "CASE WHEN relnamespace = 'pg_catalog'::regnamespace OR relnamespace = 'information_schema'::regnamespace THEN reltuples ELSE -1 END",
	"relpages":      "CASE WHEN relnamespace = 'pg_catalog'::regnamespace OR relnamespace = 'information_schema'::regnamespace THEN relpages ELSE 0 END",
	"relallvisible": "CASE WHEN relnamespace = 'pg_catalog'::regnamespace OR relnamespace = 'information_schema'::regnamespace THEN relallvisible ELSE 0 END",
}

// pgClassAccess reads pg_class with the statistics of every relation
// outside the system schemas hidden: -1 tuples (never analysed) and 0
// pages, as PostgreSQL shows for a table it has not analysed.
var pgClassAccess = func() Access {
	masks := map[string]*pg_query.Node{}
	for col, expr := range pgClassStats {
		// NOTE: fixed text of pgveil's own, parsed once at start-up.
		tree, err := pg_query.Parse("SELECT " + expr)
		if err != nil {
			panic("rewrite: parsing the pg_class mask of " + col + ": " + err.Error())
		}
		masks[col] = tree.Stmts[0].Stmt.GetSelectStmt().TargetList[0].GetResTarget().Val
	}
	return Access{Mode: Governed, Masks: masks}
}()
