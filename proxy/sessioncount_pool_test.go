package proxy_test

import (
	"context"
	"net/url"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/proxy"
)

// TestShutdownEndsAStartWaitingForAPooledBackend: a connection whose
// start waits for a backend of a full transaction pool is in its
// startup (counted, not a session): shutdown closes it, and its wait
// ends with it, not at the pool's wait timeout.
func TestShutdownEndsAStartWaitingForAPooledBackend(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := startPooled(t, "", 1, 20*time.Second, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()
	holder := p.SimpleConn(t, "hq")
	if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, holder, "SELECT 'holding'"); err != nil {
		t.Fatal(err)
	}
	failed := make(chan error, 1)
	go func() {
		c, err := pgx.Connect(ctx, p.URL("marie", "demo-marie", url.Values{"statement_timeout": {"4321"}}))
		if err == nil {
			c.Close(ctx)
		}
		failed <- err
	}()
	proxytest.Eventually(t, 5*time.Second, "the new session's start to wait for a backend", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") >= 1
	})
	if n := p.Server.SessionCount(); n != 2 {
		t.Fatalf("%d counted, want the holder and the waiting start", n)
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Server.Shutdown(sctx) }()
	if err := <-failed; err == nil {
		t.Fatal("the connection waiting for a backend started during shutdown")
	}
	proxytest.Eventually(t, 3*time.Second, "the start's wait to end with the shutdown", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 0
	})
	holder.Close(ctx)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if n := p.Server.SessionCount(); n != 0 {
		t.Fatalf("%d counted after shutdown, want 0", n)
	}
}
