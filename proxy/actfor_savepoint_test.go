package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
)

// TestActForRollbackToSavepoint: a ROLLBACK TO SAVEPOINT leaves the
// acting user PostgreSQL's SET ROLE semantics give (a switch made before
// the savepoint stays, one made after it is undone), as PgJDBC's
// autosave=always sends it (SAVEPOINT before each statement of a
// transaction, ROLLBACK TO SAVEPOINT after one that fails); where pgveil
// cannot tell, the statements are refused, never run for another user.
// Directly and behind a transaction pool.
func TestActForRollbackToSavepoint(t *testing.T) {
	t.Run("direct", func(t *testing.T) {
		p := proxytest.StartDemo(t)
		testActForRollbackToSavepoint(t, actConn{c: p.Connect(t, "metabase")})
	})
	t.Run("transaction pool", func(t *testing.T) {
		p := startPooled(t, policy.RelayEventLoop, 2, 5*time.Second)
		testActForRollbackToSavepoint(t, actConn{c: p.SimpleConn(t, "metabase")})
	})
}

func testActForRollbackToSavepoint(t *testing.T, a actConn) {
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
	fails := func(t *testing.T, sql, code string) {
		t.Helper()
		var pe *pgconn.PgError
		if err := a.exec(sql); !errors.As(err, &pe) || pe.Code != code {
			t.Fatalf("%s: want %s, got %v", sql, code, err)
		}
	}
	from := func(t *testing.T) {
		t.Helper()
		must(t, a.exec("ROLLBACK"))
		must(t, a.exec("SET ROLE marie"))
		acting(t, france, "marie")
	}
	// autosave runs sql as PgJDBC's autosave=always does in a
	// transaction: a SAVEPOINT first, a ROLLBACK TO it should sql fail.
	autosave := func(t *testing.T, sql string) error {
		t.Helper()
		must(t, a.execExtended("SAVEPOINT PGJDBC_AUTOSAVE"))
		err := a.execExtended(sql)
		if err != nil {
			must(t, a.execExtended("ROLLBACK TO SAVEPOINT PGJDBC_AUTOSAVE"))
		}
		return err
	}
	t.Run("PgJDBC's autosave: a switch before the savepoint stays", func(t *testing.T) {
		from(t)
		must(t, a.execExtended("BEGIN"))
		must(t, autosave(t, "SET ROLE hq"))
		if err := autosave(t, "SELECT 1/0"); err == nil {
			t.Fatal("SELECT 1/0 did not fail")
		}
		acting(t, all, "hq")
		must(t, autosave(t, "SET ROLE marie"))
		if err := autosave(t, "SELECT 1/0"); err == nil {
			t.Fatal("SELECT 1/0 did not fail")
		}
		acting(t, france, "marie")
		must(t, a.execExtended("COMMIT"))
		acting(t, france, "marie")
	})
	t.Run("savepoints of one name, released and rolled back to", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT a")) // a1, before any switch: marie
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("SAVEPOINT a")) // a2: hq
		must(t, a.exec("SET ROLE marie"))
		must(t, a.exec("SAVEPOINT a")) // a3: marie
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("ROLLBACK TO a")) // a3
		acting(t, france, "marie")
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("RELEASE a"))     // a3 gone
		must(t, a.exec("ROLLBACK TO a")) // a2
		acting(t, all, "hq")
		must(t, a.exec("RELEASE a"))     // a2 gone
		must(t, a.exec("ROLLBACK TO a")) // a1, before the first switch
		// Upstream: marie. pgveil did not follow a1: not known.
		refusedBy(t, a.exec("SELECT count(*) FROM responses"), "act_for")
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("SAVEPOINT;SET in one text, then ROLLBACK TO it", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SAVEPOINT s;SET ROLE hq"))
		acting(t, all, "hq")
		must(t, a.exec("ROLLBACK TO s"))
		// The savepoint came before the switch: undone upstream.
		acting(t, france, "marie")
		must(t, a.exec("COMMIT"))
		acting(t, france, "marie")
	})
	t.Run("a savepoint released with an older one", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("SAVEPOINT x"))
		must(t, a.exec("SAVEPOINT y"))
		must(t, a.exec("SET ROLE marie"))
		must(t, a.exec("RELEASE x"))
		fails(t, "ROLLBACK TO y", "3B001")
		fails(t, "ROLLBACK TO x", "3B001")
		must(t, a.exec("ROLLBACK"))
		acting(t, france, "marie")
	})
	t.Run("a SAVEPOINT that failed, then ROLLBACK TO its name", func(t *testing.T) {
		from(t)
		must(t, a.exec("BEGIN"))
		must(t, a.exec("SET ROLE hq"))
		must(t, a.exec("SAVEPOINT s"))
		must(t, a.exec("SET ROLE marie"))
		// Skipped after the error of its text: the s above stays the one.
		fails(t, "SELECT 1/0; SAVEPOINT s", "22012")
		must(t, a.exec("ROLLBACK TO s"))
		acting(t, all, "hq")
		must(t, a.exec("COMMIT"))
		acting(t, all, "hq")
	})
	t.Run("long or non-ASCII names are not followed", func(t *testing.T) {
		// The server may truncate or fold them otherwise than the
		// rewriter: with another encoding, two names pgveil tells apart
		// may be one savepoint upstream, or the reverse.
		// The rewriter clips a name of 64 bytes or more at a character
		// boundary: 62 ASCII bytes and a 2-byte character leave 62 ASCII
		// bytes, which a LATIN1 server (63 bytes, kept whole) or an
		// SQL_ASCII one (cut inside the character) names otherwise.
		long, clipped := strings.Repeat("s", 70), strings.Repeat("s", 62)+"é"
		for _, name := range []string{long, `"é"`, clipped} {
			from(t)
			must(t, a.exec("BEGIN"))
			must(t, a.exec("SET ROLE hq"))
			must(t, a.exec("SAVEPOINT "+name))
			must(t, a.exec("SET ROLE marie"))
			must(t, a.exec("ROLLBACK TO "+name))
			refusedBy(t, a.exec("SELECT count(*) FROM responses"), "act_for")
			must(t, a.exec("ROLLBACK"))
			acting(t, france, "marie")
		}
	})
	must(t, a.exec("ROLLBACK"))
	must(t, a.exec("RESET ROLE"))
}
