// Command pgveil is a data firewall for PostgreSQL: a wire-protocol proxy
// that authenticates users itself and forwards their statements to the
// upstream server.
//
// Usage:
//
//	pgveil serve   --config FILE [--log-format json|console] [--log-level LEVEL]
//	pgveil check   --config FILE [--upstream]
//	pgveil test    --config FILE [--upstream] [--run REGEXP]
//	pgveil explain --config FILE --user LOGIN "SQL"
//	pgveil passwd  [--iterations N]
//	pgveil audit   verify [--key-env NAME] FILE...
//	pgveil audit   search [filters] [--format table|json] FILE...
//	pgveil version
package main
