package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
)

// TestActForIsTransactional: a change of the acting user made in a
// transaction stays when it commits and is undone when it rolls back, as
// PostgreSQL's SET ROLE is, on pgveil's side as upstream.
func TestActForIsTransactional(t *testing.T) {
	p := proxytest.StartDemo(t)
	a := actConn{c: p.Connect(t, "metabase")}
	france, all := directCount(t, proxytest.Scopes["marie"]), directCount(t, "true")
	ctx := context.Background()
	// acting checks what the session sees and what the upstream says.
	acting := func(t *testing.T, want int, wantSetting string) {
		t.Helper()
		if got := a.responses(t); got != want {
			t.Fatalf("%d responses, want %d", got, want)
		}
		var setting string
		if err := a.c.QueryRow(ctx, "SELECT current_setting('pgveil.act_for', true)").Scan(&setting); err != nil {
			t.Fatal(err)
		}
		if setting != wantSetting {
			t.Fatalf("pgveil.act_for upstream %q, want %q", setting, wantSetting)
		}
	}
	// batch runs queries as one extended-protocol batch, each parsed,
	// bound and executed unnamed, and one Sync, as PgJDBC sends them; it
	// returns the SQLSTATE of the first error, "" for none.
	batch := func(t *testing.T, queries ...string) string {
		t.Helper()
		fe := a.c.PgConn().Frontend()
		for _, q := range queries {
			fe.Send(&pgproto3.Parse{Query: q})
			fe.Send(&pgproto3.Bind{})
			fe.Send(&pgproto3.Execute{})
		}
		fe.Send(&pgproto3.Sync{})
		must(t, fe.Flush())
		code := ""
		for {
			m, err := fe.Receive()
			must(t, err)
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				if code == "" {
					code = m.Code
				}
			case *pgproto3.ReadyForQuery:
				return code
			}
		}
	}
	// from starts each case acting for marie, outside a transaction.
	from := func(t *testing.T) {
		t.Helper()
		must(t, a.exec("ROLLBACK"))
		must(t, a.exec("SET ROLE marie"))
		acting(t, france, "marie")
	}
	t.Run("a COMMIT keeps a switch made in its transaction", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("COMMIT"))
		acting(t, all, "hq")
	})
	t.Run("a ROLLBACK undoes it", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		acting(t, all, "hq")
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("so does the COMMIT of a failed transaction", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		if err := a.exec("SELECT 1/0"); err == nil {
			t.Fatal("1/0 succeeded")
		}
		must(t, a.exec("COMMIT"))
		acting(t, france, "marie")
	})
	t.Run("and an error ending the implicit transaction of the switch", func(t *testing.T) {
		from(t)
		if code := batch(t, "SET ROLE hq", "SELECT 1/0"); code != "22012" {
			t.Fatalf("the batch failed with %q, want 22012", code)
		}
		acting(t, france, "marie")
	})
	t.Run("BEGIN and the switch in one batch, as PgJDBC sends them, then a ROLLBACK", func(t *testing.T) {
		from(t)
		if code := batch(t, "BEGIN", "SET ROLE hq"); code != "" {
			t.Fatalf("the batch failed with %s", code)
		}
		if got := a.responses(t); got != all {
			t.Fatalf("%d responses, want hq's %d", got, all)
		}
		must(t, a.execExtended("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("ROLLBACK AND CHAIN undoes it too, and so does the COMMIT AND CHAIN of a failed block", func(t *testing.T) {
		for _, end := range []string{"ROLLBACK AND CHAIN", "COMMIT AND CHAIN"} {
			from(t)
			must(t, a.exec("BEGIN"))
			must(t, a.exec("SET ROLE hq"))
			if end == "COMMIT AND CHAIN" {
				if err := a.exec("SELECT 1/0"); err == nil {
					t.Fatal("1/0 succeeded")
				}
			}
			must(t, a.exec(end))
			acting(t, france, "marie")
			must(t, a.exec("COMMIT"))
			acting(t, france, "marie")
		}
	})
	t.Run("COMMIT AND CHAIN keeps it", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("COMMIT AND CHAIN"))
		must(t, a.exec("ROLLBACK"))
		acting(t, all, "hq")
	})
	t.Run("a switch the server skipped after an earlier error of its batch did not happen", func(t *testing.T) {
		from(t)
		fe := a.c.PgConn().Frontend()
		fe.Send(&pgproto3.Describe{ObjectType: 'S', Name: "no_such_statement"})
		fe.Send(&pgproto3.Flush{})
		must(t, fe.Flush())
		for {
			m, err := fe.Receive()
			must(t, err)
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				if e.Code != "26000" {
					t.Fatalf("%s: %s", e.Code, e.Message)
				}
				break
			}
		}
		if code := batch(t, "SET ROLE hq"); code != "" {
			t.Fatalf("the switch's batch failed with %s", code)
		}
		acting(t, france, "marie")
	})
	t.Run("a Query after a ROLLBACK sent without its Sync waits for it", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		fe := a.c.PgConn().Frontend()
		fe.Send(&pgproto3.Parse{Query: "ROLLBACK"})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Query{String: "SELECT count(*) FROM responses"})
		must(t, fe.Flush())
		var got []string
		for {
			m, err := fe.Receive()
			must(t, err)
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				got = append(got, e.Code)
			}
			if r, ok := m.(*pgproto3.DataRow); ok {
				got = append(got, string(r.Values[0]))
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if len(got) != 1 || got[0] != "42501" {
			t.Fatalf("the Query got %q, want a 42501 refusal", got)
		}
		acting(t, france, "marie")
	})
	t.Run("after a ROLLBACK TO SAVEPOINT the acting user is not known at once, and a ROLLBACK restores it", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT s"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("ROLLBACK TO SAVEPOINT s"))
		refusedBy(t, a.exec("SELECT count(*) FROM responses"), "act_for")
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("a ROLLBACK TO SAVEPOINT then a COMMIT leaves it unknown until the next switch", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT s"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("ROLLBACK TO SAVEPOINT s"))
		must(t, a.exec("COMMIT"))
		refusedBy(t, a.exec("SELECT count(*) FROM responses"), "act_for")
		must(t, a.exec("SET ROLE marie"))
		acting(t, france, "marie")
	})
	t.Run("a statement after a ROLLBACK in the same text, or pipelined after it, is refused", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		refusedBy(t, a.exec("ROLLBACK; SELECT count(*) FROM responses"), "act_for")
		// The refusal failed the block. Now the two texts pipelined: the
		// second is refused until the first is answered.
		fe := a.c.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "ROLLBACK"})
		fe.Send(&pgproto3.Query{String: "SELECT count(*) FROM responses"})
		must(t, fe.Flush())
		var codes []string
		for zs := 0; zs < 2; {
			m, err := fe.Receive()
			must(t, err)
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				codes = append(codes, m.Code)
			case *pgproto3.DataRow:
				codes = append(codes, "row")
			case *pgproto3.ReadyForQuery:
				zs++
			}
		}
		if len(codes) != 1 || codes[0] != "42501" {
			t.Fatalf("the pipelined SELECT got %q, want a 42501 refusal", codes)
		}
		acting(t, france, "marie")
	})
	must(t, a.exec("RESET ROLE"))
}
