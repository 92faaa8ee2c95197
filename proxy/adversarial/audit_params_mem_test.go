package adversarial_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// TestAuditParamsPortalsBounded checks that what the statement tracker
// keeps of Binds' parameter values (audit.log_parameters) is bounded per
// session: named portals die upstream with their transaction, but the
// tracker remembers up to 10,000 portal names, and each entry kept its
// Bind's rendering (up to 16 KiB, more with a large
// parameter_max_length) for as long as the session lasts.
func TestAuditParamsPortalsBounded(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		path := t.TempDir() + "/audit.log"
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) { c.Listen.Relay = relay }, func(po *proxy.Options) {
			po.Audit = alog
			po.AuditParameters = 256
		})
		c := p.Connect(t, "marie")
		defer c.Close(context.Background())
		fe := c.PgConn().Frontend()
		const nparams = 64
		cols := make([]string, nparams)
		oids := make([]uint32, nparams)
		values := make([][]byte, nparams)
		for i := range cols {
			cols[i] = fmt.Sprintf("$%d::text", i+1)
			oids[i] = 25
			values[i] = []byte(strings.Repeat("v", 256))
		}
		if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "s", Query: "SELECT " + strings.Join(cols, ", "), ParameterOIDs: oids}, &pgproto3.Sync{}); len(codes) != 0 {
			t.Fatalf("parse: %v", codes)
		}
		h0 := proxytest.HeldHeapMiB()
		const portals, perBatch = 4000, 100
		for i := 0; i < portals; i += perBatch {
			var msgs []pgproto3.FrontendMessage
			for j := i; j < i+perBatch; j++ {
				msgs = append(msgs, &pgproto3.Bind{DestinationPortal: fmt.Sprintf("p%d", j), PreparedStatement: "s", Parameters: values})
			}
			msgs = append(msgs, &pgproto3.Sync{})
			if _, codes := proxytest.SendBatch(t, fe, msgs...); len(codes) != 0 {
				t.Fatalf("binds %d: %v", i, codes)
			}
		}
		// Every portal is gone upstream: each batch's transaction ended.
		grew := proxytest.HeldHeapMiB() - h0
		t.Logf("%d named portals bound and gone upstream: heap +%.1f MiB", portals, grew)
		if grew > 16 {
			t.Errorf("%d portals, gone upstream, keep +%.1f MiB of heap in pgveil", portals, grew)
		}
		if rows, codes := proxytest.SendBatch(t, fe, &pgproto3.Query{String: "SELECT count(*) FROM surveys"}); rows != 1 || len(codes) != 0 {
			t.Fatalf("after: rows %d errors %v", rows, codes)
		}
	})
}
