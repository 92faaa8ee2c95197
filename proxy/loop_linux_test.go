package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// cachedPanicRewriter answers every statement from its "caches", so
// that event loops check them inline, and panics there on a statement
// naming pgveil_test_panic.
type cachedPanicRewriter struct{ panicRewriter }

func (r cachedPanicRewriter) RewriteCached(s *proxy.SessionInfo, st *proxy.Statement) (*rewrite.Result, bool, error) {
	res, err := r.Rewrite(context.Background(), s, st)
	return res, true, err
}

func TestEventLoop(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	ctx := context.Background()

	t.Run("plaintext sessions relay on an event loop", func(t *testing.T) {
		c := p.Connect(t, "alice")
		var n int
		if err := c.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Fatalf("got %d, %v", n, err)
		}
		onLoops, sessions, _ := proxy.LoopStats(p.Server)
		if sessions == 0 || onLoops != sessions {
			t.Fatalf("%d of %d sessions on event loops", onLoops, sessions)
		}
	})

	t.Run("a client that does not read stops the upstream reads, and nothing piles up", func(t *testing.T) {
		c := p.Connect(t, "alice")
		rows, err := c.Query(ctx, "SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g")
		if err != nil {
			t.Fatal(err)
		}
		defer rows.Close()
		if !rows.Next() {
			t.Fatal(rows.Err())
		}
		// The client reads nothing more: the proxy's batch to it fills,
		// then the loop stops reading the upstream.
		proxytest.Eventually(t, 10*time.Second, "the client's batch to fill", func() bool {
			for _, b := range proxy.LoopSessionBuffers(p.Server) {
				if b.ClientPending > 0 {
					return true
				}
			}
			return false
		})
		for _, b := range proxy.LoopSessionBuffers(p.Server) {
			if b.Held > 1<<20 {
				t.Fatalf("a session holds %d bytes of buffers for a client that does not read", b.Held)
			}
		}
		n := 1
		for rows.Next() {
			n++
		}
		if rows.Err() != nil || n != 100000 {
			t.Fatalf("read %d rows: %v", n, rows.Err())
		}
	})

	t.Run("an idle session gives its buffers back", func(t *testing.T) {
		c := p.Connect(t, "alice")
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		proxytest.Eventually(t, 10*time.Second, "every idle session to hold no buffer", func() bool {
			for _, b := range proxy.LoopSessionBuffers(p.Server) {
				if b.Held != 0 {
					return false
				}
			}
			return true
		})
		if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
			t.Fatalf("after giving its buffers back: %v", err)
		}
	})

	t.Run("a backend lost in mid-result ends the session with 08006", func(t *testing.T) {
		c := p.Connect(t, "alice")
		var pid int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&pid); err != nil {
			t.Fatal(err)
		}
		admin, err := proxytest.Cluster.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		errc := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(30) -- loop_lost_backend")
			errc <- err
		}()
		proxytest.WaitRunning(t, "loop_lost_backend")
		if err := admin.Exec(ctx, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE strpos(query, 'loop_lost_backend') > 0 AND pid <> pg_backend_pid()").Close(); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-errc:
			var pgErr *pgconn.PgError
			if err == nil || errors.As(err, &pgErr) && pgErr.Code != "57P01" && pgErr.Code != "08006" {
				t.Fatalf("got %v, want the session ended", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the client was never told")
		}
	})

	t.Run("a client gone in mid-result frees its session", func(t *testing.T) {
		// NOTE: the earlier subtests' sessions end after their clients
		// close, asynchronously: counted now, one leaving later would
		// keep the count below it for good (a failure seen under load).
		proxytest.Eventually(t, 10*time.Second, "the earlier sessions to end", func() bool {
			_, n, _ := proxy.LoopStats(p.Server)
			return n == 0
		})
		before := 0
		c := p.Connect(t, "alice")
		rows, err := c.Query(ctx, "SELECT g, repeat('x', 1000) FROM generate_series(1, 100000) g")
		if err != nil {
			t.Fatal(err)
		}
		rows.Next()
		c.PgConn().Conn().Close()
		proxytest.Eventually(t, 10*time.Second, "the session to end", func() bool {
			_, n, _ := proxy.LoopStats(p.Server)
			return n == before
		})
	})
}

func TestEventLoopWorkers(t *testing.T) {
	proxytest.NoLeaks(t)
	// panicRewriter has no caches: every statement goes to a worker.
	rec := &recordingAuditor{}
	p := proxytest.StartProxy(t, proxytest.WithRewriter(panicRewriter{}), func(_ *policy.Config, o *proxy.Options) { o.Audit = rec })
	ctx := context.Background()

	t.Run("a statement the caches cannot answer is handed to a worker, and the session goes on", func(t *testing.T) {
		c := p.Connect(t, "alice")
		_, _, before := proxy.LoopStats(p.Server)
		for i := 0; i < 3; i++ {
			var s string
			if err := c.QueryRow(ctx, "SELECT 'worker' || $1::text", fmt.Sprint(i)).Scan(&s); err != nil || s != fmt.Sprint("worker", i) {
				t.Fatalf("%d: got %q, %v", i, s, err)
			}
		}
		if _, _, after := proxy.LoopStats(p.Server); after == before {
			t.Fatal("no message was handed to a worker")
		}
	})

	t.Run("a pipeline keeps its order across workers", func(t *testing.T) {
		c := p.Connect(t, "alice")
		b := &pgx.Batch{}
		for i := 0; i < 20; i++ {
			b.Queue("SELECT $1::int * 2", i)
		}
		br := c.SendBatch(ctx, b)
		for i := 0; i < 20; i++ {
			var n int
			if err := br.QueryRow().Scan(&n); err != nil || n != 2*i {
				t.Fatalf("%d: got %d, %v", i, n, err)
			}
		}
		if err := br.Close(); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("a Bind larger than the read buffer streams through a worker", func(t *testing.T) {
		c := p.Connect(t, "alice")
		big := strings.Repeat("x", 600<<10)
		var n int
		for i := 0; i < 2; i++ {
			if err := c.QueryRow(ctx, "SELECT length($1::text)", big).Scan(&n); err != nil || n != len(big) {
				t.Fatalf("got %d, %v", n, err)
			}
		}
		if err := c.QueryRow(ctx, "SELECT 7").Scan(&n); err != nil || n != 7 {
			t.Fatalf("after the worker: got %d, %v", n, err)
		}
	})
}

func TestPanicOnAnEventLoopEndsOnlyItsSession(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t, proxytest.WithRewriter(cachedPanicRewriter{}))
	ctx := context.Background()
	bystander := p.Connect(t, "alice")
	victim := p.Connect(t, "alice")
	_, err := victim.Exec(ctx, "SELECT 'pgveil_test_panic'", pgx.QueryExecModeSimpleProtocol)
	var pgErr *pgconn.PgError
	if !errors.As(err, &pgErr) || pgErr.Code != "XX000" {
		t.Fatalf("got %v, want XX000", err)
	}
	var n int
	if err := bystander.QueryRow(ctx, "SELECT 5").Scan(&n); err != nil || n != 5 {
		t.Fatalf("the other session: %d, %v", n, err)
	}
	if _, _, deferred := proxy.LoopStats(p.Server); deferred != 0 {
		t.Fatalf("%d messages deferred: the panic was not inline", deferred)
	}
}

func TestLoopCount(t *testing.T) {
	for _, tc := range []struct {
		procs       int
		transaction bool
		want        int
	}{
		{1, false, 1}, {2, false, 1}, {3, false, 1}, {8, false, 4},
		{1, true, 1}, {2, true, 2}, {8, true, 8},
	} {
		if got := proxy.LoopCount(tc.procs, tc.transaction); got != tc.want {
			t.Errorf("loopCount(%d, transaction mode %v) = %d, want %d", tc.procs, tc.transaction, got, tc.want)
		}
	}
}
