// Package rewrite turns each statement a client sends into the statement
// pgveil forwards upstream: every reference to a governed table becomes a
// subquery that applies the user's row scope and column masks.
//
// Rewrite parses a text with pg_query, walks every statement (walk.go),
// refuses what the firewall's rules forbid (rewrite.go, denylist.go, and
// the classification of every pg_catalog function and relation in
// functions.tsv and relations.tsv, classify.go), replaces each governed
// relation by its scoped subquery (subst.go), serves catalog relations
// that would leak statistics through masked subqueries (catalogmask.go),
// scopes writes (write.go), and deparses the tree. The
// Result says what it did — tables, rules, masked and readable columns,
// prepared statements and cursors named — for the audit trail and the
// proxy's statement tracking.
//
// An Engine caches results per user policy and statement text
// (engine.go) over an immutable catalog snapshot (catalog.go). A statement
// forwarded unchanged also teaches it its shape, so that statements
// differing from it only in their constants skip the parse: shape.go
// recognises them with a scan of their literals, no C call.
//
// NOTE: SQL is never assembled from strings: user attributes and masks
// enter the tree as nodes, and the output must parse back into as many
// statements as the input.
package rewrite
