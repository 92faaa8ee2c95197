package proxy_test

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

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
