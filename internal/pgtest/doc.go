// Package pgtest starts and stops throwaway PostgreSQL clusters for tests
// and tools such as the demo runner.
//
// Start runs initdb into a fresh temporary directory, starts postgres as a
// child process listening on a free port of 127.0.0.1, and waits until it
// accepts connections. The superuser is "postgres" with a random password,
// and TCP connections authenticate with scram-sha-256, as a production
// server would. When the process runs as root (CI, containers), initdb and
// postgres run as the "postgres" OS user, since PostgreSQL refuses to run as
// root.
//
// StartOrExternal wraps an existing server instead when the environment
// variable PGVEIL_TEST_DATABASE holds a postgres:// URL of it with a
// superuser.
//
// Main and Require are for test packages: Main, called from TestMain, starts
// one cluster shared by the package's tests; Require skips a test when no
// PostgreSQL is installed, except under CI=true, where a missing PostgreSQL
// is a failure and never a skip.
//
// Typical use:
//
//	var cluster *pgtest.Cluster
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }
//
//	func TestSomething(t *testing.T) {
//		pgtest.Require(t, cluster)
//		conn, err := cluster.Connect(ctx, "postgres")
//		...
//	}
package pgtest
