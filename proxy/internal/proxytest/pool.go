package proxytest

import (
	"context"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pgveil/pgveil/policy"
)

// PooledDemo writes configs/demo.hcl with a transaction pool of size
// backends to a temporary file, and returns its path.
func PooledDemo(t *testing.T, size int) string {
	t.Helper()
	return PooledDemoWait(t, size, "")
}

// PooledDemoWait is PooledDemo with the pool's wait_timeout set to wait
// (the default when empty): a test that accepts a client waiting in
// vain (53300) for the backend another session keeps waits less.
func PooledDemoWait(t *testing.T, size int, wait string) string {
	t.Helper()
	src, err := os.ReadFile(DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	pool := fmt.Sprintf("upstream {\n  pool {\n    mode = \"transaction\"\n    size = %d\n  }", size)
	if wait != "" {
		pool = fmt.Sprintf("upstream {\n  pool {\n    mode = \"transaction\"\n    size = %d\n    wait_timeout = %q\n  }", size, wait)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, []byte(strings.Replace(string(src), "upstream {", pool, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// SimpleConn opens a session as a demo user that sends every statement
// in the simple protocol, as psql does.
func (p *Proxy) SimpleConn(t *testing.T, user string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, url.Values{"default_query_exec_mode": {"simple_protocol"}}))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// PoolBackends counts the backends of p's pool upstream: named by
// pgveil, started since p. (Those of earlier tests' sessions, named alike,
// may still be exiting.)
func (p *Proxy) PoolBackends(t *testing.T) int {
	t.Helper()
	n, _ := strconv.Atoi(Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND backend_start >= '"+p.Started+"'")[0][0])
	return n
}

// OnEveryRelay runs test for sessions on the event loops and on
// goroutines (TLS sessions, listen.relay = "goroutines"): a pooled
// session behaves the same on both.
func OnEveryRelay(t *testing.T, test func(t *testing.T, relay string)) {
	t.Run("on event loops", func(t *testing.T) { test(t, policy.RelayEventLoop) })
	t.Run("on goroutines", func(t *testing.T) { test(t, policy.RelayGoroutines) })
}
