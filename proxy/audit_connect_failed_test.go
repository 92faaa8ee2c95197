package proxy_test

import (
	"context"
	"errors"
	"net"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestAuditConnectFailed checks the connect_failed record of a session
// pgveil could not open a backend for: who, from where, and the SQLSTATE
// the client was told, so that an auditor can tell an upstream outage
// (08001) from a full server (53300) without the diagnostic log.
func TestAuditConnectFailed(t *testing.T) {
	for _, tc := range []struct {
		name string
		pool policy.Pool
	}{
		{"a session-mode login records the SQLSTATE it was refused with", policy.Pool{}},
		{"a transaction-pool login records the SQLSTATE it was refused with", policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Second, IdleTimeout: time.Minute}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rec := &recordingAuditor{}
			cfg := proxytest.DemoConfig(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.Pool = tc.pool })
			enf, _, err := server.LoadEnforcement(context.Background(), cfg)
			if err != nil {
				t.Fatalf("loading enforcement: %v", err)
			}
			// The upstream goes away once the policy is loaded: a port
			// nobody listens on.
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			cfg.Upstream.Address = ln.Addr().String()
			ln.Close()
			po := proxy.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel)), Audit: rec}
			server.NewPolicies(enf).Apply(&po)
			p := proxytest.Serve(t, cfg, po)

			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pgconn.Connect(ctx, p.URL("marie", "demo-marie", nil))
			var pe *pgconn.PgError
			if err == nil {
				c.Close(ctx)
				t.Fatal("connected with the upstream down")
			} else if !errors.As(err, &pe) {
				t.Fatalf("connecting: %v, want the FATAL pgveil sent", err)
			}
			// NOTE: the record follows the FATAL the client read.
			var got []*audit.Record
			proxytest.Poll(5*time.Second, func() bool { got = rec.events("connect_failed"); return len(got) > 0 })
			if len(got) != 1 {
				t.Fatalf("%d connect_failed records, want 1", len(got))
			}
			e := got[0]
			if e.User != "marie" || e.Client == "" || e.Session == "" || e.Reason != pe.Message {
				t.Errorf("record %+v, want marie's with the client address, the session and the message %q", e, pe.Message)
			}
			if e.SQLState != pe.Code {
				t.Errorf("sqlstate %q, want %q, the one the client got", e.SQLState, pe.Code)
			}
		})
	}
}

// TestAuditRefusalSQLState checks that the records of logins refused
// carry the SQLSTATE the client was sent, as those of statements do.
func TestAuditRefusalSQLState(t *testing.T) {
	rec := &recordingAuditor{}
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", nil, func(po *proxy.Options) { po.Audit = rec })
	for _, tc := range []struct {
		name  string
		url   string
		event string
	}{
		{"a wrong password's auth_failure records it", p.URL("marie", "not-her-password", nil), "auth_failure"},
		{"a database pgveil does not serve records it", strings.Replace(p.URL("marie", "demo-marie", nil), "/"+proxytest.DemoDB+"?", "/postgres?", 1), "connect_refused"},
		{"a startup parameter pgveil refuses records it", p.URL("marie", "demo-marie", url.Values{"replication": {"database"}}), "connect_refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(rec.events(tc.event))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			c, err := pgconn.Connect(ctx, tc.url)
			var pe *pgconn.PgError
			if err == nil {
				c.Close(ctx)
				t.Fatal("connected")
			} else if !errors.As(err, &pe) {
				t.Fatalf("connecting: %v, want the FATAL pgveil sent", err)
			}
			var got []*audit.Record
			proxytest.Poll(5*time.Second, func() bool { got = rec.events(tc.event); return len(got) > before })
			if len(got) != before+1 {
				t.Fatalf("%d %s records, want %d", len(got), tc.event, before+1)
			}
			if e := got[before]; e.SQLState != pe.Code || e.SQLState == "" {
				t.Errorf("sqlstate %q, want %q, the one the client got (%+v)", e.SQLState, pe.Code, e)
			}
		})
	}
}
