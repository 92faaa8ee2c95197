// Package proxytest holds the fixtures the proxy's end-to-end tests
// share: the throwaway PostgreSQL (Cluster, started by each test
// binary's TestMain), the demo database and its users (SetupDemo,
// StartDemo, Direct, Scopes), a database and policy of a test's own
// (PolicyDB), a pgveil server in front of them (Proxy) and the waits a
// test uses instead of sleeping (WaitRunning, Eventually, Poll).
//
// It is a package, not a _test.go file, because several test binaries
// use it: the proxy package's, the adversarial suite's
// (proxy/adversarial) and the reload tests' (proxy/reload), kept apart so
// that each runs under go test's ten-minute alarm with the race detector
// on this project's machines.
//
// NOTE: only tests import it; it imports testing.
package proxytest
