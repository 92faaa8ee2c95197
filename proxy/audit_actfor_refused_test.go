package proxy_test

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditRefusedActForNamesAKnownTarget checks that, with
// redact_literals, the record of a refused change of the acting user
// still names whom a BI service tried to act for when the policy knows
// that user (no secret typed by mistake: a login pgveil serves), so that
// an auditor sees the attempt; an unknown name stays redacted, as
// anything a client typed may be a password. Extended protocol too, on
// both relays and in a transaction pool.
func TestAuditRefusedActForNamesAKnownTarget(t *testing.T) {
	pooled := policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 20 * time.Second, IdleTimeout: time.Minute}
	for _, c := range []struct {
		name  string
		relay string
		pool  policy.Pool
	}{
		{"on event loops", policy.RelayEventLoop, policy.Pool{}},
		{"on goroutines", policy.RelayGoroutines, policy.Pool{}},
		{"in a transaction pool", policy.RelayEventLoop, pooled},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey, RedactLiterals: true})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = alog.Close() })
			p := startDemoPool(t, c.relay, c.pool, func(po *proxy.Options) { po.Audit = alog })
			a := actConn{c: p.Connect(t, "metabase")}
			refusedBy(t, a.exec("SET ROLE survey_admin"), "act_for")
			refusedBy(t, a.execExtended("SET pgveil.act_for = 'survey_admin'"), "act_for")
			refusedBy(t, a.exec("SET ROLE \"hunter2-typo\""), "act_for")
			a.c.Close(context.Background())
			proxytest.WaitSessions(t, p, 0)
			var msgs []string
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event == audit.EventStatement && e.Decision == audit.DecisionDenied && e.Reason == "act_for" {
					msgs = append(msgs, e.Message)
				}
			}
			// NOTE: the extended one has two: its Parse's and its Execute's.
			if len(msgs) < 3 {
				t.Fatalf("refusal records %q", msgs)
			}
			for i, m := range msgs[:len(msgs)-1] {
				if !strings.Contains(m, "may not act for survey_admin") {
					t.Errorf("refusal %d does not name the user the policy knows: %q", i+1, m)
				}
			}
			if last := msgs[len(msgs)-1]; strings.Contains(last, "hunter2") || !strings.Contains(last, "no user block") {
				t.Errorf("the refusal of an unknown name: %q", last)
			}
		})
	}
}

// TestAuditRefusedActForKeepsItsKind checks that the record of a change
// of the acting user pgveil refuses says what kind of statement it was,
// as every other refusal's does: `audit search --kind set` finds the
// attempts, in simple and extended protocol.
func TestAuditRefusedActForKeepsItsKind(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		path := filepath.Join(t.TempDir(), "audit.log")
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p := startDemoPool(t, relay, policy.Pool{}, func(po *proxy.Options) { po.Audit = alog })
		a := actConn{c: p.Connect(t, "metabase")}
		refusedBy(t, a.exec("SET ROLE survey_admin"), "act_for")
		refusedBy(t, a.execExtended("SET pgveil.act_for = 'nobody'"), "act_for")
		a.c.Close(context.Background())
		proxytest.WaitSessions(t, p, 0)
		n := 0
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == audit.EventStatement && e.Reason == "act_for" {
				n++
				if e.Kind != "set" {
					t.Errorf("the refusal of %q is recorded of kind %q, not set", e.SQL, e.Kind)
				}
			}
		}
		if n < 2 {
			t.Fatalf("%d act_for refusal records", n)
		}
	})
}
