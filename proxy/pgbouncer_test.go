package proxy_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// bouncer is what a test's PgBouncer is given: its pool_mode, its
// ignore_startup_parameters, and what it runs on each new server
// connection and at each release (connect_query, server_reset_query).
type bouncer struct {
	mode, ignore, connectQuery, resetQuery string
	// extra is more lines of the [pgbouncer] section.
	extra string
}

// startPgbouncer starts a PgBouncer 1.18+ in front of the test cluster's
// database db, for the users of logins (name → password), and returns
// its address. It skips the test when pgbouncer is not installed: no
// other test requires it, CI included (cmd/pgveil-bench finds it the
// same way: PATH, then Debian's /usr/sbin/pgbouncer).
// NOTE: PgBouncer refuses to run as root: as root, it runs as the
// postgres OS user.
func startPgbouncer(t *testing.T, db string, b bouncer, logins map[string]string) string {
	t.Helper()
	bin, err := exec.LookPath("pgbouncer")
	if err != nil {
		if _, serr := os.Stat("/usr/sbin/pgbouncer"); serr != nil {
			t.Skip("pgbouncer is not installed (Debian: apt-get install pgbouncer)")
		}
		bin = "/usr/sbin/pgbouncer"
	}
	// NOTE: not t.TempDir, whose parent the postgres OS user cannot
	// enter.
	dir, err := os.MkdirTemp("", "pgveil-pgbouncer-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	var users strings.Builder
	for name, pw := range logins {
		fmt.Fprintf(&users, "%q %q\n", name, pw)
	}
	entry := fmt.Sprintf("%s = host=%s port=%d dbname=%s", db, proxytest.Cluster.Host(), proxytest.Cluster.Port(), db)
	if b.connectQuery != "" {
		entry += fmt.Sprintf(" connect_query='%s'", strings.ReplaceAll(b.connectQuery, "'", "''"))
	}
	ini := fmt.Sprintf("[databases]\n%s\n[pgbouncer]\nlisten_addr = 127.0.0.1\nlisten_port = %d\nunix_socket_dir =\n"+
		"auth_type = scram-sha-256\nauth_file = %s\npool_mode = %s\nlogfile = %s\n",
		entry, port, filepath.Join(dir, "userlist.txt"), b.mode, filepath.Join(dir, "pgbouncer.log"))
	if b.ignore != "" {
		ini += "ignore_startup_parameters = " + b.ignore + "\n"
	}
	if b.resetQuery != "" {
		ini += "server_reset_query = " + b.resetQuery + "\n"
	}
	ini += b.extra
	files := map[string]string{"userlist.txt": users.String(), "pgbouncer.ini": ini}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(bin, filepath.Join(dir, "pgbouncer.ini"))
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stderr, &stderr
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Skipf("running as root needs the postgres OS user to run pgbouncer: %v", err)
		}
		uid, _ := strconv.ParseUint(u.Uid, 10, 32)
		gid, _ := strconv.ParseUint(u.Gid, 10, 32)
		for _, p := range []string{dir, filepath.Join(dir, "userlist.txt"), filepath.Join(dir, "pgbouncer.ini")} {
			if err := os.Chown(p, int(uid), int(gid)); err != nil {
				t.Fatal(err)
			}
		}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting pgbouncer: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if !proxytest.Poll(10*time.Second, func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	}) {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		log, _ := os.ReadFile(filepath.Join(dir, "pgbouncer.log"))
		t.Fatalf("pgbouncer does not listen: %s%s", stderr.String(), log)
	}
	return addr
}

// pgveilPins are the startup parameters pgveil pins, as a DBA lists them
// in PgBouncer's ignore_startup_parameters (configs/README.md).
const pgveilPins = "extra_float_digits,search_path,client_min_messages,lock_timeout,client_connection_check_interval"

// TestBehindPgBouncer checks that pgveil, its upstream a PgBouncer,
// either has every setting it pins hold on its connections or refuses
// to start saying what to configure: PgBouncer refuses the startup
// parameters it does not know, drops those ignore_startup_parameters
// lists (a search_path left "$user", public lets the service account's
// own objects shadow what the rewriter resolved), and in transaction
// mode runs the statements of pgveil's sessions on shared backends.
func TestBehindPgBouncer(t *testing.T) {
	pgtest.Require(t, proxytest.Cluster)
	ctx := context.Background()
	const db = "pgveil_bouncer"
	if err := proxytest.Cluster.CreateDatabase(ctx, db); err != nil {
		t.Fatal(err)
	}
	su, pw := proxytest.Cluster.SuperUser()
	logins := map[string]string{su: pw}
	config := func(addr string) *policy.Config {
		return &policy.Config{Upstream: policy.Upstream{
			Address: addr, Database: db, User: su, Password: pw,
			SearchPath: "public", ConnectTimeout: 10 * time.Second,
			ClientConnectionCheckInterval: 10 * time.Second,
		}}
	}
	refused := func(t *testing.T, addr string, says ...string) {
		t.Helper()
		pc, err := proxy.ConnectService(ctx, config(addr), "test")
		if err == nil {
			pc.Close(ctx)
			t.Fatal("pgveil connected through PgBouncer")
		}
		for _, s := range says {
			if !strings.Contains(err.Error(), s) {
				t.Errorf("the refusal does not say %q: %v", s, err)
			}
		}
	}
	t.Run("a PgBouncer refusing pgveil's startup parameters stops the start, saying what to configure", func(t *testing.T) {
		refused(t, startPgbouncer(t, db, bouncer{mode: "session"}, logins), "unsupported startup parameter", "ignore_startup_parameters", "pool_mode = session")
	})
	t.Run("a PgBouncer dropping them silently stops the start, naming the setting and how to pin it", func(t *testing.T) {
		refused(t, startPgbouncer(t, db, bouncer{mode: "session", ignore: pgveilPins}, logins),
			"search_path is", `ALTER ROLE "`+su+`" IN DATABASE "`+db+`" SET search_path = public`)
	})
	pin := func(t *testing.T) {
		t.Helper()
		for _, s := range []string{"search_path = public", "client_min_messages = notice", "client_connection_check_interval = '10s'"} {
			if err := proxytest.Cluster.Exec(ctx, db, fmt.Sprintf(`ALTER ROLE %q IN DATABASE %s SET %s`, su, db, s)); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_ = proxytest.Cluster.Exec(ctx, db, fmt.Sprintf(`ALTER ROLE %q IN DATABASE %s RESET ALL`, su, db))
		})
	}
	t.Run("with the settings pinned on the service account, session mode is served", func(t *testing.T) {
		pin(t)
		pc, err := proxy.ConnectService(ctx, config(startPgbouncer(t, db, bouncer{mode: "session", ignore: pgveilPins}, logins)), "test")
		if err != nil {
			t.Fatal(err)
		}
		pc.Close(ctx)
	})
	t.Run("lock_timeout, pgveil's own connections' setting, is set on them, not asked of the role the sessions share", func(t *testing.T) {
		for _, s := range []string{"search_path = public", "client_min_messages = notice", "client_connection_check_interval = '10s'"} {
			if err := proxytest.Cluster.Exec(ctx, db, fmt.Sprintf(`ALTER ROLE %q IN DATABASE %s SET %s`, su, db, s)); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_ = proxytest.Cluster.Exec(ctx, db, fmt.Sprintf(`ALTER ROLE %q IN DATABASE %s RESET ALL`, su, db))
		})
		pc, err := proxy.ConnectService(ctx, config(startPgbouncer(t, db, bouncer{mode: "session", ignore: pgveilPins}, logins)), "test")
		if err != nil {
			t.Fatal(err)
		}
		defer pc.Close(ctx)
		res, err := pc.Exec(ctx, "SHOW lock_timeout").ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if got := string(res[0].Rows[0][0]); got != "5s" {
			t.Fatalf("the service connection's lock_timeout is %q, not 5s", got)
		}
	})
	t.Run("a session-mode pool of one backend fails the start within connect_timeout, saying the pool may be too small", func(t *testing.T) {
		pin(t)
		cfg := config(startPgbouncer(t, db, bouncer{mode: "session", ignore: pgveilPins, extra: "default_pool_size = 1\nquery_wait_timeout = 60\n"}, logins))
		cfg.Upstream.ConnectTimeout = 2 * time.Second
		pc, err := proxy.ConnectService(ctx, cfg, "test")
		if err == nil {
			pc.Close(ctx)
			t.Fatal("pgveil connected through a PgBouncer with one backend")
		}
		if !strings.Contains(err.Error(), "default_pool_size") {
			t.Errorf("the refusal does not say that the pooler's pool may be too small: %v", err)
		}
	})
	t.Run("transaction mode is refused though every setting holds, naming pool_mode = session", func(t *testing.T) {
		pin(t)
		refused(t, startPgbouncer(t, db, bouncer{mode: "transaction", ignore: pgveilPins}, logins), "shares a backend", "pool_mode = session")
	})
}

// TestSessionsBehindPgBouncer checks sessions through a session-mode
// PgBouncer, pgveil's settings pinned on the service account as
// configs/README.md says: rows are scoped, and the audit trail names the
// backend that ran a statement, not the cancel key PgBouncer announces
// in its place.
// NOTE: pinned by PgBouncer's connect_query instead, a RESET ALL would
// lose them (TestPinsBehindPgBouncerSurviveReset).
func TestSessionsBehindPgBouncer(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	for _, s := range []string{"search_path = public", "client_min_messages = notice", "client_connection_check_interval = '10s'"} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "ALTER ROLE pgveil_svc IN DATABASE "+proxytest.DemoDB+" SET "+s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "ALTER ROLE pgveil_svc IN DATABASE "+proxytest.DemoDB+" RESET ALL")
	})
	addr := startPgbouncer(t, proxytest.DemoDB, bouncer{mode: "session", ignore: pgveilPins},
		map[string]string{"pgveil_svc": "demo-service-account"})
	for _, mode := range []string{"session", "transaction"} {
		t.Run("in pgveil's "+mode+" mode", func(t *testing.T) {
			cfgPath := "../configs/demo.hcl"
			if mode == "transaction" {
				cfgPath = proxytest.PooledDemo(t, 2)
			}
			sessionsBehindPgBouncer(t, cfgPath, addr)
		})
	}
}

// sessionsBehindPgBouncer runs TestSessionsBehindPgBouncer's sessions
// with pgveil's configuration cfgPath, upstream the PgBouncer at addr.
func sessionsBehindPgBouncer(t *testing.T, cfgPath, addr string) {
	ctx := context.Background()
	path := t.TempDir() + "/audit.log"
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p, _ := proxytest.StartDemoWith(t, cfgPath, func(c *policy.Config) { c.Upstream.Address = addr },
		func(po *proxy.Options) { po.Audit = alog })
	for range 2 {
		// NOTE: twice: the second session takes the backend the first
		// released.
		c := p.Connect(t, "marie")
		rows := proxytest.Through(t, c, "SELECT DISTINCT country FROM responses")
		if len(rows) != 1 || rows[0][0] != "France" {
			t.Fatalf("marie sees the countries %v, not France only", rows)
		}
		if _, err := c.PgConn().Exec(ctx, "RESET ALL").ReadAll(); err != nil {
			t.Fatal(err)
		}
		if rows := proxytest.Through(t, c, "SHOW search_path"); len(rows) != 1 || rows[0][0] != "public" {
			t.Fatalf("after RESET ALL, the session's search_path is %v, not public", rows)
		}
		c.Close(ctx)
	}
	c := p.Connect(t, "marie")
	if _, err := c.PgConn().Exec(ctx, "SELECT 'bouncer-marker' AS m").ReadAll(); err != nil {
		t.Fatal(err)
	}
	rows := proxytest.Direct(t, "SELECT pid::text FROM pg_stat_activity WHERE query LIKE '%bouncer-marker%' AND pid <> pg_backend_pid()")
	if len(rows) != 1 {
		t.Fatalf("%d backends ran the marker", len(rows))
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	seen := false
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == audit.EventStatement && e.SQL == "SELECT 'bouncer-marker' AS m" {
			seen = true
			if got := strconv.FormatUint(uint64(e.BackendPID), 10); got != rows[0][0] {
				t.Errorf("the record names backend %s, not %s, which ran it", got, rows[0][0])
			}
		}
	}
	if !seen {
		t.Fatal("no record of the marker statement")
	}
}

// TestSessionRefusedWhenPgBouncerLosesThePins checks that a session is
// refused, not served, on a connection where a setting pgveil pins no
// longer holds: PgBouncer pinning them by connect_query only loses them
// at the first release (DISCARD ALL resets to the role's settings), after
// pgveil started on a new server connection where they held.
func TestSessionRefusedWhenPgBouncerLosesThePins(t *testing.T) {
	proxytest.SetupDemo(t)
	const pins = "SET search_path = public; SET client_min_messages = notice; SET lock_timeout = '5s'; SET client_connection_check_interval = '10s'"
	addr := startPgbouncer(t, proxytest.DemoDB, bouncer{mode: "session", ignore: pgveilPins, connectQuery: pins},
		map[string]string{"pgveil_svc": "demo-service-account"})
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.Address = addr })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL("marie", "demo-marie", nil))
	if err == nil {
		rows := proxytest.Through(t, c, "SHOW search_path")
		c.Close(ctx)
		t.Fatalf("marie's session was served, its search_path %v", rows)
	}
	if !strings.Contains(err.Error(), "08001") {
		t.Fatalf("the session was refused otherwise than as a failed upstream connection: %v", err)
	}
}

// TestPinsBehindPgBouncerSurviveReset checks that a session served
// through a PgBouncer keeps pgveil's search_path after a RESET ALL (a
// client's own, asyncpg's reset) and on the backend a session ended with
// Terminate left for the next (pgveil resets it with DISCARD ALL):
// PostgreSQL resets to the startup packet's values, which a pooler does
// not pass on; a setting PgBouncer's connect_query SET is lost there, and
// the service account's own schema, first in "$user", public, would
// shadow what the rewriter resolved. Such a session is refused instead.
func TestPinsBehindPgBouncerSurviveReset(t *testing.T) {
	proxytest.SetupDemo(t)
	const pins = "SET search_path = public; SET client_min_messages = notice; SET lock_timeout = '5s'; SET client_connection_check_interval = '10s'"
	addr := startPgbouncer(t, proxytest.DemoDB, bouncer{mode: "session", ignore: pgveilPins, connectQuery: pins, resetQuery: "DISCARD ALL; " + pins},
		map[string]string{"pgveil_svc": "demo-service-account"})
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.Address = addr })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, step := range []struct{ name, reset string }{
		{"a client's RESET ALL", "RESET ALL"},
		{"pgveil's DISCARD ALL of a kept backend", ""},
	} {
		t.Run("the pins hold after "+step.name+", or the session is refused", func(t *testing.T) {
			c, err := pgx.Connect(ctx, p.URL("marie", "demo-marie", nil))
			if err != nil {
				if !strings.Contains(err.Error(), "08001") {
					t.Fatalf("the session was refused otherwise than as a failed upstream connection: %v", err)
				}
				return
			}
			defer c.Close(ctx)
			if step.reset != "" {
				if _, err := c.PgConn().Exec(ctx, step.reset).ReadAll(); err != nil {
					t.Fatalf("%s: %v", step.reset, err)
				}
			}
			if rows := proxytest.Through(t, c, "SHOW search_path"); len(rows) != 1 || rows[0][0] != "public" {
				t.Fatalf("the session's search_path is %v, not public as pgveil pins it", rows)
			}
		})
	}
}

// TestPinsOverRoleSettingsDirectly checks that, straight to PostgreSQL,
// the service account's role settings for what pgveil pins refuse
// nothing: the startup packet's values win, and they are also what
// RESET ALL restores, which the pool's connections read back.
func TestPinsOverRoleSettingsDirectly(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	for _, s := range []string{"search_path = pg_temp, \"$user\"", "client_min_messages = error"} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "ALTER ROLE pgveil_svc IN DATABASE "+proxytest.DemoDB+" SET "+s); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "ALTER ROLE pgveil_svc IN DATABASE "+proxytest.DemoDB+" RESET ALL")
	})
	for _, mode := range []string{"session", "transaction"} {
		t.Run("a "+mode+"-mode session is served with the pinned search_path, after RESET ALL too", func(t *testing.T) {
			cfgPath := "../configs/demo.hcl"
			if mode == "transaction" {
				cfgPath = proxytest.PooledDemo(t, 2)
			}
			p, _ := proxytest.StartDemoFrom(t, cfgPath)
			c := p.Connect(t, "marie")
			defer c.Close(ctx)
			for _, sql := range []string{"SELECT 1", "RESET ALL"} {
				if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
				if rows := proxytest.Through(t, c, "SHOW search_path"); len(rows) != 1 || rows[0][0] != "public" {
					t.Fatalf("after %s, the session's search_path is %v, not public", sql, rows)
				}
			}
		})
	}
}
