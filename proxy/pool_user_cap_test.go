package proxy_test

import (
	"context"
	"errors"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
	"github.com/pgveil/pgveil/rewrite"
)

// TestPoolMaxPerUser checks upstream.pool.max_per_user: a login at its
// cap waits as for a full pool, and gets 53300 naming the cap, while
// other logins are served from free or new backends; the backend its
// login lets go is its, before any new dial.
func TestPoolMaxPerUser(t *testing.T) { proxytest.OnEveryRelay(t, testPoolMaxPerUser) }

func testPoolMaxPerUser(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	reg := prometheus.NewRegistry()
	p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 3, WaitTimeout: 300 * time.Millisecond,
		IdleTimeout: time.Minute, MaxPerUser: 1}, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	p.Started = proxytest.Direct(t, "SELECT clock_timestamp()::text")[0][0]
	ctx := context.Background()
	hq1, hq2, marie := p.SimpleConn(t, "hq"), p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	hold := func(t *testing.T, c *pgx.Conn) {
		t.Helper()
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, c, "SELECT 'holding'"); err != nil {
			t.Fatal(err)
		}
	}
	capped := func(t *testing.T, err error, login string) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "53300" {
			t.Fatalf("want 53300, got %v", err)
		}
		if !strings.Contains(pgErr.Hint, "upstream.pool.max_per_user") || !strings.Contains(pgErr.Hint, "per-login") ||
			!strings.Contains(pgErr.Detail, `"`+login+`"`) {
			t.Fatalf("the error does not name the per-login cap: detail %q, hint %q", pgErr.Detail, pgErr.Hint)
		}
	}
	waiting := func(t *testing.T, n float64) {
		t.Helper()
		proxytest.Eventually(t, 5*time.Second, "sessions wait for a backend", func() bool {
			return gauge(t, reg, "pgveil_pool_waiting") == n
		})
	}
	hold(t, hq1)

	t.Run("a second transaction of a login at its cap waits, then gets 53300 naming the cap", func(t *testing.T) {
		errc := make(chan error, 1)
		go func() {
			_, err := one(ctx, hq2, "SELECT 'over the cap'")
			errc <- err
		}()
		waiting(t, 1)
		t.Run("while another login is served from a free or new backend", func(t *testing.T) {
			if got, err := one(ctx, marie, "SELECT 'served'"); err != nil || got != "served" {
				t.Fatalf("%q, %v", got, err)
			}
		})
		capped(t, <-errc, "hq")
	})
	t.Run("an extended-protocol batch at the cap gets 53300 at its Sync, and the session stays usable", func(t *testing.T) {
		res := hq2.PgConn().ExecParams(ctx, "SELECT $1::text", [][]byte{[]byte("x")}, nil, nil, nil).Read()
		capped(t, res.Err, "hq")
	})
	t.Run("the metrics count the waits among the pool's timeouts and as the login's cap", func(t *testing.T) {
		for name, want := range map[string]float64{"pgveil_pool_wait_timeouts_total": 2,
			"pgveil_pool_wait_timeouts_user_cap_total": 2, "pgveil_pool_waiting": 0} {
			if got := gauge(t, reg, name); got != want {
				t.Errorf("%s = %v, want %v", name, got, want)
			}
		}
	})
	t.Run("the backend the login lets go goes to its waiting session, not to a new backend", func(t *testing.T) {
		got := make(chan string, 1)
		go func() {
			s, err := one(ctx, hq2, "SELECT 'served after'")
			if err != nil {
				s = err.Error()
			}
			got <- s
		}()
		waiting(t, 1)
		if _, err := hq1.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if s := <-got; s != "served after" {
			t.Fatal(s)
		}
		if n := gauge(t, reg, "pgveil_pool_backends"); n != 2 {
			t.Fatalf("pgveil_pool_backends = %v, want 2: hq's and marie's", n)
		}
	})
	t.Run("a cap of 1 serves a session's pipelined batches in turn", func(t *testing.T) {
		var msgs []pgproto3.FrontendMessage
		for _, v := range []string{"a", "b", "c"} {
			msgs = append(msgs, &pgproto3.Parse{Query: "SELECT $1::text"}, &pgproto3.Bind{Parameters: [][]byte{[]byte(v)}},
				&pgproto3.Execute{}, &pgproto3.Sync{})
		}
		msgs = append(msgs, &pgproto3.Query{String: "SELECT 'd'"})
		vals, codes, errs := proxytest.PipelineBatches(t, hq1, 4, msgs...)
		if strings.Join(vals, ",") != "a,b,c,d" || strings.Join(codes, "") != "" {
			t.Fatalf("values %v, codes %v, errors %v", vals, codes, errs)
		}
	})
	t.Run("a pipelined batch waiting behind the login's transaction gets 53300 for each of its statements", func(t *testing.T) {
		hold(t, hq1)
		fe := hq2.PgConn().Frontend()
		rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if rows != 0 || strings.Join(codes, ",") != "53300" {
			t.Fatalf("rows %d, codes %v", rows, codes)
		}
		if _, err := hq1.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		rows, codes = proxytest.SendBatch(t, fe, &pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if rows != 1 || len(codes) != 0 {
			t.Fatalf("once hq's transaction ended: rows %d, codes %v", rows, codes)
		}
	})
	t.Run("a service account's pinned session holds its own login's backend, not the user's it acts for", func(t *testing.T) {
		mb1, mb2 := p.SimpleConn(t, "metabase"), p.SimpleConn(t, "metabase")
		// NOTE: a switch in a transaction block keeps the backend; one
		// sent alone follows the session instead (actpool22_test.go).
		for _, q := range []string{"BEGIN", "SET ROLE marie", "COMMIT"} {
			if _, err := mb1.Exec(ctx, q); err != nil {
				t.Fatal(err)
			}
		}
		_, err := one(ctx, mb2, "SELECT 'over the cap'")
		capped(t, err, "metabase")
		if got, err := one(ctx, marie, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("marie: %q, %v", got, err)
		}
		mb1.Close(ctx)
		proxytest.Eventually(t, 5*time.Second, "the pinned session's backend is given back", func() bool {
			s, err := one(ctx, mb2, "SELECT 'served'")
			return err == nil && s == "served"
		})
	})
}

// TestPoolMaxPerUserOverride checks a user block's max_pool_backends: it
// caps that login's backends with no pool-wide cap, and the 53300 names
// it.
func TestPoolMaxPerUserOverride(t *testing.T) { proxytest.OnEveryRelay(t, testPoolMaxPerUserOverride) }

func testPoolMaxPerUserOverride(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 3, WaitTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute}
		c.Listen.Relay = relay
		c.Users["metabase"].MaxPoolBackends = 1
	})
	ctx := context.Background()
	hold := func(t *testing.T, c *pgx.Conn) {
		t.Helper()
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, c, "SELECT 'holding'"); err != nil {
			t.Fatal(err)
		}
	}
	t.Run("the capped login's second transaction gets 53300 naming its user block's setting", func(t *testing.T) {
		mb1, mb2 := p.SimpleConn(t, "metabase"), p.SimpleConn(t, "metabase")
		hold(t, mb1)
		_, err := one(ctx, mb2, "SELECT 1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "53300" || !strings.Contains(pgErr.Hint, `max_pool_backends of user "metabase"`) ||
			!strings.Contains(pgErr.Hint, "per-login") {
			t.Fatalf("want 53300 naming the user's cap, got %v (hint %q)", err, hintOf(err))
		}
		if _, err := mb1.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, mb2, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("%q, %v", got, err)
		}
	})
	t.Run("another login holds as many backends as the pool has room for", func(t *testing.T) {
		hq1, hq2 := p.SimpleConn(t, "hq"), p.SimpleConn(t, "hq")
		hold(t, hq1)
		hold(t, hq2)
	})
}

// hintOf returns the hint of a PostgreSQL error, "" for another error.
func hintOf(err error) string {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return pgErr.Hint
	}
	return ""
}

// TestPoolMaxPerUserReload checks what a reload does to the per-login
// caps: upstream.pool.max_per_user, read at start as the rest of the
// pool block, stays in force until a restart; a user block's
// max_pool_backends applies from the login's next session.
func TestPoolMaxPerUserReload(t *testing.T) {
	path := proxytest.PooledDemo(t, 3)
	proxytest.EditConfig(t, path, "size = 3\n", "size = 3\n    max_per_user = 1\n    wait_timeout = \"300ms\"\n")
	var po proxy.Options
	p, pols := proxytest.StartDemoFrom(t, path, func(o *proxy.Options) { po = *o })
	rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	proxytest.EditConfig(t, path, "max_per_user = 1", "max_per_user = 3")
	proxytest.EditConfig(t, path, `act_for  = ["hq", "role:country_analyst"]`, "act_for  = [\"hq\", \"role:country_analyst\"]\n  max_pool_backends = 2")
	if err := rl.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	hold := func(t *testing.T, c *pgx.Conn) error {
		t.Helper()
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		_, err := one(ctx, c, "SELECT 'holding'")
		return err
	}
	t.Run("the pool's cap stays the one it started with", func(t *testing.T) {
		hq1, hq2 := p.SimpleConn(t, "hq"), p.SimpleConn(t, "hq")
		if err := hold(t, hq1); err != nil {
			t.Fatal(err)
		}
		_, err := one(ctx, hq2, "SELECT 1")
		if !strings.Contains(hintOf(err), "upstream.pool.max_per_user") {
			t.Fatalf("want 53300 naming upstream.pool.max_per_user, got %v", err)
		}
		if _, err := hq1.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a user block's cap added by the reload applies to the login's new sessions", func(t *testing.T) {
		mb1, mb2, mb3 := p.SimpleConn(t, "metabase"), p.SimpleConn(t, "metabase"), p.SimpleConn(t, "metabase")
		for _, c := range []*pgx.Conn{mb1, mb2} {
			if err := hold(t, c); err != nil {
				t.Fatalf("within the user's cap of 2: %v", err)
			}
		}
		_, err := one(ctx, mb3, "SELECT 1")
		if !strings.Contains(hintOf(err), `max_pool_backends of user "metabase"`) {
			t.Fatalf("want 53300 naming the user's cap, got %v", err)
		}
	})
}

// TestPoolMaxPerUserCopy: a COPY FROM STDIN holds its backend until its
// end, and counts against its login's cap meanwhile.
func TestPoolMaxPerUserCopy(t *testing.T) { proxytest.OnEveryRelay(t, testPoolMaxPerUserCopy) }

func testPoolMaxPerUserCopy(t *testing.T, relay string) {
	proxytest.NoLeaks(t)
	proxytest.SetupDemo(t)
	proxytest.Direct(t, "CREATE SCHEMA IF NOT EXISTS pool_scratch")
	proxytest.Direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)")
	proxytest.Direct(t, "GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc")
	proxytest.Direct(t, "GRANT SELECT, INSERT ON pool_scratch.sink TO pgveil_svc")
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 3, WaitTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute,
			MaxPerUser: 1}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	})
	ctx := context.Background()
	loader, hq, marie := p.SimpleConn(t, "hq"), p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	fe := loader.PgConn().Frontend()
	fe.Send(&pgproto3.Query{String: "COPY pool_scratch.sink FROM STDIN"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
	t.Run("the login's other session waits out the timeout while the COPY streams", func(t *testing.T) {
		_, err := one(ctx, hq, "SELECT 1")
		if !strings.Contains(hintOf(err), "upstream.pool.max_per_user") {
			t.Fatalf("want 53300 naming upstream.pool.max_per_user, got %v", err)
		}
		if got, err := one(ctx, marie, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("marie: %q, %v", got, err)
		}
	})
	t.Run("once the COPY ends its backend serves the login's other session", func(t *testing.T) {
		fe.Send(&pgproto3.CopyData{Data: []byte("a row\n")})
		fe.Send(&pgproto3.CopyDone{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
		if got, err := one(ctx, hq, "SELECT 'served'"); err != nil || got != "served" {
			t.Fatalf("%q, %v", got, err)
		}
	})
}

// TestPoolMaxPerUserStartup: the backend a session of a new key borrows
// at its start, for the parameters to tell its client, counts against
// its login's cap as any other. Clients choose keys (a statement_timeout
// of their own each), so a login at its cap would otherwise hold one
// backend more per session it starts.
func TestPoolMaxPerUserStartup(t *testing.T) {
	proxytest.NoLeaks(t)
	p := startDemoPool(t, policy.RelayEventLoop, policy.Pool{Mode: policy.PoolTransaction, Size: 3,
		WaitTimeout: 300 * time.Millisecond, IdleTimeout: time.Minute, MaxPerUser: 1})
	ctx := context.Background()
	hq := p.SimpleConn(t, "hq")
	if _, err := hq.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, hq, "SELECT 'holding'"); err != nil {
		t.Fatal(err)
	}
	connect := func(user, timeout string) (*pgx.Conn, error) {
		c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, url.Values{"statement_timeout": {timeout}}))
		if err == nil {
			t.Cleanup(func() { c.Close(context.Background()) })
		}
		return c, err
	}
	t.Run("a session of a new key of a login at its cap is refused 53300 naming the cap at its start", func(t *testing.T) {
		_, err := connect("hq", "123001")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "53300" || pgErr.Severity != "FATAL" ||
			!strings.Contains(pgErr.Hint, "upstream.pool.max_per_user") {
			t.Fatalf("want FATAL 53300 naming upstream.pool.max_per_user, got %v", err)
		}
		if held := proxy.PoolLoginsHeld(p.Server); held["hq"] != 1 {
			t.Fatalf("hq holds %d backends, want 1", held["hq"])
		}
	})
	t.Run("another login starts a session of a new key meanwhile", func(t *testing.T) {
		if _, err := connect("marie", "123002"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("once the login's transaction ends its new sessions start", func(t *testing.T) {
		if _, err := hq.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
		c, err := connect("hq", "123003")
		if err != nil {
			t.Fatal(err)
		}
		if got, err := one(ctx, c, "SHOW statement_timeout"); err != nil || got != "123003ms" {
			t.Fatalf("%q, %v", got, err)
		}
		if held := proxy.PoolLoginsHeld(p.Server); held["hq"] != 0 {
			t.Fatalf("hq holds %d backends, want 0", held["hq"])
		}
	})
}

// TestPoolMaxPerUserReloadRaised: a reload that raises a login's
// max_pool_backends serves, from the login's next session on, the
// sessions already waiting at the old cap while the pool has room, not
// only the new session.
func TestPoolMaxPerUserReloadRaised(t *testing.T) {
	path := proxytest.PooledDemo(t, 3)
	proxytest.EditConfig(t, path, "size = 3\n", "size = 3\n    wait_timeout = \"3s\"\n")
	proxytest.EditConfig(t, path, `act_for  = ["hq", "role:country_analyst"]`, "act_for  = [\"hq\", \"role:country_analyst\"]\n  max_pool_backends = 1")
	var po proxy.Options
	p, pols := proxytest.StartDemoFrom(t, path, func(o *proxy.Options) { po = *o })
	rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	ctx := context.Background()
	mb1, mb2 := p.SimpleConn(t, "metabase"), p.SimpleConn(t, "metabase")
	if _, err := mb1.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	if _, err := one(ctx, mb1, "SELECT 'holding'"); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	go func() {
		_, err := one(ctx, mb2, "SELECT 'waiting'")
		got <- err
	}()
	proxytest.Eventually(t, 5*time.Second, "the login's second session waits at its cap", func() bool {
		_, _, waiting := proxy.PoolStats(p.Server)
		return waiting == 1
	})
	proxytest.EditConfig(t, path, "max_pool_backends = 1", "max_pool_backends = 3")
	if err := rl.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	mb3 := p.SimpleConn(t, "metabase")
	t.Run("the login's next session is served within the raised cap", func(t *testing.T) {
		if _, err := mb3.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := one(ctx, mb3, "SELECT 'new'"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("the session waiting at the old cap is served while the others hold their backends", func(t *testing.T) {
		if err := <-got; err != nil {
			t.Fatalf("the waiting session got %v", err)
		}
	})
	for _, c := range []*pgx.Conn{mb1, mb3} {
		if _, err := c.Exec(ctx, "COMMIT"); err != nil {
			t.Fatal(err)
		}
	}
}
