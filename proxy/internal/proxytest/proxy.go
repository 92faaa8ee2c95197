package proxytest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/goleak"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/internal/testcert"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Cluster is the throwaway PostgreSQL shared by this package's tests.
var Cluster *pgtest.Cluster

const (
	TestDB      = "proxytest"
	SvcUser     = "pgveil_test_svc"
	SvcPassword = "svc-password-for-tests"
)

// Users are the logins every test proxy accepts, with their passwords.
var Users = map[string]string{
	"alice": "alice-secret",
	"bob":   "b0b's \"pass\" wörd",
}

var (
	setupOnce sync.Once
	setupErr  error
	verifiers = map[string]scram.Verifier{}
)

// SetupUpstream creates the test database, the service account and the
// tables tests read, once per package.
func SetupUpstream(t testing.TB) {
	t.Helper()
	pgtest.Require(t, Cluster)
	setupOnce.Do(func() {
		ctx := context.Background()
		if setupErr = Cluster.CreateDatabase(ctx, TestDB); setupErr != nil {
			return
		}
		setupErr = Cluster.Exec(ctx, TestDB, fmt.Sprintf(`
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%[1]s') THEN
    CREATE ROLE %[1]s LOGIN;
  END IF;
END $$;
ALTER ROLE %[1]s PASSWORD '%[2]s';
CREATE TABLE items (id int PRIMARY KEY, name text NOT NULL);
INSERT INTO items SELECT g, 'item ' || g FROM generate_series(1, 100) g;
CREATE TABLE sink (id int, note text);
GRANT SELECT, INSERT, UPDATE, DELETE ON items, sink TO %[1]s;
`, SvcUser, SvcPassword))
		if setupErr != nil {
			return
		}
		for u, pw := range Users {
			v, err := scram.NewVerifier(pw, 4096)
			if err != nil {
				setupErr = err
				return
			}
			verifiers[u] = v
		}
	})
	if setupErr != nil {
		t.Fatalf("setting up upstream: %v", setupErr)
	}
}

// Proxy is a pgveil server running in the test process.
type Proxy struct {
	Server *proxy.Server
	Addr   string
	Config *policy.Config
	// CertFile is the PEM certificate clients can trust when TLS is on.
	CertFile string
	// Started is the upstream's clock when a pooled proxy Started
	// (startPooled): the backends of its pool Started after it.
	Started string
}

// Option adjusts the configuration of a test proxy.
type Option func(*policy.Config, *proxy.Options)

// WithTLS turns TLS on for clients, requiring it when require is true.
func WithTLS(t testing.TB, require bool) Option {
	return func(c *policy.Config, _ *proxy.Options) {
		cert, _ := SelfSigned(t)
		c.Listen.TLS = &policy.ListenTLS{Require: require, Config: &tls.Config{
			Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
		}}
	}
}

// WithRewriter installs r as the statement hook.
func WithRewriter(r proxy.Rewriter) Option {
	return func(_ *policy.Config, o *proxy.Options) { o.Rewriter = r }
}

// StartProxy starts a pgveil server in front of the test cluster. It is
// shut down when the test ends.
func StartProxy(t testing.TB, opts ...Option) *Proxy {
	t.Helper()
	SetupUpstream(t)
	cfg := &policy.Config{
		Listen: policy.Listen{
			Address:         "127.0.0.1:0",
			Database:        TestDB,
			StartupTimeout:  5 * time.Second,
			ShutdownTimeout: 5 * time.Second,
			MaxMessageSize:  1 << 20,
		},
		Upstream: policy.Upstream{
			Address:        Cluster.Addr(),
			Database:       TestDB,
			User:           SvcUser,
			Password:       SvcPassword,
			SearchPath:     "public",
			ConnectTimeout: 5 * time.Second,
			TLS:            policy.UpstreamTLS{Mode: policy.TLSDisable},
		},
		Users: map[string]*policy.User{},
	}
	for u, v := range verifiers {
		cfg.Users[u] = &policy.User{Login: u, Verifier: v}
	}
	po := proxy.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))}
	for _, o := range opts {
		o(cfg, &po)
	}
	return Serve(t, cfg, po)
}

// Serve starts a pgveil server for cfg with po; it is shut down when the
// test ends.
func Serve(t testing.TB, cfg *policy.Config, po proxy.Options) *Proxy {
	t.Helper()
	if po.Users == nil {
		proxy.StaticIdentities(cfg, &po)
	}
	srv, err := proxy.New(proxy.ConfigOf(cfg), po)
	if err != nil {
		t.Fatalf("proxy.New: %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listen: %v", err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		<-done
	})
	p := &Proxy{Server: srv, Addr: ln.Addr().String(), Config: cfg}
	if cfg.Listen.TLS != nil {
		p.CertFile = writeCert(t, cfg.Listen.TLS.Config.Certificates[0])
	}
	return p
}

// URL returns a connection URL for user through the proxy; extra are
// query parameters such as sslmode.
func (p *Proxy) URL(user, password string, extra url.Values) string {
	q := url.Values{"sslmode": {"disable"}}
	for k, v := range extra {
		q[k] = v
	}
	db := TestDB
	if p.Config.Listen.Database != "" {
		db = p.Config.Listen.Database
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: p.Addr, Path: "/" + db, RawQuery: q.Encode()}
	return u.String()
}

// Connect opens a pgx connection as user through the proxy.
func (p *Proxy) Connect(t testing.TB, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	pw, ok := Users[user]
	if !ok {
		pw = "demo-" + user
	}
	c, err := pgx.Connect(ctx, p.URL(user, pw, nil))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// NoLeaks fails the test if goroutines started during it are still
// running once every later cleanup (proxy shutdown included) has run.
// Call it before StartProxy.
func NoLeaks(t *testing.T) {
	t.Helper()
	opts := []goleak.Option{
		goleak.IgnoreCurrent(),
		// The test cluster waits on its postgres process; restarts start a new waiter.
		goleak.IgnoreAnyFunction("github.com/pgveil/pgveil/internal/pgtest.(*Cluster).startLocked.func1"),
	}
	t.Cleanup(func() {
		// Closing connections finish their goroutines soon, not at once.
		var err error
		if !Poll(5*time.Second, func() bool { err = goleak.Find(opts...); return err == nil }) {
			t.Errorf("goroutines leaked: %v", err)
		}
	})
}

// Poll calls cond until it holds or timeout passes, and reports whether
// it held. It is how tests wait for what another goroutine or process
// does in its own time, instead of sleeping for a guessed while.
func Poll(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
	return true
}

// Eventually fails t unless cond holds within timeout; what says what
// was awaited.
func Eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	if !Poll(timeout, cond) {
		t.Fatalf("waited %v in vain: %s", timeout, what)
	}
}

// WaitRunning waits until a statement whose text holds marker runs
// upstream: the synchronisation point of tests that act on a running
// statement (cancel, shutdown, other sessions' activity).
func WaitRunning(t testing.TB, marker string) {
	t.Helper()
	ctx := context.Background()
	admin, err := Cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatalf("connecting as the superuser: %v", err)
	}
	defer admin.Close(ctx)
	Eventually(t, 10*time.Second, "a running statement with "+marker, func() bool {
		res := admin.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
			[][]byte{[]byte(marker)}, nil, nil, nil).Read()
		return res.Err == nil && len(res.Rows) == 1 && string(res.Rows[0][0]) != "0"
	})
}

// SelfSigned returns a fresh certificate for 127.0.0.1 and localhost.
func SelfSigned(t testing.TB) (tls.Certificate, *x509.Certificate) {
	t.Helper()
	c := testcert.New(t)
	return c, c.Leaf
}

// writeCert writes the certificate of c as PEM and returns the path.
func writeCert(t testing.TB, c tls.Certificate) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "server.crt")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}
