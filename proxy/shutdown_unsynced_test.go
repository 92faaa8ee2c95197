package proxy_test

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestGracefulShutdownWaitsForAnExecuteBeforeItsSync: the server runs
// an Execute as soon as it comes, before the Sync that closes its batch
// (a client's Sync may come in a later read, or after a Flush). A
// shutdown that begins then must let the statement finish, as it does a
// Query's, and end the session once its batch is answered.
func TestGracefulShutdownWaitsForAnExecuteBeforeItsSync(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice")
	fe := c.PgConn().Frontend()
	fe.Send(&pgproto3.Parse{Query: "SELECT pg_sleep(0.5)::text || 'unsynced-busy'"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	proxytest.WaitRunning(t, "unsynced-busy")

	sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	shut := make(chan error, 1)
	go func() { shut <- p.Server.Shutdown(sctx) }()
	// The drain ran once the listener is closed.
	proxytest.Eventually(t, 10*time.Second, "the listener closed", func() bool {
		nc, err := net.DialTimeout("tcp", p.Addr, time.Second)
		if err == nil {
			nc.Close()
		}
		return err != nil
	})

	t.Run("the statement sent before its Sync finishes", func(t *testing.T) {
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var rows int
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatalf("after %d rows: %v", rows, err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				rows++
			case *pgproto3.ErrorResponse:
				t.Fatalf("the statement failed: %s %s", m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				if rows != 1 {
					t.Fatalf("%d rows, want 1", rows)
				}
				return
			}
		}
	})
	t.Run("then the session ends and the shutdown returns before its deadline", func(t *testing.T) {
		msg, err := fe.Receive()
		if e, ok := msg.(*pgproto3.ErrorResponse); !(ok && e.Code == "57P01") && err == nil {
			t.Errorf("after the batch: %T %v, want the shutdown's 57P01 or the connection closed", msg, msg)
		}
		if err := <-shut; err != nil && !errors.Is(err, context.DeadlineExceeded) {
			t.Fatal(err)
		} else if err != nil {
			t.Fatal("the shutdown waited to its deadline")
		}
	})
}
