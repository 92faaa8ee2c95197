package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestSoak runs many clients through the proxy for a long while, then
// checks that the proxy gave back what they cost: goroutines, file
// descriptors and heap. It runs only when PGVEIL_SOAK holds a duration
// (make soak: 10m), with PGVEIL_SOAK_CLIENTS clients (default 500; each
// holds an upstream session, so the cluster's max_connections is raised
// to fit).
//
// With PGVEIL_SOAK_POOL set to a pool size, the clients go through a
// transaction pool of that many backends (the demo, its policies
// enforced, as hq) instead, and think longer in proportion to their
// number: 5,000 clients ask what 500 do.
//
// Every client session must succeed: an error, or a statement refused,
// fails the soak.
// soakKeepIdle is upstream.pool.keep_idle in session mode, its default.
const soakKeepIdle = 100

func TestSoak(t *testing.T) {
	d, err := time.ParseDuration(os.Getenv("PGVEIL_SOAK"))
	if err != nil || d <= 0 {
		t.Skip("set PGVEIL_SOAK to a duration (make soak) to run the soak test")
	}
	clients := 500
	if v := os.Getenv("PGVEIL_SOAK_CLIENTS"); v != "" {
		if clients, err = strconv.Atoi(v); err != nil || clients < 1 {
			t.Fatalf("PGVEIL_SOAK_CLIENTS=%q: want a positive number", v)
		}
	}
	poolSize := 0
	if v := os.Getenv("PGVEIL_SOAK_POOL"); v != "" {
		if poolSize, err = strconv.Atoi(v); err != nil || poolSize < 1 {
			t.Fatalf("PGVEIL_SOAK_POOL=%q: want a positive number", v)
		}
	}
	ctx := context.Background()
	proxytest.SetupUpstream(t)
	// NOTE: twice the clients: the backend of a session whose client left
	// in mid-result ends only once it notices, while that client has
	// connected again.
	backends := 2*clients + 50
	if poolSize > 0 {
		backends = poolSize + 50
	}
	if err := proxytest.Cluster.Exec(ctx, "postgres", fmt.Sprintf("ALTER SYSTEM SET max_connections = %d", backends)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(context.Background(), "postgres", "ALTER SYSTEM RESET max_connections")
		_ = proxytest.Cluster.Restart()
	})
	if err := proxytest.Cluster.Restart(); err != nil {
		t.Fatal(err)
	}

	var p *proxytest.Proxy
	user, password := "alice", proxytest.Users["alice"]
	think := 1.0
	if poolSize > 0 {
		p, _ = proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
			c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: poolSize, WaitTimeout: 30 * time.Second, IdleTimeout: time.Minute}
			// Thousands of clients from one address.
			c.Listen.MaxStartupPerAddress = 0
		})
		user, password = "hq", "demo-hq"
		think = max(1, float64(clients)/500)
	} else {
		// Session mode as deployed by default: ended sessions' backends
		// are kept (upstream.pool.keep_idle).
		p = proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) {
			c.Upstream.Pool = policy.Pool{Mode: policy.PoolSession, KeepIdle: soakKeepIdle, IdleTimeout: time.Minute}
			c.Listen.MaxStartupPerAddress = 0
		})
	}
	runtime.GC()
	baseGoroutines, baseFDs, baseHeap := runtime.NumGoroutine(), openFDs(t), heapLive()
	t.Logf("before: %d goroutines, %d descriptors, %.1f MiB heap live", baseGoroutines, baseFDs, float64(baseHeap)/(1<<20))

	var done, failed atomic.Int64
	var firstErr sync.Once
	deadline := time.Now().Add(d)
	var wg sync.WaitGroup
	for i := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for time.Now().Before(deadline) {
				if err := soakSession(ctx, p, user, password, think, rng, deadline); err != nil {
					failed.Add(1)
					firstErr.Do(func() { t.Errorf("client %d: %v", i, err) })
					time.Sleep(time.Second)
				}
				done.Add(1)
			}
		}()
		// Ramp up: each session costs two SCRAM exchanges and a fork.
		if i%5 == 4 {
			time.Sleep(100 * time.Millisecond)
		}
	}
	ticker := time.NewTicker(30 * time.Second)
	waited := make(chan struct{})
	go func() { wg.Wait(); close(waited) }()
	for running := true; running; {
		select {
		case <-ticker.C:
			_, sessions, _ := proxy.LoopStats(p.Server)
			t.Logf("%v left: %d sessions, %d goroutines, %d descriptors, %.1f MiB heap; %d client sessions done, %d failed",
				time.Until(deadline).Round(time.Second), sessions, runtime.NumGoroutine(), openFDs(t),
				float64(heapInUse())/(1<<20), done.Load(), failed.Load())
		case <-waited:
			running = false
		}
	}
	ticker.Stop()

	proxytest.Eventually(t, 30*time.Second, "every session to end", func() bool { return p.Server.SessionCount() == 0 })
	// What the sessions held is given back: allow for the runtime's own
	// and for idle HTTP/pool goroutines, and for the free backends a
	// transaction pool, or session mode, keeps open until its
	// idle_timeout.
	var g, fds int
	var heap, spans uint64
	heapSlack := uint64(32 << 20)
	if poolSize > 0 {
		// The demo's rewrite engine keeps what it learnt: its caches
		// hold up to 32 MiB of statement texts each, by design.
		heapSlack += 64 << 20
	}
	ok := proxytest.Poll(30*time.Second, func() bool {
		runtime.GC()
		g, fds, heap, spans = runtime.NumGoroutine(), openFDs(t), heapLive(), heapInUse()
		return g <= baseGoroutines+5 && fds <= baseFDs+5+poolSize+soakKeepIdle && heap <= baseHeap+heapSlack
	})
	t.Logf("after %d client sessions (%d failed): %d goroutines, %d descriptors, %.1f MiB heap live (%.1f MiB in spans)",
		done.Load(), failed.Load(), g, fds, float64(heap)/(1<<20), float64(spans)/(1<<20))
	if path := os.Getenv("PGVEIL_SOAK_HEAPPROFILE"); path != "" {
		// For finding what the heap kept: `go tool pprof -sample_index
		// inuse_space` on it.
		if f, err := os.Create(path); err == nil {
			_ = pprof.WriteHeapProfile(f)
			_ = f.Close()
			t.Logf("heap profile written to %s", path)
		}
	}
	if !ok {
		t.Errorf("the proxy kept what the clients cost: %d goroutines (was %d), %d descriptors (was %d), %.1f MiB heap (was %.1f)",
			g, baseGoroutines, fds, baseFDs, float64(heap)/(1<<20), float64(baseHeap)/(1<<20))
	}
}

// soakSession connects as user, does a random mix of what BI clients do, and
// disconnects (or drops the connection).
func soakSession(ctx context.Context, p *proxytest.Proxy, user, password string, think float64, rng *rand.Rand, deadline time.Time) error {
	c, err := pgx.Connect(ctx, p.URL(user, password, nil))
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer c.Close(context.Background())
	// BI sessions live long: a few hundred statements each.
	for n := 100 + rng.IntN(400); n > 0 && time.Now().Before(deadline); n-- {
		var err error
		switch k := rng.IntN(100); {
		case k < 30:
			var v int
			err = c.QueryRow(ctx, "SELECT $1::int + 1", rng.IntN(1000)).Scan(&v)
		case k < 55:
			_, err = c.Exec(ctx, fmt.Sprintf("SELECT %d, 'soak'", rng.IntN(1000)), pgx.QueryExecModeSimpleProtocol)
		case k < 70:
			b := &pgx.Batch{}
			for i := range 10 {
				b.Queue("SELECT $1::int", i)
			}
			err = c.SendBatch(ctx, b).Close()
		case k < 80:
			var rows pgx.Rows
			rows, err = c.Query(ctx, "SELECT g, repeat('x', 200) FROM generate_series(1, $1::int) g", 1000+rng.IntN(20000))
			if err == nil {
				for rows.Next() {
				}
				rows.Close()
				err = rows.Err()
			}
		case k < 90:
			err = pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "SELECT 1")
				return err
			})
		case k < 98:
			// An error upstream, and the session goes on.
			_, err = c.Exec(ctx, "SELECT 1/0")
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22012" {
				err = nil
			}
		default:
			// A client gone in mid-result.
			rows, qerr := c.Query(ctx, "SELECT g FROM generate_series(1, 100000) g")
			if qerr == nil {
				rows.Next()
				_ = c.PgConn().Conn().Close()
				return nil
			}
			err = qerr
		}
		if err != nil {
			return err
		}
		// An analyst reads what came back: the soak tests endurance, not
		// throughput (make bench does).
		time.Sleep(time.Duration(think*float64(50+rng.IntN(450))) * time.Millisecond)
	}
	return nil
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatalf("counting descriptors: %v", err)
	}
	return len(entries)
}

// heapLive returns the bytes of the heap's objects; called right after a
// collection, the bytes still reachable.
// NOTE: the check at the end compares these, not heapInUse: the clients
// run in the test's own process (about 1 GiB of heap at 5,000 clients),
// and the spans their objects shared with the proxy's long-lived ones
// (caches, pools) stay in use after the clients are gone, which is the
// runtime's fragmentation, not something the proxy kept.
func heapLive() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// heapInUse returns the bytes of the heap's spans in use.
func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}
