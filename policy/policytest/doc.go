// Package policytest runs the test blocks of a configuration (`pgveil
// test`): each sends a statement as a user and says what pgveil must do
// with it — refuse it (by which firewall rule), mask which columns,
// return which rows or how many.
//
// Offline (Offline), the rewrite alone decides refusals and masked
// columns, with the user blocks as the only identities and the tables
// table blocks name exactly as the only relations; what needs the live
// database is skipped. Online (Online), identities and catalog come from
// the upstream as serve loads them, and each accepted SELECT runs,
// rewritten, in a read-only transaction as the service account.
//
// The engine decides as serve does: the same compiled policies and
// rewrite.Rewrite.
package policytest
