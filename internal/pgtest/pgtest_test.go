package pgtest_test

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// cluster is shared by the tests of this package; see TestMain.
var cluster *pgtest.Cluster

// orphanEnv, when set, makes the test binary act as the helper of
// TestChildDiesWithParent instead of running tests.
const orphanEnv = "PGTEST_ORPHAN_HELPER"

func TestMain(m *testing.M) {
	if os.Getenv(orphanEnv) != "" {
		os.Exit(orphanHelper())
	}
	os.Exit(pgtest.Main(m, &cluster))
}

// orphanHelper starts a cluster, prints its log file path and exits without
// stopping it.
func orphanHelper() int {
	c, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	fmt.Println(c.LogFile())
	return 0
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// queryOne runs sql on conn and returns the first column of the first row.
func queryOne(t *testing.T, ctx context.Context, conn *pgconn.PgConn, sql string) string {
	t.Helper()
	res, err := conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	if len(res) == 0 || len(res[0].Rows) == 0 {
		t.Fatalf("%s: no row", sql)
	}
	return string(res[0].Rows[0][0])
}

func TestFindBinDir(t *testing.T) {
	dir, err := pgtest.FindBinDir()
	if errors.Is(err, pgtest.ErrNoPostgres) {
		pgtest.Require(t, nil)
	}
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err != nil {
			t.Errorf("FindBinDir() = %s: %v", dir, err)
		}
	}
}

func TestSharedCluster(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := testContext(t)

	if !cluster.External() {
		if got := cluster.Host(); got != "127.0.0.1" {
			t.Errorf("Host() = %q", got)
		}
		if got, want := cluster.Addr(), "127.0.0.1:"+strconv.Itoa(cluster.Port()); got != want {
			t.Errorf("Addr() = %q, want %q", got, want)
		}
		if user, pw := cluster.SuperUser(); user != "postgres" || len(pw) < 16 {
			t.Errorf("SuperUser() = %q, %q", user, pw)
		}
		if !strings.Contains(cluster.ConnString("x"), "sslmode=disable") {
			t.Errorf("ConnString() = %q lacks sslmode=disable", cluster.ConnString("x"))
		}
	}

	if err := cluster.Exec(ctx, "postgres", `
		CREATE TABLE exec_test (id int);
		INSERT INTO exec_test VALUES (1), (2);
	`); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", "DROP TABLE exec_test") })

	conn, err := cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if got := queryOne(t, ctx, conn, "SELECT count(*) FROM exec_test"); got != "2" {
		t.Errorf("count = %s, want 2", got)
	}
	if got := conn.ParameterStatus("is_superuser"); got != "on" {
		t.Errorf("is_superuser = %q", got)
	}
	if !cluster.External() {
		if got := queryOne(t, ctx, conn, "SHOW max_connections"); got != "200" {
			t.Errorf("max_connections = %s", got)
		}
		if got := queryOne(t, ctx, conn, "SHOW fsync"); got != "off" {
			t.Errorf("fsync = %s", got)
		}
	}
}

func TestExecError(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := testContext(t)

	err := cluster.Exec(ctx, "postgres", "SELECT 1; SELECT 1/0; SELECT 2")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "22012" {
		t.Fatalf("Exec() = %v, want a division_by_zero PgError", err)
	}
	if !strings.Contains(err.Error(), "22012") {
		t.Errorf("error %q lacks the SQLSTATE", err)
	}
}

func TestScramAuth(t *testing.T) {
	pgtest.Require(t, cluster)
	if cluster.External() {
		t.Skip("the external server's authentication is its own")
	}
	ctx := testContext(t)
	user, _ := cluster.SuperUser()
	_, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://%s:wrong@%s/postgres?sslmode=disable", user, cluster.Addr()))
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "28P01" {
		t.Fatalf("connect with a wrong password: %v, want 28P01", err)
	}
	conn, err := cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if got := queryOne(t, ctx, conn, "SELECT rolpassword LIKE 'SCRAM-SHA-256$%' FROM pg_authid WHERE rolname = current_user"); got != "t" {
		t.Errorf("superuser password is not stored as SCRAM: %s", got)
	}
}

func TestCreateDatabase(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := testContext(t)

	const name = `pgtest "create" db`
	if err := cluster.CreateDatabase(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Exec(ctx, name, "CREATE TABLE marker (x int)"); err != nil {
		t.Fatal(err)
	}
	// A session still open on it must not prevent the re-creation.
	conn, err := cluster.Connect(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := cluster.CreateDatabase(ctx, name); err != nil {
		t.Fatalf("create again: %v", err)
	}
	err = cluster.Exec(ctx, name, "SELECT * FROM marker")
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
		t.Fatalf("marker table survived the re-creation: %v", err)
	}
	if err := cluster.Exec(ctx, "postgres", `DROP DATABASE "pgtest ""create"" db"`); err != nil {
		t.Fatal(err)
	}
}

func TestLifecycle(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := testContext(t)

	begin := time.Now()
	c, err := pgtest.Start(pgtest.Options{
		Logf:     t.Logf,
		Settings: map[string]string{"work_mem": "7MB", "application_name": `it's \ quoted`},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("Start took %v", time.Since(begin))
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = c.Stop()
		}
	})
	dir := filepath.Dir(c.LogFile())

	if os.Geteuid() == 0 {
		fi, err := os.Stat(filepath.Join(dir, "data"))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid == 0 {
			t.Errorf("data dir is owned by root")
		}
	}

	conn, err := c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	if got := queryOne(t, ctx, conn, "SHOW work_mem"); got != "7MB" {
		t.Errorf("work_mem = %s, want the setting 7MB", got)
	}
	// The client's own application_name wins: check the server default.
	if got := queryOne(t, ctx, conn, "SELECT boot_val <> reset_val AND reset_val = 'it''s \\ quoted' FROM pg_settings WHERE name = 'application_name'"); got != "t" {
		t.Errorf("application_name setting not applied with its quotes")
	}
	if got := queryOne(t, ctx, conn, "SHOW listen_addresses"); got != "127.0.0.1" {
		t.Errorf("listen_addresses = %s", got)
	}
	if err := c.Exec(ctx, "postgres", "CREATE TABLE survives (x int); INSERT INTO survives VALUES (42)"); err != nil {
		t.Fatal(err)
	}

	port := c.Port()
	begin = time.Now()
	if err := c.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Logf("Restart took %v", time.Since(begin))
	if c.Port() != port {
		t.Errorf("port changed across Restart: %d -> %d", port, c.Port())
	}
	if _, err := conn.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
		t.Errorf("a connection from before Restart still works")
	}
	conn.Close(ctx)
	conn, err = c.Connect(ctx, "postgres")
	if err != nil {
		t.Fatalf("connect after Restart: %v", err)
	}
	if got := queryOne(t, ctx, conn, "SELECT x FROM survives"); got != "42" {
		t.Errorf("data after Restart: %s", got)
	}
	conn.Close(ctx)

	if err := c.StopServer(); err != nil {
		t.Fatal(err)
	}
	if err := c.StopServer(); err != nil {
		t.Errorf("second StopServer: %v", err)
	}
	if _, err := net.DialTimeout("tcp", c.Addr(), time.Second); err == nil {
		t.Errorf("%s still accepts connections after StopServer", c.Addr())
	}
	if _, err := os.Stat(filepath.Join(dir, "data", "PG_VERSION")); err != nil {
		t.Errorf("data dir gone after StopServer: %v", err)
	}
	if err := c.StartServer(); err != nil {
		t.Fatal(err)
	}
	if err := c.StartServer(); err != nil {
		t.Errorf("StartServer on a running server: %v", err)
	}
	if err := c.Exec(ctx, "postgres", "SELECT x FROM survives"); err != nil {
		t.Errorf("after StartServer: %v", err)
	}

	if err := c.Stop(); err != nil {
		t.Fatal(err)
	}
	stopped = true
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("cluster dir %s after Stop: %v", dir, err)
	}
	if _, err := net.DialTimeout("tcp", c.Addr(), time.Second); err == nil {
		t.Errorf("%s still accepts connections after Stop", c.Addr())
	}
	if err := c.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	if err := c.StartServer(); err == nil {
		t.Errorf("StartServer after Stop succeeded")
	}
}

func TestStartRetriesTakenPort(t *testing.T) {
	pgtest.Require(t, cluster)

	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	calls := 0
	var picked []int
	restore := pgtest.SetPickPort(func() (int, error) {
		calls++
		if calls == 1 {
			picked = append(picked, busyPort)
			return busyPort, nil
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		defer l.Close()
		p := l.Addr().(*net.TCPAddr).Port
		picked = append(picked, p)
		return p, nil
	})
	defer restore()

	c, err := pgtest.Start(pgtest.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if c.Port() == busyPort || calls != 2 {
		t.Errorf("port %d after picks %v; want a second, free port", c.Port(), picked)
	}
	if err := c.Exec(testContext(t), "postgres", "SELECT 1"); err != nil {
		t.Error(err)
	}
}

func TestStartOrExternal(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := testContext(t)

	t.Setenv(pgtest.EnvDatabase, cluster.ConnString("postgres"))
	ext, err := pgtest.StartOrExternal(pgtest.Options{Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	if !ext.External() {
		t.Fatal("External() = false")
	}
	if ext.Addr() != cluster.Addr() || ext.LogFile() != "" {
		t.Errorf("Addr() = %q, LogFile() = %q", ext.Addr(), ext.LogFile())
	}
	for name, f := range map[string]func() error{
		"Restart": ext.Restart, "StopServer": ext.StopServer, "StartServer": ext.StartServer,
	} {
		if err := f(); !errors.Is(err, pgtest.ErrExternal) {
			t.Errorf("%s() = %v, want ErrExternal", name, err)
		}
	}
	if err := ext.CreateDatabase(ctx, "pgtest_external"); err != nil {
		t.Fatal(err)
	}
	if err := ext.Exec(ctx, "pgtest_external", "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	if err := ext.Stop(); err != nil {
		t.Fatal(err)
	}
	if err := cluster.Exec(ctx, "postgres", "DROP DATABASE pgtest_external"); err != nil {
		t.Fatalf("the server is gone after Stop of the external wrapper: %v", err)
	}

	if err := cluster.Exec(ctx, "postgres", "CREATE ROLE pgtest_plain LOGIN PASSWORD 'plain'"); err != nil {
		t.Fatal(err)
	}
	defer cluster.Exec(context.Background(), "postgres", "DROP ROLE pgtest_plain")
	t.Setenv(pgtest.EnvDatabase, fmt.Sprintf("postgres://pgtest_plain:plain@%s/postgres?sslmode=disable", cluster.Addr()))
	if _, err := pgtest.StartOrExternal(pgtest.Options{}); err == nil || !strings.Contains(err.Error(), "superuser") {
		t.Errorf("StartOrExternal with a plain user = %v, want a superuser error", err)
	}
}

// TestChildDiesWithParent checks that postgres never outlives the process
// that started it, even when that process exits without Stop.
func TestChildDiesWithParent(t *testing.T) {
	pgtest.Require(t, cluster)
	if cluster.External() {
		t.Skip("needs a local PostgreSQL installation")
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), orphanEnv+"=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	logFile := strings.TrimSpace(string(out))
	dir := filepath.Dir(logFile)
	if !strings.Contains(filepath.Base(dir), "pgtest") {
		t.Fatalf("helper printed %q", out)
	}
	defer os.RemoveAll(dir)

	f, err := os.Open(filepath.Join(dir, "data", "postmaster.pid"))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	sc := bufio.NewScanner(f)
	sc.Scan()
	f.Close()
	pid, err := strconv.Atoi(strings.TrimSpace(sc.Text()))
	if err != nil {
		t.Fatalf("postmaster.pid: %v", err)
	}
	exited, err := waitExited(pid, 10*time.Second)
	if errors.Is(err, errors.ErrUnsupported) {
		t.Skip("waiting for a process that is not a child needs Linux")
	}
	if err != nil {
		t.Fatal(err)
	}
	if !exited {
		_ = syscall.Kill(pid, syscall.SIGKILL)
		t.Fatalf("postgres (pid %d) outlived its parent", pid)
	}
}

// TestStartSweepsStaleDirs checks that Start removes the directories of
// clusters whose process died without Stop, and keeps the others.
func TestStartSweepsStaleDirs(t *testing.T) {
	pgtest.Require(t, cluster)
	if cluster.External() {
		t.Skip("needs a local PostgreSQL installation")
	}
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	mk := func(pid int) string {
		dir, err := os.MkdirTemp("", "pgveil-pgtest-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
		if err := os.WriteFile(filepath.Join(dir, "owner.pid"), []byte(strconv.Itoa(pid)+"\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	stale := mk(dead.Process.Pid)
	live := mk(os.Getpid())

	c, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Stop()
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale dir %s kept: %v", stale, err)
	}
	if _, err := os.Stat(live); err != nil {
		t.Errorf("live dir %s: %v", live, err)
	}
}
