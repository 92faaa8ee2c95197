package compat

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

const (
	// demoDB is the demo database, the one configs/demo.hcl serves.
	demoDB = "feedback"
	// servicePassword is the demo service account's password upstream.
	servicePassword = "compat-service-account"
)

var (
	// cluster is the throwaway PostgreSQL holding the demo database.
	cluster *pgtest.Cluster
	// veil is the address (host:port) of the pgveil the tests talk to,
	// started by the first test that needs it.
	veil     string
	veilOnce sync.Once
	veilErr  error
	veilStop func() error

	// pooledVeil is a second pgveil in front of the same database, with a
	// transaction pool (startPooledVeil), for the tests that run a
	// client both ways in one process.
	pooledVeil     string
	pooledVeilOnce sync.Once
	pooledVeilErr  error
	pooledVeilStop func() error

	// demoOnce loads the demo database once for both.
	demoOnce sync.Once
	demoErr  error
)

func TestMain(m *testing.M) {
	code := pgtest.Main(m, &cluster)
	if pooledVeilStop != nil {
		if err := pooledVeilStop(); err != nil {
			fmt.Fprintf(os.Stderr, "compat: stopping the pooled pgveil: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	if veilStop != nil {
		if err := veilStop(); err != nil {
			fmt.Fprintf(os.Stderr, "compat: stopping pgveil: %v\n", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// startVeil loads the demo database and starts pgveil with
// configs/demo.hcl in front of it, on a free port of 127.0.0.1; its pool
// is the one COMPAT_POOL names.
func startVeil() (stop func() error, err error) {
	addr, stop, err := serveDemo(os.Getenv("COMPAT_POOL") == policy.PoolTransaction)
	veil = addr
	return stop, err
}

// serveDemo loads the demo database (once) and starts pgveil with
// configs/demo.hcl in front of it, on a free port of 127.0.0.1, with a
// small transaction pool if pooled.
func serveDemo(pooled bool) (addr string, stop func() error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	demoOnce.Do(func() {
		if err := cluster.LoadDemo(ctx, "../../testdata/demo", demoDB, servicePassword); err != nil {
			demoErr = fmt.Errorf("loading the demo database: %w", err)
		}
	})
	if demoErr != nil {
		return "", nil, demoErr
	}
	for k, v := range map[string]string{
		"PGVEIL_DEMO_UPSTREAM":          cluster.Addr(),
		"PGVEIL_DEMO_UPSTREAM_PASSWORD": servicePassword,
		// Not listened on: the tests serve on a listener of their own.
		"PGVEIL_DEMO_LISTEN": "127.0.0.1:6432",
	} {
		if err := os.Setenv(k, v); err != nil {
			return "", nil, err
		}
	}
	l := policy.NewLoader()
	cfg, diags := l.Load("../../configs/demo.hcl")
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		return "", nil, fmt.Errorf("loading configs/demo.hcl:\n%s", b.String())
	}
	if pooled {
		// Every client through a transaction pool small enough that
		// the sessions of a test share backends.
		cfg.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 3, WaitTimeout: 30 * time.Second, IdleTimeout: time.Minute,
			// Short, so that a real client's statement taken for an idle
			// transaction would fail its test.
			IdleTransactionTimeout: 2 * time.Second}
	}
	enf, _, err := server.LoadEnforcement(ctx, cfg)
	if err != nil {
		return "", nil, fmt.Errorf("loading enforcement: %w", err)
	}
	logger := zap.NewNop()
	if os.Getenv("COMPAT_LOG") != "" {
		logger, _ = zap.NewDevelopment()
	}
	opts := proxy.Options{Logger: logger}
	enf.Apply(&opts)
	srv, err := proxy.New(proxy.ConfigOf(cfg), opts)
	if err != nil {
		return "", nil, fmt.Errorf("starting pgveil: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listening: %w", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		err := srv.Shutdown(ctx)
		<-done
		return err
	}, nil
}

// requireVeil starts pgveil in front of the demo database once; it skips
// t (fails it under CI=true) when no PostgreSQL is installed.
func requireVeil(t *testing.T) {
	t.Helper()
	pgtest.Require(t, cluster)
	veilOnce.Do(func() { veilStop, veilErr = startVeil() })
	if veilErr != nil {
		t.Fatalf("starting pgveil: %v", veilErr)
	}
}

// requirePooledVeil starts, once, a second pgveil in front of the demo
// database with a transaction pool of 3 backends, and returns its address.
func requirePooledVeil(t *testing.T) string {
	t.Helper()
	requireVeil(t)
	pooledVeilOnce.Do(func() { pooledVeil, pooledVeilStop, pooledVeilErr = serveDemo(true) })
	if pooledVeilErr != nil {
		t.Fatalf("starting the pooled pgveil: %v", pooledVeilErr)
	}
	return pooledVeil
}

// password returns a demo user's password (configs/demo.hcl).
func password(user string) string { return "demo-" + user }

// host and port of pgveil.
func veilHostPort(t *testing.T) (string, string) {
	t.Helper()
	h, p, err := net.SplitHostPort(veil)
	if err != nil {
		t.Fatal(err)
	}
	return h, p
}

// veilURL is a postgres:// URL for user through pgveil.
func veilURL(user string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password(user)), Host: veil,
		Path: "/" + demoDB, RawQuery: "sslmode=disable"}
	return u.String()
}

// connect opens a pgx connection as user through pgveil.
func connect(t *testing.T, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, veilURL(user))
	if err != nil {
		t.Fatalf("connecting as %s through pgveil: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// direct runs sql on the demo database as the superuser, without pgveil,
// and returns the first column of every row as text.
func direct(t *testing.T, sql string) []string {
	t.Helper()
	ctx := context.Background()
	c, err := cluster.Connect(ctx, demoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	var out []string
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out
}

// inCI reports whether CI=true: missing clients fail instead of skipping.
func inCI() bool {
	ci, _ := strconv.ParseBool(os.Getenv("CI"))
	return ci
}

// missing skips t, or fails it under CI=true, because a client is not
// installed.
func missing(t *testing.T, what string, err error) {
	t.Helper()
	if inCI() {
		t.Fatalf("%s is not installed (%v): under CI=true a missing client is a failure; internal/compat/install.sh installs it", what, err)
	}
	t.Skipf("%s is not installed (%v): `make compat` installs it", what, err)
}

// lookPath finds a program on PATH, or in PostgreSQL's bin directory for
// psql and pgbench; it skips or fails t when the program is missing.
func lookPath(t *testing.T, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if dir, err := pgtest.FindBinDir(); err == nil {
		if p := filepath.Join(dir, name); isExecutable(p) {
			return p
		}
	}
	missing(t, name, errors.New("not on PATH"))
	return ""
}

func isExecutable(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0
}

// runClient runs a client program with a time limit and returns its
// standard output; a non-zero exit fails t with the program's output.
func runClient(t *testing.T, env []string, name string, args ...string) string {
	t.Helper()
	out, stderr, err := tryClient(t, env, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(name), strings.Join(args, " "), err, out, stderr)
	}
	return out
}

// tryClient runs a client program and returns its standard output and
// error and how it ended.
func tryClient(t *testing.T, env []string, name string, args ...string) (string, string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// record is one JSON line a client script printed: "check" names what it
// did, the other fields what it saw.
type record map[string]any

// records parses the JSON lines of out, keyed by their "check" field;
// other lines are ignored.
func records(t *testing.T, out string) map[string]record {
	t.Helper()
	recs := map[string]record{}
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "{") {
			continue
		}
		var r record
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("a line of the client's output is not JSON: %v\n%s", err, line)
		}
		name, _ := r["check"].(string)
		if name == "" {
			t.Fatalf("a JSON line without \"check\": %s", line)
		}
		recs[name] = r
	}
	return recs
}

// get returns the record check, failing t when the client did not print it.
func get(t *testing.T, recs map[string]record, check string) record {
	t.Helper()
	r, ok := recs[check]
	if !ok {
		t.Fatalf("the client printed no %q line", check)
	}
	return r
}
