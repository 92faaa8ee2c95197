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

// hashBigintTemplate is mask = "hash" on an integer column (smallint,
// integer, bigint, or a domain over one): a joinable pseudonym, the
// first 16 hex digits of hashTemplate's digest (its first 64 bits) read
// as a bigint, its sign bit cleared: a non-negative 63-bit integer,
// exactly (no float, no rounding), the same for a value under one secret
// whatever the integer type (its text is the same), so that pseudonyms
// join across tables and COUNT(DISTINCT) counts values.
// NOTE: served as bigint (Access.MaskTypes), whatever the column's
// integer type: 63 bits fit no narrower type. Two values share a
// pseudonym with a probability of about n²/2⁶⁴ among n values.
var hashBigintTemplate = mustParseExpr(`(('x'::pg_catalog.text || pg_catalog."left"(pgveil.mask_hash(pgveil_col::pg_catalog.text, pgveil_key), 16))::pg_catalog.bit(64)::pg_catalog.int8 & 9223372036854775807)`)

// hashUUIDTemplate is mask = "hash" on a uuid column (or a domain over
// uuid): a joinable pseudonym, the first 32 hex digits of hashTemplate's
// digest (its first 128 bits) read as a uuid. Not an RFC 9562 uuid of
// any version: its version and variant bits are the digest's.
var hashUUIDTemplate = mustParseExpr(`pg_catalog."left"(pgveil.mask_hash(pgveil_col::pg_catalog.text, pgveil_key), 32)::pg_catalog.uuid`)

// hashPseudonym returns the template and the type of a hash mask's value
// on a column whose masked value has type typ (format_type's output of
// Column.MaskCast: a domain's base type): a bigint pseudonym for an
// integer type, a uuid for uuid, nil (hashTemplate, text) otherwise.
func hashPseudonym(typ string) (*pg_query.Node, *pg_query.TypeName) {
	switch typ {
	case "smallint", "integer", "bigint":
		return hashBigintTemplate, scalarType("int8")
	case "uuid":
		return hashUUIDTemplate, scalarType("uuid")
	}
	return nil, nil
}

// hashPseudonymTypes names the column types hashPseudonym turns into a
// pseudonym, for diagnostics.
const hashPseudonymTypes = "a bigint pseudonym for smallint, integer or bigint, a uuid pseudonym for uuid"

// maskNode returns the expression replacing column col under mask m.
// bound is m's expression already bound to the user (MaskExpression), nil
// when it reads an attribute the user lacks (the mask is NULL); has
// reports whether the relation has a column; typ is the type the
// column's masked value has (Column.MaskCast), which picks a hash mask's
// pseudonym (hashPseudonym).
func maskNode(m *Mask, col, typ string, bound *pg_query.Node, has func(string) bool) *pg_query.Node {
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
		tmpl, _ := hashPseudonym(typ)
		if tmpl == nil {
			tmpl = hashTemplate
		}
		return substitute(tmpl, map[string]*pg_query.Node{
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
