// Package scrub removes from PostgreSQL's messages the values they echo.
// The proxy scrubs the errors and notices it forwards to clients, and the
// audit trail the messages it records, with the same rules: a value
// PostgreSQL quotes may belong to a row or column the user may not see.
package scrub
