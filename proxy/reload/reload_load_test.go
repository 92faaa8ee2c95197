package reload_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/proxy/server"
)

// reloadableDemoOf is proxytest.ReloadableDemo from a copy of the configuration
// at src.
func reloadableDemoOf(t *testing.T, src string) (*proxytest.Proxy, string, *server.Reloader) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	p, pols := proxytest.StartDemoFrom(t, path)
	rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	return p, path, rl
}

// TestReloadUnderLoad: reloads that remove a login and add it back,
// run over and over while sessions of it and of a kept login connect,
// run a statement and disconnect, panic nowhere and strand no session:
// once the last reload removed the login, none of its sessions is left
// (those that started under an older policy included), while the kept
// login's sessions, a long one included, never noticed a reload.
func TestReloadsWhileLoginsComeAndGo(t *testing.T) {
	for _, mode := range []string{"session", "transaction"} {
		t.Run("in "+mode+" mode", func(t *testing.T) {
			path := proxytest.DemoHCL
			if mode == "transaction" {
				path = proxytest.PooledDemo(t, 4)
			}
			p, path, rl := reloadableDemoOf(t, path)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			long := p.Connect(t, "marie")

			var stop atomic.Bool
			var keptFailures atomic.Int64
			var firstKeptFailure atomic.Value
			var wg sync.WaitGroup
			// held: the last session of each hq worker, left open for
			// the check after the last reload.
			held := make([]*pgconn.PgConn, 3)
			for i := range 3 {
				wg.Add(2)
				go func() { // kept: marie
					defer wg.Done()
					for !stop.Load() {
						c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
						if err == nil {
							_, err = c.Exec(ctx, "SELECT 1").ReadAll()
							c.Close(ctx)
						}
						if err != nil {
							keptFailures.Add(1)
							firstKeptFailure.CompareAndSwap(nil, err.Error())
						}
					}
				}()
				go func() { // removed and added back: hq
					defer wg.Done()
					for !stop.Load() {
						c, err := pgconn.Connect(ctx, p.URL("hq", "demo-hq", nil))
						if err != nil {
							continue
						}
						_, _ = c.Exec(ctx, "SELECT 1").ReadAll()
						if held[i] != nil {
							held[i].Close(ctx)
						}
						held[i] = c
					}
				}()
			}
			for n := range 16 {
				old, new := `user "hq" {`, `user "hq_renamed" {`
				if n%2 == 1 {
					old, new = new, old
				}
				proxytest.EditConfig(t, path, old, new)
				if err := rl.Reload(ctx); err != nil {
					t.Fatalf("reload %d: %v", n, err)
				}
			}
			// The last reload removed hq; the workers stop after it, so
			// some of their starts straddle it.
			stop.Store(true)
			wg.Wait()

			t.Run("the kept login's sessions never failed", func(t *testing.T) {
				if n := keptFailures.Load(); n > 0 {
					t.Errorf("%d sessions of marie failed, first: %v", n, firstKeptFailure.Load())
				}
				if err := long.Ping(ctx); err != nil {
					t.Errorf("marie's long session: %v", err)
				}
			})
			t.Run("no session of the removed login is left", func(t *testing.T) {
				for i, c := range held {
					if c == nil {
						continue
					}
					if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
						t.Errorf("hq worker %d: its session runs statements after hq was removed", i)
					}
					c.Close(ctx)
				}
				long.Close(ctx)
				proxytest.WaitSessions(t, p, 0)
			})
			t.Run("upstream holds no backend of the removed login", func(t *testing.T) {
				q := fmt.Sprintf("SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%s:%%' AND state <> 'idle'", "hq")
				if !proxytest.Poll(5*time.Second, func() bool { return proxytest.Direct(t, q)[0][0] == "0" }) {
					t.Errorf("%s busy backends of hq upstream, want 0", proxytest.Direct(t, q)[0][0])
				}
			})
		})
	}
}
