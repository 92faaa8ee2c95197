package proxy_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

func TestUpstreamRestart(t *testing.T) {
	if proxytest.Cluster != nil && proxytest.Cluster.External() {
		t.Skip("cannot restart an external server")
	}
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	ctx := context.Background()

	c := p.Connect(t, "alice")
	if err := c.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	if err := proxytest.Cluster.StopServer(); err != nil {
		t.Fatal(err)
	}
	t.Run("an open session gets a clean connection error", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELECT 1")
		var pgErr *pgconn.PgError
		if err == nil {
			t.Fatal("statement succeeded with the upstream down")
		}
		if errors.As(err, &pgErr) && pgErr.Code != "57P01" && pgErr.Code != "08006" {
			t.Fatalf("unexpected error %v", err)
		}
	})
	t.Run("a new session while the upstream is down gets 08001", func(t *testing.T) {
		_, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "08001" {
			t.Fatalf("want 08001, got %v", err)
		}
	})
	if err := proxytest.Cluster.StartServer(); err != nil {
		t.Fatal(err)
	}
	t.Run("new sessions work once the upstream is back", func(t *testing.T) {
		c2 := p.Connect(t, "bob")
		if err := c2.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a session open during a restart gets 57P01 or 08006", func(t *testing.T) {
		c3 := p.Connect(t, "alice")
		if err := proxytest.Cluster.Restart(); err != nil {
			t.Fatal(err)
		}
		_, err := c3.Exec(ctx, "SELECT 1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "57P01" && pgErr.Code != "08006") {
			t.Fatalf("want 57P01/08006, got %v", err)
		}
		c4 := p.Connect(t, "alice")
		if err := c4.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
}

func TestGracefulShutdown(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	idle := p.Connect(t, "bob")
	busy := p.Connect(t, "alice")
	// copied ran an extended-protocol COPY, whose first Sync the server
	// ignored: it is idle all the same.
	copied := p.Connect(t, "bob")
	if _, err := copied.Exec(ctx, "CREATE TEMP TABLE sink (x text)"); err != nil {
		t.Fatal(err)
	}
	libpqCopy(t, copied.PgConn().Frontend(), "COPY sink FROM STDIN", &pgproto3.CopyData{Data: []byte("a row\n")}, &pgproto3.CopyDone{})

	result := make(chan error, 1)
	go func() {
		var s string
		result <- busy.QueryRow(ctx, "SELECT pg_sleep(1)::text || 'graceful-busy'").Scan(&s)
	}()
	proxytest.WaitRunning(t, "graceful-busy")

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	if err := p.Server.Shutdown(sctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	t.Run("the running statement finished", func(t *testing.T) {
		if err := <-result; err != nil {
			t.Fatalf("running statement failed: %v", err)
		}
		if time.Since(start) < 500*time.Millisecond {
			t.Fatal("shutdown did not wait for the running statement")
		}
	})
	t.Run("idle sessions were told the server is shutting down", func(t *testing.T) {
		for _, c := range []*pgx.Conn{idle, copied} {
			_, err := c.Exec(ctx, "SELECT 1")
			if err == nil {
				t.Fatal("idle session still works")
			}
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code != "57P01" {
				t.Fatalf("want 57P01, got %v", err)
			}
		}
	})
	t.Run("no new connection is accepted", func(t *testing.T) {
		_, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
		if err == nil || !strings.Contains(err.Error(), "connect") {
			t.Fatalf("connection accepted after shutdown: %v", err)
		}
	})
}

func TestShutdownDeadlineClosesLongStatements(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice")
	result := make(chan error, 1)
	go func() { _, err := c.Exec(ctx, "SELECT pg_sleep(30), 'deadline-long'"); result <- err }()
	proxytest.WaitRunning(t, "deadline-long")
	sctx, cancel := context.WithTimeout(ctx, 500*time.Millisecond)
	defer cancel()
	if err := p.Server.Shutdown(sctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("want the deadline error, got %v", err)
	}
	select {
	case err := <-result:
		if err == nil {
			t.Fatal("statement reported success")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("session not closed at the deadline")
	}
}

func TestUpstreamThatDoesNotAnswer(t *testing.T) {
	proxytest.NoLeaks(t)
	// A server that accepts connections and never answers them.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var held []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range held {
			c.Close()
		}
		mu.Unlock()
	})
	p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) {
		c.Listen.StartupTimeout = time.Second
		c.Upstream.Address = ln.Addr().String()
		c.Upstream.ConnectTimeout = 2 * time.Second
	})
	t.Run("a client is told 08001 even when the wait outlasts the startup timeout", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "08001" {
			t.Fatalf("want 08001, got %v", err)
		}
	})
}
