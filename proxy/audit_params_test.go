package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/proxy"
)

// TestAuditParams checks that, with AuditParameters, a record holds the
// values its Bind ran with, each cut to the bound; and that it holds
// none without.
func TestAuditParams(t *testing.T) {
	const first = "SELECT id FROM responses WHERE country = $1 AND comment IS DISTINCT FROM $2 LIMIT 1"
	const second = "SELECT id FROM responses WHERE id = $1"
	script := func(ctx context.Context, c *pgx.Conn) {
		var id int64
		if err := c.QueryRow(ctx, first, "France", "a comment longer than eight bytes").Scan(&id); err != nil {
			t.Fatal(err)
		}
		if err := c.QueryRow(ctx, second, pgx.QueryExecModeExec, id).Scan(&id); err != nil {
			t.Fatal(err)
		}
		simpleExec(ctx, t, c, "SELECT count(*) FROM responses")
	}
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		// NOTE: on goroutines the Bind is peeked from the socket, its
		// head only; on an event loop it is buffered whole.
		recs := auditedRunOn(t, relay, func(po *proxy.Options) { po.AuditParameters = 8 }, script)
		if e := recordOf(t, recs, first); !strings.Contains(e.Params, "$1 = 'France'") || !strings.Contains(e.Params, "$2 = 'a commen'...") {
			t.Errorf("params %q", e.Params)
		}
		if e := recordOf(t, recs, second); !strings.HasPrefix(e.Params, "$1 = '") {
			t.Errorf("text-format params %q", e.Params)
		}
		if e := recordOf(t, recs, "SELECT count(*) FROM responses"); e.Params != "" {
			t.Errorf("a simple query has params %q", e.Params)
		}
	})
	t.Run("off by default", func(t *testing.T) {
		for sql, e := range auditedRun(t, nil, script) {
			if e.Params != "" {
				t.Errorf("%s: params %q without AuditParameters", sql, e.Params)
			}
		}
	})
}

// TestAuditParamsLongBind checks a Bind longer than pgveil peeks at: its
// values past the head are listed as not recorded, and the whole
// message still streams upstream.
func TestAuditParamsLongBind(t *testing.T) {
	const sql = "SELECT length($1::text) + length($2::text)"
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		recs := auditedRunOn(t, relay, func(po *proxy.Options) { po.AuditParameters = 8 }, func(ctx context.Context, c *pgx.Conn) {
			var n int
			if err := c.QueryRow(ctx, sql, pgx.QueryExecModeExec, strings.Repeat("x", 100<<10), "y").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if n != 100<<10+1 {
				t.Fatalf("length %d: the Bind did not reach the upstream whole", n)
			}
		})
		if e := recordOf(t, recs, sql); e.Params != "$1 = 'xxxxxxxx'..., $2 to $2 not recorded (the Bind is too long)" {
			t.Errorf("params %q", e.Params)
		}
	})
}
