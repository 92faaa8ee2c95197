package proxy_test

import (
	"context"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

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
	p := startProxy(t, withAuthFailures(1), func(c *policy.Config, o *proxy.Options) {
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
	if c, err := pgconn.Connect(ctx, p.url("alice", users["alice"], nil)); err == nil {
		c.Close(ctx)
		t.Fatal("the login whose authentication panicked was served")
	}
	if !panicked.Load() {
		t.Fatal("the authentication did not panic")
	}
	c, err := pgconn.Connect(ctx, p.url("alice", users["alice"], nil))
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
	p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
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
	if c, err := pgconn.Connect(ctx, p.url("marie", "demo-marie", nil)); err == nil {
		c.Close(ctx)
		t.Fatal("the login whose start panicked was served")
	}
	if !panicked.Load() {
		t.Fatal("the start did not panic")
	}
	c, err := pgconn.Connect(ctx, p.url("marie", "demo-marie", nil))
	if err != nil {
		t.Fatalf("the next login after a panic: %v", err)
	}
	c.Close(ctx)
	waitSessions(t, p, 0)
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
