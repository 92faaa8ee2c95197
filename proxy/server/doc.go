// Package server runs pgveil as a process: Start loads the enforcement of
// a configuration (identities, catalog snapshot, compiled policies),
// opens the audit trail, registers the metrics, starts the admin endpoint
// and serves clients through a proxy.Server; Reload puts a new version of
// the policies in force; Shutdown and Close stop it all in order.
//
// The files hold one job each: server.go the lifecycle, enforce.go the
// loading of a configuration's enforcement, policies.go the policies in
// force (the proxy's Rewriter), reload.go the policy reload, admin.go
// the operators' HTTP endpoints.
//
// NOTE: signals, flags and the watching of files are the command's
// (cmd/pgveil serve); this package knows none of them, so that tests and
// other programs can run pgveil in process.
package server
