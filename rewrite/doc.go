// Package rewrite turns each statement a client sends into the statement
// pgveil forwards upstream: every reference to a governed table becomes a
// subquery that applies the user's row scope and column masks.
//
// NOTE: the proxy core calls its statement hook for every Query and Parse
// message; until policies land, that hook passes statements through
// unchanged and this package is intentionally empty.
package rewrite
