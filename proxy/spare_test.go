package proxy_test

import (
	"context"
	"errors"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// startKeeping runs the demo in session mode keeping up to keep ended
// sessions' backends for idle, its sessions relayed as relay says.
func startKeeping(t *testing.T, relay string, keep int, idle time.Duration, opts ...func(*proxy.Options)) *proxytest.Proxy {
	t.Helper()
	return startDemoPool(t, relay, policy.Pool{Mode: policy.PoolSession, KeepIdle: keep, IdleTimeout: idle}, opts...)
}

// connectApp opens a session of user through p naming itself app.
func connectApp(t *testing.T, p *proxytest.Proxy, user, app string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, url.Values{"application_name": {app}}))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// backendsOf returns the pid and state of the upstream backends named
// for user and app, oldest first.
func backendsOf(t *testing.T, user, app string) [][]string {
	t.Helper()
	return proxytest.Direct(t, "SELECT pid::text, state FROM pg_stat_activity WHERE application_name = 'pgveil:"+user+":"+app+"' ORDER BY backend_start")
}

// waitBackends waits until user and app have n backends upstream, all
// idle, and returns them.
func waitBackends(t *testing.T, user, app string, n int) [][]string {
	t.Helper()
	var rows [][]string
	proxytest.Eventually(t, 5*time.Second, strconv.Itoa(n)+" idle backends of "+user+":"+app, func() bool {
		rows = backendsOf(t, user, app)
		if len(rows) != n {
			return false
		}
		for _, r := range rows {
			if r[1] != "idle" {
				return false
			}
		}
		return true
	})
	return rows
}

func TestSessionModeKeepsEndedSessionsBackends(t *testing.T) {
	ctx := context.Background()
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p := startKeeping(t, relay, 5, time.Minute)
		app := "keep-" + relay

		t.Run("a session that terminates leaves its backend, reset, to the next of the same user and application", func(t *testing.T) {
			c := connectApp(t, p, "marie", app)
			first := c.PgConn().ParameterStatus("DateStyle")
			for _, sql := range []string{
				"SET DateStyle = 'German'",
				"PREPARE kept_stmt AS SELECT 1",
				"SET statement_timeout = '7s'",
			} {
				if _, err := c.Exec(ctx, sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			// An unnamed prepared statement, left behind.
			if err := c.PgConn().Exec(ctx, "SELECT 1").Close(); err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
			pid := waitBackends(t, "marie", app, 1)[0][0]

			c = connectApp(t, p, "marie", app)
			if got := c.PgConn().ParameterStatus("DateStyle"); got != first {
				t.Errorf("the next session is told DateStyle %q, want %q", got, first)
			}
			var ds, timeout string
			if err := c.QueryRow(ctx, "SELECT current_setting('DateStyle'), current_setting('statement_timeout')").Scan(&ds, &timeout); err != nil {
				t.Fatal(err)
			}
			if ds != first || timeout != "0" {
				t.Errorf("the next session runs with DateStyle %q and statement_timeout %q, want %q and 0", ds, timeout, first)
			}
			if _, err := c.Exec(ctx, "EXECUTE kept_stmt"); err == nil {
				t.Error("the next session ran the prepared statement of the one before")
			}
			rows := backendsOf(t, "marie", app)
			if len(rows) != 1 || rows[0][0] != pid {
				t.Errorf("backends %v, want the kept one (pid %s) alone", rows, pid)
			}
			c.Close(ctx)
			waitBackends(t, "marie", app, 1)
		})

		t.Run("another user or another application never gets it", func(t *testing.T) {
			kept := waitBackends(t, "marie", app, 1)[0][0]
			h := connectApp(t, p, "hq", app)
			m := connectApp(t, p, "marie", app+"-other")
			for _, c := range []*pgx.Conn{h, m} {
				if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
					t.Fatal(err)
				}
			}
			if rows := backendsOf(t, "marie", app); len(rows) != 1 || rows[0][0] != kept {
				t.Errorf("marie's kept backend: %v, want pid %s still kept", rows, kept)
			}
			if n := len(backendsOf(t, "hq", app)); n != 1 {
				t.Errorf("hq has %d backends, want 1 of its own", n)
			}
			h.Close(ctx)
			m.Close(ctx)
		})

		t.Run("a session that ends inside a transaction closes its backend", func(t *testing.T) {
			waitBackends(t, "marie", app, 1)
			c := connectApp(t, p, "marie", app)
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			c.Close(ctx)
			waitBackends(t, "marie", app, 0)
		})

		t.Run("a session that terminates with a statement still running closes its backend", func(t *testing.T) {
			c := connectApp(t, p, "marie", app)
			var buf []byte
			buf, _ = (&pgproto3.Query{String: "SELECT pg_sleep(0.3)"}).Encode(buf)
			buf, _ = (&pgproto3.Terminate{}).Encode(buf)
			if _, err := c.PgConn().Conn().Write(buf); err != nil {
				t.Fatal(err)
			}
			waitBackends(t, "marie", app, 0)
		})

		t.Run("a session that drops its connection closes its backend", func(t *testing.T) {
			c := connectApp(t, p, "marie", app)
			if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			c.PgConn().Conn().Close()
			waitBackends(t, "marie", app, 0)
		})

		t.Run("a session that sent a cancel request closes its backend, which the cancel may reach late", func(t *testing.T) {
			c := connectApp(t, p, "marie", app)
			errc := make(chan error, 1)
			marker := "pg_sleep(10.5) -- " + relay
			go func() {
				_, err := c.Exec(ctx, "SELECT "+marker)
				errc <- err
			}()
			proxytest.WaitRunning(t, marker)
			if err := c.PgConn().CancelRequest(ctx); err != nil {
				t.Fatal(err)
			}
			var pe *pgconn.PgError
			if err := <-errc; !errors.As(err, &pe) || pe.Code != "57014" {
				t.Fatalf("the cancelled statement ended with %v, want SQLSTATE 57014", err)
			}
			c.Close(ctx)
			waitBackends(t, "marie", app, 0)
		})

		t.Run("a kept backend the server ended is not handed out", func(t *testing.T) {
			c := connectApp(t, p, "marie", app)
			c.Close(ctx)
			pid := waitBackends(t, "marie", app, 1)[0][0]
			proxytest.Direct(t, "SELECT pg_terminate_backend("+pid+")")
			waitBackends(t, "marie", app, 0)
			c = connectApp(t, p, "marie", app)
			var n int
			if err := c.QueryRow(ctx, "SELECT count(*) FROM responses").Scan(&n); err != nil {
				t.Fatalf("the next session failed: %v", err)
			}
			c.Close(ctx)
		})
	})
}

func TestSessionModeKeepsAtMostKeepIdleBackends(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	p := startKeeping(t, policy.RelayEventLoop, 2, 500*time.Millisecond, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	var conns []*pgx.Conn
	for i := 0; i < 3; i++ {
		conns = append(conns, connectApp(t, p, "marie", "keep-cap"))
	}
	for _, c := range conns {
		c.Close(ctx)
	}
	waitBackends(t, "marie", "keep-cap", 2)
	if n := gauge(t, reg, "pgveil_kept_backends"); n != 2 {
		t.Errorf("pgveil_kept_backends = %v, want 2", n)
	}
	c := connectApp(t, p, "marie", "keep-cap")
	if n := gauge(t, reg, "pgveil_kept_backends_reused_total"); n != 1 {
		t.Errorf("pgveil_kept_backends_reused_total = %v, want 1", n)
	}
	c.Close(ctx)
	// Then idle_timeout passes.
	waitBackends(t, "marie", "keep-cap", 0)
	if n := gauge(t, reg, "pgveil_kept_backends"); n != 0 {
		t.Errorf("pgveil_kept_backends = %v once idle_timeout passed, want 0", n)
	}
}

func TestSessionModeWithoutKeepIdleClosesBackends(t *testing.T) {
	ctx := context.Background()
	p := startKeeping(t, policy.RelayEventLoop, 0, time.Minute)
	c := connectApp(t, p, "marie", "keep-none")
	waitBackends(t, "marie", "keep-none", 1)
	c.Close(ctx)
	waitBackends(t, "marie", "keep-none", 0)
}

func TestShutdownClosesKeptBackends(t *testing.T) {
	proxytest.NoLeaks(t)
	ctx := context.Background()
	p := startKeeping(t, policy.RelayEventLoop, 5, time.Minute)
	c := connectApp(t, p, "marie", "keep-shutdown")
	c.Close(ctx)
	waitBackends(t, "marie", "keep-shutdown", 1)
	sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := p.Server.Shutdown(sctx); err != nil {
		t.Fatal(err)
	}
	waitBackends(t, "marie", "keep-shutdown", 0)
}

func TestSessionModeClosesKeptBackendsWhenTheServerIsFull(t *testing.T) {
	ctx := context.Background()
	p := startKeeping(t, policy.RelayEventLoop, 5, time.Minute)
	for _, app := range []string{"keep-full-1", "keep-full-2"} {
		connectApp(t, p, "marie", app).Close(ctx)
		waitBackends(t, "marie", app, 1)
	}
	// The service account may open no more backends than it holds now:
	// the next session's dial is refused (53300) until the kept ones
	// close.
	n := proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE usename = 'pgveil_svc'")[0][0]
	proxytest.Direct(t, "ALTER ROLE pgveil_svc CONNECTION LIMIT "+n)
	t.Cleanup(func() { proxytest.Direct(t, "ALTER ROLE pgveil_svc CONNECTION LIMIT -1") })
	c := connectApp(t, p, "hq", "keep-full-3")
	var countries int
	if err := c.QueryRow(ctx, "SELECT count(DISTINCT country) FROM responses").Scan(&countries); err != nil {
		t.Fatalf("the session that found the server full failed: %v", err)
	}
	if rows := backendsOf(t, "marie", "keep-full-1"); len(rows) != 0 {
		t.Errorf("marie's kept backend is still open: %v", rows)
	}
}

func TestSessionModeClosesKeptBackendsTheServerClosed(t *testing.T) {
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	p := startKeeping(t, policy.RelayEventLoop, 5, time.Hour, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	for _, app := range []string{"keep-dead", "keep-live"} {
		connectApp(t, p, "marie", app).Close(ctx)
		waitBackends(t, "marie", app, 1)
	}
	// An upstream restart, or a DBA's pg_terminate_backend, ends a kept
	// backend while no session holds it.
	proxytest.Direct(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'pgveil:marie:keep-dead'")
	waitBackends(t, "marie", "keep-dead", 0)
	proxy.SweepKept(p.Server)
	t.Run("the janitor closes it long before its idle timeout", func(t *testing.T) {
		if n := gauge(t, reg, "pgveil_kept_backends"); n != 1 {
			t.Errorf("pgveil_kept_backends = %v after the server closed one of two, want 1", n)
		}
	})
	t.Run("and keeps the one still open", func(t *testing.T) {
		c := connectApp(t, p, "marie", "keep-live")
		if n := gauge(t, reg, "pgveil_kept_backends_reused_total"); n != 1 {
			t.Errorf("pgveil_kept_backends_reused_total = %v, want 1", n)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}
