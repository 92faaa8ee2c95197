package server

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
)

// cluster is the throwaway PostgreSQL of this package's tests.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

// writeConfig writes a configuration in front of the test cluster to a
// new directory, with an audit log and an admin endpoint, and returns
// its path; extra is appended to it.
func writeConfig(t *testing.T, extra string) string {
	t.Helper()
	v, err := scram.NewVerifier("pw", 4096)
	if err != nil {
		t.Fatal(err)
	}
	su, supw := cluster.SuperUser()
	t.Setenv("PGVEIL_SERVER_TEST_PW", supw)
	t.Setenv("PGVEIL_SERVER_TEST_KEY", "server-test-key")
	body := fmt.Sprintf(`
listen {
  address  = %q
  database = "postgres"
}
upstream {
  address  = %q
  database = "postgres"
  user     = %q
  password = env("PGVEIL_SERVER_TEST_PW")
}
role "reader" {
  statements = ["select"]
}
user "carol" {
  password = %q
  roles    = ["reader"]
}
audit {
  file     = "audit.log"
  hmac_key = env("PGVEIL_SERVER_TEST_KEY")
}
admin {
  address = %q
}
%s`, freeAddr(t), cluster.Addr(), su, v.String(), freeAddr(t), extra)
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// load loads the configuration at path.
func load(t *testing.T, path string) *policy.Config {
	t.Helper()
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		t.Fatalf("loading %s:\n%s", path, b.String())
	}
	return cfg
}

// auditEvents returns the events of the audit log at path, in order.
func auditEvents(t *testing.T, path string) []string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []string
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		var rec struct {
			Event string `json:"event"`
		}
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		events = append(events, rec.Event)
	}
	return events
}

// TestServerLifecycle runs pgveil in process from Start to Shutdown.
func TestServerLifecycle(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	path := writeConfig(t, "")
	srv, err := Start(ctx, Config{Path: path, Config: load(t, path), Version: "test"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })

	t.Run("clients are served on the listen address", func(t *testing.T) {
		c, err := pgconn.Connect(ctx, "postgres://carol:pw@"+srv.Addr().String()+"/postgres?sslmode=disable")
		if err != nil {
			t.Fatalf("connecting: %v", err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatalf("SELECT 1: %v", err)
		}
	})

	t.Run("the admin endpoint answers", func(t *testing.T) {
		resp, err := http.Get("http://" + srv.AdminAddr().String() + "/healthz")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("/healthz: %s", resp.Status)
		}
	})

	t.Run("a reload of a broken configuration is refused and the old policies keep serving", func(t *testing.T) {
		before := srv.Policies().Current()
		if err := os.WriteFile(path, []byte("listen {"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := srv.Reload(ctx); !errors.Is(err, ErrReloadRefused) {
			t.Fatalf("Reload = %v; want ErrReloadRefused", err)
		}
		if srv.Policies().Current() != before {
			t.Fatal("a refused reload replaced the policies in force")
		}
	})

	t.Run("a reload of a valid configuration puts it in force", func(t *testing.T) {
		fixed := writeConfig(t, "# reloaded\n")
		b, err := os.ReadFile(fixed)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		before := srv.Policies().Current()
		if err := srv.Reload(ctx); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		if srv.Policies().Current() == before {
			t.Fatal("the reload left the old policies in force")
		}
	})

	t.Run("/readyz answers 503 while Shutdown waits for a running statement", func(t *testing.T) {
		readyz := func() (int, string) {
			resp, err := http.Get("http://" + srv.AdminAddr().String() + "/readyz")
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			return resp.StatusCode, string(b)
		}
		if code, body := readyz(); code != http.StatusOK {
			t.Fatalf("before Shutdown: /readyz = %d %q", code, body)
		}
		c, err := pgconn.Connect(ctx, "postgres://carol:pw@"+srv.Addr().String()+"/postgres?sslmode=disable")
		if err != nil {
			t.Fatalf("connecting: %v", err)
		}
		defer c.Close(ctx)
		running := make(chan error, 1)
		go func() { _, err := c.Exec(ctx, "SELECT pg_sleep(2)").ReadAll(); running <- err }()
		time.Sleep(200 * time.Millisecond) // NOTE: let the statement reach the server.
		stopped := make(chan error, 1)
		go func() {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			stopped <- srv.Shutdown(sctx)
		}()
		deadline := time.Now().Add(time.Second)
		for {
			code, body := readyz()
			if code == http.StatusServiceUnavailable && strings.Contains(body, "shutting down") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("during Shutdown: /readyz = %d %q; want 503 shutting down", code, body)
			}
			time.Sleep(20 * time.Millisecond)
		}
		select {
		case err := <-stopped:
			t.Fatalf("Shutdown returned (%v) before the running statement ended", err)
		default:
		}
		if err := <-running; err != nil {
			t.Fatalf("the running statement: %v", err)
		}
		if err := <-stopped; err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
	})

	t.Run("Shutdown stops serving and drains the audit trail", func(t *testing.T) {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Fatalf("Shutdown: %v", err)
		}
		select {
		case <-srv.Done():
		default:
			t.Fatal("Done is open after Shutdown")
		}
		if err := srv.Err(); err != nil {
			t.Fatalf("Err = %v; want nil after Shutdown", err)
		}
		if _, err := net.DialTimeout("tcp", srv.Addr().String(), time.Second); err == nil {
			t.Fatal("the listen address still accepts connections")
		}
		got := strings.Join(auditEvents(t, filepath.Join(filepath.Dir(path), "audit.log")), " ")
		for _, want := range []string{"start", "connect", "reload_failed", "reload", "stop"} {
			if !strings.Contains(" "+got+" ", " "+want+" ") {
				t.Errorf("audit events %q lack %q", got, want)
			}
		}
		if !strings.HasSuffix(got, "stop") {
			t.Errorf("audit events %q do not end with stop", got)
		}
	})
}

// TestStartFailsClosed holds Start to leaving nothing running when the
// policies cannot be enforced.
func TestStartFailsClosed(t *testing.T) {
	pgtest.Require(t, cluster)
	path := writeConfig(t, "")
	cfg := load(t, path)
	cfg.Upstream.Address = freeAddr(t)
	cfg.Upstream.ConnectTimeout = time.Second
	srv, err := Start(context.Background(), Config{Path: path, Config: cfg})
	if err == nil {
		_ = srv.Close()
		t.Fatal("Start succeeded without an upstream")
	}
	if !strings.Contains(err.Error(), "loading policies") {
		t.Fatalf("Start = %v; want an error loading policies", err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(path), "audit.log")); err == nil {
		t.Error("Start opened the audit log before the policies were loaded")
	}
}

// TestTwoInstances runs two pgveil instances of one configuration, as
// behind a TCP load balancer: each serves clients and writes an audit
// chain of its own, and one audit verify checks both.
func TestTwoInstances(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	pathA := writeConfig(t, "")
	body, err := os.ReadFile(pathA)
	if err != nil {
		t.Fatal(err)
	}
	// The second host's copy: the same configuration, but on this one
	// machine it must listen elsewhere; its audit.log is in its own
	// directory, as on its own disk.
	cfgA := load(t, pathA)
	bodyB := strings.Replace(string(body), fmt.Sprintf("%q", cfgA.Listen.Address), fmt.Sprintf("%q", freeAddr(t)), 1)
	bodyB = strings.Replace(bodyB, fmt.Sprintf("%q", cfgA.Admin.Address), fmt.Sprintf("%q", freeAddr(t)), 1)
	pathB := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(pathB, []byte(bodyB), 0o600); err != nil {
		t.Fatal(err)
	}
	var servers []*Server
	for _, path := range []string{pathA, pathB} {
		srv, err := Start(ctx, Config{Path: path, Config: load(t, path), Version: "test"})
		if err != nil {
			t.Fatalf("Start %s: %v", path, err)
		}
		t.Cleanup(func() { _ = srv.Close() })
		servers = append(servers, srv)
	}
	for i, srv := range servers {
		c, err := pgconn.Connect(ctx, "postgres://carol:pw@"+srv.Addr().String()+"/postgres?sslmode=disable")
		if err != nil {
			t.Fatalf("instance %d: connecting: %v", i, err)
		}
		for range 3 + i {
			if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
				t.Fatalf("instance %d: SELECT 1: %v", i, err)
			}
		}
		if _, err := c.Exec(ctx, "CREATE TABLE nope (a int)").ReadAll(); err == nil {
			t.Fatalf("instance %d: CREATE TABLE was not refused", i)
		}
		c.Close(ctx)
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		if err := srv.Shutdown(sctx); err != nil {
			t.Fatalf("instance %d: Shutdown: %v", i, err)
		}
		cancel()
	}
	var files []string
	for _, path := range []string{pathA, pathB} {
		fs, err := filepath.Glob(filepath.Join(filepath.Dir(path), "audit.log*"))
		if err != nil || len(fs) == 0 {
			t.Fatalf("no audit files next to %s: %v", path, err)
		}
		files = append(files, fs...)
	}
	reports, err := audit.VerifyChains([]byte("server-test-key"), files)
	if err != nil {
		t.Fatal(err)
	}
	if len(reports) != 2 || reports[0].Chain == reports[1].Chain {
		t.Fatalf("%d chains, want two of their own", len(reports))
	}
	for _, r := range reports {
		if !r.OK || !r.FromStart || r.Records < 5 {
			t.Errorf("chain %s: %+v", r.Chain, r)
		}
	}
}

// TestReloadRefusesAnUpstreamChange: sessions reach the upstream the
// process started with; a reload that changes it is refused.
func TestReloadRefusesAnUpstreamChange(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	path := writeConfig(t, "")
	srv, err := Start(ctx, Config{Path: path, Config: load(t, path), Version: "test"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(body), `database = "postgres"
  user`, `database = "template1"
  user`, 1)
	if changed == string(body) {
		t.Fatal("the test did not change the upstream block")
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	before := srv.Policies().Current()
	err = srv.Reload(ctx)
	if !errors.Is(err, ErrReloadRefused) || !strings.Contains(err.Error(), "upstream.database") {
		t.Fatalf("Reload = %v; want ErrReloadRefused naming upstream.database", err)
	}
	if srv.Policies().Current() != before {
		t.Fatal("a refused reload replaced the policies in force")
	}
}
