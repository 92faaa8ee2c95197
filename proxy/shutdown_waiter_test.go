package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/proxy"
)

// TestCloseEndsAPoolWaitAsTheShutdown: a session whose transaction
// waits for a backend of the full pool when the server closes (Close,
// or Shutdown past its deadline) is ended as every other session is: its client reads
// the FATAL 57P01, not a connection closed without a word.
func TestCloseEndsAPoolWaitAsTheShutdown(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		reg := prometheus.NewRegistry()
		p := startPooled(t, relay, 1, time.Minute, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
		ctx := context.Background()
		holder := p.SimpleConn(t, "hq")
		if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, holder, "SELECT 'holding'"); err != nil {
			t.Fatal(err)
		}
		waiter := p.SimpleConn(t, "marie")
		fe := waiter.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "SELECT 'waiting'"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		proxytest.Eventually(t, 5*time.Second, "the query to wait for a backend", func() bool {
			return gauge(t, reg, "pgveil_pool_waiting") >= 1
		})
		// What Shutdown does past its deadline.
		_ = p.Server.Close()
		_ = waiter.PgConn().Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatalf("the waiting session's connection closed without the shutdown's error: %v", err)
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				if e.Code != proxy.CodeAdminShutdown {
					t.Errorf("the waiting session got %s %q, want %s", e.Code, e.Message, proxy.CodeAdminShutdown)
				}
				return
			}
		}
	})
}
