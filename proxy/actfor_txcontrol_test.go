package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestActForAfterTransactionControl tries the switches cfc1f6b
// allows after BEGIN, SAVEPOINT or RELEASE against savepoints released,
// reused and rolled back to, failed blocks and BEGIN inside a block:
// pgveil's acting user and the server's pgveil.act_for must agree, or
// pgveil must refuse statements until the client switches again.
func TestActForAfterTransactionControl(t *testing.T) {
	p := proxytest.StartDemo(t)
	a := actConn{c: p.Connect(t, "metabase")}
	france, all := directCount(t, proxytest.Scopes["marie"]), directCount(t, "true")
	ctx := context.Background()
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
	code := func(err error) string {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return pe.Code
		}
		if err != nil {
			return err.Error()
		}
		return ""
	}
	from := func(t *testing.T) {
		t.Helper()
		must(t, a.exec("ROLLBACK"))
		must(t, a.exec("SET ROLE marie"))
		acting(t, france, "marie")
	}
	t.Run("RELEASE;SAVEPOINT;SET after an earlier switch, then ROLLBACK TO", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT a"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("RELEASE a;SAVEPOINT a;SET ROLE marie"))
		acting(t, france, "marie")
		must(t, a.exec("ROLLBACK TO a"))
		// Upstream: hq (the new savepoint a came after it). pgveil must
		// not believe marie, nor the service: it follows the savepoint.
		acting(t, all, "hq")
		must(t, a.exec("COMMIT"))
		must(t, a.exec("SET ROLE hq"))
		acting(t, all, "hq")
	})
	t.Run("RELEASE;SET, then ROLLBACK TO the released savepoint fails, ROLLBACK", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT a"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("RELEASE a;SET ROLE hq"))
		if err := a.exec("ROLLBACK TO a"); code(err) != "3B001" {
			t.Fatalf("ROLLBACK TO a released savepoint: %v", err)
		}
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("RELEASE;SET, ROLLBACK TO fails, then COMMIT (answered ROLLBACK)", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT a"))
		must(t, a.exec("RELEASE a;SET ROLE hq"))
		if err := a.exec("ROLLBACK TO a"); code(err) != "3B001" {
			t.Fatalf("ROLLBACK TO a released savepoint: %v", err)
		}
		must(t, a.exec("COMMIT"))
		acting(t, france, "marie")
	})
	t.Run("duplicate savepoint names", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT a"))
		must(t, a.exec("SAVEPOINT a;SET ROLE hq"))
		must(t, a.exec("RELEASE a"))
		must(t, a.exec("COMMIT"))
		acting(t, all, "hq")
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT a"))
		must(t, a.exec("SAVEPOINT a;SET ROLE hq"))
		must(t, a.exec("RELEASE a"))
		must(t, a.exec("ROLLBACK TO a"))
		if err := a.exec("SELECT count(*) FROM responses"); code(err) != "42501" {
			t.Fatalf("after ROLLBACK TO: want a refusal while the acting user is unknown, got %v", err)
		}
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("BEGIN;SET in a failed block", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		if err := a.exec("SELECT 1/0"); code(err) != "22012" {
			t.Fatal(err)
		}
		if err := a.exec("BEGIN;SET ROLE hq"); code(err) != "25P02" {
			t.Fatalf("BEGIN;SET ROLE hq in a failed block: %v", err)
		}
		if err := a.exec("RELEASE x;SET ROLE hq"); code(err) != "25P02" {
			t.Fatalf("RELEASE;SET ROLE hq in a failed block: %v", err)
		}
		must(t, a.exec("COMMIT"))
		acting(t, france, "marie")
	})
	t.Run("BEGIN;SET inside an open block, then ROLLBACK", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("BEGIN;SET ROLE hq"))
		acting(t, all, "hq")
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("START TRANSACTION;SET, COMMIT AND CHAIN, switch back, ROLLBACK", func(t *testing.T) {
		from(t)
		must(t, a.exec("START TRANSACTION ISOLATION LEVEL REPEATABLE READ;SET ROLE hq"))
		must(t, a.exec("COMMIT AND CHAIN"))
		acting(t, all, "hq")
		must(t, a.exec("SAVEPOINT s;SET ROLE marie"))
		acting(t, france, "marie")
		must(t, a.exec("ROLLBACK"))
		acting(t, all, "hq")
	})
	t.Run("SAVEPOINT;SET, ROLLBACK TO it, switch again in the same text shape", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT s;SET ROLE hq"))
		must(t, a.exec("ROLLBACK TO s"))
		must(t, a.exec("RELEASE s;SAVEPOINT s;SET ROLE marie"))
		acting(t, france, "marie")
		must(t, a.exec("COMMIT"))
		acting(t, france, "marie")
	})
	must(t, a.exec("ROLLBACK"))
	must(t, a.exec("RESET ROLE"))
}

// TestActForAfterTransactionControlPooled: the same in transaction
// pooling, where the session keeps its backend from its first switch.
func TestActForAfterTransactionControlPooled(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p := startPooled(t, relay, 2, 5*time.Second)
		a := actConn{c: p.SimpleConn(t, "metabase")}
		other := p.SimpleConn(t, "marie")
		france, all := directCount(t, proxytest.Scopes["marie"]), directCount(t, "true")
		ctx := context.Background()
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
			// Another session never sees the switch.
			var s string
			if err := other.QueryRow(ctx, "SELECT coalesce(current_setting('pgveil.act_for', true), '')").Scan(&s); err != nil || s != "" {
				t.Fatalf("another session: pgveil.act_for %q, %v", s, err)
			}
		}
		must(t, a.exec("BEGIN;SET ROLE marie"))
		acting(t, france, "marie")
		must(t, a.exec("ROLLBACK"))
		if got := a.responses(t); got != 0 {
			t.Fatalf("after ROLLBACK: %d", got)
		}
		must(t, a.exec("BEGIN;SET ROLE marie"))
		must(t, a.exec("COMMIT"))
		acting(t, france, "marie")
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT _EXEC_SVP_1;SET ROLE hq"))
		must(t, a.exec("RELEASE _EXEC_SVP_1;SAVEPOINT _EXEC_SVP_1;SET ROLE marie"))
		must(t, a.exec("ROLLBACK TO _EXEC_SVP_1"))
		// Upstream: hq, set before the savepoint rolled back to.
		acting(t, all, "hq")
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
		var pe *pgconn.PgError
		if err := a.exec("SAVEPOINT s;SET ROLE hq"); !errors.As(err, &pe) || pe.Code != "25P01" {
			t.Fatalf("SAVEPOINT outside a block: %v", err)
		}
		acting(t, france, "marie")
		must(t, a.exec("SET ROLE hq"))
		acting(t, all, "hq")
	})
}

// TestActForMultiStatementParse: the extended protocol cannot
// prepare BEGIN;SET ROLE …, which the rewriter now lets through: the
// server's 42601 leaves the acting user as it was, on both sides, and a
// statement pipelined after it in its batch is skipped.
func TestActForMultiStatementParse(t *testing.T) {
	p := proxytest.StartDemo(t)
	a := actConn{c: p.Connect(t, "metabase")}
	france := directCount(t, proxytest.Scopes["marie"])
	must(t, a.exec("SET ROLE marie"))
	for _, sql := range []string{"BEGIN;SET ROLE hq", "SAVEPOINT s;SET ROLE hq", "RELEASE s;SAVEPOINT s;SET ROLE hq"} {
		fe := a.c.PgConn().Frontend()
		fe.Send(&pgproto3.Parse{Query: sql})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Parse{Query: "SELECT count(*) FROM responses"})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Execute{})
		fe.Send(&pgproto3.Sync{})
		must(t, fe.Flush())
		var codes []string
		var rows []string
	read:
		for {
			m, err := fe.Receive()
			must(t, err)
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				codes = append(codes, m.Code)
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.ReadyForQuery:
				break read
			}
		}
		t.Logf("%s: errors %v, rows %v", sql, codes, rows)
		if len(rows) != 0 || len(codes) == 0 {
			t.Fatalf("%s: errors %v, rows %v", sql, codes, rows)
		}
		if got := a.responses(t); got != france {
			t.Fatalf("after %s: %d responses, want marie's %d", sql, got, france)
		}
		var setting string
		if err := a.c.QueryRow(context.Background(), "SELECT current_setting('pgveil.act_for', true)").Scan(&setting); err != nil || setting != "marie" {
			t.Fatalf("after %s: upstream %q, %v", sql, setting, err)
		}
	}
	must(t, a.exec("RESET ROLE"))
}
