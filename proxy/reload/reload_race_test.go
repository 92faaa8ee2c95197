package reload_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
)

// connectHoldingAuditor holds the first "connect" record (session.open,
// once the login is checked, before the session registers) until
// release is closed, saying so on entered.
type connectHoldingAuditor struct {
	entered, release chan struct{}
	held             atomic.Bool
}

func (a *connectHoldingAuditor) Write(r *audit.Record) {
	if r.Event == "connect" && a.held.CompareAndSwap(false, true) {
		close(a.entered)
		<-a.release
	}
}

// TestReloadEndsSessionsStillStarting: a reload that removes a login
// ends its sessions (EndSessionsOf); one that logged in under the old
// policy but registers only after EndSessionsOf ran must be ended too,
// not stay connected as someone the DBA just removed.
func TestReloadEndsSessionsStillStarting(t *testing.T) {
	aud := &connectHoldingAuditor{entered: make(chan struct{}), release: make(chan struct{})}
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, nil, func(o *proxy.Options) { o.Audit = aud })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	type result struct {
		c   *pgconn.PgConn
		err error
	}
	done := make(chan result, 1)
	go func() {
		c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
		done <- result{c, err}
	}()
	select {
	case <-aud.entered:
	case <-ctx.Done():
		t.Fatal("the login never reached its first audit record")
	}
	if n := p.Server.EndSessionsOf(func(login string) bool { return login != "marie" }); n != 0 {
		t.Fatalf("the reload ended %d sessions before the login registered, want 0", n)
	}
	close(aud.release)
	r := <-done
	t.Run("the session that registers after the reload is ended", func(t *testing.T) {
		if r.err == nil {
			defer r.c.Close(context.Background())
			if _, err := r.c.Exec(ctx, "SELECT 1").ReadAll(); err == nil {
				t.Fatal("the removed login's session still runs statements")
			}
		}
		proxytest.WaitSessions(t, p, 0)
	})
	t.Run("a later session of a kept login still starts", func(t *testing.T) {
		c, err := pgconn.Connect(ctx, p.URL("hq", "demo-hq", nil))
		if err != nil {
			t.Fatalf("a kept login after the reload: %v", err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
}
