package proxy_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestSessionCountSeesConnectionsFromTheirAccept holds connections at
// each step of their life and checks the server counts them there, then
// none once their clients have closed: a test that waits for no session
// after a close must not pass before the server is done with it.
func TestSessionCountSeesConnectionsFromTheirAccept(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	// Each case opens a connection and holds it where the server must
	// count it, returning what closes it.
	cases := []struct {
		name string
		hold func(t *testing.T) (close func())
	}{
		{"a connection that has sent nothing yet", func(t *testing.T) func() {
			c, err := net.Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			// Accepting is the server's, after the dial: wait for it.
			proxytest.WaitSessions(t, p, 1)
			return func() { c.Close() }
		}},
		{"a connection waiting for its password", func(t *testing.T) func() {
			c, fe := startupRaw(t, p.Addr, map[string]string{"user": "alice", "database": proxytest.TestDB})
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := msg.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("want an authentication request, got %s %s", e.Code, e.Message)
			}
			if n := p.Server.SessionCount(); n != 1 {
				t.Fatalf("%d sessions while one waits for its password, want 1", n)
			}
			return func() { c.Close() }
		}},
		{"a session as soon as its client had its first ReadyForQuery", func(t *testing.T) func() {
			c, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
			if err != nil {
				t.Fatal(err)
			}
			if n := p.Server.SessionCount(); n != 1 {
				t.Fatalf("%d sessions once connected, want 1", n)
			}
			return func() { c.Close(ctx) }
		}},
	}
	for _, tc := range cases {
		t.Run("counts "+tc.name+" and forgets it once closed", func(t *testing.T) {
			proxytest.WaitSessions(t, p, 0)
			tc.hold(t)()
			proxytest.WaitSessions(t, p, 0)
		})
	}

	t.Run("forgets a failed login exactly once", func(t *testing.T) {
		for range 3 {
			if c, err := pgconn.Connect(ctx, p.URL("alice", "wrong", nil)); err == nil {
				c.Close(ctx)
				t.Fatal("a wrong password was accepted")
			}
		}
		proxytest.WaitSessions(t, p, 0)
		// A count decremented twice would read 0 here.
		c, err := pgconn.Connect(ctx, p.URL("bob", proxytest.Users["bob"], nil))
		if err != nil {
			t.Fatal(err)
		}
		if n := p.Server.SessionCount(); n != 1 {
			t.Fatalf("%d sessions after failed logins and one session, want 1", n)
		}
		c.Close(ctx)
		proxytest.WaitSessions(t, p, 0)
	})

	t.Run("shutdown ends a connection waiting for its password and counts it no more", func(t *testing.T) {
		c, fe := startupRaw(t, p.Addr, map[string]string{"user": "alice", "database": proxytest.TestDB})
		if _, err := fe.Receive(); err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := p.Server.Shutdown(sctx); err != nil {
			t.Fatalf("shutdown: %v", err)
		}
		if n := p.Server.SessionCount(); n != 0 {
			t.Fatalf("%d sessions after shutdown, want 0", n)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(make([]byte, 1)); err == nil {
			t.Fatal("the connection in startup is still open after shutdown")
		}
	})
}
