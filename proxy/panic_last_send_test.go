package proxy_test

import (
	"bytes"
	"context"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// readyForQuery is the encoded ReadyForQuery of an idle session: only
// the last write of a start holds it.
var readyForQuery = []byte{'Z', 0, 0, 0, 5, 'I'}

// panicOnReadyListener accepts connections whose first write of a
// ReadyForQuery panics, as a bug reached in the last sendClient of a
// start would.
type panicOnReadyListener struct {
	net.Listener
	panicked *atomic.Bool
}

func (l panicOnReadyListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return panicOnReadyConn{Conn: c, panicked: l.panicked}, nil
}

type panicOnReadyConn struct {
	net.Conn
	panicked *atomic.Bool
}

func (c panicOnReadyConn) Write(b []byte) (int, error) {
	if bytes.Contains(b, readyForQuery) && c.panicked.CompareAndSwap(false, true) {
		panic("a bug reached in the last write of a start")
	}
	return c.Conn.Write(b)
}

// TestPanicInTheLastSendOfAStart: a panic in the write of a start's
// first ReadyForQuery (the session already counted as started) is
// logged as the panic it is, at error level with its stack, and audited
// as one, not as a client that disconnected; and everything the start
// took is given back.
func TestPanicInTheLastSendOfAStart(t *testing.T) {
	cfg := proxytest.DemoConfig(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.MaxUserConnections = 1 })
	enf, _, err := server.LoadEnforcement(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zapcore.InfoLevel)
	reg := prometheus.NewRegistry()
	aud := &recordingAuditor{}
	po := proxy.Options{Logger: zap.New(core), Metrics: proxy.NewMetrics(reg), Audit: aud}
	server.NewPolicies(enf).Apply(&po)
	srv, err := proxy.New(proxy.ConfigOf(cfg), po)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var panicked atomic.Bool
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(panicOnReadyListener{Listener: ln, panicked: &panicked}) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
		<-done
	})
	p := &proxytest.Proxy{Server: srv, Addr: ln.Addr().String(), Config: cfg}
	ctx := context.Background()
	if c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil)); err == nil {
		c.Close(ctx)
		t.Fatal("the login whose last write panicked was served")
	}
	if !panicked.Load() {
		t.Fatal("the last write of the start did not panic")
	}
	proxytest.WaitSessions(t, p, 0)

	t.Run("the log says it was a panic, at error level with the stack", func(t *testing.T) {
		found := false
		for _, e := range logs.All() {
			if e.Level == zapcore.ErrorLevel && e.ContextMap()["panic"] != nil && e.ContextMap()["stack"] != nil {
				found = true
			}
			if e.Message == "session ended" && e.ContextMap()["reason"] == "client disconnected" {
				t.Errorf("the session's end is logged as a client that disconnected: %v", e.ContextMap())
			}
		}
		if !found {
			t.Error("no error-level log entry with the panic and its stack")
		}
	})
	t.Run("the audit trail records a panic, not a disconnected client", func(t *testing.T) {
		if len(aud.events("panic")) != 1 {
			t.Errorf("%d panic records, want 1", len(aud.events("panic")))
		}
		for _, r := range aud.events("disconnect") {
			if strings.Contains(r.Reason, "client disconnected") {
				t.Errorf("the session's end is audited as %q", r.Reason)
			}
		}
	})
	t.Run("the metrics count the panic once and no session", func(t *testing.T) {
		if v := gauge(t, reg, "pgveil_panics_total"); v != 1 {
			t.Errorf("pgveil_panics_total %v, want 1", v)
		}
		if v := gauge(t, reg, "pgveil_sessions"); v != 0 {
			t.Errorf("pgveil_sessions %v, want 0", v)
		}
	})
	t.Run("the login's place is given back: it starts again and works", func(t *testing.T) {
		c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
		if err != nil {
			t.Fatalf("the next login after a panic: %v", err)
		}
		defer c.Close(ctx)
		if _, err := c.Exec(ctx, "SELECT 1").ReadAll(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("its upstream connection is closed", func(t *testing.T) {
		const q = "SELECT count(*) FROM pg_stat_activity WHERE application_name LIKE 'pgveil:marie:%'"
		if !proxytest.Poll(5*time.Second, func() bool { return proxytest.Direct(t, q)[0][0] == "1" }) {
			t.Errorf("%s backends of marie upstream, want 1 (the new session's)", proxytest.Direct(t, q)[0][0])
		}
	})
}
