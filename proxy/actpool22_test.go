package proxy_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
)

// TestActPool22 holds a transaction pool serving a BI service that
// switches viewers: a switch sent alone, outside a transaction block and
// with nothing else in flight, follows the session like a kept setting
// instead of keeping its backend.
func TestActPool22(t *testing.T) {
	proxytest.OnEveryRelay(t, actPool22)
}

// actShow returns what the session c reads of pgveil.act_for upstream,
// through SHOW and current_setting, "" when it is not set.
func actShow(ctx context.Context, c *pgx.Conn) (string, error) {
	var show, cur string
	if err := c.QueryRow(ctx, "SELECT coalesce(current_setting('pgveil.act_for', true), '')").Scan(&cur); err != nil {
		return "", fmt.Errorf("current_setting: %w", err)
	}
	rows, err := c.PgConn().Exec(ctx, "SHOW pgveil.act_for").ReadAll()
	switch {
	case err != nil && cur == "" && strings.Contains(err.Error(), "42704"):
		// Never set on this backend: PostgreSQL knows no such setting.
	case err != nil:
		return "", fmt.Errorf("SHOW pgveil.act_for: %w", err)
	default:
		show = string(rows[0].Rows[0][0])
	}
	if show != cur {
		return "", fmt.Errorf("SHOW pgveil.act_for says %q, current_setting %q", show, cur)
	}
	return cur, nil
}

// actExec runs sql on c in the simple protocol (Superset) or, extended,
// with the unnamed statement and portal (PgJDBC, Metabase).
func actExec(ctx context.Context, c *pgx.Conn, sql string, extended bool) error {
	if extended {
		return c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
	}
	_, err := c.PgConn().Exec(ctx, sql).ReadAll()
	return err
}

func actPool22(t *testing.T, relay string) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	want := map[string]string{"": "", "marie": "", "hq": ""}
	for _, u := range []string{"marie", "hq"} {
		want[u] = proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes[u])[0][0]
	}
	kept := func(t *testing.T, p *proxytest.Proxy) int {
		t.Helper()
		n, _ := proxy.KeptBackends(p.Server)
		return n
	}

	t.Run("a pool of two serves six metabase sessions switching viewers, none keeping a backend", func(t *testing.T) {
		p := startPooled(t, relay, 2, 5*time.Second)
		service := p.Connect(t, "metabase")
		want[""] = fmt.Sprint(proxytest.Count(t, service, "SELECT count(*) FROM responses"))
		service.Close(ctx)
		const sessions, rounds = 6, 8
		var wg sync.WaitGroup
		errs := make(chan error, sessions)
		for i := range sessions {
			c := p.Connect(t, "metabase")
			// Half switch as Superset does (simple protocol), half as
			// Metabase (PgJDBC: extended, unnamed statement).
			extended := i%2 == 1
			wg.Add(1)
			go func() {
				defer wg.Done()
				for r := range rounds {
					viewer := []string{"marie", "hq"}[(i+r)%2]
					steps := []struct{ switchTo, sql string }{
						{viewer, "SET ROLE " + viewer},
						{"", "SET ROLE NONE"},
						{viewer, "SET pgveil.act_for = '" + viewer + "'"},
						{"", "RESET ROLE"},
						{viewer, "SET SESSION ROLE " + viewer},
						{"", "RESET ALL"},
						{viewer, "SET ROLE " + viewer},
						{"", "RESET pgveil.act_for"},
					}
					for _, s := range steps {
						if err := actExec(ctx, c, s.sql, extended); err != nil {
							errs <- fmt.Errorf("%s: %w", s.sql, err)
							return
						}
						var got string
						if err := c.QueryRow(ctx, "SELECT count(*)::text FROM responses").Scan(&got); err != nil {
							errs <- fmt.Errorf("after %s: %w", s.sql, err)
							return
						}
						if got != want[s.switchTo] {
							errs <- fmt.Errorf("after %s the session read %s responses, want %s (acting for %q)", s.sql, got, want[s.switchTo], s.switchTo)
							return
						}
						if act, err := actShow(ctx, c); err != nil || act != s.switchTo {
							errs <- fmt.Errorf("after %s pgveil.act_for upstream is %q (%v), want %q", s.sql, act, err, s.switchTo)
							return
						}
					}
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		if n, why := proxy.KeptBackends(p.Server); n != 0 {
			t.Errorf("%d sessions keep their backend: %q", n, why)
		}
		if n := p.PoolBackends(t); n > 2 {
			t.Errorf("%d backends upstream, want at most 2", n)
		}
	})

	t.Run("a viewer set by one session is never seen by the next on its backend, and follows its own session to another", func(t *testing.T) {
		p := startPooled(t, relay, 2, 5*time.Second)
		service := p.Connect(t, "metabase")
		want[""] = fmt.Sprint(proxytest.Count(t, service, "SELECT count(*) FROM responses"))
		service.Close(ctx)
		for _, extended := range []bool{false, true} {
			a := p.Connect(t, "metabase")
			if err := actExec(ctx, a, "SET ROLE marie", extended); err != nil {
				t.Fatal(err)
			}
			// Two other sessions hold both backends: one of them is
			// the one a switched on.
			others := []struct {
				user, want string
				c          *pgx.Conn
			}{{"metabase", want[""], p.Connect(t, "metabase")}, {"hq", want["hq"], p.SimpleConn(t, "hq")}}
			for _, o := range others {
				if _, err := o.c.Exec(ctx, "BEGIN"); err != nil {
					t.Fatal(err)
				}
				if got := fmt.Sprint(proxytest.Count(t, o.c, "SELECT count(*) FROM responses")); got != o.want {
					t.Fatalf("%s read %s responses on a shared backend, want its own %s", o.user, got, o.want)
				}
				if act, err := actShow(ctx, o.c); err != nil || act != "" {
					t.Fatalf("%s reads pgveil.act_for %q (%v): another session's viewer", o.user, act, err)
				}
			}
			if _, err := others[0].c.Exec(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
			if got := fmt.Sprint(proxytest.Count(t, a, "SELECT count(*) FROM responses")); got != want["marie"] {
				t.Fatalf("back on a backend, the session acting for marie read %s responses, want %s", got, want["marie"])
			}
			if act, err := actShow(ctx, a); err != nil || act != "marie" {
				t.Fatalf("back on a backend, pgveil.act_for upstream is %q (%v), want marie", act, err)
			}
			for _, o := range others {
				if _, err := o.c.Exec(ctx, "COMMIT"); err != nil {
					t.Fatal(err)
				}
				o.c.Close(ctx)
			}
			if n, why := proxy.KeptBackends(p.Server); n != 0 {
				t.Errorf("%d sessions keep their backend: %q", n, why)
			}
			a.Close(ctx)
		}
	})

	t.Run("a switch in a block, pipelined with BEGIN or rolled back keeps its backend as before", func(t *testing.T) {
		// Each session below keeps its backend to the end of the test.
		p := startPooled(t, relay, 8, 5*time.Second)
		outer := t
		simple := func(sqls ...string) func(c *pgx.Conn) error {
			return func(c *pgx.Conn) error {
				for _, q := range sqls {
					if _, err := c.PgConn().Exec(ctx, q).ReadAll(); err != nil {
						return err
					}
				}
				return nil
			}
		}
		afterBegin := func(end string) func(c *pgx.Conn) error {
			return func(c *pgx.Conn) error {
				batch := &pgconn.Batch{}
				batch.ExecParams("BEGIN", nil, nil, nil, nil)
				batch.ExecParams("SET ROLE marie", nil, nil, nil, nil)
				if _, err := c.PgConn().ExecBatch(ctx, batch).ReadAll(); err != nil {
					return err
				}
				_, err := c.PgConn().Exec(ctx, end).ReadAll()
				return err
			}
		}
		// endsBatch sends the switch, then end, in one extended batch.
		endsBatch := func(end string) func(c *pgx.Conn) error {
			return func(c *pgx.Conn) error {
				_, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Query: "SET ROLE marie"}, &pgproto3.Bind{}, &pgproto3.Execute{},
					&pgproto3.Parse{Query: end}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
				return err
			}
		}
		for _, tc := range []struct {
			name   string
			change func(c *pgx.Conn) error
			acting string
		}{
			{"committed in a block", simple("BEGIN", "SET ROLE marie", "COMMIT"), "marie"},
			{"rolled back in a block", simple("BEGIN", "SET ROLE marie", "ROLLBACK"), ""},
			{"after BEGIN in its text", simple("BEGIN;SET ROLE marie", "COMMIT"), "marie"},
			{"rewound to a savepoint, set again", simple("BEGIN", "SAVEPOINT s", "SET ROLE marie", "ROLLBACK TO SAVEPOINT s", "SET ROLE marie", "COMMIT"), "marie"},
			{"after BEGIN in its extended batch, committed", afterBegin("COMMIT"), "marie"},
			{"after BEGIN in its extended batch, rolled back", afterBegin("ROLLBACK"), ""},
			{"followed by COMMIT in its extended batch", endsBatch("COMMIT"), "marie"},
		} {
			t.Run(tc.name+" keeps its backend", func(t *testing.T) {
				c := p.Connect(outer, "metabase")
				before := kept(t, p)
				if err := tc.change(c); err != nil {
					t.Fatal(err)
				}
				if got := kept(t, p); got != before+1 {
					t.Fatalf("%d sessions keep their backend, want %d", got, before+1)
				}
				if act, err := actShow(ctx, c); err != nil || act != tc.acting {
					t.Fatalf("pgveil.act_for upstream is %q (%v), want %q", act, err, tc.acting)
				}
				n := proxytest.Count(t, c, "SELECT count(*) FROM responses")
				if tc.acting == "marie" && fmt.Sprint(n) != want["marie"] {
					t.Fatalf("acting for marie the session read %d responses, want %s", n, want["marie"])
				}
			})
		}
	})

	t.Run("a switch its extended batch rolls back changes nothing and keeps no backend", func(t *testing.T) {
		p := startPooled(t, relay, 2, 5*time.Second)
		c := p.Connect(t, "metabase")
		_, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Query: "SET ROLE marie"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "ROLLBACK"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if err != nil {
			t.Fatal(err)
		}
		if act, err := actShow(ctx, c); err != nil || act != "" {
			t.Fatalf("pgveil.act_for upstream is %q (%v), want none", act, err)
		}
		service := proxytest.Count(t, p.Connect(t, "metabase"), "SELECT count(*) FROM responses")
		if got := proxytest.Count(t, c, "SELECT count(*) FROM responses"); got != service {
			t.Fatalf("the session read %d responses, want the service's %d", got, service)
		}
		if n, why := proxy.KeptBackends(p.Server); n != 0 {
			t.Errorf("%d sessions keep their backend: %q", n, why)
		}
	})
}
