package rewrite

import "github.com/pgveil/pgveil/internal/sqlguard"

// tooComplex returns why sql is refused before parsing, or ""
// (sqlguard.TooComplex).
func tooComplex(sql string) string { return sqlguard.TooComplex(sql) }

// identChar reports whether c can continue an identifier
// (sqlguard.IdentChar).
func identChar(c byte) bool { return sqlguard.IdentChar(c) }
