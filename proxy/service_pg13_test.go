package proxy_test

import (
	"context"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestServiceConnectionsAskPostgreSQL13OnceForTheCheckInterval checks
// that a server refusing client_connection_check_interval at startup
// (PostgreSQL 13 and older) is asked for it once, not at every service
// connection: /readyz connects every second an orchestrator asks, and
// each refusal is a FATAL in the server's log and a connection more.
// The fake server refuses the setting as PostgreSQL 13 does, and any
// other startup with a refusal of its own.
func TestServiceConnectionsAskPostgreSQL13OnceForTheCheckInterval(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var asked atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				be := pgproto3.NewBackend(c, c)
				msg, err := be.ReceiveStartupMessage()
				if err != nil {
					return
				}
				e := &pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "28000", Message: "no entry for host"}
				if sm, ok := msg.(*pgproto3.StartupMessage); ok {
					if _, ok := sm.Parameters["client_connection_check_interval"]; ok {
						asked.Add(1)
						e.Code, e.Message = "42704", `unrecognized configuration parameter "client_connection_check_interval"`
					}
				}
				be.Send(e)
				_ = be.Flush()
			}()
		}
	}()
	cfg := &policy.Config{Upstream: policy.Upstream{
		Address: l.Addr().String(), Database: "db", User: "svc", Password: "pw",
		SearchPath: "public", ConnectTimeout: 5 * time.Second,
		ClientConnectionCheckInterval: 10 * time.Second,
	}}
	for range 3 {
		if pc, err := proxy.ConnectService(context.Background(), cfg, "test"); err == nil {
			pc.Close(context.Background())
			t.Fatal("the fake server served a connection")
		}
	}
	if n := asked.Load(); n != 1 {
		t.Fatalf("three service connections asked for client_connection_check_interval %d times, not once", n)
	}
}

// TestServiceConnectionsPinTheCheckIntervalAgainAfterAFailover checks
// that the memo of a refusal does not outlive the server that refused:
// after a failover behind the same address from PostgreSQL 13 to 15,
// a service connection, which then reads the setting back as 0, must
// pin it again rather than refuse every start, reload and /readyz
// ("the startup parameter did not reach PostgreSQL") until a restart.
// The address first answers as PostgreSQL 13 does, then forwards to a
// PostgreSQL 15 cluster.
func TestServiceConnectionsPinTheCheckIntervalAgainAfterAFailover(t *testing.T) {
	pgtest.Require(t, proxytest.Cluster)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var failedOver atomic.Bool
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if failedOver.Load() {
					up, err := net.Dial("tcp", proxytest.Cluster.Addr())
					if err != nil {
						return
					}
					defer up.Close()
					go func() { _, _ = io.Copy(up, c); up.Close() }()
					_, _ = io.Copy(c, up)
					return
				}
				be := pgproto3.NewBackend(c, c)
				if _, err := be.ReceiveStartupMessage(); err != nil {
					return
				}
				be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "42704",
					Message: `unrecognized configuration parameter "client_connection_check_interval"`})
				_ = be.Flush()
			}()
		}
	}()
	user, password := proxytest.Cluster.SuperUser()
	cfg := &policy.Config{Upstream: policy.Upstream{
		Address: l.Addr().String(), Database: "postgres", User: user, Password: password,
		SearchPath: "public", ConnectTimeout: 10 * time.Second,
		ClientConnectionCheckInterval: 10 * time.Second,
	}}
	ctx := context.Background()
	if pc, err := proxy.ConnectService(ctx, cfg, "test"); err == nil {
		pc.Close(ctx)
		t.Fatal("the PostgreSQL 13 stand-in served a connection")
	}
	failedOver.Store(true)
	pc, err := proxy.ConnectService(ctx, cfg, "test")
	if err != nil {
		t.Fatalf("after a failover to PostgreSQL 15, the service connection is refused: %v", err)
	}
	defer pc.Close(ctx)
	res, err := pc.Exec(ctx, "SELECT pg_catalog.current_setting('client_connection_check_interval')").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if got := string(res[0].Rows[0][0]); got != "10s" {
		t.Fatalf("the check interval is %q on the failed-over server, not pinned as 10s", got)
	}
}

// pg13Front listens in front of the test cluster: while asPG13 holds,
// it refuses a startup naming client_connection_check_interval as
// PostgreSQL 13 does and forwards any other; then it forwards all, as
// the address does once it fails over to PostgreSQL 15.
func pg13Front(t *testing.T, asPG13 *atomic.Bool) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				be := pgproto3.NewBackend(c, c)
				msg, err := be.ReceiveStartupMessage()
				if err != nil {
					return
				}
				sm, ok := msg.(*pgproto3.StartupMessage)
				if !ok {
					return
				}
				if _, named := sm.Parameters["client_connection_check_interval"]; named && asPG13.Load() {
					be.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: "42704",
						Message: `unrecognized configuration parameter "client_connection_check_interval"`})
					_ = be.Flush()
					return
				}
				up, err := net.Dial("tcp", proxytest.Cluster.Addr())
				if err != nil {
					return
				}
				defer up.Close()
				buf, err := sm.Encode(nil)
				if err != nil {
					return
				}
				if _, err := up.Write(buf); err != nil {
					return
				}
				go func() { _, _ = io.Copy(up, c); up.Close() }()
				_, _ = io.Copy(c, up)
			}()
		}
	}()
	return l.Addr().String()
}

// TestSessionsPinTheCheckIntervalAgainAfterAFailover checks that a
// server's memo of PostgreSQL 13's refusal (dialBackend) ends once the
// address reaches PostgreSQL 14 or later: until a restart, no session
// pinned client_connection_check_interval, so a statement an ended
// session left running ran on.
func TestSessionsPinTheCheckIntervalAgainAfterAFailover(t *testing.T) {
	pgtest.Require(t, proxytest.Cluster)
	var asPG13 atomic.Bool
	front := pg13Front(t, &asPG13)
	p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) {
		c.Upstream.Address = front
		c.Upstream.ClientConnectionCheckInterval = 7 * time.Second
	})
	interval := func() string {
		c := p.Connect(t, "alice")
		defer c.Close(context.Background())
		var got string
		if err := c.QueryRow(context.Background(), "SHOW client_connection_check_interval").Scan(&got); err != nil {
			t.Fatal(err)
		}
		return got
	}
	asPG13.Store(true)
	if got := interval(); got != "0" {
		t.Fatalf("on the PostgreSQL 13 stand-in the interval is %q", got)
	}
	asPG13.Store(false)
	if got := interval(); got != "7s" {
		t.Fatalf("after a failover to PostgreSQL 15, a new session's check interval is %q, not the 7s pinned", got)
	}
}
