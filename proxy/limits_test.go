package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
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

// withCaps sets listen.max_connections, listen.max_user_connections and
// the max_connections of user blocks.
func withCaps(server, perUser int, users map[string]int) proxytest.Option {
	return func(c *policy.Config, _ *proxy.Options) {
		c.Listen.MaxConnections, c.Listen.MaxUserConnections = server, perUser
		for login, n := range users {
			c.Users[login].MaxConnections = n
		}
	}
}

// connectErr connects as user through p and returns the connection or
// the PostgreSQL error the client got.
func connectErr(t *testing.T, p *proxytest.Proxy, user string) (*pgx.Conn, *pgconn.PgError) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, p.URL(user, proxytest.Users[user], nil))
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
		return c, nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("connecting as %s: %v, want a PostgreSQL error", user, err)
	}
	return nil, pe
}

// wantTooMany checks that pe is a 53300 error whose message and hint
// contain msg and hint.
func wantTooMany(t *testing.T, pe *pgconn.PgError, msg, hint string) {
	t.Helper()
	if pe == nil {
		t.Fatal("connected, want 53300")
	}
	if pe.Code != "53300" || pe.Severity != "FATAL" || !strings.Contains(pe.Message, msg) || !strings.Contains(pe.Hint, hint) {
		t.Fatalf("got %s %s: %s (hint %q), want FATAL 53300 %q, hint with %q", pe.Severity, pe.Code, pe.Message, pe.Hint, msg, hint)
	}
}

func TestConnectionCaps(t *testing.T) {
	t.Run("a login holding its cap of sessions is refused, and another login is not", func(t *testing.T) {
		rec := &recordingAuditor{}
		p := proxytest.StartProxy(t, withCaps(0, 1, nil), func(_ *policy.Config, o *proxy.Options) { o.Audit = rec })
		first, pe := connectErr(t, p, "alice")
		if pe != nil {
			t.Fatalf("first session: %v", pe)
		}
		_, pe = connectErr(t, p, "alice")
		wantTooMany(t, pe, `too many connections for user "alice"`, "listen.max_user_connections")
		// NOTE: the client has its answer before the record is written.
		proxytest.Eventually(t, 5*time.Second, "a connect_refused record of alice saying why", func() bool {
			got := rec.events("connect_refused")
			return len(got) == 1 && got[0].User == "alice" && strings.Contains(got[0].Reason, "too many connections")
		})
		if _, pe := connectErr(t, p, "bob"); pe != nil {
			t.Fatalf("bob: %v", pe)
		}
		// The refused attempt took no place: once the first session
		// ends, alice may connect again.
		first.Close(context.Background())
		proxytest.Eventually(t, 5*time.Second, "alice connects again", func() bool {
			c, pe := connectErr(t, p, "alice")
			return c != nil && pe == nil
		})
	})

	t.Run("a user block's max_connections replaces the default", func(t *testing.T) {
		p := proxytest.StartProxy(t, withCaps(0, 1, map[string]int{"bob": 2}))
		for i := 0; i < 2; i++ {
			if _, pe := connectErr(t, p, "bob"); pe != nil {
				t.Fatalf("bob's session %d: %v", i+1, pe)
			}
		}
		_, pe := connectErr(t, p, "bob")
		wantTooMany(t, pe, `too many connections for user "bob"`, `max_connections of user "bob"`)
	})

	t.Run("a session refused by its login's cap holds no upstream backend", func(t *testing.T) {
		p := proxytest.StartProxy(t, withCaps(0, 1, nil))
		// NOTE: an application name of its own: backends of other
		// tests' sessions of alice may still be closing.
		ctx := context.Background()
		app := fmt.Sprintf("caps_probe_%d", time.Now().UnixNano())
		dsn := p.URL("alice", proxytest.Users["alice"], url.Values{"application_name": {app}})
		c, err := pgx.Connect(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		for i := 0; i < 3; i++ {
			var pe *pgconn.PgError
			if _, err := pgx.Connect(ctx, dsn); !errors.As(err, &pe) {
				t.Fatalf("connection past the cap: %v, want 53300", err)
			}
			wantTooMany(t, pe, "too many connections", "")
		}
		if n := appBackends(t, "pgveil:alice:"+app); n != 1 {
			t.Errorf("%d upstream backends of alice's %s, want 1", n, app)
		}
	})

	t.Run("sessions sharing a transaction pool are capped as well, on every relay", func(t *testing.T) {
		proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
			p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
				c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Second, IdleTimeout: time.Minute}
				c.Listen.Relay = relay
				c.Listen.MaxUserConnections = 1
				c.Users["paul"].MaxConnections = 2
			})
			ctx := context.Background()
			connect := func(user string) error {
				c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, nil))
				if err == nil {
					t.Cleanup(func() { c.Close(ctx) })
				}
				return err
			}
			for _, user := range []string{"marie", "paul", "paul", "hq"} {
				if err := connect(user); err != nil {
					t.Fatalf("%s: %v", user, err)
				}
			}
			for _, user := range []string{"marie", "paul", "hq"} {
				var pe *pgconn.PgError
				if err := connect(user); !errors.As(err, &pe) {
					t.Fatalf("%s past the cap: %v, want 53300", user, err)
				}
				wantTooMany(t, pe, "too many connections for user", "")
			}
		})
	})

	t.Run("past listen.max_connections a client is told too many clients, and a cancel still goes through", func(t *testing.T) {
		p := proxytest.StartProxy(t, withCaps(2, 0, nil))
		a, pe := connectErr(t, p, "alice")
		if pe != nil {
			t.Fatal(pe)
		}
		if _, pe := connectErr(t, p, "bob"); pe != nil {
			t.Fatal(pe)
		}
		_, pe = connectErr(t, p, "bob")
		wantTooMany(t, pe, "sorry, too many clients already", "listen.max_connections")

		ctx := context.Background()
		done := make(chan error, 1)
		go func() { _, err := a.Exec(ctx, "SELECT pg_sleep(30)"); done <- err }()
		proxytest.WaitRunning(t, "pg_sleep(30)")
		if err := a.PgConn().CancelRequest(ctx); err != nil {
			t.Fatalf("cancel request: %v", err)
		}
		select {
		case err := <-done:
			var qe *pgconn.PgError
			if !errors.As(err, &qe) || qe.Code != "57014" {
				t.Fatalf("the cancelled statement ended with %v, want 57014", err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the cancel request did not reach the statement")
		}
	})

	t.Run("connections far past listen.max_connections are closed unread", func(t *testing.T) {
		proxytest.NoLeaks(t)
		p := proxytest.StartProxy(t, withCaps(1, 0, nil))
		// Silent connections hold every place, and every place to be
		// refused with a message.
		var silent []net.Conn
		defer func() {
			for _, c := range silent {
				c.Close()
			}
		}()
		for i := 0; i < 1+64; i++ {
			c, err := net.Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			silent = append(silent, c)
		}
		// The accept loop takes them in its own time.
		proxytest.Eventually(t, 5*time.Second, "one more connection closed unread", func() bool {
			c, err := net.Dial("tcp", p.Addr)
			if err != nil {
				return false
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(time.Second))
			_, err = c.Read(make([]byte, 1))
			return errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || isReset(err)
		})
		for _, c := range silent {
			c.Close()
		}
		silent = nil
		proxytest.Eventually(t, 5*time.Second, "a client connects once the silent ones left", func() bool {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			c, err := pgx.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
			if err != nil {
				return false
			}
			c.Close(ctx)
			return true
		})
	})
}

// isReset reports a connection reset by the peer.
func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}

// appBackends counts the upstream backends whose application_name is
// name.
func appBackends(t *testing.T, name string) int {
	t.Helper()
	ctx := context.Background()
	c, err := proxytest.Cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1", [][]byte{[]byte(name)}, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	n, _ := strconv.Atoi(string(res.Rows[0][0]))
	return n
}

// connectFrom connects as user with password through p from the local
// address host (any 127.x.y.z reaches the proxy on Linux).
func connectFrom(t *testing.T, p *proxytest.Proxy, host, user, password string) (*pgx.Conn, *pgconn.PgError) {
	t.Helper()
	cfg, err := pgx.ParseConfig(p.URL(user, password, nil))
	if err != nil {
		t.Fatal(err)
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(host)}, Timeout: 5 * time.Second}
	cfg.DialFunc = d.DialContext
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(ctx, cfg)
	if err == nil {
		t.Cleanup(func() { c.Close(context.Background()) })
		return c, nil
	}
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return nil, nil
	}
	return nil, pe
}

// withAuthFailures sets listen.max_auth_failures, which only a decoded
// configuration defaults to 10.
func withAuthFailures(n int) proxytest.Option {
	return func(c *policy.Config, _ *proxy.Options) { c.Listen.MaxAuthFailures = n }
}

func TestPreAuthenticationBounds(t *testing.T) {
	t.Run("one address holding its startup cap is closed at once, and others still log in", func(t *testing.T) {
		p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) { c.Listen.MaxStartupPerAddress = 3 })
		var idle []net.Conn
		for range 3 {
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			idle = append(idle, c)
		}
		proxytest.Eventually(t, 5*time.Second, "a fourth connection of 127.0.0.3 closed unread", func() bool {
			c, err := (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}}).Dial("tcp", p.Addr)
			if err != nil {
				return false
			}
			defer c.Close()
			_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
			_, err = c.Read(make([]byte, 1))
			return errors.Is(err, io.EOF)
		})
		if c, pe := connectFrom(t, p, "127.0.0.4", "alice", proxytest.Users["alice"]); c == nil {
			t.Fatalf("another address: %v", pe)
		}
		idle[0].Close()
		proxytest.Eventually(t, 5*time.Second, "127.0.0.3 logs in once one of its idle connections closed", func() bool {
			c, _ := connectFrom(t, p, "127.0.0.3", "alice", proxytest.Users["alice"])
			return c != nil
		})
	})

	t.Run("failed logins of a login from an address are throttled, with one audit record", func(t *testing.T) {
		rec := &recordingAuditor{}
		p := proxytest.StartProxy(t, withAuthFailures(10), func(_ *policy.Config, o *proxy.Options) { o.Audit = rec })
		for i := range 10 {
			if _, pe := connectFrom(t, p, "127.0.0.5", "alice", "wrong"); pe == nil || pe.Code != "28P01" {
				t.Fatalf("failure %d: %v, want 28P01", i+1, pe)
			}
		}
		for range 3 {
			_, pe := connectFrom(t, p, "127.0.0.5", "alice", proxytest.Users["alice"])
			if pe == nil || pe.Code != "28000" || !strings.Contains(pe.Message, `too many failed logins for user "alice"`) {
				t.Fatalf("the right password past the throttle: %v, want 28000", pe)
			}
		}
		if c, pe := connectFrom(t, p, "127.0.0.5", "bob", proxytest.Users["bob"]); c == nil {
			t.Fatalf("another login of that address: %v", pe)
		}
		if c, pe := connectFrom(t, p, "127.0.0.6", "alice", proxytest.Users["alice"]); c == nil {
			t.Fatalf("the login from another address: %v", pe)
		}
		proxytest.Eventually(t, 5*time.Second, "10 auth_failure records and one auth_throttled", func() bool {
			return len(rec.events("auth_failure")) == 10 && len(rec.events("auth_throttled")) == 1
		})
		if n := len(rec.events("connect_refused")); n != 0 {
			t.Fatalf("%d connect_refused records of throttled attempts, want none", n)
		}
	})

	t.Run("a pool opening 30 connections of one login at once is served", func(t *testing.T) {
		p := proxytest.StartProxy(t, withAuthFailures(10))
		var wg sync.WaitGroup
		var failed atomic.Int32
		for range 30 {
			wg.Go(func() {
				if c, _ := connectFrom(t, p, "127.0.0.11", "alice", proxytest.Users["alice"]); c == nil {
					failed.Add(1)
				}
			})
		}
		wg.Wait()
		if n := failed.Load(); n != 0 {
			t.Fatalf("%d of 30 connections failed", n)
		}
	})

	t.Run("guesses made at once wait for their turn, and no more are checked than the limit", func(t *testing.T) {
		p := proxytest.StartProxy(t, withAuthFailures(10))
		var checked, throttled atomic.Int32
		var wg sync.WaitGroup
		for range 40 {
			wg.Go(func() {
				switch _, pe := connectFrom(t, p, "127.0.0.7", "alice", "wrong"); {
				case pe == nil:
				case pe.Code == "28P01":
					checked.Add(1)
				case pe.Code == "28000":
					throttled.Add(1)
				}
			})
		}
		wg.Wait()
		if checked.Load() > 10 || checked.Load()+throttled.Load() != 40 {
			t.Fatalf("%d passwords checked and %d throttled of 40, want at most 10 checked", checked.Load(), throttled.Load())
		}
	})

	t.Run("max_auth_failures = 0 turns the throttle off", func(t *testing.T) {
		p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) { c.Listen.MaxAuthFailures = 0 })
		for i := range 12 {
			if _, pe := connectFrom(t, p, "127.0.0.9", "alice", "wrong"); pe == nil || pe.Code != "28P01" {
				t.Fatalf("failure %d: %v, want 28P01", i+1, pe)
			}
		}
	})

	t.Run("an unknown login is throttled like a known one, so the throttle tells no one which logins exist", func(t *testing.T) {
		p := proxytest.StartProxy(t, withAuthFailures(3))
		answer := func(login string) string {
			_, pe := connectFrom(t, p, "127.0.0.13", login, "wrong")
			if pe == nil {
				return "no error"
			}
			return pe.Code + " " + strings.ReplaceAll(pe.Message, login, "<login>")
		}
		for i := range 3 {
			if known, unknown := answer("alice"), answer("nobody"); known != unknown {
				t.Fatalf("failure %d: a configured login gets %q, an unknown one %q", i+1, known, unknown)
			}
		}
		known, unknown := answer("alice"), answer("nobody")
		if known != unknown || !strings.HasPrefix(known, "28000 too many failed logins") {
			t.Fatalf("past the limit: a configured login gets %q, an unknown one %q; want both throttled alike", known, unknown)
		}
	})
}
