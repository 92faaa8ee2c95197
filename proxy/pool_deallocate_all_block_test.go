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

// TestTransactionPoolDeallocateAllPortalInBlock: in a transaction block,
// a portal of DEALLOCATE ALL bound in one batch and executed in a later
// one (after a Sync, after another portal's Execute) still drops the
// backend's statements: the session's are gone, and another session's
// are prepared there again when it names them, not taken as held
// (26000). With one backend, both sessions take the same one.
func TestTransactionPoolDeallocateAllPortalInBlock(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolDeallocateAllPortalInBlock)
}

func testTransactionPoolDeallocateAllPortalInBlock(t *testing.T, relay string) {
	p := startPooled(t, relay, 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := p.SimpleConn(t, "hq").PgConn(), p.SimpleConn(t, "marie").PgConn()
	const q = "SELECT count(*) FROM responses"
	var pe *pgconn.PgError
	run := func(c *pgconn.PgConn, name string) error {
		return c.ExecPrepared(ctx, name, nil, nil, nil).Read().Err
	}
	if _, err := b.Prepare(ctx, "other", q, nil); err != nil {
		t.Fatal(err)
	}
	must(t, run(b, "other"))
	fe := a.Frontend()
	for _, way := range []struct {
		name string
		// between are sent after the Bind's batch, before the Execute.
		between [][]pgproto3.FrontendMessage
	}{
		{"after a Sync", nil},
		{"after another portal's Execute", [][]pgproto3.FrontendMessage{{
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
		}}},
	} {
		if _, err := a.Prepare(ctx, "s1", q, nil); err != nil {
			t.Fatal(err)
		}
		must(t, run(a, "s1"))
		must(t, run(b, "other"))
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: "BEGIN"}); len(codes) != 0 {
			t.Fatalf("%s: BEGIN: %v", way.name, codes)
		}
		if _, codes := proxytest.SendBatch(t, fe,
			&pgproto3.Parse{Query: "DEALLOCATE ALL"},
			&pgproto3.Bind{DestinationPortal: "d"},
			&pgproto3.Sync{}); len(codes) != 0 {
			t.Fatalf("%s: binding DEALLOCATE ALL: %v", way.name, codes)
		}
		for _, msgs := range way.between {
			if _, codes := proxytest.SendBatch(t, fe, msgs...); len(codes) != 0 {
				t.Fatalf("%s: %v", way.name, codes)
			}
		}
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Execute{Portal: "d"}, &pgproto3.Sync{}); len(codes) != 0 {
			t.Fatalf("%s: executing DEALLOCATE ALL: %v", way.name, codes)
		}
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: "COMMIT"}); len(codes) != 0 {
			t.Fatalf("%s: COMMIT: %v", way.name, codes)
		}
		if err := run(b, "other"); err != nil {
			t.Fatalf("%s: another session's statement after DEALLOCATE ALL: %v", way.name, err)
		}
		err := run(a, "s1")
		if !errors.As(err, &pe) || pe.Code != "26000" || pe.Message != `prepared statement "s1" does not exist` {
			t.Fatalf("%s: s1 after DEALLOCATE ALL: want 26000 naming it, got %v", way.name, err)
		}
	}
	// A Query the server skips, after an error of the extended
	// protocol, leaves the unnamed statement to the backend: a Bind of
	// it in a later batch runs the DEALLOCATE ALL again.
	if _, err := a.Prepare(ctx, "s1", q, nil); err != nil {
		t.Fatal(err)
	}
	must(t, run(a, "s1"))
	must(t, run(b, "other"))
	if _, codes := proxytest.SendBatch(t, fe,
		&pgproto3.Parse{Query: "DEALLOCATE ALL"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Query{String: "SELECT 1"},
		&pgproto3.Sync{}); len(codes) != 1 || codes[0] != "08P01" {
		t.Fatalf("a failed Bind of DEALLOCATE ALL: want 08P01 alone, got %v", codes)
	}
	if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}); len(codes) != 0 {
		t.Fatalf("the unnamed statement bound again: %v", codes)
	}
	if err := run(b, "other"); err != nil {
		t.Fatalf("another session's statement after DEALLOCATE ALL bound again: %v", err)
	}

	// Described, with a row limit, executed twice: it runs once.
	if _, err := a.Prepare(ctx, "s1", q, nil); err != nil {
		t.Fatal(err)
	}
	must(t, run(a, "s1"))
	must(t, run(b, "other"))
	_, codes := proxytest.SendBatch(t, fe,
		&pgproto3.Parse{Query: "DEALLOCATE ALL"},
		&pgproto3.Bind{DestinationPortal: "d"},
		&pgproto3.Describe{ObjectType: 'P', Name: "d"},
		&pgproto3.Execute{Portal: "d", MaxRows: 1},
		&pgproto3.Execute{Portal: "d"},
		&pgproto3.Sync{})
	if len(codes) > 1 {
		t.Fatalf("DEALLOCATE ALL executed twice: %v", codes)
	}
	if err := run(b, "other"); err != nil {
		t.Fatalf("another session's statement after DEALLOCATE ALL executed twice: %v", err)
	}
	err := run(a, "s1")
	if !errors.As(err, &pe) || pe.Code != "26000" || pe.Message != `prepared statement "s1" does not exist` {
		t.Fatalf("s1 after DEALLOCATE ALL executed twice: want 26000 naming it, got %v", err)
	}
	if _, err := a.Prepare(ctx, "s1", q, nil); err != nil {
		t.Fatal(err)
	}
	must(t, run(a, "s1"))
	must(t, run(b, "other"))

	// A Parse of the unnamed statement the server skips leaves the
	// DEALLOCATE ALL there too.
	must(t, run(a, "s1"))
	if _, codes := proxytest.SendBatch(t, fe,
		&pgproto3.Parse{Query: "DEALLOCATE ALL"},
		&pgproto3.Bind{Parameters: [][]byte{[]byte("1")}},
		&pgproto3.Parse{Query: "SELECT 1"},
		&pgproto3.Sync{}); len(codes) != 1 || codes[0] != "08P01" {
		t.Fatalf("a failed Bind of DEALLOCATE ALL: want 08P01 alone, got %v", codes)
	}
	proxytest.SendBatch(t, fe, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if err := run(b, "other"); err != nil {
		t.Fatalf("another session's statement after a skipped Parse: %v", err)
	}
}
