package pgtest

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"strconv"
	"testing"
)

// unavailable says why Main left the shared cluster nil; Require reports it.
// NOTE: written only by Main before m.Run, read by tests afterwards.
var unavailable = "no cluster was started (does the package's TestMain call pgtest.Main?)"

// Main is for TestMain: it starts a cluster shared by the package's tests
// (StartOrExternal, so PGVEIL_TEST_DATABASE is honoured), stores it in *c,
// runs m.Run, stops the cluster and returns the exit code:
//
//	func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }
//
// When PostgreSQL is not installed, under CI=true Main prints the reason and
// returns 1 without running the tests: a failure, never a skip. Elsewhere it
// leaves *c nil and runs the tests, and those calling Require are skipped.
// Any other failure to start is a failure everywhere. With -test.list no
// cluster is started.
func Main(m *testing.M, c **Cluster) int {
	*c = nil
	if !flag.Parsed() {
		flag.Parse()
	}
	if f := flag.Lookup("test.list"); f != nil && f.Value.String() != "" {
		return m.Run()
	}

	cluster, err := StartOrExternal(Options{})
	if err != nil {
		if errors.Is(err, ErrNoPostgres) && !inCI() {
			unavailable = err.Error()
			fmt.Fprintf(os.Stderr, "%v\npgtest: tests that need PostgreSQL will be skipped\n", err)
			return m.Run()
		}
		fmt.Fprintf(os.Stderr, "%v\npgtest: cannot provide PostgreSQL to the tests\n", err)
		if inCI() && errors.Is(err, ErrNoPostgres) {
			fmt.Fprintln(os.Stderr, "pgtest: CI=true: a missing PostgreSQL is a failure, not a skip")
		}
		return 1
	}
	*c = cluster
	code := m.Run()
	if err := cluster.Stop(); err != nil {
		fmt.Fprintf(os.Stderr, "pgtest: stop the shared cluster: %v\n", err)
		if code == 0 {
			code = 1
		}
	}
	return code
}

// Require skips t when c is nil, that is when Main found no PostgreSQL.
// Under CI=true it fails t instead: CI must never skip these tests.
func Require(t testing.TB, c *Cluster) {
	t.Helper()
	if c != nil {
		return
	}
	if inCI() {
		t.Fatalf("PostgreSQL is required under CI=true: %s", unavailable)
	}
	t.Skipf("PostgreSQL not available: %s", unavailable)
}

// inCI reports whether the CI environment variable is set to a true value.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}
