package proxy_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net/url"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestTransactionPoolWaitEndsWithItsClient: a client that leaves while
// its session waits for a backend leaves the queue at once, on every
// relay, well before the wait timeout. (On goroutines, every TLS
// session's relay, the wait used to go on to its timeout, and a backend
// freed meanwhile went to the session of the client gone, ahead of the
// live ones: a loop of connect, send, close kept the queue full of
// them, and the live sessions behind got 53300.)
func TestTransactionPoolWaitEndsWithItsClient(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolWaitEndsWithItsClient)
}

func testTransactionPoolWaitEndsWithItsClient(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	reg := prometheus.NewRegistry()
	p := startPooled(t, relay, 1, 20*time.Second, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()
	holder := p.SimpleConn(t, "hq")
	if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, holder, "SELECT 'holding'"); err != nil {
		t.Fatal(err)
	}
	const leavers = 5
	for range leavers {
		leaver := p.SimpleConn(t, "marie")
		fe := leaver.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "SELECT 'never answered'"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		proxytest.Eventually(t, 5*time.Second, "the query to wait for a backend", func() bool {
			return gauge(t, reg, "pgveil_pool_waiting") >= 1
		})
		leaver.PgConn().Conn().Close()
	}
	proxytest.Eventually(t, 3*time.Second, "the waits to end with their clients, long before the 20s wait timeout", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 0
	})
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
	if got, err := one(ctx, holder, "SELECT 'served'"); err != nil || got != "served" {
		t.Fatalf("%q, %v", got, err)
	}
}

// TestTransactionPoolEndedSessionLeavesNoStatementRunning: a session that
// pgveil ends while its statement runs (here for a protocol violation)
// has that statement cancelled on the backend it closes. The pool frees
// the backend's slot at once: a statement left running upstream, which
// PostgreSQL only notices the closed connection of when it next writes,
// would let a loop of such sessions open backends past upstream.pool.size,
// up to the server's max_connections, for every user.
func TestTransactionPoolEndedSessionLeavesNoStatementRunning(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolEndedSessionLeavesNoStatementRunning)
}

func testTransactionPoolEndedSessionLeavesNoStatementRunning(t *testing.T, relay string) {
	p := startPooled(t, relay, 1, 5*time.Second)
	mark := fmt.Sprintf("orphan %s %d", relay, time.Now().UnixNano())
	sleeper := "SELECT pg_sleep(60), '" + mark + "'"
	running := func() int {
		n := proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%"+mark+"%' AND query NOT LIKE '%pg_stat_activity%'")[0][0]
		var i int
		fmt.Sscan(n, &i)
		return i
	}
	for i := range 3 {
		c := p.SimpleConn(t, "hq")
		fe := c.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: sleeper})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		proxytest.Eventually(t, 5*time.Second, "the statement to run", func() bool { return running() == 1 })
		// An invalid message type: pgveil ends the session (08P01).
		if _, err := c.PgConn().Conn().Write([]byte{'z', 0, 0, 0, 4}); err != nil {
			t.Fatal(err)
		}
		proxytest.Eventually(t, 5*time.Second, fmt.Sprintf("round %d: the ended session's statement to stop upstream", i), func() bool { return running() == 0 })
	}
}

// TestTransactionPoolWaitEndsWithItsTLSClient is
// TestTransactionPoolWaitEndsWithItsClient for a TLS session, whose
// relay is always on goroutines.
func TestTransactionPoolWaitEndsWithItsTLSClient(t *testing.T) {
	proxytest.NoLeaks(t)
	reg := prometheus.NewRegistry()
	cert, _ := proxytest.SelfSigned(t)
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 20 * time.Second, IdleTimeout: time.Minute}
		c.Listen.TLS = &policy.ListenTLS{Require: true, Config: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}}
	}, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()
	conn := func(user string) *pgx.Conn {
		c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, url.Values{"sslmode": {"require"}, "default_query_exec_mode": {"simple_protocol"}}))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(context.Background()) })
		return c
	}
	holder := conn("hq")
	if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	leaver := conn("marie")
	fe := leaver.PgConn().Frontend()
	fe.Send(&pgproto3.Query{String: "SELECT 'never answered'"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	proxytest.Eventually(t, 5*time.Second, "the query to wait for a backend", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 1
	})
	leaver.PgConn().Conn().Close()
	proxytest.Eventually(t, 3*time.Second, "the wait to end with its client, long before the 20s wait timeout", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 0
	})
}

// TestTransactionPoolStartWaitEndsWithItsClient: the first session of a
// new key borrows a backend at its start for the parameters to tell its
// client; a client that leaves while that borrow waits for a full pool
// leaves the queue at once, as one waiting for a transaction does, not
// at the wait timeout.
func TestTransactionPoolStartWaitEndsWithItsClient(t *testing.T) {
	proxytest.NoLeaks(t)
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
	cctx, cancel := context.WithCancel(ctx)
	failed := make(chan error, 1)
	go func() {
		// A statement_timeout of its own: a key no backend has yet.
		c, err := pgx.Connect(cctx, p.URL("marie", "demo-marie", url.Values{"statement_timeout": {"4321"}}))
		if err == nil {
			c.Close(ctx)
		}
		failed <- err
	}()
	proxytest.Eventually(t, 5*time.Second, "the new session's start to wait for a backend", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") >= 1
	})
	cancel()
	if err := <-failed; err == nil {
		t.Fatal("the connection cancelled while it waited started")
	}
	proxytest.Eventually(t, 3*time.Second, "the start's wait to end with its client, long before the 20s wait timeout", func() bool {
		return gauge(t, reg, "pgveil_pool_waiting") == 0
	})
	if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
		t.Fatal(err)
	}
}
