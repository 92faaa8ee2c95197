package rewrite

import "github.com/pgveil/pgveil/internal/sqlguard"

// guard returns the refusal of sql before it reaches pg_query's parser
// (sqlguard.Check), or nil: too complex to parse safely (complexity), or
// a quote or comment that never ends (syntax).
func guard(sql string) error {
	why, syntax := sqlguard.Check(sql)
	switch {
	case why == "":
		return nil
	case syntax:
		return denySyntax("%s", why)
	}
	return deny("complexity", "%s", why)
}

// identChar reports whether c can continue an identifier
// (sqlguard.IdentChar).
func identChar(c byte) bool { return sqlguard.IdentChar(c) }
