package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestARepreparedBindWaitsForItsParseSlotOnAWorker: a login floods the
// rewriter and waits for its share of the parse slots; one of its
// sessions on an event loop binds a statement prepared under an older
// policy. The statement is prepared again on a worker: the loop's own
// goroutine, which every session of the loop shares, never waits for
// the login's share.
func TestARepreparedBindWaitsForItsParseSlotOnAWorker(t *testing.T) {
	src, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	var po proxy.Options
	p, pols := proxytest.StartDemoFrom(t, path, func(o *proxy.Options) { po = *o })
	rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := p.Connect(t, "marie")
	if _, codes, errs := proxytest.PipelineBatches(t, m, 1, &pgproto3.Parse{Name: "s1", Query: "SELECT count(*)::text FROM responses WHERE id > 7"}, &pgproto3.Sync{}); codes[0] != "" {
		t.Fatalf("prepare: %s %s", codes[0], errs[0])
	}
	proxytest.EditConfig(t, path, `  where  = "country = me.country"`, "  where  = \"country = me.country\"\n  enabled = false")
	if err := rl.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	heavy := "SELECT count(*) FROM responses WHERE id IN (" + strings.Repeat("100000, ", 15000) + "2)"
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for range 8 {
		c := p.Connect(t, "marie").PgConn()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := c.Exec(ctx, heavy).ReadAll(); err != nil {
					return
				}
			}
		}()
	}
	proxytest.Eventually(t, 30*time.Second, "marie's statements wait for a slot", func() bool {
		_, w, _ := pols.Current().Engine.ParseSlots("marie")
		return w > 0
	})
	found := make(chan string, 1)
	sampling := make(chan struct{})
	go func() {
		defer close(sampling)
		buf := make([]byte, 1<<22)
		for i := 0; i < 20000; i++ {
			select {
			case <-stop:
				return
			default:
			}
			n := runtime.Stack(buf, true)
			for _, g := range strings.Split(string(buf[:n]), "\n\n") {
				if strings.Contains(g, "parseSlots).acquire") && strings.Contains(g, "pumpClient") {
					found <- g
					return
				}
			}
			time.Sleep(time.Millisecond)
		}
	}()
	vals, codes, errs := proxytest.PipelineBatches(t, m, 1, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("bind after the reload: %q %q %q", vals, codes, errs)
	select {
	case g := <-found:
		if len(g) > 3000 {
			g = g[:3000]
		}
		t.Errorf("an event loop's goroutine waits for a parse slot of marie's share:\n%s", g)
	case <-time.After(2 * time.Second):
		t.Log("no event loop goroutine seen waiting for a slot")
	}
}
