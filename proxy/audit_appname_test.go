package proxy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestAuditApplicationName checks that records name the application a
// session names itself with SET application_name, from then on.
func TestAuditApplicationName(t *testing.T) {
	recs := auditedRun(t, nil, func(ctx context.Context, c *pgx.Conn) {
		simpleExec(ctx, t, c, "SELECT 1 AS before_set")
		simpleExec(ctx, t, c, "SET application_name = 'quarterly-report'")
		simpleExec(ctx, t, c, "SELECT 1 AS after_set")
		simpleExec(ctx, t, c, "RESET application_name")
		simpleExec(ctx, t, c, "SELECT 1 AS after_reset")
	})
	before := recordOf(t, recs, "SELECT 1 AS before_set").ApplicationName
	if e := recordOf(t, recs, "SELECT 1 AS after_set"); e.ApplicationName != "quarterly-report" {
		t.Errorf("after the SET: %q", e.ApplicationName)
	}
	if e := recordOf(t, recs, "SELECT 1 AS after_reset"); e.ApplicationName != before {
		t.Errorf("after the RESET: %q, want the startup name %q", e.ApplicationName, before)
	}
}
