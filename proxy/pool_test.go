package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// startPooled runs the demo in transaction mode with a pool of size
// backends and a wait timeout of wait, its plaintext sessions relayed as
// relay says (policy.RelayEventLoop or policy.RelayGoroutines).
func startPooled(t *testing.T, relay string, size int, wait time.Duration, opts ...func(*proxy.Options)) *proxytest.Proxy {
	t.Helper()
	p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: size, WaitTimeout: wait, IdleTimeout: time.Minute}, opts...)
	p.Started = proxytest.Direct(t, "SELECT clock_timestamp()::text")[0][0]
	return p
}

// startDemoPool runs the demo with the upstream pool block pool, its
// plaintext sessions relayed as relay says.
func startDemoPool(t *testing.T, relay string, pool policy.Pool, opts ...func(*proxy.Options)) *proxytest.Proxy {
	t.Helper()
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = pool
		c.Listen.Relay = relay
	}, opts...)
	return p
}

// gauge returns the value of the metric name of reg: a gauge's or a
// counter's, -1 when reg has none.
func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			m := f.GetMetric()[0]
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	return -1
}

// one runs sql and returns the first column of its first row.
func one(ctx context.Context, c *pgx.Conn, sql string) (string, error) {
	var s string
	err := c.QueryRow(ctx, sql).Scan(&s)
	return s, err
}

func TestTransactionPool(t *testing.T) { proxytest.OnEveryRelay(t, testTransactionPool) }

func testTransactionPool(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p := startPooled(t, relay, 3, 2*time.Second)
	ctx := context.Background()
	want := map[string]string{}
	for _, u := range []string{"marie", "hq"} {
		want[u] = proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes[u])[0][0]
	}

	t.Run("twelve sessions of two users run on three backends, each seeing its own rows", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 12)
		for i := range 12 {
			user := []string{"marie", "hq"}[i%2]
			c := p.SimpleConn(t, user)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for range 30 {
					got, err := one(ctx, c, "SELECT count(*)::text FROM responses")
					if err != nil {
						errs <- err
						return
					}
					if got != want[user] {
						errs <- fmt.Errorf("%s counted %s rows, want %s", user, got, want[user])
						return
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n := p.PoolBackends(t); n > 3 {
			t.Errorf("%d backends upstream, want at most 3", n)
		}
	})

	t.Run("a SET in a block rewound to a savepoint, or ended by a pipelined COMMIT and ROLLBACK, keeps its backend, closed at the session's end", func(t *testing.T) {
		rewound := func(c *pgx.Conn) error {
			for _, q := range []string{"BEGIN", "SET DateStyle = 'German'", "SAVEPOINT s", "SET DateStyle = 'SQL'", "ROLLBACK TO SAVEPOINT s", "COMMIT"} {
				if _, err := c.Exec(ctx, q); err != nil {
					return err
				}
			}
			return nil
		}
		pipelined := func(c *pgx.Conn) error {
			for _, q := range []string{"BEGIN", "SET DateStyle = 'German'"} {
				if _, err := c.Exec(ctx, q); err != nil {
					return err
				}
			}
			batch := &pgconn.Batch{}
			batch.ExecParams("COMMIT", nil, nil, nil, nil)
			batch.ExecParams("ROLLBACK", nil, nil, nil, nil)
			_, err := c.PgConn().ExecBatch(ctx, batch).ReadAll()
			return err
		}
		for _, set := range []func(*pgx.Conn) error{rewound, pipelined} {
			a, b := p.SimpleConn(t, "marie"), p.SimpleConn(t, "hq")
			if err := set(a); err != nil {
				t.Fatal(err)
			}
			const q = "SELECT DATE '2024-01-31'::text"
			for range 5 {
				if got, err := one(ctx, b, q); err != nil || got != "2024-01-31" {
					t.Fatalf("the other session read %q, %v: want 2024-01-31", got, err)
				}
				if got, err := one(ctx, a, q); err != nil || got != "31.01.2024" {
					t.Fatalf("the session that SET DateStyle read %q, %v: want 31.01.2024", got, err)
				}
			}
			before := p.PoolBackends(t)
			a.Close(ctx)
			proxytest.Eventually(t, 5*time.Second, "the backend with the SET to close", func() bool { return p.PoolBackends(t) == before-1 })
			if got, err := one(ctx, b, "SHOW DateStyle"); err != nil || got != "ISO, MDY" {
				t.Fatalf("DateStyle %q, %v after the other session ended", got, err)
			}
			b.Close(ctx)
		}
	})

	t.Run("a named prepared statement is never seen by another session", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.PgConn().Prepare(ctx, "hq_rows", "SELECT count(*) FROM responses", nil); err != nil {
			t.Fatal(err)
		}
		for range 5 {
			if _, err := one(ctx, b, "EXECUTE hq_rows"); err == nil {
				t.Fatal("another session ran the prepared statement")
			}
		}
		res := a.PgConn().ExecPrepared(ctx, "hq_rows", nil, nil, nil).Read()
		if res.Err != nil || string(res.Rows[0][0]) != want["hq"] {
			t.Fatalf("the session's own prepared statement: %v, %v", res.Rows, res.Err)
		}
	})

	t.Run("a cancel reaches the backend running the statement", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		began := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(10)")
			done <- err
		}()
		proxytest.Eventually(t, 5*time.Second, "the statement to run", func() bool {
			return proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND query LIKE '%pg_sleep(10)%'")[0][0] == "1"
		})
		pid := proxytest.Direct(t, "SELECT pid FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND query LIKE '%pg_sleep(10)%'")[0][0]
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		err := <-done
		var pgErr *pgconn.PgError
		if time.Since(began) > 5*time.Second || !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("want 57014 at once, got %v after %s", err, time.Since(began))
		}
		if got, err := one(ctx, c, "SELECT 'still usable'"); err != nil || got != "still usable" {
			t.Fatalf("after the cancel: %q, %v", got, err)
		}
		// A late cancel must never reach another session's statement.
		proxytest.Eventually(t, 5*time.Second, "the cancelled backend to close", func() bool {
			return proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE pid = "+pid)[0][0] == "0"
		})
	})

	t.Run("a backend closed while free is replaced", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		if _, err := one(ctx, c, "SELECT 'warm'"); err != nil {
			t.Fatal(err)
		}
		proxytest.Direct(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND state = 'idle'")
		proxytest.Eventually(t, 5*time.Second, "the free backends to go", func() bool {
			return proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND state = 'idle'")[0][0] == "0"
		})
		for range 3 {
			if got, err := one(ctx, c, "SELECT 'fresh'"); err != nil || got != "fresh" {
				t.Fatalf("after the backends were closed: %q, %v", got, err)
			}
		}
	})

	t.Run("a backend lost in mid-transaction ends its session only", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, a, "SELECT 'in a transaction'"); err != nil {
			t.Fatal(err)
		}
		proxytest.Direct(t, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:%' AND state = 'idle in transaction'")
		if _, err := one(ctx, a, "SELECT 'after'"); err == nil {
			t.Fatal("the transaction went on without its backend")
		}
		if got, err := one(ctx, b, "SELECT 'unaffected'"); err != nil || got != "unaffected" {
			t.Fatalf("the other session: %q, %v", got, err)
		}
	})
}

func TestTransactionPoolExhausted(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolExhausted)
}

func testTransactionPoolExhausted(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	reg := prometheus.NewRegistry()
	p := startPooled(t, relay, 1, 200*time.Millisecond, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()
	holder, waiter := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, holder, "SELECT 'holding'"); err != nil {
		t.Fatal(err)
	}
	check := func(t *testing.T, err error) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "53300" || pgErr.Hint == "" {
			t.Fatalf("want 53300 with a hint, got %v", err)
		}
	}
	t.Run("a simple query waits, then gets 53300", func(t *testing.T) {
		_, err := one(ctx, waiter, "SELECT 1")
		check(t, err)
	})
	t.Run("an extended-protocol batch gets 53300 at its Sync", func(t *testing.T) {
		res := waiter.PgConn().ExecParams(ctx, "SELECT $1::text", [][]byte{[]byte("x")}, nil, nil, nil).Read()
		check(t, res.Err)
	})
	t.Run("waits that start apart each last the whole timeout", func(t *testing.T) {
		late := p.SimpleConn(t, "marie")
		errs := make(chan error, 2)
		waited := make(chan time.Duration, 2)
		for i, c := range []*pgx.Conn{waiter, late} {
			go func() {
				start := time.Now()
				_, err := one(ctx, c, "SELECT 1")
				waited <- time.Since(start)
				errs <- err
			}()
			if i == 0 {
				time.Sleep(120 * time.Millisecond)
			}
		}
		for range 2 {
			check(t, <-errs)
			if d := <-waited; d < 200*time.Millisecond {
				t.Errorf("a wait ended after %v, before the pool's wait timeout", d)
			}
		}
	})
	t.Run("the metrics count the backend and the timeouts", func(t *testing.T) {
		for name, want := range map[string]float64{"pgveil_pool_backends": 1, "pgveil_pool_backends_free": 0,
			"pgveil_pool_waiting": 0, "pgveil_pool_wait_timeouts_total": 4} {
			if got := gauge(t, reg, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	})
	t.Run("the session is usable once a backend is free", func(t *testing.T) {
		if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, waiter, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("%q, %v", got, err)
		}
		res := waiter.PgConn().ExecParams(ctx, "SELECT $1::text", [][]byte{[]byte("x")}, nil, nil, nil).Read()
		if res.Err != nil || string(res.Rows[0][0]) != "x" {
			t.Fatalf("%v, %v", res.Rows, res.Err)
		}
	})
	t.Run("a client that leaves while it waits costs the pool nothing", func(t *testing.T) {
		if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, holder, "SELECT 'holding'"); err != nil {
			t.Fatal(err)
		}
		leaver := p.SimpleConn(t, "marie")
		fe := leaver.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "SELECT 'never answered'"})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		proxytest.Eventually(t, 5*time.Second, "the query waits for a backend", func() bool {
			return gauge(t, reg, "pgveil_pool_waiting") == 1
		})
		leaver.PgConn().Conn().Close()
		proxytest.Eventually(t, 5*time.Second, "the wait ends with its client", func() bool {
			return gauge(t, reg, "pgveil_pool_waiting") == 0
		})
		if _, err := holder.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, waiter, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("%q, %v", got, err)
		}
		if got := gauge(t, reg, "pgveil_pool_backends"); got != 1 {
			t.Fatalf("pgveil_pool_backends = %v, want 1", got)
		}
	})
}

func TestTransactionPoolStatements(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolStatements)
}

func testTransactionPoolStatements(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p := startPooled(t, relay, 1, 2*time.Second)
	ctx := context.Background()
	hqRows := proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["hq"])[0][0]
	marieRows := proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["marie"])[0][0]
	const q = "SELECT count(*) FROM responses"

	t.Run("another session's unnamed statement is never run", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.PgConn().Prepare(ctx, "", q, nil); err != nil {
			t.Fatal(err)
		}
		res := b.PgConn().ExecPrepared(ctx, "", nil, nil, nil).Read()
		if res.Err == nil && len(res.Rows) > 0 && string(res.Rows[0][0]) == hqRows {
			t.Fatal("a session ran another user's unnamed statement")
		}
	})
	t.Run("a session's unnamed statement follows it from batch to batch", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.PgConn().Prepare(ctx, "", q, nil); err != nil {
			t.Fatal(err)
		}
		if _, err := b.PgConn().Prepare(ctx, "", q, nil); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			conn *pgx.Conn
			want string
		}{{a, hqRows}, {b, marieRows}, {a, hqRows}} {
			res := c.conn.PgConn().ExecPrepared(ctx, "", nil, nil, nil).Read()
			if res.Err != nil || string(res.Rows[0][0]) != c.want {
				t.Fatalf("got %v, %v; want %s", res.Rows, res.Err, c.want)
			}
		}
	})
	t.Run("named statements of two sessions of one name stay apart", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		for _, c := range []*pgx.Conn{a, b} {
			if _, err := c.PgConn().Prepare(ctx, "rows", q, nil); err != nil {
				t.Fatal(err)
			}
		}
		for range 3 {
			for c, want := range map[*pgx.Conn]string{a: hqRows, b: marieRows} {
				res := c.PgConn().ExecPrepared(ctx, "rows", nil, nil, nil).Read()
				if res.Err != nil || string(res.Rows[0][0]) != want {
					t.Fatalf("got %v, %v; want %s", res.Rows, res.Err, want)
				}
			}
		}
	})
	t.Run("a statement name another session uses upstream is out of reach", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.PgConn().Prepare(ctx, "mine", q, nil); err != nil {
			t.Fatal(err)
		}
		names := proxytest.Direct(t, "SELECT name FROM pg_prepared_statements")
		_ = names // upstream names are per backend; the direct connection has none
		for _, guess := range []string{"mine", "pgveil_mine"} {
			res := b.PgConn().ExecPrepared(ctx, guess, nil, nil, nil).Read()
			if res.Err == nil {
				t.Fatalf("%s: another session's statement ran: %v", guess, res.Rows)
			}
		}
	})
	t.Run("errors name the client's statements, never their names upstream", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		if _, err := c.PgConn().Prepare(ctx, "taken", q, nil); err != nil {
			t.Fatal(err)
		}
		_, err := c.PgConn().Prepare(ctx, "taken", q, nil)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P05" || pgErr.Message != `prepared statement "taken" already exists` {
			t.Fatalf("preparing a name taken: %v", err)
		}
		// Two batches in one pipeline, each failing on its own name.
		pipe := c.PgConn().StartPipeline(ctx)
		for _, name := range []string{"never", "nor-this"} {
			pipe.SendQueryPrepared(name, nil, nil, nil)
			if err := pipe.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		var msgs []string
		for range 4 {
			res, err := pipe.GetResults()
			if errors.As(err, &pgErr) {
				msgs = append(msgs, pgErr.Message)
			} else if rr, ok := res.(*pgconn.ResultReader); ok {
				if _, err := rr.Close(); errors.As(err, &pgErr) {
					msgs = append(msgs, pgErr.Message)
				}
			}
		}
		_ = pipe.Close()
		want := []string{`prepared statement "never" does not exist`, `prepared statement "nor-this" does not exist`}
		if fmt.Sprint(msgs) != fmt.Sprint(want) {
			t.Fatalf("got %q, want %q", msgs, want)
		}
	})
	t.Run("psqlODBC's DEALLOCATE of a statement it prepared closes it, between its savepoints", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		pc := c.PgConn()
		exec := func(sql string) error { _, err := pc.Exec(ctx, sql).ReadAll(); return err }
		run := func(name string) (string, error) {
			res := pc.ExecPrepared(ctx, name, nil, nil, nil).Read()
			if res.Err != nil {
				return "", res.Err
			}
			return string(res.Rows[0][0]), nil
		}
		var pgErr *pgconn.PgError
		// In the transaction that used it, as with autocommit off.
		must(t, exec("BEGIN"))
		if _, err := pc.Prepare(ctx, "_PLAN0x1", q, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := run("_PLAN0x1"); err != nil || got != hqRows {
			t.Fatalf("%q, %v", got, err)
		}
		must(t, exec(`SAVEPOINT _per_query_svp_;DEALLOCATE "_PLAN0x1";RELEASE _per_query_svp_`))
		if _, err := run("_PLAN0x1"); !errors.As(err, &pgErr) || pgErr.Code != "26000" || pgErr.Message != `prepared statement "_PLAN0x1" does not exist` {
			t.Fatalf("running a statement deallocated: %v", err)
		}
		must(t, exec("ROLLBACK"))
		// Prepared in an earlier transaction, on the one backend.
		if _, err := pc.Prepare(ctx, "_PLAN0x1", q, nil); err != nil {
			t.Fatalf("the name is free again: %v", err)
		}
		must(t, exec(`DEALLOCATE "_PLAN0x1"`))
		if _, err := run("_PLAN0x1"); !errors.As(err, &pgErr) || pgErr.Code != "26000" {
			t.Fatalf("running a statement deallocated: %v", err)
		}
		// A name the session never prepared fails as in PostgreSQL.
		if err := exec("DEALLOCATE never_prepared"); !errors.As(err, &pgErr) || pgErr.Code != "26000" ||
			pgErr.Message != `prepared statement "never_prepared" does not exist` {
			t.Fatalf("deallocating a name never prepared: %v", err)
		}
		for _, sql := range []string{"DEALLOCATE ALL; DEALLOCATE never_prepared", "PREPARE p AS SELECT 1", "EXECUTE p", "DEALLOCATE never_prepared; SELECT 1"} {
			if err := exec(sql); !errors.As(err, &pgErr) || pgErr.Code != "0A000" || !strings.Contains(pgErr.Message, "transaction_pooling") {
				t.Fatalf("%s: want a transaction_pooling refusal, got %v", sql, err)
			}
		}
		if got, err := one(ctx, c, "SELECT 'usable'"); err != nil || got != "usable" {
			t.Fatalf("after the refusals: %q, %v", got, err)
		}
	})
	t.Run("psqlODBC's SETs sent in one text follow the session, keeping no backend", func(t *testing.T) {
		// With one backend: a session that kept it would leave b waiting.
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		const q = "SELECT DATE '2024-01-31'::text || ' ' || current_setting('extra_float_digits') || ' ' || current_setting('TimeZone')"
		before, err := one(ctx, b, q)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.Exec(ctx, "SET DateStyle = 'German';SET extra_float_digits = 2;show transaction_isolation"); err != nil {
			t.Fatal(err)
		}
		check := func(want string) {
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
		zone := before[strings.LastIndexByte(before, ' ')+1:]
		check("31.01.2024 2 " + zone)
		// With autocommit off: BEGIN;SET …, kept if the block commits.
		for _, end := range []string{"ROLLBACK", "COMMIT"} {
			if _, err := a.Exec(ctx, "BEGIN;SET TimeZone = 'Asia/Tokyo';SET extra_float_digits = 3"); err != nil {
				t.Fatal(err)
			}
			if _, err := a.Exec(ctx, end); err != nil {
				t.Fatal(err)
			}
		}
		check("31.01.2024 3 Asia/Tokyo")
	})
	t.Run("pgx's statement cache works across transactions", func(t *testing.T) {
		c := p.Connect(t, "hq")
		for range 10 {
			var n string
			if err := c.QueryRow(ctx, "SELECT count(*)::text FROM responses WHERE $1::int > 0", 1).Scan(&n); err != nil || n != hqRows {
				t.Fatalf("%q, %v", n, err)
			}
		}
	})
	t.Run("asyncpg's reset on release gives the backend back", func(t *testing.T) {
		// With one backend: one the reset kept would leave b waiting.
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.Exec(ctx, "SET DateStyle = 'German'"); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Exec(ctx, "SELECT pg_advisory_unlock_all();\nCLOSE ALL;\nUNLISTEN *;\nRESET ALL;"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, b, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("another session: %q, %v", got, err)
		}
		if got, err := one(ctx, a, "SELECT DATE '2024-01-31'::text"); err != nil || got != "2024-01-31" {
			t.Fatalf("the session that reset: %q, %v", got, err)
		}
	})
	t.Run("a SET follows its session from backend to backend, and RESET with it", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		// DBeaver, Tableau and Metabase send these at connect.
		for _, q := range []string{"SET DateStyle = 'German'", "SET application_name = 'DBeaver 23.3.0 - SQLEditor'",
			"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY"} {
			if _, err := a.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		const q = "SELECT DATE '2024-01-31'::text || ' ' || current_setting('transaction_read_only')"
		for range 3 {
			if got, err := one(ctx, a, q); err != nil || got != "31.01.2024 on" {
				t.Fatalf("the session that SET: %q, %v", got, err)
			}
			if got, err := one(ctx, b, q); err != nil || got != "2024-01-31 off" {
				t.Fatalf("another session on the same backend: %q, %v", got, err)
			}
		}
		// The extended protocol, as PgJDBC sends a SET.
		if res := a.PgConn().ExecParams(ctx, "SET TimeZone = 'Asia/Tokyo'", nil, nil, nil, nil).Read(); res.Err != nil {
			t.Fatal(res.Err)
		}
		if _, err := one(ctx, b, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, a, "SHOW TimeZone"); err != nil || got != "Asia/Tokyo" {
			t.Fatalf("TimeZone %q, %v", got, err)
		}
		if got, err := one(ctx, b, "SHOW TimeZone"); err != nil || got == "Asia/Tokyo" {
			t.Fatalf("the other session's TimeZone %q, %v", got, err)
		}
		if _, err := a.Exec(ctx, "RESET DateStyle"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, b, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, a, q); err != nil || got != "2024-01-31 on" {
			t.Fatalf("after RESET DateStyle: %q, %v", got, err)
		}
		if _, err := a.Exec(ctx, "RESET ALL"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, a, q); err != nil || got != "2024-01-31 off" {
			t.Fatalf("after RESET ALL: %q, %v", got, err)
		}
		// A SET that fails is not replayed.
		if _, err := a.Exec(ctx, "SET DateStyle = 'nonsense'"); err == nil {
			t.Fatal("a bad DateStyle was accepted")
		}
		if _, err := one(ctx, b, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, a, "SHOW DateStyle"); err != nil || got != "ISO, MDY" {
			t.Fatalf("after a failed SET: %q, %v", got, err)
		}
	})
	t.Run("a SET in a committed block follows its session, and one rolled back does not", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		run := func(c *pgx.Conn, qs ...string) {
			t.Helper()
			for _, q := range qs {
				if _, err := c.Exec(ctx, q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
		}
		show := func(c *pgx.Conn, setting, want string) {
			t.Helper()
			// The other session runs on the one backend in between.
			other := b
			if c == b {
				other = a
			}
			if _, err := one(ctx, other, "SELECT 1"); err != nil {
				t.Fatal(err)
			}
			if got, err := one(ctx, c, "SHOW "+setting); err != nil || got != want {
				t.Fatalf("%s %q, %v: want %q", setting, got, err, want)
			}
		}
		run(a, "BEGIN", "SET DateStyle = 'German'", "COMMIT")
		show(a, "DateStyle", "German, DMY")
		show(b, "DateStyle", "ISO, MDY")

		run(a, "BEGIN", "SET TimeZone = 'Asia/Tokyo'", "ROLLBACK")
		show(a, "TimeZone", proxytest.Direct(t, "SHOW TimeZone")[0][0])

		// A failed block rolls back at its COMMIT.
		run(a, "BEGIN", "SET DateStyle = 'SQL'")
		if _, err := a.Exec(ctx, "SELECT 1/0"); err == nil {
			t.Fatal("1/0 did not fail")
		}
		run(a, "COMMIT")
		show(a, "DateStyle", "German, DMY")

		// PgJDBC with autocommit off: BEGIN and the SET in one batch.
		batch := &pgconn.Batch{}
		batch.ExecParams("BEGIN", nil, nil, nil, nil)
		batch.ExecParams("SET IntervalStyle = 'postgres_verbose'", nil, nil, nil, nil)
		if _, err := a.PgConn().ExecBatch(ctx, batch).ReadAll(); err != nil {
			t.Fatal(err)
		}
		run(a, "COMMIT")
		show(a, "IntervalStyle", "postgres_verbose")
		show(b, "IntervalStyle", "postgres")

		// A SET first in its batch, made a block's by a BEGIN after it:
		// the block decides.
		pipelined := func(qs ...string) {
			t.Helper()
			batch := &pgconn.Batch{}
			for _, q := range qs {
				batch.ExecParams(q, nil, nil, nil, nil)
			}
			_, _ = a.PgConn().ExecBatch(ctx, batch).ReadAll()
		}
		pipelined("SET TimeZone = 'Asia/Tokyo'", "BEGIN")
		run(a, "ROLLBACK")
		show(a, "TimeZone", proxytest.Direct(t, "SHOW TimeZone")[0][0])
		pipelined("SET TimeZone = 'Asia/Tokyo'", "BEGIN")
		run(a, "COMMIT")
		show(a, "TimeZone", "Asia/Tokyo")
		show(b, "TimeZone", proxytest.Direct(t, "SHOW TimeZone")[0][0])
		// Committed before its batch failed.
		pipelined("SET TimeZone = 'Europe/Paris'", "BEGIN", "COMMIT", "SELECT 1/0")
		show(a, "TimeZone", "Europe/Paris")
		show(b, "TimeZone", proxytest.Direct(t, "SHOW TimeZone")[0][0])

		// RESET in a committed block.
		run(a, "BEGIN", "RESET DateStyle", "END")
		show(a, "DateStyle", "ISO, MDY")
		show(a, "IntervalStyle", "postgres_verbose")
		run(a, "RESET ALL")
		show(a, "IntervalStyle", "postgres")
	})

	t.Run("an unnamed SET bound again in a later batch never reaches another session", func(t *testing.T) {
		// The SET's own batch fails, or its block rolls back, so its
		// setting is dropped; the unnamed statement stays prepared, and
		// a later Bind runs it.
		// send sends a batch and reports whether it failed.
		send := func(t *testing.T, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) bool {
			t.Helper()
			fe := c.PgConn().Frontend()
			for _, m := range msgs {
				fe.Send(m)
			}
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			failed := false
			for {
				m, err := fe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				switch m.(type) {
				case *pgproto3.ErrorResponse:
					failed = true
				case *pgproto3.ReadyForQuery:
					return failed
				}
			}
		}
		set := &pgproto3.Parse{Query: "SET TimeZone = 'Asia/Tokyo'"}
		for _, c := range []struct {
			name    string
			batches [][]pgproto3.FrontendMessage
			fails   int // the batch that fails, -1 for none
		}{
			{"its batch failed", [][]pgproto3.FrontendMessage{{set, &pgproto3.Bind{PreparedStatement: "missing"}, &pgproto3.Sync{}}}, 0},
			// A simple Query would drop the unnamed statement.
			{"its block rolled back", [][]pgproto3.FrontendMessage{
				{&pgproto3.Parse{Name: "begin", Query: "BEGIN"}, &pgproto3.Bind{PreparedStatement: "begin"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
				{set, &pgproto3.Sync{}},
				{&pgproto3.Parse{Name: "rollback", Query: "ROLLBACK"}, &pgproto3.Bind{PreparedStatement: "rollback"}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			}, -1},
		} {
			t.Run(c.name, func(t *testing.T) {
				a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
				for i, msgs := range c.batches {
					if failed := send(t, a, msgs...); failed != (i == c.fails) {
						t.Fatalf("batch %d failed: %v", i, failed)
					}
				}
				if send(t, a, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}) {
					t.Fatal("the unnamed SET failed")
				}
				if got, err := one(ctx, a, "SHOW TimeZone"); err != nil || got != "Asia/Tokyo" {
					t.Fatalf("the session's TimeZone %q, %v", got, err)
				}
				// It keeps the one backend to its end.
				a.Close(ctx)
				if got, err := one(ctx, b, "SHOW TimeZone"); err != nil || got == "Asia/Tokyo" {
					t.Fatalf("another session's TimeZone %q, %v", got, err)
				}
			})
		}
	})
	t.Run("each backend names the user and application of the session it runs, as in session mode", func(t *testing.T) {
		conn := func(user, app string) *pgx.Conn {
			t.Helper()
			c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, url.Values{
				"default_query_exec_mode": {"simple_protocol"}, "application_name": {app}}))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(context.Background()) })
			return c
		}
		a, b := conn("hq", "Tableau"), conn("marie", "psql")
		upstream := func(c *pgx.Conn, want string) {
			t.Helper()
			// The one backend, as a DBA sees it while the session runs.
			got, err := one(ctx, c, "SELECT current_setting('application_name')")
			if err != nil || got != want {
				t.Fatalf("application_name upstream %q, %v; want %q", got, err, want)
			}
		}
		for range 2 {
			upstream(a, "pgveil:hq:Tableau")
			upstream(b, "pgveil:marie:psql")
		}
		if got := a.PgConn().ParameterStatus("application_name"); got != "Tableau" {
			t.Errorf("the client was told %q", got)
		}
		if _, err := a.Exec(ctx, "SET application_name = 'Tableau 2024.1'"); err != nil {
			t.Fatal(err)
		}
		upstream(b, "pgveil:marie:psql")
		upstream(a, "pgveil:hq:Tableau 2024.1")
		if _, err := a.Exec(ctx, "RESET ALL"); err != nil {
			t.Fatal(err)
		}
		if got := a.PgConn().ParameterStatus("application_name"); got != "Tableau" {
			t.Errorf("after RESET ALL the client was told %q", got)
		}
		upstream(a, "pgveil:hq:Tableau")
		upstream(b, "pgveil:marie:psql")
	})
	t.Run("an unnamed SET parsed and never run is not the session's", func(t *testing.T) {
		a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
		if _, err := a.PgConn().Prepare(ctx, "", "SET TimeZone = 'Asia/Tokyo'", nil); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, b, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
		want := proxytest.Direct(t, "SHOW TimeZone")[0][0]
		if got, err := one(ctx, a, "SHOW TimeZone"); err != nil || got != want {
			t.Fatalf("TimeZone %q, %v; want %q", got, err, want)
		}
	})
	t.Run("SQL PREPARE is refused, naming the pooling mode", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		_, err := c.Exec(ctx, "PREPARE p AS SELECT 1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "0A000" {
			t.Fatalf("want 0A000, got %v", err)
		}
		if got, err := one(ctx, c, "SELECT 'usable'"); err != nil || got != "usable" {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

// TestTransactionPoolPipelineDoesNotDeadlock: a client pipelines a batch
// after one the backend already answered, and that batch's results and
// its own bytes both outgrow the sockets' buffers. Neither relay may
// wait for the other to let the backend go.
func TestTransactionPoolPipelineDoesNotDeadlock(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolPipelineDoesNotDeadlock)
}

func testTransactionPoolPipelineDoesNotDeadlock(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p := startPooled(t, relay, 2, 5*time.Second)
	c := p.SimpleConn(t, "hq")
	fe := c.PgConn().Frontend()
	big := make([]byte, 8<<20)
	for i := range big {
		big[i] = 'x'
	}
	fe.Send(&pgproto3.Query{String: "SELECT 1"})
	fe.Send(&pgproto3.Parse{Query: "SELECT repeat('y', 100000) FROM generate_series(1, 200)"})
	fe.Send(&pgproto3.Bind{})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Parse{Query: "SELECT length($1::text)"})
	fe.Send(&pgproto3.Bind{Parameters: [][]byte{big}})
	fe.Send(&pgproto3.Execute{})
	fe.Send(&pgproto3.Sync{})
	sent := make(chan error, 1)
	go func() { sent <- fe.Flush() }()
	_ = c.PgConn().Conn().SetDeadline(time.Now().Add(30 * time.Second))
	var rows, ready int
	var length string
	for ready < 2 {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %d ReadyForQuery and %d rows: %v", ready, rows, err)
		}
		switch m := msg.(type) {
		case *pgproto3.DataRow:
			rows++
			if len(m.Values) == 1 && len(m.Values[0]) < 16 {
				length = string(m.Values[0])
			}
		case *pgproto3.ErrorResponse:
			t.Fatalf("error: %s", m.Message)
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	if err := <-sent; err != nil {
		t.Fatal(err)
	}
	if rows != 202 || length != strconv.Itoa(len(big)) {
		t.Fatalf("%d rows, length %q", rows, length)
	}
}

// TestTransactionPoolUpstreamRestart: sessions idle between transactions
// hold no backend, so an upstream restart costs them nothing; a session
// in a transaction loses it, and then goes on.
func TestTransactionPoolUpstreamRestart(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolUpstreamRestart)
}

func testTransactionPoolUpstreamRestart(t *testing.T, relay string) {
	if proxytest.Cluster != nil && proxytest.Cluster.External() {
		t.Skip("cannot restart an external server")
	}
	proxytest.NoLeaks(t)
	p := startPooled(t, relay, 3, 5*time.Second)
	ctx := context.Background()
	idle, busy := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	for _, c := range []*pgx.Conn{idle, busy} {
		if _, err := one(ctx, c, "SELECT 'warm'"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := busy.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if err := proxytest.Cluster.Restart(); err != nil {
		t.Fatal(err)
	}
	t.Run("a session idle across the restart does not notice it", func(t *testing.T) {
		if got, err := one(ctx, idle, "SELECT 'after the restart'"); err != nil || got != "after the restart" {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("a session in a transaction gets 57P01 or 08006", func(t *testing.T) {
		_, err := one(ctx, busy, "SELECT 1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || (pgErr.Code != "57P01" && pgErr.Code != "08006") {
			t.Fatalf("want 57P01/08006, got %v", err)
		}
	})
	t.Run("new sessions work", func(t *testing.T) {
		c := p.SimpleConn(t, "marie")
		if _, err := one(ctx, c, "SELECT 1"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestTransactionPoolIdleTimeout(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolIdleTimeout)
}

func testTransactionPoolIdleTimeout(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Second, IdleTimeout: 500 * time.Millisecond}
		c.Listen.Relay = relay
	})
	p.Started = proxytest.Direct(t, "SELECT clock_timestamp()::text")[0][0]
	ctx := context.Background()
	c := p.SimpleConn(t, "marie")
	t.Run("a backend idle longer than idle_timeout is closed", func(t *testing.T) {
		if got, err := one(ctx, c, "SELECT 'once'"); err != nil || got != "once" {
			t.Fatalf("%q, %v", got, err)
		}
		proxytest.Eventually(t, 10*time.Second, "the idle backend is closed", func() bool { return p.PoolBackends(t) == 0 })
	})
	t.Run("the session then gets a new one", func(t *testing.T) {
		if got, err := one(ctx, c, "SELECT 'again'"); err != nil || got != "again" {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

func TestTransactionPoolSharesFreeBackends(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolSharesFreeBackends)
}

// NOTE: sessions go to the event loops in turn, so that with two loops or
// more, consecutive sessions run on different ones: a backend one loop
// keeps free must reach another's session when the pool is full.
func testTransactionPoolSharesFreeBackends(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p := startPooled(t, relay, 1, time.Second)
	ctx := context.Background()
	conns := []*pgx.Conn{p.SimpleConn(t, "marie"), p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie"), p.SimpleConn(t, "hq")}
	for round := range 3 {
		for i, c := range conns {
			want := fmt.Sprintf("round %d, session %d", round, i)
			if got, err := one(ctx, c, "SELECT '"+want+"'"); err != nil || got != want {
				t.Fatalf("%q, %v", got, err)
			}
		}
	}
	if n := p.PoolBackends(t); n != 1 {
		t.Fatalf("%d backends upstream, want 1", n)
	}
}

// TestTransactionPoolUnnamedStatement: a backend that still holds a
// session's older unnamed statement must not run it when the session
// takes that backend again after replacing or dropping the statement on
// another one.
func TestTransactionPoolUnnamedStatement(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolUnnamedStatement)
}

func testTransactionPoolUnnamedStatement(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p := startPooled(t, relay, 2, 5*time.Second)
	ctx := context.Background()
	// batch sends msgs and a Sync, and returns the first value of the
	// first row, or the SQLSTATE of the first error.
	batch := func(t *testing.T, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) (value, code string) {
		t.Helper()
		fe := c.PgConn().Frontend()
		for _, m := range msgs {
			fe.Send(m)
		}
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.DataRow:
				if value == "" && code == "" && len(m.Values) > 0 {
					value = string(m.Values[0])
				}
			case *pgproto3.ErrorResponse:
				if code == "" {
					code = m.Code
				}
			case *pgproto3.ReadyForQuery:
				return value, code
			}
		}
	}
	exec := func(t *testing.T, c *pgx.Conn, sql string) {
		t.Helper()
		if _, err := c.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	run := []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}}
	for _, c := range []struct {
		name string
		// then replaces or drops the first unnamed statement, on the
		// other backend.
		then                func(t *testing.T, c *pgx.Conn)
		wantValue, wantCode string
	}{
		{"replaced by a Parse", func(t *testing.T, c *pgx.Conn) {
			if _, code := batch(t, c, &pgproto3.Parse{Query: "SELECT 'second'"}); code != "" {
				t.Fatalf("parse: %s", code)
			}
		}, "second", ""},
		{"dropped by a Query, as PostgreSQL drops it", func(t *testing.T, c *pgx.Conn) {
			exec(t, c, "SELECT 1")
		}, "", "26000"},
		{"closed by the client", func(t *testing.T, c *pgx.Conn) {
			if _, code := batch(t, c, &pgproto3.Close{ObjectType: 'S'}); code != "" {
				t.Fatalf("close: %s", code)
			}
		}, "", "26000"},
		{"dropped by a Parse refused", func(t *testing.T, c *pgx.Conn) {
			if _, code := batch(t, c, &pgproto3.Parse{Query: "SELECT pg_backend_pid()"}); code != "42501" {
				t.Fatalf("parse: %q, want 42501", code)
			}
		}, "", "26000"},
	} {
		t.Run(c.name, func(t *testing.T) {
			// With two backends, X and A, and two other sessions holding
			// one each in turn, the session prepares its first statement
			// on X, replaces it on A, and then runs the unnamed statement
			// on X. o2 is the same user and application, so that taking
			// X again replays nothing (a Query would drop the statement).
			s, o, o2 := p.SimpleConn(t, "marie"), p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
			exec(t, o, "BEGIN") // o holds A
			if _, code := batch(t, s, &pgproto3.Parse{Query: "SELECT 'first'"}); code != "" {
				t.Fatalf("parse: %s", code)
			}
			exec(t, o2, "BEGIN") // o2 holds X
			exec(t, o, "COMMIT")
			c.then(t, s)        // on A
			exec(t, o, "BEGIN") // o holds A
			exec(t, o2, "COMMIT")
			value, code := batch(t, s, run...) // on X
			exec(t, o, "COMMIT")
			if value != c.wantValue || code != c.wantCode {
				t.Fatalf("the unnamed statement ran %q (error %q), want %q (error %q)", value, code, c.wantValue, c.wantCode)
			}
			// And on A.
			if value, code := batch(t, s, run...); value != c.wantValue || code != c.wantCode {
				t.Fatalf("then %q (error %q), want %q (error %q)", value, code, c.wantValue, c.wantCode)
			}
		})
	}
	t.Run("replaced by a Parse on another backend, the first one left untouched", func(t *testing.T) {
		// Above, o2's taking X closes the statement there. Here nothing
		// else touches X: the session makes the first statement there
		// while o holds A, then, o done, the second on the backend freed
		// last (A, where o and the free lists put it), and runs it while
		// o holds A again.
		s, o := p.SimpleConn(t, "marie"), p.SimpleConn(t, "hq")
		for i := range 5 {
			exec(t, o, "BEGIN")
			first := fmt.Sprintf("SELECT 'first %d'", i)
			if _, code := batch(t, s, &pgproto3.Parse{Query: first}); code != "" {
				t.Fatalf("parse: %s", code)
			}
			exec(t, o, "COMMIT")
			second := fmt.Sprintf("second %d", i)
			if _, code := batch(t, s, &pgproto3.Parse{Query: "SELECT '" + second + "'"}); code != "" {
				t.Fatalf("parse: %s", code)
			}
			exec(t, o, "BEGIN")
			value, code := batch(t, s, run...)
			exec(t, o, "COMMIT")
			if value != second || code != "" {
				t.Fatalf("the unnamed statement ran %q (error %q), want %q", value, code, second)
			}
		}
	})
}

// TestTransactionPoolCopyFrom: a COPY FROM STDIN ends its transaction at
// the ReadyForQuery after CopyDone or CopyFail like any other, and the
// backend goes back to the pool then, not at the session's next message.
func TestTransactionPoolCopyFrom(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolCopyFrom)
}

func testTransactionPoolCopyFrom(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	proxytest.SetupDemo(t)
	proxytest.Direct(t, "CREATE SCHEMA IF NOT EXISTS pool_scratch")
	proxytest.Direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)")
	// slow's trigger runs after the client's CopyDone, for longer than
	// idle_transaction_timeout.
	proxytest.Direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.slow (note text)")
	proxytest.Direct(t, "CREATE OR REPLACE FUNCTION pool_scratch.slow_trigger() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(1); RETURN NULL; END $$")
	proxytest.Direct(t, "CREATE OR REPLACE TRIGGER slow_after AFTER INSERT ON pool_scratch.slow FOR EACH STATEMENT EXECUTE FUNCTION pool_scratch.slow_trigger()")
	proxytest.Direct(t, "GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc")
	proxytest.Direct(t, "GRANT SELECT, INSERT ON pool_scratch.sink, pool_scratch.slow TO pgveil_svc")
	const idleTx = 300 * time.Millisecond
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 2 * time.Second, IdleTimeout: time.Minute,
			IdleTransactionTimeout: idleTx}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	})
	ctx := context.Background()
	loader, other := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	for _, c := range []struct {
		name string
		in   io.Reader
		ok   bool
	}{
		{"after CopyDone", strings.NewReader("a row\n"), true},
		{"after CopyFail", &failingReader{}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := loader.PgConn().CopyFrom(ctx, c.in, "COPY pool_scratch.sink FROM STDIN")
			if (err == nil) != c.ok {
				t.Fatalf("COPY: %v", err)
			}
			// The loader sends nothing more; with one backend, another
			// session gets it at once.
			if got, err := one(ctx, other, "SELECT 'served'"); err != nil || got != "served" {
				t.Fatalf("another session: %q, %v", got, err)
			}
		})
	}
	// libpq sends an extended-protocol COPY as Parse, Bind, Execute and
	// Sync, then its data, CopyDone (or CopyFail) and another Sync. The
	// server, in COPY, ignores the first Sync: one ReadyForQuery answers
	// both. Once the COPY succeeded, the backend goes back to the pool;
	// after a failed one, pgveil cannot tell whether the server read that
	// Sync before it failed, and may still answer it: the backend is
	// closed, and the loader goes on on another, answered in order.
	for _, c := range []struct {
		name   string
		end    []pgproto3.FrontendMessage
		reused bool
	}{
		{"a CopyDone gives the backend back", []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("a row\n")}, &pgproto3.CopyDone{}}, true},
		{"a CopyFail closes it", []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("a row\n")}, &pgproto3.CopyFail{Message: "no"}}, false},
		{"bad data closes it", []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("a\tb\tc\n")}, &pgproto3.CopyDone{}}, false},
		{"bad data and two Syncs closes it", []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("a\tb\tc\n")}, &pgproto3.CopyDone{}, &pgproto3.Sync{}}, false},
	} {
		t.Run("an extended-protocol COPY ended by "+c.name, func(t *testing.T) {
			loader := p.SimpleConn(t, "hq")
			// The backend that ran a statement, by its text upstream.
			backend := func(c *pgx.Conn, tag string) string {
				t.Helper()
				if got, err := one(ctx, c, "SELECT '"+tag+"'"); err != nil || got != tag {
					t.Fatalf("%s: %q, %v", tag, got, err)
				}
				return proxytest.Direct(t, "SELECT pid::text FROM pg_stat_activity WHERE query = 'SELECT ''"+tag+"'''")[0][0]
			}
			before := backend(loader, "before "+c.name)
			libpqCopy(t, loader.PgConn().Frontend(), "COPY pool_scratch.sink FROM STDIN", c.end...)
			for _, m := range c.end {
				if _, ok := m.(*pgproto3.Sync); ok {
					// Answered too.
					receiveUntil(t, loader.PgConn().Frontend(), func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
				}
			}
			// With one backend in the pool, another session gets the
			// loader's, or a new one.
			after := backend(other, "after "+c.name)
			if (after == before) != c.reused {
				t.Fatalf("backend %s before the COPY, %s after it: want reused %v", before, after, c.reused)
			}
			for i := range 3 {
				want := fmt.Sprintf("loader %d", i)
				if got, err := one(ctx, loader, "SELECT '"+want+"'"); err != nil || got != want {
					t.Fatalf("the loader's next statement: %q, %v", got, err)
				}
			}
			loader.Close(ctx)
			if got, err := one(ctx, other, "SELECT 'served'"); err != nil || got != "served" {
				t.Fatalf("another session, the loader gone: %q, %v", got, err)
			}
		})
	}
	t.Run("Syncs sent once the COPY failed are all answered", func(t *testing.T) {
		// A client that waits for the COPY's error before its Syncs
		// knows the server answers each: none is in doubt.
		loader := p.SimpleConn(t, "hq")
		fe := loader.PgConn().Frontend()
		_ = loader.PgConn().Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
		defer loader.PgConn().Conn().SetReadDeadline(time.Time{})
		send := func(ms ...pgproto3.FrontendMessage) {
			for _, m := range ms {
				fe.Send(m)
			}
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
		}
		send(&pgproto3.Parse{Query: "COPY pool_scratch.sink FROM STDIN"}, &pgproto3.Bind{}, &pgproto3.Execute{})
		receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
		send(&pgproto3.CopyData{Data: []byte("a\tb\tc\n")})
		receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ErrorResponse); return ok })
		send(&pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{})
		for range 2 {
			receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
		}
		for i := range 3 {
			want := fmt.Sprintf("loader %d", i)
			if got, err := one(ctx, loader, "SELECT '"+want+"'"); err != nil || got != want {
				t.Fatalf("the loader's next statement: %q, %v", got, err)
			}
		}
	})
	t.Run("a COPY whose triggers run past idle_transaction_timeout is not idle", func(t *testing.T) {
		if _, err := loader.PgConn().CopyFrom(ctx, strings.NewReader("a row\n"), "COPY pool_scratch.slow FROM STDIN"); err != nil {
			t.Fatalf("COPY: %v", err)
		}
	})
	t.Run("copy messages and a Flush between transactions take no backend", func(t *testing.T) {
		for _, m := range []pgproto3.FrontendMessage{&pgproto3.Flush{}, &pgproto3.CopyData{Data: []byte("x\n")}, &pgproto3.CopyDone{},
			&pgproto3.CopyFail{Message: "none"}} {
			fe := loader.PgConn().Frontend()
			fe.Send(m)
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			if got, err := one(ctx, other, "SELECT 'served'"); err != nil || got != "served" {
				t.Fatalf("after a %T, another session: %q, %v", m, got, err)
			}
		}
		// And the loader's session goes on.
		if got, err := one(ctx, loader, "SELECT 'loader'"); err != nil || got != "loader" {
			t.Fatalf("%q, %v", got, err)
		}
		time.Sleep(2 * idleTx)
		if got, err := one(ctx, loader, "SELECT 'still here'"); err != nil || got != "still here" {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

// TestTransactionPoolIdleTransactionTimeout: a session that holds a
// backend with nothing under way ends after idle_transaction_timeout, its
// backend closed for the others; a session whose statement runs long, or
// that is idle between transactions, does not.
func TestTransactionPoolIdleTransactionTimeout(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolIdleTransactionTimeout)
}

func testTransactionPoolIdleTransactionTimeout(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	const timeout = 300 * time.Millisecond
	p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 5 * time.Second,
		IdleTimeout: time.Minute, IdleTransactionTimeout: timeout})
	ctx := context.Background()
	// ended waits for c's session to end, and returns the error that
	// ended it.
	ended := func(t *testing.T, c *pgx.Conn) *pgconn.PgError {
		t.Helper()
		fe := c.PgConn().Frontend()
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatalf("the session ended without a FATAL: %v", err)
			}
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				return &pgconn.PgError{Severity: e.Severity, Code: e.Code, Message: e.Message}
			}
		}
	}
	send := func(t *testing.T, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		fe := c.PgConn().Frontend()
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range []struct {
		name  string
		start func(t *testing.T, c *pgx.Conn)
	}{
		{"a transaction block left open", func(t *testing.T, c *pgx.Conn) {
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
		}},
		{"a batch never closed by a Sync", func(t *testing.T, c *pgx.Conn) {
			send(t, c, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
		}},
	} {
		t.Run(c.name+" ends after the timeout, and frees the backend", func(t *testing.T) {
			idler, other := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
			start := time.Now()
			c.start(t, idler)
			e := ended(t, idler)
			if e.Code != "25P03" || e.Severity != "FATAL" || time.Since(start) < timeout {
				t.Fatalf("after %v: %s %s: %s", time.Since(start), e.Severity, e.Code, e.Message)
			}
			if got, err := one(ctx, other, "SELECT 'served'"); err != nil || got != "served" {
				t.Fatalf("another session: %q, %v", got, err)
			}
		})
	}
	t.Run("a statement running longer than the timeout is not idle", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		if got, err := one(ctx, c, "SELECT pg_sleep(1)::text"); err != nil || got != "" {
			t.Fatalf("%q, %v", got, err)
		}
		// Nor an Execute running without a Sync yet, as pipelines send.
		send(t, c, &pgproto3.Parse{Query: "SELECT pg_sleep(1)::text || 'done'"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Flush{})
		fe := c.PgConn().Frontend()
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if r, ok := m.(*pgproto3.DataRow); ok {
				if string(r.Values[0]) != "done" {
					t.Fatalf("%q", r.Values[0])
				}
				break
			}
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("%s: %s", e.Code, e.Message)
			}
		}
		send(t, c, &pgproto3.Sync{})
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
	})
	t.Run("a Parse and a Describe waiting on a lock, without a Sync, are not idle", func(t *testing.T) {
		locker, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
		if err != nil {
			t.Fatal(err)
		}
		defer locker.Close(ctx)
		if err := locker.Exec(ctx, "BEGIN; LOCK TABLE responses IN ACCESS EXCLUSIVE MODE").Close(); err != nil {
			t.Fatal(err)
		}
		c := p.SimpleConn(t, "hq")
		send(t, c, &pgproto3.Parse{Query: "SELECT count(*) FROM responses"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Flush{})
		time.Sleep(3 * timeout)
		if err := locker.Exec(ctx, "COMMIT").Close(); err != nil {
			t.Fatal(err)
		}
		fe := c.PgConn().Frontend()
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if e, ok := m.(*pgproto3.ErrorResponse); ok {
				t.Fatalf("%s %s: %s", e.Severity, e.Code, e.Message)
			}
			if _, ok := m.(*pgproto3.RowDescription); ok {
				break
			}
		}
		send(t, c, &pgproto3.Sync{})
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
	})
	t.Run("a session idle between transactions holds no backend and stays", func(t *testing.T) {
		c := p.SimpleConn(t, "hq")
		if _, err := one(ctx, c, "SELECT 'x'"); err != nil {
			t.Fatal(err)
		}
		time.Sleep(3 * timeout)
		if got, err := one(ctx, c, "SELECT 'still here'"); err != nil || got != "still here" {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

// receiveUntil reads fe's messages until one satisfies stop, failing the
// test on a read error.
func receiveUntil(t *testing.T, fe *pgproto3.Frontend, stop func(pgproto3.BackendMessage) bool) {
	t.Helper()
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		if stop(m) {
			return
		}
	}
}

// libpqCopy runs sql, a COPY FROM STDIN, as libpq's PQexecParams does:
// Parse, Bind, Execute and Sync; once the CopyInResponse came, the
// messages of end (data and CopyDone or CopyFail) and another Sync; then
// it reads up to the ReadyForQuery.
func libpqCopy(t *testing.T, fe *pgproto3.Frontend, sql string, end ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}} {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
	for _, m := range end {
		fe.Send(m)
	}
	fe.Send(&pgproto3.Sync{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
}
