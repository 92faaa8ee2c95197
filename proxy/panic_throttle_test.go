package proxy_test

import (
	"context"
	"sync/atomic"
	"testing"

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
