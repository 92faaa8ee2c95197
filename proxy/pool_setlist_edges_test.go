package proxy_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestTransactionPoolSetListEdges: a Query of SETs (c8fe0e9) that fails part way,
// is rolled back, rewound to a savepoint, or holds SET LOCAL, RESET or a
// refused setting never leaves a value the session did not keep, nor one
// another session on the same backend sees.
func TestTransactionPoolSetListEdges(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolSetListEdges)
}

func testTransactionPoolSetListEdges(t *testing.T, relay string) {
	p := startPooled(t, relay, 1, 5*time.Second)
	ctx := context.Background()
	a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	const q = "SELECT current_setting('work_mem') || ' ' || current_setting('lock_timeout') || ' ' || current_setting('extra_float_digits')"
	before, err := one(ctx, b, q)
	if err != nil {
		t.Fatal(err)
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
	exec := func(sql string) error { _, err := a.Exec(ctx, sql); return err }
	check := func(t *testing.T, want string) {
		t.Helper()
		for range 2 {
			if got, err := one(ctx, a, q); err != nil || got != want {
				t.Fatalf("the session that SET: %q, %v; want %q", got, err, want)
			}
			if got, err := one(ctx, b, q); err != nil || got != before {
				t.Fatalf("another session on the same backend: %q, %v; want %q", got, err, before)
			}
		}
	}
	check(t, before)
	// A bad value last: the implicit transaction rolls every SET back.
	if err := exec("SET work_mem = '7MB';SET lock_timeout = 'bogus';SHOW work_mem"); code(err) != "22023" {
		t.Fatalf("bad value: %v", err)
	}
	check(t, before)
	// A SHOW that fails last.
	if err := exec("SET work_mem = '7MB';SHOW no_such_setting"); code(err) != "42704" {
		t.Fatalf("bad SHOW: %v", err)
	}
	check(t, before)
	// A refused setting among them: the whole text is refused.
	if err := exec("SET work_mem = '7MB';SET search_path = evil"); code(err) != "42501" {
		t.Fatalf("refused setting: %v", err)
	}
	check(t, before)
	// BEGIN;SETs then ROLLBACK; a block failing then COMMIT.
	must(t, exec("BEGIN;SET work_mem = '7MB';SET lock_timeout = '3s'"))
	must(t, exec("ROLLBACK"))
	check(t, before)
	if err := exec("BEGIN;SET work_mem = '7MB';SET lock_timeout = 'bogus'"); code(err) != "22023" {
		t.Fatalf("bad value in a block: %v", err)
	}
	must(t, exec("COMMIT"))
	check(t, before)
	// In an open block, rewound to a savepoint, then committed.
	must(t, exec("BEGIN"))
	must(t, exec("SAVEPOINT s"))
	must(t, exec("SET work_mem = '7MB';SET lock_timeout = '3s'"))
	must(t, exec("ROLLBACK TO s"))
	must(t, exec("SET extra_float_digits = 2;SHOW work_mem"))
	must(t, exec("COMMIT"))
	if got, err := one(ctx, a, q); err != nil || got != "4MB 0 2" {
		t.Logf("after the savepoint (backend kept): %q, %v", got, err)
	}
	if got, err := one(ctx, a, q); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("session a now: %q (before %q)", got, before)
	}
}

// TestTransactionPoolSetListLocalAndReset: SET LOCAL and RESET in a list.
func TestTransactionPoolSetListLocalAndReset(t *testing.T) {
	p := startPooled(t, "", 1, time.Second)
	ctx := context.Background()
	a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	const q = "SELECT current_setting('work_mem') || ' ' || current_setting('lock_timeout')"
	before, err := one(ctx, b, q)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{
		"SET LOCAL work_mem = '7MB';SHOW work_mem",
		"BEGIN;SET LOCAL work_mem = '7MB';SET lock_timeout = '3s'",
		"SET work_mem = '7MB';RESET work_mem",
		"SET work_mem = '7MB';RESET ALL;SET lock_timeout = '3s'",
		"SET work_mem = '7MB';SET work_mem = '8MB'",
	} {
		if _, err := a.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		_, _ = a.Exec(ctx, "COMMIT")
		got, err := one(ctx, a, q)
		if err != nil {
			t.Fatal(err)
		}
		other, err := one(ctx, b, q)
		// b waits for the backend when a keeps it: give it the time.
		t.Logf("%s: a sees %q, b sees %q (%v)", sql, got, other, err)
		if err == nil && other != before {
			t.Fatalf("%s: another session sees %q, want %q", sql, other, before)
		}
	}
}
