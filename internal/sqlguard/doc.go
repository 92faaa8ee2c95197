// Package sqlguard holds the checks a statement text passes before any
// code of pgveil's hands it to pg_query's parser: the parser's C code
// recurses once per level of a nested expression, and a text deep enough
// overflows the thread's stack and ends the process.
package sqlguard
