package proxy_test

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditActForChanges checks that each change of whom a BI service's
// session acts for is a record of its own (event act_for): the login,
// the end user it acts for from then on ("" for its login again), what
// changed it, and the policy version that allowed it, redacted or not.
// The statement's record cannot say it: the user is a literal of SET
// ROLE, which redact_literals removes, and a rollback's change has no
// statement naming a user at all.
func TestAuditActForChanges(t *testing.T) {
	for _, c := range []struct {
		name   string
		redact bool
		relay  string
		pool   policy.Pool
	}{
		{"as written", false, policy.RelayEventLoop, policy.Pool{}},
		{"with redact_literals", true, policy.RelayEventLoop, policy.Pool{}},
		{"on goroutines", true, policy.RelayGoroutines, policy.Pool{}},
		{"in a transaction pool", true, policy.RelayEventLoop,
			policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 20 * time.Second, IdleTimeout: time.Minute}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "audit.log")
			alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey, RedactLiterals: c.redact})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = alog.Close() })
			p := startDemoPool(t, c.relay, c.pool, func(po *proxy.Options) { po.Audit = alog })
			a := actConn{c: p.Connect(t, "metabase")}
			must(t, a.exec("SET ROLE marie"))
			must(t, a.exec("RESET ROLE"))
			must(t, a.exec("SET pgveil.act_for = 'hq'"))
			must(t, a.exec("RESET ALL"))
			must(t, a.exec("BEGIN"))
			must(t, a.exec("SET ROLE marie"))
			must(t, a.exec("ROLLBACK"))
			refusedBy(t, a.exec("SET ROLE survey_admin"), "act_for")
			must(t, a.exec("BEGIN"))
			if a.exec("SELECT 1/0") == nil || a.exec("SET ROLE marie") == nil {
				t.Fatal("a failed transaction ran a statement")
			}
			must(t, a.exec("ROLLBACK"))
			must(t, a.execExtended("SET ROLE hq"))
			must(t, a.exec("DISCARD ALL"))
			a.c.Close(context.Background())
			proxytest.WaitSessions(t, p, 0)
			var got []string
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event != "act_for" {
					continue
				}
				if e.User != "metabase" || e.Session == "" || e.PolicyVersion == "" || strings.Contains(e.Message, `"`) {
					t.Errorf("act_for record %+v", e.Record)
				}
				got = append(got, e.ActingForBefore+" to "+e.ActingFor+" by "+e.Reason)
			}
			want := []string{
				" to marie by set role", "marie to  by reset role", " to hq by set pgveil.act_for", "hq to  by reset all",
				" to marie by set role", "marie to  by rolled back", " to hq by set role", "hq to  by discard all",
			}
			if !slices.Equal(got, want) {
				t.Errorf("act_for records\n%q\nwant\n%q", got, want)
			}
		})
	}
}

// TestAuditDisconnectNamesTheUserActedFor checks that a BI service's
// session that ends while acting for a viewer says so in its disconnect
// record: it is where acting for her ended, and a search for her finds
// it.
func TestAuditDisconnectNamesTheUserActedFor(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{RedactLiterals: true})
	acting := actConn{c: p.Connect(t, "metabase")}
	must(t, acting.exec("SET ROLE marie"))
	own := actConn{c: p.Connect(t, "metabase")}
	must(t, own.exec("SELECT 1"))
	acting.c.Close(context.Background())
	own.c.Close(context.Background())
	proxytest.WaitSessions(t, p, 0)
	var got []string
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == audit.EventDisconnect {
			got = append(got, e.User+" as "+e.ActingFor)
		}
	}
	if slices.Sort(got); !slices.Equal(got, []string{"metabase as ", "metabase as marie"}) {
		t.Fatalf("disconnect records %q", got)
	}
}
