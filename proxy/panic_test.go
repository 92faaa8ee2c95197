package proxy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// panicRewriter panics on a statement naming pgveil_test_panic, as a bug
// in the rewriter reached by a hostile statement would, and forwards
// every other statement unchanged.
type panicRewriter struct{}

func (panicRewriter) Rewrite(_ context.Context, _ *proxy.SessionInfo, st *proxy.Statement) (*rewrite.Result, error) {
	if strings.Contains(st.Text, "pgveil_test_panic") {
		panic("rewriter bug on " + st.Text)
	}
	return &rewrite.Result{SQL: st.Text}, nil
}

// recordingAuditor keeps the records written to it.
type recordingAuditor struct {
	mu      sync.Mutex
	records []*audit.Record
}

func (a *recordingAuditor) Write(r *audit.Record) {
	a.mu.Lock()
	a.records = append(a.records, r)
	a.mu.Unlock()
}

func (a *recordingAuditor) events(name string) []*audit.Record {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*audit.Record
	for _, r := range a.records {
		if r.Event == name {
			out = append(out, r)
		}
	}
	return out
}

func TestPanicEndsOnlyItsSession(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := proxy.NewMetrics(reg)
	rec := &recordingAuditor{}
	p := proxytest.StartProxy(t, proxytest.WithRewriter(panicRewriter{}), func(_ *policy.Config, o *proxy.Options) {
		o.Metrics, o.Audit = m, rec
	})
	ctx := context.Background()
	bystander := p.Connect(t, "alice")
	victim := p.Connect(t, "alice")

	for _, mode := range []string{"simple", "extended"} {
		t.Run("a panic in the "+mode+" protocol ends that session with XX000", func(t *testing.T) {
			c := victim
			if mode == "extended" {
				c = p.Connect(t, "alice")
			}
			var err error
			if mode == "simple" {
				_, err = c.Exec(ctx, "SELECT 'pgveil_test_panic'", pgx.QueryExecModeSimpleProtocol)
			} else {
				_, err = c.Exec(ctx, "SELECT 'pgveil_test_panic' WHERE $1", true)
			}
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "XX000" {
				t.Fatalf("want XX000, got %v", err)
			}
			if strings.Contains(pgErr.Message, "pgveil_test_panic") || strings.Contains(pgErr.Message, "rewriter bug") {
				t.Fatalf("the panic value reached the client: %q", pgErr.Message)
			}
			if _, err := c.Exec(ctx, "SELECT 1"); err == nil {
				t.Fatal("the session went on after the panic")
			}
		})
	}
	t.Run("the other sessions go on", func(t *testing.T) {
		var n int
		if err := bystander.QueryRow(ctx, "SELECT 41 + 1").Scan(&n); err != nil || n != 42 {
			t.Fatalf("%d %v", n, err)
		}
		c := p.Connect(t, "alice")
		if err := c.QueryRow(ctx, "SELECT 42").Scan(&n); err != nil || n != 42 {
			t.Fatalf("a new session: %d %v", n, err)
		}
	})
	t.Run("the audit trail and the metrics record each panic", func(t *testing.T) {
		if got := len(rec.events(audit.EventPanic)); got != 2 {
			t.Errorf("%d panic records, want 2", got)
		}
		fams, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, f := range fams {
			if f.GetName() == "pgveil_panics_total" {
				if v := f.GetMetric()[0].GetCounter().GetValue(); v != 2 {
					t.Errorf("pgveil_panics_total %v, want 2", v)
				}
				return
			}
		}
		t.Error("no pgveil_panics_total")
	})
}

// TestEndingASessionWhileItsRelayWritesErrors ends sessions (a server
// Close) while their backend relays turn a stream of marker errors into
// refusals: under -race, the final message of end and the relay's
// encoding must not share a buffer.
func TestEndingASessionWhileItsRelayWritesErrors(t *testing.T) {
	p := proxytest.StartProxy(t, proxytest.WithRewriter(&wordRewriter{}))
	ctx := context.Background()
	var wg sync.WaitGroup
	const sessions = 8
	busy := make(chan struct{}, sessions)
	for i := 0; i < sessions; i++ {
		c, err := pgconn.Connect(ctx, p.URL("alice", "alice-secret", nil))
		if err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close(context.Background())
			// Many refused statements in flight at once: the backend
			// relay is busy encoding refusals when the session ends.
			for j := 0; j < 500; j++ {
				c.Frontend().SendQuery(&pgproto3.Query{String: "SELECT 'forbidden'"})
			}
			signalled := false
			if err := c.Frontend().Flush(); err == nil {
				for {
					m, err := c.Frontend().Receive()
					if err != nil {
						break
					}
					if _, ok := m.(*pgproto3.ErrorResponse); ok && !signalled {
						signalled = true
						busy <- struct{}{}
					}
				}
			}
			if !signalled {
				busy <- struct{}{}
			}
		}()
	}
	for i := 0; i < sessions; i++ {
		<-busy
	}
	if err := p.Server.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
}
