package proxy_test

import (
	"context"
	"net"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// silentServer accepts connections and never says a word; accepted
// receives one value per connection.
type silentServer struct {
	addr     string
	accepted chan struct{}
}

func startSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{addr: ln.Addr().String(), accepted: make(chan struct{}, 16)}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case s.accepted <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return s
}

// TestShutdownDoesNotWaitForStartsDialling: past its deadline, Shutdown
// closes every session and returns; a start dialling an upstream or a
// directory that never answers must end with it, not hold Shutdown for
// the dial's own timeout (a minute here).
func TestShutdownDoesNotWaitForStartsDialling(t *testing.T) {
	cases := []struct {
		name     string
		opt      func(silent string) proxytest.Option
		user, pw string
		extra    url.Values
	}{
		{
			name: "a start dialling an upstream that never answers",
			opt: func(silent string) proxytest.Option {
				return func(c *policy.Config, _ *proxy.Options) {
					c.Upstream.Address, c.Upstream.ConnectTimeout = silent, time.Minute
				}
			},
			user: "alice", pw: proxytest.Users["alice"],
		},
		{
			name: "a pooled start dialling an upstream that never answers",
			opt: func(silent string) proxytest.Option {
				return func(c *policy.Config, _ *proxy.Options) {
					c.Upstream.Address, c.Upstream.ConnectTimeout = silent, time.Minute
					c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Minute}
				}
			},
			user: "alice", pw: proxytest.Users["alice"],
		},
		{
			name: "a start asking a directory that never answers",
			opt: func(silent string) proxytest.Option {
				return func(c *policy.Config, o *proxy.Options) { withLDAP(t, "ldap://"+silent, time.Minute)(c, o) }
			},
			user: "dana", pw: "dana-pw", extra: url.Values{"sslmode": {"require"}},
		},
		{
			name: "a start whose directory never answers its TLS handshake (ldaps)",
			opt: func(silent string) proxytest.Option {
				return func(c *policy.Config, o *proxy.Options) { withLDAP(t, "ldaps://"+silent, time.Minute)(c, o) }
			},
			user: "dana", pw: "dana-pw", extra: url.Values{"sslmode": {"require"}},
		},
		{
			name: "a start whose directory never answers its StartTLS",
			opt: func(silent string) proxytest.Option {
				return func(c *policy.Config, o *proxy.Options) {
					withLDAP(t, "ldap://"+silent, time.Minute)(c, o)
					c.LDAP.Directory.StartTLS = true
				}
			},
			user: "dana", pw: "dana-pw", extra: url.Values{"sslmode": {"require"}},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name+" ends at the shutdown deadline", func(t *testing.T) {
			silent := startSilentServer(t)
			core, logs := observer.New(zapcore.InfoLevel)
			aud := &recordingAuditor{}
			p := proxytest.StartProxy(t, tc.opt(silent.addr), func(_ *policy.Config, o *proxy.Options) {
				o.Logger, o.Audit = zap.New(core), aud
			})
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			connected := make(chan error, 1)
			go func() {
				c, err := pgconn.Connect(ctx, p.URL(tc.user, tc.pw, tc.extra))
				if err == nil {
					c.Close(context.Background())
				}
				connected <- err
			}()
			select {
			case <-silent.accepted:
			case <-ctx.Done():
				t.Fatal("the start never dialled the silent server")
			}
			sctx, scancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
			defer scancel()
			shut := make(chan error, 1)
			go func() { shut <- p.Server.Shutdown(sctx) }()
			select {
			case err := <-shut:
				if err != context.DeadlineExceeded {
					t.Errorf("Shutdown: %v, want its context's deadline", err)
				}
			case <-ctx.Done():
				t.Fatal("Shutdown still waits for the start's dial long past its deadline")
			}
			if err := <-connected; err == nil {
				t.Error("the start was served after the shutdown")
			}
			proxytest.WaitSessions(t, p, 0)
			t.Run("its end is the shutdown's, not a failed login or upstream", func(t *testing.T) {
				for _, e := range logs.All() {
					if e.Level >= zapcore.WarnLevel {
						t.Errorf("logged at %s: %s %v", e.Level, e.Message, e.ContextMap())
					}
				}
				for _, ev := range []string{"auth_failure", "connect_failed"} {
					for _, r := range aud.events(ev) {
						t.Errorf("audited as %s: %q", ev, r.Reason)
					}
				}
				refused := aud.events("connect_refused")
				if len(refused) != 1 || refused[0].SQLState != proxy.CodeAdminShutdown {
					t.Errorf("want one connect_refused record with SQLSTATE %s, got %d", proxy.CodeAdminShutdown, len(refused))
				}
			})
		})
	}
}
