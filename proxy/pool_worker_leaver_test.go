package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestTransactionPoolWorkerWaitEndsWithItsClient: on an event loop, a
// first message too big to buffer (a Bind past 16 KiB) waits for a
// backend on a worker, which reads nothing from the client meanwhile; a
// client that leaves then leaves the queue too, as on goroutines.
func TestTransactionPoolWorkerWaitEndsWithItsClient(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := startPooled(t, policy.RelayEventLoop, 1, 20*time.Second, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()
	holder := p.SimpleConn(t, "hq")
	if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	leaver := p.SimpleConn(t, "marie")
	fe := leaver.PgConn().Frontend()
	fe.Send(&pgproto3.Bind{Parameters: [][]byte{[]byte(strings.Repeat("x", 64<<10))}})
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	proxytest.Eventually(t, 5*time.Second, "the Bind to wait for a backend", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 1
	})
	leaver.PgConn().Conn().Close()
	proxytest.Eventually(t, 3*time.Second, "the wait to end with its client", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 0
	})
}
