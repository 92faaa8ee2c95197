package proxy_test

import (
	"context"
	"fmt"
	"math/rand"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestPoolStress mixes sessions of three users on a pool of two
// backends: each keeps its own DateStyle, application_name and rows
// whatever the others do (errors, pipelines, blocks, cancels,
// disconnects).
func TestPoolStress(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) { testPoolStress(t, relay, 2, 0) })
}

// TestPoolStressPerUserCap is TestPoolStress with each login capped at
// one backend of three (upstream.pool.max_per_user): every statement
// is still served within the wait timeout (no lost wakeup, no
// starvation), and once the sessions end no login counts a backend.
func TestPoolStressPerUserCap(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) { testPoolStress(t, relay, 3, 1) })
}

func testPoolStress(t *testing.T, relay string, size, perUser int) {
	if os.Getenv("PGVEIL_POOL_FUZZ") == "" {
		t.Skip("set PGVEIL_POOL_FUZZ=1 to run (minutes)")
	}
	p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: size, WaitTimeout: 20 * time.Second,
		IdleTimeout: time.Minute, MaxPerUser: perUser})
	ctx := context.Background()
	styles := map[string]string{"marie": "German, DMY", "hq": "SQL, DMY", "tom": "ISO, MDY"}
	want := map[string]string{}
	for u := range styles {
		want[u] = proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes[u])[0][0]
	}
	open := func(user string) (*pgx.Conn, error) {
		c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, nil))
		if err != nil {
			return nil, err
		}
		if user != "tom" {
			if _, err := c.PgConn().Exec(ctx, "SET DateStyle = '"+styles[user]+"'").ReadAll(); err != nil {
				return nil, err
			}
		}
		return c, nil
	}
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	deadline := time.Now().Add(40 * time.Second)
	for i := range 6 {
		user := []string{"marie", "hq", "tom"}[i%3]
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := rand.New(rand.NewSource(int64(i)))
			c, err := open(user)
			if err != nil {
				errs <- err
				return
			}
			defer func() { c.Close(ctx) }()
			check := func(step string) bool {
				var ds, app, n string
				res := c.PgConn().ExecParams(ctx, "SELECT current_setting('DateStyle'), current_setting('application_name'), (SELECT count(*) FROM responses)::text", nil, nil, nil, nil).Read()
				if res.Err != nil {
					errs <- fmt.Errorf("%s after %s: %v", user, step, res.Err)
					return false
				}
				ds, app, n = string(res.Rows[0][0]), string(res.Rows[0][1]), string(res.Rows[0][2])
				if ds != styles[user] || !strings.HasPrefix(app, "pgveil:"+user+":") || n != want[user] {
					errs <- fmt.Errorf("%s after %s: DateStyle %q, application_name %q, %s rows (want %q, %s)", user, step, ds, app, n, styles[user], want[user])
					return false
				}
				return true
			}
			for k := 0; time.Now().Before(deadline); k++ {
				op := r.Intn(10)
				if op == 6 && perUser > 0 {
					// A backend kept to the session's end would hold
					// its login's one slot: its other session would
					// rightly wait out the timeout.
					op = 9
				}
				step := fmt.Sprintf("op %d #%d", op, k)
				pc := c.PgConn()
				switch op {
				case 0:
					_, _ = pc.Exec(ctx, "SELECT 1/0").ReadAll()
				case 1:
					_, _ = pc.Exec(ctx, "BEGIN; SELECT count(*) FROM responses; SELECT 1/0; COMMIT").ReadAll()
					_, _ = pc.Exec(ctx, "ROLLBACK").ReadAll()
				case 2:
					b := &pgconn.Batch{}
					b.ExecParams("SELECT count(*) FROM responses", nil, nil, nil, nil)
					b.ExecParams("SELECT 1/0", nil, nil, nil, nil)
					b.ExecParams("SELECT 2", nil, nil, nil, nil)
					_, _ = pc.ExecBatch(ctx, b).ReadAll()
				case 3:
					cctx, cancel := context.WithTimeout(ctx, time.Duration(r.Intn(30))*time.Millisecond)
					_, _ = pc.Exec(cctx, "SELECT pg_sleep(0.05), count(*) FROM responses").ReadAll()
					cancel()
					if pc.IsClosed() {
						c.Close(ctx)
						if c, err = open(user); err != nil {
							errs <- err
							return
						}
					}
				case 4:
					_, _ = pc.Exec(ctx, "BEGIN").ReadAll()
					_, _ = pc.Exec(ctx, "SET DateStyle = 'Postgres, DMY'").ReadAll()
					_, _ = pc.Exec(ctx, "ROLLBACK").ReadAll()
				case 5:
					fe := pc.Frontend()
					fe.Send(&pgproto3.Parse{Query: "SELECT count(*) FROM responses"})
					fe.Send(&pgproto3.Bind{})
					fe.Send(&pgproto3.Execute{})
					fe.Send(&pgproto3.Flush{})
					_ = fe.Flush()
					// Drop the connection mid-batch.
					c.Close(ctx)
					if c, err = open(user); err != nil {
						errs <- err
						return
					}
				case 6:
					_, _ = pc.Exec(ctx, "SELECT set_config('DateStyle', 'Postgres', false)").ReadAll()
					// set_config keeps the backend; undo it for the checks.
					_, _ = pc.Exec(ctx, "SET DateStyle = '"+styles[user]+"'").ReadAll()
				case 7:
					_, _ = pc.Exec(ctx, "COPY (SELECT id FROM responses) TO STDOUT").ReadAll()
				default:
					_, _ = pc.Exec(ctx, "SELECT count(*) FROM responses; SELECT 2").ReadAll()
				}
				if !check(step) {
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	n := 0
	for err := range errs {
		if n++; n < 10 {
			t.Error(err)
		}
	}
	proxytest.WaitSessions(t, p, 0)
	for login, n := range proxy.PoolLoginsHeld(p.Server) {
		if n != 0 {
			t.Errorf("%s still counts %d backends once every session ended", login, n)
		}
	}
}
