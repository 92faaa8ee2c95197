package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestRev22kSkippedQuery holds a PgJDBC-like session whose Query the
// server skips after an error of the extended protocol: the backend
// keeps the unnamed SET parsed before it, which a Bind in a later batch
// runs again.
func TestRev22kSkippedQuery(t *testing.T) {
	proxytest.OnEveryRelay(t, rev22kSkippedQuery)
}

func rev22kSkippedQuery(t *testing.T, relay string) {
	ctx := context.Background()
	proxytest.SetupDemo(t)

	t.Run("a SET of the unnamed statement a skipped Query left upstream, bound again, gives no backend back with it", func(t *testing.T) {
		p := startPooled(t, relay, 2, 5*time.Second)
		a, b := p.Connect(t, "metabase"), p.Connect(t, "metabase")
		tz := func(c *pgx.Conn) string {
			t.Helper()
			var s string
			if err := c.QueryRow(ctx, "SHOW TimeZone").Scan(&s); err != nil {
				t.Fatal(err)
			}
			return s
		}
		was := tz(b)
		// A SET in a block the client rolls back: the session keeps no
		// TimeZone, the backend's unnamed statement is the SET.
		for _, batch := range [][]pgproto3.FrontendMessage{
			{&pgproto3.Query{String: "BEGIN"}},
			{&pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
		} {
			if _, err := proxytest.RoundTrip(t, a, batch...); err != nil {
				t.Fatal(err)
			}
		}
		// Pipelined, on the same backend: the Query after the failed
		// Parse is skipped, and does not drop the SET.
		fe := a.PgConn().Frontend()
		for _, m := range []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "rb", Query: "ROLLBACK"}, &pgproto3.Bind{PreparedStatement: "rb"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "bad", Query: "SELECT FROM no_such_table_at_all"},
			&pgproto3.Query{String: "SELECT 1"},
			&pgproto3.Sync{},
			&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		} {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		// NOTE: the skipped Query has no ReadyForQuery: three Syncs.
		_ = a.PgConn().Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
		for ready := 0; ready < 3; {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				ready++
			}
		}
		_ = a.PgConn().Conn().SetReadDeadline(time.Time{})
		for range 3 {
			if got := tz(b); got != was {
				t.Fatalf("another session reads TimeZone %s, want %s", got, was)
			}
		}
		if first, again := tz(a), tz(a); first != again {
			t.Fatalf("the session reads TimeZone %s, then %s", first, again)
		}
	})
}
