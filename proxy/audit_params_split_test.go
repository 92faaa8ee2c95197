package proxy_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
)

// TestAuditParamsSplitBind checks that a Bind arriving in pieces, cut
// inside its names, its counts and its values, is recorded with the
// values it carried, on every relay.
func TestAuditParamsSplitBind(t *testing.T) {
	const sql = "SELECT id FROM responses WHERE country = $1 AND id > $2"
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		recs := auditedRunOn(t, relay, func(po *proxy.Options) { po.AuditParameters = 256 }, func(ctx context.Context, c *pgx.Conn) {
			fe := c.PgConn().Frontend()
			if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "split", Query: sql}, &pgproto3.Sync{}); len(codes) != 0 {
				t.Fatalf("parse: %v", codes)
			}
			bind, err := (&pgproto3.Bind{DestinationPortal: "portal", PreparedStatement: "split",
				ParameterFormatCodes: []int16{0, 1}, Parameters: [][]byte{[]byte(strings.Repeat("France", 20)), {0, 0, 0, 0, 0, 0, 0, 1}}}).Encode(nil)
			if err != nil {
				t.Fatal(err)
			}
			conn := c.PgConn().Conn()
			for i := 0; i < len(bind); i += 3 {
				if _, err := conn.Write(bind[i:min(i+3, len(bind))]); err != nil {
					t.Fatal(err)
				}
				time.Sleep(time.Millisecond)
			}
			if _, codes := proxytest.SendBatch(t, fe, &pgproto3.Execute{Portal: "portal"}, &pgproto3.Sync{}); len(codes) != 0 {
				t.Fatalf("execute: %v", codes)
			}
		})
		want := "$1 = '" + strings.Repeat("France", 20) + "', $2 = \\x0000000000000001"
		if e := recordOf(t, recs, sql); e.Params != want {
			t.Errorf("params %q, want %q", e.Params, want)
		}
	})
}
