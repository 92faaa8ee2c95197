package proxy_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestEndedSessionStatementThatIgnoresItsCancelStops: a statement an
// ended session leaves running that swallows its cancel request (a
// PL/pgSQL loop catching query_canceled) stops once its connection is
// closed, as upstream.client_connection_check_interval is pinned on the
// sessions' upstream connections. It ran on with nothing to stop it but
// a DBA: PostgreSQL notices a closed connection only when it writes.
func TestEndedSessionStatementThatIgnoresItsCancelStops(t *testing.T) {
	for _, mode := range []string{policy.PoolSession, policy.PoolTransaction} {
		t.Run("in "+mode+" mode", func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
				testStatementThatIgnoresItsCancelStops(t, mode, relay)
			})
		})
	}
}

func testStatementThatIgnoresItsCancelStops(t *testing.T, mode, relay string) {
	p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) {
		c.Listen.Relay = relay
		c.Upstream.ClientConnectionCheckInterval = 200 * time.Millisecond
		if mode == policy.PoolTransaction {
			c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 5 * time.Second, IdleTimeout: time.Minute}
		}
	})
	mark := fmt.Sprintf("swallows its cancel %s %s %d", mode, relay, time.Now().UnixNano())
	count := func() int {
		ctx := context.Background()
		admin, err := proxytest.Cluster.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		res := admin.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
			[][]byte{[]byte(mark)}, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatal(res.Err)
		}
		var n int
		fmt.Sscan(string(res.Rows[0][0]), &n)
		return n
	}
	t.Cleanup(func() {
		ctx := context.Background()
		if admin, err := proxytest.Cluster.Connect(ctx, "postgres"); err == nil {
			_ = admin.ExecParams(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE strpos(query, $1) > 0 AND pid <> pg_backend_pid()",
				[][]byte{[]byte(mark)}, nil, nil, nil).Read()
			admin.Close(ctx)
		}
	})
	c := p.Connect(t, "alice")
	fe := c.PgConn().Frontend()
	fe.Send(&pgproto3.Query{String: "/* " + mark + " */ DO $$ BEGIN LOOP BEGIN PERFORM pg_sleep(0.05); EXCEPTION WHEN query_canceled THEN NULL; END; END LOOP; END $$"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	proxytest.WaitRunning(t, mark)
	c.PgConn().Conn().Close()
	proxytest.Eventually(t, 10*time.Second, "the backend running the ended session's statement to end", func() bool { return count() == 0 })
}

// TestCheckIntervalPastPostgreSQLsRangeStillConnects: an interval longer
// than PostgreSQL accepts (2^31-1 ms) in a Config built in Go is pinned
// at PostgreSQL's limit. It was sent as is, and PostgreSQL refused every
// upstream connection (22023), so every session.
func TestCheckIntervalPastPostgreSQLsRangeStillConnects(t *testing.T) {
	p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) {
		c.Upstream.ClientConnectionCheckInterval = 1000 * time.Hour
	})
	c := p.Connect(t, "alice")
	res := c.PgConn().ExecParams(context.Background(), "SELECT 1", nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
}
