package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/ddlnotify"
	"github.com/pgveil/pgveil/internal/pgtest"
)

// demoUsers are the logins of configs/demo.hcl with what each stands for.
// Each password is "demo-" + login.
var demoUsers = []struct{ login, role string }{
	{"marie", "French analyst"},
	{"hq", "central analyst, all countries"},
	{"survey_admin", "sends surveys, may see personal data"},
	{"paul", "manager of Frozen Food and its sub-teams"},
	{"tom", "agent in Thick Crust"},
	{"lea", "team lead of Desserts"},
	{"bpo_a", "outsourced agent, group vendor_a"},
	{"ops", "operations, groups vendor_a and vendor_b"},
	{"bank_app", "Banking App product team"},
	{"metabase", "BI service: SET ROLE hq or SET ROLE marie acts for them (SHOW pgveil.act_for says whom)"},
}

func main() {
	if err := run(); err != nil {
		fmt.Fprintf(os.Stderr, "pgveil-demo: %v\n", err)
		os.Exit(1)
	}
}

func run() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)

	tmp, err := os.MkdirTemp("", "pgveil-demo-")
	if err != nil {
		return fmt.Errorf("creating temp dir: %w", err)
	}
	defer os.RemoveAll(tmp)

	step("starting a throwaway PostgreSQL")
	cluster, err := pgtest.Start(pgtest.Options{})
	if err != nil {
		return fmt.Errorf("starting PostgreSQL: %w", err)
	}
	defer func() {
		step("stopping PostgreSQL")
		_ = cluster.Stop()
	}()

	ctx := context.Background()
	step("loading the demo database \"feedback\"")
	svcPassword := randomHex(16)
	if err := cluster.LoadDemo(ctx, filepath.Join(root, "testdata", "demo"), "feedback", svcPassword); err != nil {
		return err
	}
	// DDL a user of the demo runs as the superuser reaches pgveil at once.
	if err := cluster.Exec(ctx, "feedback", ddlnotify.TriggerSQL); err != nil {
		return fmt.Errorf("installing the DDL event trigger: %w", err)
	}

	step("building pgveil")
	bin := filepath.Join(tmp, "pgveil")
	build := exec.Command("go", "build", "-o", bin, "./cmd/pgveil")
	build.Dir, build.Stdout, build.Stderr = root, os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		return fmt.Errorf("building pgveil: %w", err)
	}

	listen, err := demoAddr(os.Getenv, "PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
	if err != nil {
		return err
	}
	admin, err := demoAddr(os.Getenv, "PGVEIL_DEMO_ADMIN", "127.0.0.1:9187")
	if err != nil {
		return err
	}
	auditPath := filepath.Join(root, "pgveil-demo-audit.log")
	auditKey, err := demoAuditKey(auditPath)
	if err != nil {
		return err
	}
	logPath := filepath.Join(root, "pgveil-demo.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return fmt.Errorf("creating log file: %w", err)
	}
	defer logFile.Close()

	step("starting pgveil on " + listen)
	proxy := exec.Command(bin, "serve", "--config", filepath.Join(root, "configs", "demo.hcl"), "--log-format", "console")
	proxy.Env = append(os.Environ(),
		"PGVEIL_DEMO_LISTEN="+listen,
		"PGVEIL_DEMO_UPSTREAM="+cluster.Addr(),
		"PGVEIL_DEMO_UPSTREAM_PASSWORD="+svcPassword,
		"PGVEIL_DEMO_ADMIN="+admin,
		"PGVEIL_DEMO_AUDIT="+auditPath,
		"PGVEIL_DEMO_AUDIT_KEY="+auditKey)
	proxy.Stdout, proxy.Stderr = logFile, logFile
	proxy.SysProcAttr = proxyAttr()
	if err := proxy.Start(); err != nil {
		return fmt.Errorf("starting pgveil: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- proxy.Wait() }()
	stopProxy := func() {
		_ = proxy.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = proxy.Process.Kill()
			<-exited
		}
	}

	if err := waitForUsers(ctx, listen, exited); err != nil {
		stopProxy()
		log, _ := os.ReadFile(logPath)
		return fmt.Errorf("%w\npgveil log:\n%s", err, log)
	}

	printWelcome(listen, logPath, admin, auditPath, auditKey, cluster.Addr(), svcPassword, cluster.ConnString("feedback"), proxy.Process.Pid)
	select {
	case <-sigs:
		fmt.Fprintln(os.Stderr)
		step("stopping pgveil")
		stopProxy()
	case err := <-exited:
		return fmt.Errorf("pgveil exited unexpectedly (%v); see %s", err, logPath)
	}
	return nil
}

// waitForUsers waits until pgveil accepts connections, then logs in as
// every demo user.
func waitForUsers(ctx context.Context, listen string, exited <-chan error) error {
	deadline := time.Now().Add(30 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("pgveil exited during startup: %v", err)
		default:
		}
		c, err := net.DialTimeout("tcp", listen, time.Second)
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			return errors.New("pgveil did not start listening within 30s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, u := range demoUsers {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		conn, err := pgconn.Connect(cctx, connURL(listen, u.login))
		cancel()
		if err != nil {
			return fmt.Errorf("logging in as %s: %w", u.login, err)
		}
		conn.Close(ctx)
	}
	return nil
}

// demoAddr returns the address the environment variable name gives,
// as configs/demo.hcl would read it; without one, def, or a free port
// when def is taken.
func demoAddr(getenv func(string) string, name, def string) (string, error) {
	if addr := getenv(name); addr != "" {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			return "", fmt.Errorf("%s=%q: want host:port: %w", name, addr, err)
		}
		return addr, nil
	}
	if portFree(def) {
		return def, nil
	}
	addr, err := freeAddr()
	if err != nil {
		return "", fmt.Errorf("finding a free port in place of %s: %w", def, err)
	}
	return addr, nil
}

func connURL(listen, login string) string {
	u := url.URL{Scheme: "postgresql", User: url.UserPassword(login, "demo-"+login), Host: listen, Path: "/feedback"}
	return u.String()
}

// printWelcome prints how to connect as each demo user and how to run
// pgveil's other commands against the demo (docs/tutorial.md follows it).
func printWelcome(listen, logPath, admin, auditPath, auditKey, upstream, svcPassword, superuser string, pid int) {
	var b strings.Builder
	fmt.Fprintf(&b, "\npgveil is ready on %s, in front of the demo database \"feedback\".\n", listen)
	fmt.Fprintf(&b, "Connect as any demo user (paste one line):\n\n")
	for _, u := range demoUsers {
		fmt.Fprintf(&b, "  # %s\n  psql %q\n", u.role, connURL(listen, u.login))
	}
	fmt.Fprintf(&b, "\nTry: SELECT country, count(*), round(avg(nps), 1) AS nps FROM responses GROUP BY 1 ORDER BY 1;\n")
	fmt.Fprintf(&b, "Notes follow their responses: SELECT r.country, count(*) FROM response_comments c JOIN responses r ON r.id = c.response_id GROUP BY 1;\n")
	fmt.Fprintf(&b, "\nAudit trail: %s (one JSON line per statement). In another terminal:\n", auditPath)
	fmt.Fprintf(&b, "  PGVEIL_AUDIT_KEY=%s go run ./cmd/pgveil audit verify %s*\n", auditKey, auditPath)
	fmt.Fprintf(&b, "  go run ./cmd/pgveil audit search --user marie --format table %s*\n", auditPath)
	fmt.Fprintf(&b, "pgveil explain, test and check read configs/demo.hcl, which needs the throwaway\n")
	fmt.Fprintf(&b, "upstream's address and service-account password (it reads every row: in production it\n")
	fmt.Fprintf(&b, "never leaves pgveil's host). In another terminal:\n")
	fmt.Fprintf(&b, "  export PGVEIL_DEMO_UPSTREAM=%s PGVEIL_DEMO_UPSTREAM_PASSWORD=%s\n", upstream, svcPassword)
	fmt.Fprintf(&b, "  go run ./cmd/pgveil explain --config configs/demo.hcl --user marie \"SELECT * FROM responses\"\n")
	fmt.Fprintf(&b, "Change the data upstream as its superuser, straight to PostgreSQL (not through pgveil):\n")
	fmt.Fprintf(&b, "  psql %q\n", superuser)
	fmt.Fprintf(&b, "  e.g. UPDATE employees SET team_id = 9 WHERE login = 'lea'; pgveil reads employees again\n")
	fmt.Fprintf(&b, "  every minute (identity \"employees\", refresh) and follows DDL at once.\n")
	fmt.Fprintf(&b, "Metrics: http://%s/metrics   health: /healthz, /readyz\n", admin)
	fmt.Fprintf(&b, "Reload policies after editing configs/demo.hcl: kill -HUP %d\n", pid)
	fmt.Fprintf(&b, "pgveil's log: %s\nPress Ctrl-C to stop and clean up.\n", logPath)
	fmt.Print(b.String())
}

func step(msg string) { fmt.Fprintf(os.Stderr, "==> %s\n", msg) }

// moduleRoot walks up from the working directory to the go.mod of pgveil.
func moduleRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if b, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/pgveil/pgveil") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("run pgveil-demo from inside the pgveil repository")
		}
		dir = parent
	}
}

func portFree(addr string) bool {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	ln.Close()
	return true
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("finding a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

// demoAuditKey returns the key of the demo's audit trail at auditPath,
// kept in auditPath's ".key" file (mode 0600) so that each run continues
// the chain under the same key and the printed `audit verify` checks the
// whole trail. A trail left without its key file (by an older demo, which
// drew a key per run) cannot be verified: it is moved aside, out of the
// printed glob, and a new one begins.
func demoAuditKey(auditPath string) (string, error) {
	keyPath := strings.TrimSuffix(auditPath, ".log") + ".key"
	if b, err := os.ReadFile(keyPath); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b)), nil
	}
	old, _ := filepath.Glob(auditPath + "*")
	if len(old) > 0 {
		stamp := time.Now().UTC().Format("20060102T150405")
		for _, f := range old {
			aside := strings.TrimSuffix(auditPath, ".log") + "-unkeyed-" + stamp + ".log" + strings.TrimPrefix(f, auditPath)
			if err := os.Rename(f, aside); err != nil {
				return "", fmt.Errorf("moving aside the audit trail without its key: %w", err)
			}
		}
		step(fmt.Sprintf("moved %d audit file(s) of an earlier demo, whose key is gone, to %s-unkeyed-%s*",
			len(old), strings.TrimSuffix(filepath.Base(auditPath), ".log"), stamp))
	}
	key := randomHex(32)
	if err := os.WriteFile(keyPath, []byte(key+"\n"), 0o600); err != nil {
		return "", fmt.Errorf("writing the demo's audit key: %w", err)
	}
	return key, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b)
}
