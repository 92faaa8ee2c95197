package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestTransactionPoolDeallocateElsewhere holds psqlODBC's DEALLOCATE of
// a statement it prepared in an earlier transaction (autocommit on, ODBC's
// default) to working on a backend that lacks the statement: the one it
// was prepared on is held by another session meanwhile.
func TestTransactionPoolDeallocateElsewhere(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolDeallocateElsewhere)
}

func testTransactionPoolDeallocateElsewhere(t *testing.T, relay string) {
	p := startPooled(t, relay, 2, 5*time.Second)
	ctx := context.Background()
	const q = "SELECT count(*) FROM responses"
	hqRows := proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["hq"])[0][0]
	a, b := p.SimpleConn(t, "hq").PgConn(), p.SimpleConn(t, "marie").PgConn()
	exec := func(c *pgconn.PgConn, sql string) error { _, err := c.Exec(ctx, sql).ReadAll(); return err }
	var pgErr *pgconn.PgError
	for round := 0; round < 3; round++ {
		// Prepared on the one backend there is.
		if _, err := a.Prepare(ctx, "_PLAN0x2", q, nil); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
		if res := a.ExecPrepared(ctx, "_PLAN0x2", nil, nil, nil).Read(); res.Err != nil || string(res.Rows[0][0]) != hqRows {
			t.Fatalf("round %d: %v, %v", round, res.Rows, res.Err)
		}
		// Another session holds it in a transaction; the DEALLOCATE
		// runs on a second backend.
		must(t, exec(b, "BEGIN"))
		must(t, exec(b, "SELECT 1"))
		if err := exec(a, `DEALLOCATE "_PLAN0x2"`); err != nil {
			t.Fatalf("round %d: DEALLOCATE on a backend that lacks the statement: %v", round, err)
		}
		if res := a.ExecPrepared(ctx, "_PLAN0x2", nil, nil, nil).Read(); !errors.As(res.Err, &pgErr) || pgErr.Code != "26000" ||
			pgErr.Message != `prepared statement "_PLAN0x2" does not exist` {
			t.Fatalf("round %d: running a statement deallocated: %v", round, res.Err)
		}
		must(t, exec(b, "ROLLBACK"))
	}
	if res, err := a.Exec(ctx, "SELECT 'usable'").ReadAll(); err != nil || string(res[0].Rows[0][0]) != "usable" {
		t.Fatalf("after: %v, %v", res, err)
	}
}
