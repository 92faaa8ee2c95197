package proxy_test

import (
	"context"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// txStatusAfter sends msgs on c and returns the first error's SQLSTATE
// and the status of the last ReadyForQuery.
func txStatusAfter(t *testing.T, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) (code string, status byte) {
	t.Helper()
	pc := c.PgConn()
	fe := pc.Frontend()
	syncs := 0
	for _, m := range msgs {
		fe.Send(m)
		switch m.(type) {
		case *pgproto3.Sync, *pgproto3.Query:
			syncs++
		}
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	_ = pc.Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
	defer func() { _ = pc.Conn().SetReadDeadline(time.Time{}) }()
	for syncs > 0 {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("the connection ended: %v", err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			if code == "" {
				code = m.Code
			}
		case *pgproto3.ReadyForQuery:
			syncs--
			status = m.TxStatus
		}
	}
	return code, status
}

// A PREPARE TRANSACTION that fails becomes a ROLLBACK in PostgreSQL: the
// client is back outside a transaction block. postgres.js relies on it
// (sql.begin with sql.prepare releases its connection only on a
// ReadyForQuery of status I): a refusal that left the block open, aborted,
// hung every later query of the connection.
func TestRefusedPrepareTransactionEndsTheTransaction(t *testing.T) {
	modes := []struct {
		name string
		path func(t *testing.T) string
	}{
		{"with a session per client", func(*testing.T) string { return "../configs/demo.hcl" }},
		{"with a transaction pool", func(t *testing.T) string { return proxytest.PooledDemo(t, 2) }},
	}
	for _, mode := range modes {
		t.Run(mode.name, func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
				p, _ := proxytest.StartDemoWith(t, mode.path(t), func(c *policy.Config) { c.Listen.Relay = relay })
				for _, how := range []struct {
					name string
					msgs []pgproto3.FrontendMessage
				}{
					{"in the simple protocol", []pgproto3.FrontendMessage{&pgproto3.Query{String: "PREPARE TRANSACTION 'tx1'"}}},
					{"as a named statement, as postgres.js sends it", []pgproto3.FrontendMessage{
						&pgproto3.Parse{Name: "p1", Query: "prepare transaction 'tx1'"}, &pgproto3.Describe{ObjectType: 'S', Name: "p1"},
						&pgproto3.Bind{PreparedStatement: "p1"}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
					{"as an unnamed statement", []pgproto3.FrontendMessage{
						&pgproto3.Parse{Query: "prepare transaction 'tx1'"}, &pgproto3.Describe{ObjectType: 'S'},
						&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
				} {
					t.Run("refused "+how.name+" outside a transaction, or in an aborted one, it leaves none open", func(t *testing.T) {
						c := p.Connect(t, "marie")
						if code, status := txStatusAfter(t, c, how.msgs...); code != "42501" || status != 'I' {
							t.Errorf("outside a transaction: error %q, status %c; want 42501 and I", code, status)
						}
						txStatusAfter(t, c, &pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT 1/0"})
						// PostgreSQL answers a PREPARE TRANSACTION in an aborted
						// block with ROLLBACK: an error is pgveil's refusal.
						if _, status := txStatusAfter(t, c, how.msgs...); status != 'I' {
							t.Errorf("in an aborted transaction: status %c, want I", status)
						}
					})
					t.Run("refused "+how.name+", it leaves the client outside a transaction, as PostgreSQL does", func(t *testing.T) {
						c := p.Connect(t, "marie")
						if code, status := txStatusAfter(t, c, &pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "SELECT count(*) FROM responses"}); code != "" || status != 'T' {
							t.Fatalf("BEGIN; SELECT: error %q, status %c", code, status)
						}
						code, status := txStatusAfter(t, c, how.msgs...)
						if code != "42501" {
							t.Errorf("PREPARE TRANSACTION: error %q, want 42501", code)
						}
						if status != 'I' {
							t.Errorf("after the refused PREPARE TRANSACTION the status is %c, want I: PostgreSQL rolls back a transaction whose PREPARE fails", status)
						}
						var n int
						if err := c.QueryRow(context.Background(), "SELECT count(*) FROM responses").Scan(&n); err != nil || n == 0 {
							t.Errorf("the next query: %d rows, %v", n, err)
						}
					})
				}
			})
		})
	}
}

// A refused PREPARE TRANSACTION is recorded as refused whichever protocol
// sent it: in a transaction block, the extended protocol's goes upstream
// as the rollbackMarker its Execute fails with, and its record must still
// say denied, by rule two_phase_commit, not rewritten into pgveil's marker.
func TestRefusedPrepareTransactionAudit(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		recs := auditedRunOn(t, relay, nil, func(ctx context.Context, c *pgx.Conn) {
			for _, msgs := range [][]pgproto3.FrontendMessage{
				{&pgproto3.Query{String: "PREPARE TRANSACTION 'simple'"}},
				{&pgproto3.Parse{Name: "p1", Query: "PREPARE TRANSACTION 'named'"}, &pgproto3.Bind{PreparedStatement: "p1"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Query: "PREPARE TRANSACTION 'unnamed'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "p2", Query: "PREPARE TRANSACTION 'later'"}, &pgproto3.Sync{},
					&pgproto3.Bind{PreparedStatement: "p2"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			} {
				txStatusAfter(t, c, &pgproto3.Query{String: "BEGIN"})
				if code, status := txStatusAfter(t, c, msgs...); code != "42501" || status != 'I' {
					t.Errorf("%v: error %q, status %c; want 42501 and I", msgs[0], code, status)
				}
			}
			// The Parse answered before its Execute is sent: the refusal the
			// marker names is the Parse's batch's, answered since.
			txStatusAfter(t, c, &pgproto3.Query{String: "BEGIN"})
			txStatusAfter(t, c, &pgproto3.Parse{Name: "p3", Query: "PREPARE TRANSACTION 'sequential'"}, &pgproto3.Sync{})
			if code, status := txStatusAfter(t, c, &pgproto3.Bind{PreparedStatement: "p3"}, &pgproto3.Execute{}, &pgproto3.Sync{}); code != "42501" || status != 'I' {
				t.Errorf("executed in a later batch: error %q, status %c; want 42501 and I", code, status)
			}
		})
		for _, sql := range []string{"PREPARE TRANSACTION 'simple'", "PREPARE TRANSACTION 'named'", "PREPARE TRANSACTION 'unnamed'", "PREPARE TRANSACTION 'later'", "PREPARE TRANSACTION 'sequential'"} {
			e := recordOf(t, recs, sql)
			if e.Decision != "denied" || e.Reason != "two_phase_commit" || e.SQLState != "42501" || e.Rewritten != "" {
				t.Errorf("%s: recorded %s by %q, SQLSTATE %q, rewritten %q; want denied by two_phase_commit, 42501, nothing rewritten",
					sql, e.Decision, e.Reason, e.SQLState, e.Rewritten)
			}
		}
	})
}

// A named PREPARE TRANSACTION refused in a transaction block stays
// refused when the client executes it again outside one: there its
// rollbackMarker would only draw PostgreSQL's warning and a ROLLBACK, and
// the refused statement would seem to have run.
func TestRefusedPrepareTransactionExecutedAgain(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		recs := auditedRunOn(t, relay, nil, func(ctx context.Context, c *pgx.Conn) {
			txStatusAfter(t, c, &pgproto3.Query{String: "BEGIN"})
			if code, status := txStatusAfter(t, c, &pgproto3.Parse{Name: "p1", Query: "PREPARE TRANSACTION 'again'"},
				&pgproto3.Bind{PreparedStatement: "p1"}, &pgproto3.Execute{}, &pgproto3.Sync{}); code != "42501" || status != 'I' {
				t.Fatalf("in a block: error %q, status %c; want 42501 and I", code, status)
			}
			if code, status := txStatusAfter(t, c, &pgproto3.Bind{PreparedStatement: "p1"}, &pgproto3.Execute{}, &pgproto3.Sync{}); code != "42501" || status != 'I' {
				t.Errorf("again, outside a block: error %q, status %c; want 42501 and I", code, status)
			}
		})
		if e := recordOf(t, recs, "PREPARE TRANSACTION 'again'"); e.Decision != "denied" || e.Reason != "two_phase_commit" {
			t.Errorf("the last execution is recorded %s by %q, want denied by two_phase_commit", e.Decision, e.Reason)
		}
	})
}

// A refused PREPARE TRANSACTION pipelined behind a batch not yet answered
// may be outside a transaction block: it is refused there too, not sent
// as a rollbackMarker PostgreSQL would only warn about.
func TestRefusedPrepareTransactionPipelined(t *testing.T) {
	for _, mode := range []struct {
		name string
		path func(t *testing.T) string
	}{
		{"with a session per client", func(*testing.T) string { return "../configs/demo.hcl" }},
		{"with a transaction pool", func(t *testing.T) string { return proxytest.PooledDemo(t, 2) }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
				p, _ := proxytest.StartDemoWith(t, mode.path(t), func(c *policy.Config) { c.Listen.Relay = relay })
				c := p.Connect(t, "marie")
				// NOTE: whether the first batch is answered before pgveil
				// reads the Parse or not, the refusal must reach the client.
				if code, status := txStatusAfter(t, c, &pgproto3.Query{String: "SELECT pg_sleep(0.2)"},
					&pgproto3.Parse{Name: "p1", Query: "PREPARE TRANSACTION 'piped'"},
					&pgproto3.Bind{PreparedStatement: "p1"}, &pgproto3.Execute{}, &pgproto3.Sync{}); code != "42501" || status != 'I' {
					t.Errorf("error %q, status %c; want 42501 and I", code, status)
				}
				t.Run("and after an Execute of the same batch that may have ended the block", func(t *testing.T) {
					txStatusAfter(t, c, &pgproto3.Query{String: "BEGIN"})
					if code, status := txStatusAfter(t, c, &pgproto3.Parse{Query: "COMMIT"}, &pgproto3.Bind{}, &pgproto3.Execute{},
						&pgproto3.Parse{Name: "p2", Query: "PREPARE TRANSACTION 'after_commit'"},
						&pgproto3.Bind{PreparedStatement: "p2"}, &pgproto3.Execute{}, &pgproto3.Sync{}); code != "42501" || status != 'I' {
						t.Errorf("error %q, status %c; want 42501 and I", code, status)
					}
				})
			})
		})
	}
}
