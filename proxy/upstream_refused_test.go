package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
)

// fullUpstream lets the service account open no more backends and closes
// those it holds, as an upstream at max_connections refuses new ones
// (53300), until the test ends.
func fullUpstream(t *testing.T) {
	t.Helper()
	proxytest.Direct(t, "ALTER ROLE pgveil_svc CONNECTION LIMIT 0")
	t.Cleanup(func() { proxytest.Direct(t, "ALTER ROLE pgveil_svc CONNECTION LIMIT -1") })
	proxytest.Direct(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = 'pgveil_svc'")
	proxytest.Eventually(t, 5*time.Second, "the service account's backends to exit", func() bool {
		return proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgveil_svc'")[0][0] == "0"
	})
}

// wantUpstreamFull checks that err is the client's side of an upstream
// with no connection slot free: 53300 with a hint, nothing of the
// server's own text (which names the service account).
func wantUpstreamFull(t *testing.T, err error) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("want a 53300 error, got %v", err)
	}
	if pe.Code != "53300" || pe.Hint == "" {
		t.Errorf("want 53300 with a hint, got %s %q (hint %q)", pe.Code, pe.Message, pe.Hint)
	}
	if strings.Contains(pe.Message+pe.Detail+pe.Hint, "pgveil_svc") {
		t.Errorf("the error names the service account: %q %q %q", pe.Message, pe.Detail, pe.Hint)
	}
}

func TestUpstreamRefusalReachesTheClientAsItsClass(t *testing.T) {
	if proxytest.Cluster != nil && proxytest.Cluster.External() {
		t.Skip("changes the service account of a shared server")
	}
	ctx := context.Background()
	t.Run("a new session-mode session is told the upstream is full, not that it is unreachable", func(t *testing.T) {
		p := startDemoPool(t, policy.RelayEventLoop, policy.Pool{Mode: policy.PoolSession})
		fullUpstream(t)
		_, err := pgconn.Connect(ctx, p.URL("hq", "demo-hq", nil))
		wantUpstreamFull(t, err)
	})
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		t.Run("a new pooled session is told the upstream is full", func(t *testing.T) {
			p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 5 * time.Second})
			fullUpstream(t)
			_, err := pgconn.Connect(ctx, p.URL("hq", "demo-hq", nil))
			wantUpstreamFull(t, err)
		})
		t.Run("a pooled session whose backend is gone is told the upstream is full, and stays usable", func(t *testing.T) {
			p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 5 * time.Second})
			c := p.Connect(t, "hq")
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			fullUpstream(t)
			_, err := c.Exec(ctx, "SELECT 1")
			wantUpstreamFull(t, err)
			proxytest.Direct(t, "ALTER ROLE pgveil_svc CONNECTION LIMIT -1")
			if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatalf("the session failed once the upstream had room again: %v", err)
			}
		})
	})
}
