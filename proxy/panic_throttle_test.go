package proxy_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestPanicInAuthenticationGivesBackItsThrottleTurn: a panic while a
// login authenticates ends that connection only (containStartup); the
// attempt it held under listen.max_auth_failures must end with it, or
// the login's next attempts from the address wait for a turn that never
// comes and are refused.
func TestPanicInAuthenticationGivesBackItsThrottleTurn(t *testing.T) {
	var panicked atomic.Bool
	p := proxytest.StartProxy(t, withAuthFailures(1), func(c *policy.Config, o *proxy.Options) {
		proxy.StaticIdentities(c, o)
		users := o.Users
		o.Users = func(login string) (*policy.User, bool) {
			if login == "alice" && panicked.CompareAndSwap(false, true) {
				panic("a bug reached in authentication")
			}
			return users(login)
		}
	})
	ctx := context.Background()
	if c, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil)); err == nil {
		c.Close(ctx)
		t.Fatal("the login whose authentication panicked was served")
	}
	if !panicked.Load() {
		t.Fatal("the authentication did not panic")
	}
	c, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
	if err != nil {
		t.Fatalf("the next login after a panic: %v", err)
	}
	c.Close(ctx)
}

// TestPanicAfterAdmissionGivesBackTheLoginsPlace: a panic in a start past
// the login's admission (listen.max_user_connections) ends that
// connection only; the place it took under the login's cap must be given
// back with it, or the login is refused 53300 until pgveil restarts.
func TestPanicAfterAdmissionGivesBackTheLoginsPlace(t *testing.T) {
	var panicked atomic.Bool
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 5 * time.Second, IdleTimeout: time.Minute}
		c.Listen.MaxUserConnections = 1
	}, func(o *proxy.Options) {
		users := o.Users
		o.Users = func(login string) (*policy.User, bool) {
			// The pool's per-login cap is read after the admission.
			if login == "marie" && calledFrom("poolUserLimit") && panicked.CompareAndSwap(false, true) {
				panic("a bug reached past the admission")
			}
			return users(login)
		}
	})
	ctx := context.Background()
	if c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil)); err == nil {
		c.Close(ctx)
		t.Fatal("the login whose start panicked was served")
	}
	if !panicked.Load() {
		t.Fatal("the start did not panic")
	}
	c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
	if err != nil {
		t.Fatalf("the next login after a panic: %v", err)
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
}

// calledFrom reports whether a function whose name ends in name is on
// the caller's stack.
func calledFrom(name string) bool {
	pcs := make([]uintptr, 32)
	frames := runtime.CallersFrames(pcs[:runtime.Callers(2, pcs)])
	for {
		f, more := frames.Next()
		if strings.HasSuffix(f.Function, "."+name) {
			return true
		}
		if !more {
			return false
		}
	}
}

// connectPanicAuditor panics on the first "connect" record, as a bug in
// the audit sink reached by session.open would: past the admission,
// the cancel key and the upstream connection, before the first
// ReadyForQuery. It forwards every other record to rec.
type connectPanicAuditor struct {
	rec      *recordingAuditor
	panicked atomic.Bool
}

func (a *connectPanicAuditor) Write(r *audit.Record) {
	if r.Event == "connect" && a.panicked.CompareAndSwap(false, true) {
		panic("a bug reached in the audit sink at " + r.User)
	}
	a.rec.Write(r)
}

// TestPanicInAStartGivesBackAllItTook: a start that panics once it holds
// everything (the login's place, its pooled login or its upstream
// connection, its cancel key) gives it all back, in session mode and
// with transaction pooling, on either relay; the client learns nothing
// of the panic, which the metrics count once.
func TestPanicInAStartGivesBackAllItTook(t *testing.T) {
	for _, mode := range []string{policy.PoolSession, policy.PoolTransaction} {
		t.Run("in "+mode+" mode", func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
				reg := prometheus.NewRegistry()
				aud := &connectPanicAuditor{rec: &recordingAuditor{}}
				p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
					c.Listen.Relay = relay
					c.Listen.MaxUserConnections = 1
					if mode == policy.PoolTransaction {
						c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, MaxPerUser: 1,
							WaitTimeout: 5 * time.Second, IdleTimeout: time.Minute}
					}
				}, func(o *proxy.Options) {
					o.Metrics, o.Audit = proxy.NewMetrics(reg), aud
				})
				ctx := context.Background()
				c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
				if err == nil {
					c.Close(ctx)
					t.Fatal("the login whose start panicked was served")
				}
				if !aud.panicked.Load() {
					t.Fatal("the start did not panic")
				}
				if strings.Contains(err.Error(), "audit sink") {
					t.Errorf("the panic value reached the client: %v", err)
				}
				proxytest.WaitSessions(t, p, 0)
				if mode == policy.PoolSession {
					t.Run("its upstream connection is closed", func(t *testing.T) {
						const q = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:marie:%'"
						if !proxytest.Poll(5*time.Second, func() bool { return proxytest.Direct(t, q)[0][0] == "0" }) {
							t.Errorf("%s backends of marie upstream, want 0", proxytest.Direct(t, q)[0][0])
						}
					})
				}
				t.Run("the login starts again, and works", func(t *testing.T) {
					c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
					if err != nil {
						t.Fatalf("the next login after a panic: %v", err)
					}
					defer c.Close(ctx)
					if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
						t.Fatal(err)
					}
				})
				t.Run("the metrics count the panic once and no session", func(t *testing.T) {
					proxytest.WaitSessions(t, p, 0)
					if v := gauge(t, reg, "pgveil_panics_total"); v != 1 {
						t.Errorf("pgveil_panics_total %v, want 1", v)
					}
					if v := gauge(t, reg, "pgveil_sessions"); v != 0 {
						t.Errorf("pgveil_sessions %v, want 0", v)
					}
				})
			})
		})
	}
}
