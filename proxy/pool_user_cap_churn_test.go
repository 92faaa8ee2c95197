package proxy_test

import (
	"context"
	"fmt"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestPoolMaxPerUserChurn ends the sessions of a capped login in every
// state the count follows: while holding a backend with a statement
// running, while waiting at the cap, and just after asking (granted, or
// being dialled for). Once they are gone the login counts no backend,
// and its next session is served at once.
func TestPoolMaxPerUserChurn(t *testing.T) { proxytest.OnEveryRelay(t, testPoolMaxPerUserChurn) }

func testPoolMaxPerUserChurn(t *testing.T, relay string) {
	p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 3, WaitTimeout: 5 * time.Second,
		IdleTimeout: time.Minute, MaxPerUser: 1})
	ctx := context.Background()
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 8 {
				c, err := pgx.Connect(ctx, p.URL("hq", "demo-hq", url.Values{"default_query_exec_mode": {"simple_protocol"}}))
				if err != nil {
					t.Error(err)
					return
				}
				fe := c.PgConn().Frontend()
				sql := []string{"SELECT pg_sleep(0.05)", "BEGIN; SELECT 1", "SELECT 1"}[(w+i)%3]
				fe.Send(&pgproto3.Query{String: sql})
				if err := fe.Flush(); err != nil {
					t.Error(err)
					return
				}
				if (w+i)%2 == 0 {
					time.Sleep(time.Duration(i) * time.Millisecond)
				}
				// Gone without a Terminate, answered or not.
				_ = c.PgConn().Conn().Close()
			}
		}()
	}
	wg.Wait()
	proxytest.Eventually(t, 10*time.Second, "the login's ended sessions count no backend", func() bool {
		return proxy.PoolLoginsHeld(p.Server)["hq"] == 0
	})
	t.Run("the login's next sessions are served within their cap", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "hq")
		for i, c := range []*pgx.Conn{a, b} {
			got, err := one(ctx, c, fmt.Sprintf("SELECT 'served %d'", i))
			if err != nil || got != fmt.Sprintf("served %d", i) {
				t.Fatalf("%q, %v", got, err)
			}
		}
	})
}
