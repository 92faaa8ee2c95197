package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
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
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
		a := actConn{c: p.Connect(t, "metabase")}
		france, service := directCount(t, proxytest.Scopes["marie"]), a.responses(t)
		if france == service {
			t.Fatalf("demo data: the service sees the %d French responses", france)
		}
		must(t, a.exec("SET pgveil.act_for = 'marie'"))
		if n := a.responses(t); n != france {
			t.Fatalf("acting for marie: %d responses, want %d", n, france)
		}
		fe := a.c.PgConn().Frontend()
		_ = a.c.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
		proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "ra", Query: "RESET ALL"}, &pgproto3.Parse{Name: "plain", Query: "SELECT 1"},
			&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Sync{})
		proxytest.SendBatch(t, fe, &pgproto3.Query{String: "BEGIN"})
		proxytest.SendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "ra"}, &pgproto3.Sync{})
		proxytest.SendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
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
		rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "SHOW pgveil.act_for"})
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

// The audit trail, pipelined: every batch after the SAVEPOINT is sent
// before any answer, so the Execute is planned while the failed Bind is
// unanswered. The trail must not credit what the portal read to the
// failed Bind's statement: the Execute is refused, or credited to the
// statement the portal ran. The same with a cursor DECLAREd WITH HOLD
// under the portal's name, which PostgreSQL's Bind fails on (42P03)
// and its Execute fetches from.
func TestRev18dPipelinedFailedBindLeavesThePortalItsStatement(t *testing.T) {
	const (
		reads = "SELECT id, email FROM responses ORDER BY id LIMIT 4"
		other = "SELECT 'cover' FROM responses WHERE id = $1"
	)
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		for _, c := range []struct {
			name   string
			portal string
			before [][]pgproto3.FrontendMessage
			again  *pgproto3.Bind
		}{
			{"a named portal bound again", "r", [][]pgproto3.FrontendMessage{
				{&pgproto3.Query{String: "BEGIN"}},
				{&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "reads"}, &pgproto3.Execute{Portal: "r", MaxRows: 1}, &pgproto3.Sync{}},
			}, &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "other", Parameters: [][]byte{[]byte("1")}}},
			{"the unnamed portal bound with a parameter too many", "", [][]pgproto3.FrontendMessage{
				{&pgproto3.Query{String: "BEGIN"}},
				{&pgproto3.Bind{PreparedStatement: "reads"}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Sync{}},
			}, &pgproto3.Bind{PreparedStatement: "other", Parameters: [][]byte{[]byte("1"), []byte("2")}}},
			{"a cursor declared with hold", "r", [][]pgproto3.FrontendMessage{
				{&pgproto3.Query{String: "DECLARE r CURSOR WITH HOLD FOR " + reads}},
				{&pgproto3.Query{String: "BEGIN"}},
				{&pgproto3.Query{String: "FETCH 1 FROM r"}},
			}, &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "other", Parameters: [][]byte{[]byte("1")}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				var codes []string
				recs := auditedRunOn(t, relay, nil, func(ctx context.Context, conn *pgx.Conn) {
					fe := conn.PgConn().Frontend()
					_ = conn.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
					proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "reads", Query: reads}, &pgproto3.Parse{Name: "other", Query: other},
						&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Sync{})
					for _, b := range c.before {
						proxytest.SendBatch(t, fe, b...)
					}
					proxytest.SendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "ctl", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "ctl"}, &pgproto3.Sync{})
					for _, m := range []pgproto3.FrontendMessage{
						c.again, &pgproto3.Sync{},
						&pgproto3.Bind{DestinationPortal: "ctl2", PreparedStatement: "back"}, &pgproto3.Execute{Portal: "ctl2"}, &pgproto3.Sync{},
						&pgproto3.Execute{Portal: c.portal}, &pgproto3.Sync{},
						&pgproto3.Query{String: "COMMIT"},
					} {
						fe.Send(m)
					}
					if err := fe.Flush(); err != nil {
						t.Fatal(err)
					}
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
				})
				t.Logf("errors: %v", codes)
				if e := recs[other]; e != nil && e.Rows != 0 {
					t.Errorf("the trail credits %q, whose Bind failed, with the %d rows the portal read", other, e.Rows)
				}
			})
		}
	})
}

// In a transaction pool of one backend: a portal bound to a SET
// DateStyle, hidden from pgveil by a pipelined Bind that fails, runs
// after ROLLBACK TO SAVEPOINT. pgveil must not take the SET for a
// SELECT and hand the backend, German dates and all, to another user's
// session: it refuses the Execute, or follows the SET.
func TestRev18dPooledPipelinedFailedBindLeavesThePortalItsSetting(t *testing.T) {
	path := proxytest.PooledDemo(t, 1)
	p, _ := proxytest.StartDemoFrom(t, path)
	ctx := context.Background()
	tom := p.Connect(t, "tom")
	before, err := tom.PgConn().Exec(ctx, "SHOW DateStyle").ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	hq := p.Connect(t, "hq")
	fe := hq.PgConn().Frontend()
	_ = hq.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
	proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "ds", Query: "SET DateStyle = 'German'"}, &pgproto3.Parse{Name: "plain", Query: "SELECT 1"},
		&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Sync{})
	proxytest.SendBatch(t, fe, &pgproto3.Query{String: "BEGIN"})
	proxytest.SendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "ds"}, &pgproto3.Sync{})
	proxytest.SendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{})
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
	_ = hq.PgConn().Conn().SetDeadline(time.Time{})
	after, err := tom.PgConn().Exec(ctx, "SHOW DateStyle").ReadAll()
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "53300" {
		return // hq's session keeps the backend: nothing leaks
	}
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(after[0].Rows[0][0]), string(before[0].Rows[0][0]); got != want {
		t.Errorf("tom's session reads DateStyle %q after hq's hidden SET, want its own %q", got, want)
	}
}

// A COMMIT destroys a protocol portal, whose entry pgveil keeps; a
// cursor DECLAREd under its name, pipelined before an Execute of the
// name, is what the Execute runs. The trail must not credit the rows the
// cursor returned to the portal's old statement.
func TestRev18dPipelinedCursorOverADestroyedPortal(t *testing.T) {
	const (
		reads = "SELECT id, email FROM responses ORDER BY id LIMIT 4"
		other = "SELECT 'cover' FROM responses WHERE id = $1"
	)
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		var codes []string
		recs := auditedRunOn(t, relay, nil, func(ctx context.Context, conn *pgx.Conn) {
			fe := conn.PgConn().Frontend()
			_ = conn.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
			proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "other", Query: other}, &pgproto3.Sync{})
			proxytest.SendBatch(t, fe, &pgproto3.Query{String: "BEGIN"})
			proxytest.SendBatch(t, fe, &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "other", Parameters: [][]byte{[]byte("1")}}, &pgproto3.Sync{})
			proxytest.SendBatch(t, fe, &pgproto3.Query{String: "COMMIT"})
			for _, m := range []pgproto3.FrontendMessage{
				&pgproto3.Query{String: "BEGIN"},
				&pgproto3.Query{String: "DECLARE r CURSOR FOR " + reads},
				&pgproto3.Execute{Portal: "r"}, &pgproto3.Sync{},
				&pgproto3.Query{String: "COMMIT"},
			} {
				fe.Send(m)
			}
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
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
		})
		t.Logf("errors: %v", codes)
		if e := recs[other]; e != nil && e.Rows != 0 {
			t.Errorf("the trail credits %q, whose portal a COMMIT destroyed, with the %d rows the cursor read", other, e.Rows)
		}
	})
}
