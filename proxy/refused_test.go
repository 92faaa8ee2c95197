package proxy_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// refusedRecords returns the connect_refused records of the trail at
// path.
func refusedRecords(t *testing.T, alog *audit.Log, path string) []*audit.Entry {
	t.Helper()
	var out []*audit.Entry
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == "connect_refused" {
			out = append(out, e)
		}
	}
	return out
}

// waitRecords waits until alog holds n more records than it did at base
// (its Stats then): a refusal is recorded after the client has its
// answer.
func waitRecords(t *testing.T, alog *audit.Log, base audit.Stats, n int) {
	t.Helper()
	proxytest.Eventually(t, 5*time.Second, fmt.Sprintf("%d records", n), func() bool {
		s := alog.Stats()
		return s.Written+uint64(s.Queued) >= base.Written+uint64(base.Queued)+uint64(n)
	})
}

// refuseStartup sends a StartupMessage of params and returns the
// ErrorResponse it gets.
func refuseStartup(t *testing.T, addr string, params map[string]string) *pgproto3.ErrorResponse {
	t.Helper()
	c, fe := startupRaw(t, addr, params)
	defer c.Close()
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("%v: %v", params, err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			return m
		case *pgproto3.AuthenticationSASL:
			t.Fatalf("%v: asked to authenticate", params)
		}
	}
}

// auditedProxy starts a test proxy with an audit trail and metrics.
func auditedProxy(t *testing.T, opts ...proxytest.Option) (*proxytest.Proxy, *audit.Log, string, *prometheus.Registry) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "audit.log")
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	reg := prometheus.NewRegistry()
	opts = append(opts, func(_ *policy.Config, o *proxy.Options) { o.Audit, o.Metrics = alog, proxy.NewMetrics(reg) })
	return proxytest.StartProxy(t, opts...), alog, path, reg
}

func TestAuditRecordsStartupsRefusedWhileTheirParametersAreRead(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	attempts := []map[string]string{
		{"user": "hq", "database": "feedback", "replication": "database", "application_name": "walreceiver"},
		{"user": "hq", "database": "feedback", "client_encoding": "SJIS"},
		{"search_path": "evil,public", "user": "hq", "database": "feedback"},
		{"options": "-c role=postgres", "user": "hq"},
	}
	var messages []string
	base := alog.Stats()
	for _, params := range attempts {
		e := refuseStartup(t, p.Addr, params)
		if e.Code != "42501" {
			t.Fatalf("%v: %s %s", params, e.Code, e.Message)
		}
		messages = append(messages, e.Message)
	}
	waitRecords(t, alog, base, len(attempts))
	got := refusedRecords(t, alog, path)
	if len(got) != len(attempts) {
		t.Fatalf("%d refused startups, %d connect_refused records", len(attempts), len(got))
	}
	// NOTE: a record is written once the client is answered: the next
	// refusal's may come first.
	byReason := map[string]*audit.Entry{}
	for _, e := range got {
		byReason[e.Reason] = e
	}
	for i, msg := range messages {
		e := byReason[msg]
		if e == nil {
			t.Errorf("no record of refusal %d (%q)", i, msg)
			continue
		}
		app := attempts[i]["application_name"]
		db := cmpOr(attempts[i]["database"], attempts[i]["user"])
		if e.User != "hq" || e.Database != db || e.ApplicationName != app ||
			!strings.HasPrefix(e.Client, "127.0.0.1:") || e.Message != "" || e.Count != 0 {
			t.Errorf("refusal %d (%q): record user=%q database=%q application_name=%q client=%q message=%q count=%d",
				i, msg, e.User, e.Database, e.ApplicationName, e.Client, e.Message, e.Count)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func TestAuditRecordsAPlaintextStartupWhereTLSIsRequired(t *testing.T) {
	p, alog, path, _ := auditedProxy(t, proxytest.WithTLS(t, true))
	base := alog.Stats()
	e := refuseStartup(t, p.Addr, map[string]string{"user": "alice", "database": proxytest.TestDB})
	waitRecords(t, alog, base, 1)
	got := refusedRecords(t, alog, path)
	if len(got) != 1 || got[0].User != "alice" || got[0].Database != proxytest.TestDB || got[0].Reason != e.Message {
		t.Fatalf("refused with %q; records %+v", e.Message, got)
	}
}

func TestAuditRecordsAStartupPastMaxConnections(t *testing.T) {
	p, alog, path, _ := auditedProxy(t, withCaps(1, 0, nil))
	// NOTE: the base before alice's session: its connect record may be
	// written after her connection is up, and counted for bob's.
	base := alog.Stats()
	_ = p.Connect(t, "alice")
	e := refuseStartup(t, p.Addr, map[string]string{"user": "bob", "database": proxytest.TestDB})
	if e.Code != "53300" {
		t.Fatalf("%s %s", e.Code, e.Message)
	}
	waitRecords(t, alog, base, 2)
	got := refusedRecords(t, alog, path)
	if len(got) != 1 || got[0].User != "bob" || got[0].Reason != "sorry, too many clients already" {
		t.Fatalf("records %+v", got)
	}
}

func TestAuditRecordsTenRefusedStartupsOfAnAddressAMinuteAndCountsTheRest(t *testing.T) {
	p, alog, path, reg := auditedProxy(t)
	const n = 25
	base := alog.Stats()
	for i := range n {
		refuseStartup(t, p.Addr, map[string]string{"user": fmt.Sprintf("guess%d", i), "replication": "true"})
	}
	proxytest.Eventually(t, 5*time.Second, "the unrecorded refusals counted", func() bool {
		return gauge(t, reg, "pgveil_audit_refusals_unrecorded_total") == n-10
	})
	waitRecords(t, alog, base, 10)
	got := refusedRecords(t, alog, path)
	if len(got) != 10 {
		t.Fatalf("%d records of %d refused startups of one address within a minute, want 10", len(got), n)
	}
	lasts := 0
	for _, e := range got {
		if strings.Contains(e.Message, "10 refused startups of this client address within 1m0s: its next ones are not recorded until") {
			lasts++
		} else if e.Message != "" {
			t.Errorf("record of %s: message %q", e.User, e.Message)
		}
	}
	if lasts != 1 {
		t.Errorf("%d records say the next refusals are not recorded, want 1", lasts)
	}
}

// TestAuditRecordsTenFailedLoginsOfAnAddressAMinuteAndCountsTheRest:
// whoever reaches the port can fail logins at will (logins that cannot
// exist are not throttled): their auth_failure records are bounded per
// address like refused startups', the rest counted.
func TestAuditRecordsTenFailedLoginsOfAnAddressAMinuteAndCountsTheRest(t *testing.T) {
	p, alog, path, reg := auditedProxy(t)
	const n = 14
	for i := range n {
		c, err := pgconn.Connect(context.Background(), fmt.Sprintf("postgres://nobody%d:wrong@%s/postgres?sslmode=disable", i, p.Addr))
		if err == nil {
			c.Close(context.Background())
			t.Fatal("a login that does not exist connected")
		}
	}
	proxytest.Eventually(t, 5*time.Second, "the unrecorded failures counted", func() bool {
		return gauge(t, reg, "pgveil_audit_refusals_unrecorded_total") == n-10
	})
	proxytest.Eventually(t, 5*time.Second, "ten auth_failure records", func() bool {
		got := 0
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == "auth_failure" {
				got++
			}
		}
		return got == 10
	})
}
