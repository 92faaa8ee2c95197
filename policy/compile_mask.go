package policy

import (
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// partialTemplate is mask = "partial": keep pgveil_start characters at the
// start and pgveil_end at the end, stars in between; values no longer
// than pgveil_keep (start + end) are all stars, so that a short value is
// never shown whole.
var partialTemplate = mustParseExpr(`CASE
	WHEN pgveil_col IS NULL THEN NULL
	WHEN pg_catalog.length(pgveil_col::pg_catalog.text) <= pgveil_keep
		THEN pg_catalog.repeat('*', pg_catalog.length(pgveil_col::pg_catalog.text))
	ELSE pg_catalog."left"(pgveil_col::pg_catalog.text, pgveil_start)
		|| pg_catalog.repeat('*', pg_catalog.length(pgveil_col::pg_catalog.text) - pgveil_keep)
		|| pg_catalog."right"(pgveil_col::pg_catalog.text, pgveil_end)
END`)

// hashTemplate is mask = "hash": HMAC-SHA256 (RFC 2104) of the value's
// text, in hex, computed upstream by pgveil.mask_hash with the key it
// names (MaskKeysSQL installs both). The statement holds only the key's
// name: PostgreSQL can be made to echo a statement (cursors, prepared
// statements, DEBUG messages), and a secret in one would be the user's.
var hashTemplate = mustParseExpr(`pgveil.mask_hash(pgveil_col::pg_catalog.text, pgveil_key)`)

// maskNode returns the expression replacing column col under mask m.
// bound is m's expression already bound to the user (MaskExpression), nil
// when it reads an attribute the user lacks (the mask is NULL); has
// reports whether the relation has a column.
func maskNode(m *Mask, col string, bound *pg_query.Node, has func(string) bool) *pg_query.Node {
	switch m.Kind {
	case MaskRedact:
		return literal(m.Value)
	case MaskPartial:
		return substitute(partialTemplate, map[string]*pg_query.Node{
			"pgveil_col":   columnRef(col),
			"pgveil_keep":  literal(intValue(int64(m.KeepStart + m.KeepEnd))),
			"pgveil_start": literal(intValue(int64(m.KeepStart))),
			"pgveil_end":   literal(intValue(int64(m.KeepEnd))),
		})
	case MaskHash:
		return substitute(hashTemplate, map[string]*pg_query.Node{
			"pgveil_col": columnRef(col),
			"pgveil_key": literal(Value{kind: kindString, text: m.keyID}),
		})
	case MaskExpression:
		// NOTE: an expression over a column the relation lacks could
		// resolve to a column of the client's outer query: fail closed.
		if bound != nil && hasAll(has, m.expr.columns) {
			return bound
		}
	}
	return nullConst()
}

// hasAll reports whether every column is one has reports.
func hasAll(has func(string) bool, columns []string) bool {
	for _, c := range columns {
		if !has(c) {
			return false
		}
	}
	return true
}
