package proxy_test

import (
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// A RESET ALL ends acting for a user as a switch does (resetAct), but it
// has no rewrite.Act: pipelined, a portal bound to it, then to a plain
// SELECT by a Bind that fails, runs the RESET ALL after ROLLBACK TO
// SAVEPOINT. The server resets pgveil.act_for; pgveil must not go on
// scoping (and recording) for the viewer: it refuses the Execute, or
// follows.
func TestRev18dPipelinedFailedBindLeavesThePortalItsResetAll(t *testing.T) {
	onEveryRelay(t, func(t *testing.T, relay string) {
		p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
		a := actConn{c: p.connect(t, "metabase")}
		france, service := directCount(t, scopes["marie"]), a.responses(t)
		if france == service {
			t.Fatalf("demo data: the service sees the %d French responses", france)
		}
		must(t, a.exec("SET pgveil.act_for = 'marie'"))
		if n := a.responses(t); n != france {
			t.Fatalf("acting for marie: %d responses, want %d", n, france)
		}
		fe := a.c.PgConn().Frontend()
		_ = a.c.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
		sendBatch(t, fe, &pgproto3.Parse{Name: "ra", Query: "RESET ALL"}, &pgproto3.Parse{Name: "plain", Query: "SELECT 1"},
			&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Sync{})
		sendBatch(t, fe, &pgproto3.Query{String: "BEGIN"})
		sendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "ra"}, &pgproto3.Sync{})
		sendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
		for _, m := range []pgproto3.FrontendMessage{
			&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "plain"}, &pgproto3.Sync{},
			&pgproto3.Bind{DestinationPortal: "c2", PreparedStatement: "back"}, &pgproto3.Execute{Portal: "c2"}, &pgproto3.Sync{},
			&pgproto3.Execute{Portal: "r"}, &pgproto3.Sync{},
			&pgproto3.Query{String: "COMMIT"},
		} {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var codes []string
		for z := 0; z < 4; {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				codes = append(codes, m.Code)
			case *pgproto3.ReadyForQuery:
				z++
			}
		}
		t.Logf("errors: %v", codes)
		_ = a.c.PgConn().Conn().SetDeadline(time.Time{})
		rows, err := roundTrip(t, a.c, &pgproto3.Query{String: "SHOW pgveil.act_for"})
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42704" {
			rows, err = []string{""}, nil
		}
		if err != nil || len(rows) != 1 {
			t.Fatalf("SHOW pgveil.act_for: %v %v", rows, err)
		}
		if n := a.responses(t); (rows[0] == "marie") != (n == france) {
			t.Errorf("the upstream acts for %q, pgveil scopes %d responses (marie's: %d)", rows[0], n, france)
		}
	})
}
