package proxy_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
)

// TestPooledHoldCursorNotice: in transaction pooling a WITH HOLD cursor
// keeps the session's backend to its end; the client is told so once,
// when the transaction that declared it ends.
func TestPooledHoldCursorNotice(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		ctx := context.Background()
		p, _ := proxytest.StartDemoWith(t, proxytest.PooledDemo(t, 2), func(c *policy.Config) { c.Listen.Relay = relay })
		var mu sync.Mutex
		var notices []string
		cfg, err := pgx.ParseConfig(p.URL("marie", "demo-marie", nil))
		if err != nil {
			t.Fatal(err)
		}
		cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
			mu.Lock()
			notices = append(notices, n.Message)
			mu.Unlock()
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		c, err := pgx.ConnectConfig(cctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		taken := func() []string {
			mu.Lock()
			defer mu.Unlock()
			n := notices
			notices = nil
			return n
		}
		run := func(sql string) {
			t.Helper()
			if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		t.Run("a WITH HOLD cursor declared in a block is noticed at its COMMIT, once", func(t *testing.T) {
			run("BEGIN")
			run("DECLARE c23 CURSOR WITH HOLD FOR SELECT country FROM responses")
			if n := taken(); len(n) != 0 {
				t.Fatalf("notices before the COMMIT: %q", n)
			}
			run("COMMIT")
			n := taken()
			if len(n) != 1 || !strings.Contains(n[0], "c23") || !strings.Contains(n[0], "keeps") {
				t.Fatalf("notices at COMMIT: %q", n)
			}
			run("FETCH 1 FROM c23")
			run("CLOSE c23")
			if n := taken(); len(n) != 0 {
				t.Fatalf("notices after the COMMIT: %q", n)
			}
		})
		t.Run("one whose statement fails is not noticed: it does not exist", func(t *testing.T) {
			if _, err := c.PgConn().Exec(ctx, "DECLARE e23 CURSOR WITH HOLD FOR SELECT 1/0").ReadAll(); err == nil {
				t.Fatal("1/0 succeeded")
			}
			if n := taken(); len(n) != 0 {
				t.Fatalf("notices: %q", n)
			}
		})
		t.Run("one declared in a block that fails is not noticed at its ROLLBACK", func(t *testing.T) {
			run("BEGIN")
			run("DECLARE f23 CURSOR WITH HOLD FOR SELECT 1")
			if _, err := c.PgConn().Exec(ctx, "SELECT 1/0").ReadAll(); err == nil {
				t.Fatal("1/0 succeeded")
			}
			run("ROLLBACK")
			if n := taken(); len(n) != 0 {
				t.Fatalf("notices: %q", n)
			}
		})
		t.Run("one declared alone, in its own transaction, is noticed at once, its name quoted", func(t *testing.T) {
			run(`DECLARE "D 23" CURSOR WITH HOLD FOR SELECT 1`)
			if n := taken(); len(n) != 1 || !strings.Contains(n[0], `the cursor "D 23" was declared WITH HOLD`) {
				t.Fatalf("notices: %q", n)
			}
		})
	})
}

// TestPooledHoldCursorNoticeShapes: the notice tells of cursors that
// exist, whatever protocol declared them, and a block declaring many
// gets a bounded number of notices, not one per cursor held in memory.
func TestPooledHoldCursorNoticeShapes(t *testing.T) {
	ctx := context.Background()
	p, _ := proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 2))
	var mu sync.Mutex
	var notices []string
	cfg, err := pgx.ParseConfig(p.URL("marie", "demo-marie", nil))
	if err != nil {
		t.Fatal(err)
	}
	cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
		mu.Lock()
		notices = append(notices, n.Message)
		mu.Unlock()
	}
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	c, err := pgx.ConnectConfig(cctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		n := notices
		notices = nil
		return n
	}
	run := func(sql string) {
		t.Helper()
		if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Run("a named DECLARE parsed and not executed declares nothing, and is not noticed", func(t *testing.T) {
		if _, err := c.PgConn().Prepare(ctx, "h23", "DECLARE h23 CURSOR WITH HOLD FOR SELECT 1", nil); err != nil {
			t.Fatal(err)
		}
		if n := taken(); len(n) != 0 {
			t.Fatalf("notices at the Parse: %q", n)
		}
	})
	t.Run("it is noticed when an Execute of it declares the cursor", func(t *testing.T) {
		if _, err := c.PgConn().ExecPrepared(ctx, "h23", nil, nil, nil).Close(); err != nil {
			t.Fatal(err)
		}
		if n := taken(); len(n) != 1 || !strings.Contains(n[0], "h23") {
			t.Fatalf("notices at the Execute: %q", n)
		}
		run("CLOSE h23")
	})
	t.Run("one declared in a block rolled back, or rewound past it, is not noticed: it does not exist", func(t *testing.T) {
		for _, end := range []string{"ROLLBACK", "ROLLBACK TO SAVEPOINT s23; COMMIT", "ROLLBACK TO SAVEPOINT s23"} {
			run("BEGIN; SAVEPOINT s23")
			run("DECLARE r23 CURSOR WITH HOLD FOR SELECT 1")
			run(end)
			run("COMMIT") // a warning outside a block
			if n := slices.DeleteFunc(taken(), func(m string) bool { return !strings.Contains(m, "WITH HOLD") }); len(n) != 0 {
				t.Fatalf("%s: notices: %q", end, n)
			}
		}
		run("BEGIN; DECLARE k23 CURSOR WITH HOLD FOR SELECT 1")
		run("COMMIT")
		if n := taken(); len(n) != 1 || !strings.Contains(n[0], "k23") {
			t.Fatalf("a COMMIT alone after them: notices: %q", n)
		}
		run("CLOSE k23")
	})
	t.Run("a block declaring many cursors gets a bounded number of notices, the last counting the rest", func(t *testing.T) {
		var b strings.Builder
		b.WriteString("BEGIN;")
		for i := range 100 {
			fmt.Fprintf(&b, "DECLARE m23_%d CURSOR WITH HOLD FOR SELECT 1;", i)
		}
		run(b.String())
		run("COMMIT")
		n := taken()
		if len(n) == 0 || len(n) > 20 || !strings.Contains(n[len(n)-1], "more") {
			t.Fatalf("%d notices, the last: %q", len(n), n[len(n)-1:])
		}
	})
}
