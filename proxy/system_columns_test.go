package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestSystemColumnsOfGovernedTablesSayWhyTheyAreMissing: a governed
// table is read through a scoped subquery, which has no system columns;
// the undefined-column error naming one says so in its HINT, and says
// nothing more of the policy. Other undefined columns keep PostgreSQL's
// error.
func TestSystemColumnsOfGovernedTablesSayWhyTheyAreMissing(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()
	c := p.Connect(t, "marie")
	for _, st := range []struct {
		name, sql string
		hinted    bool
	}{
		{"tableoid beside a star is hinted", "SELECT tableoid, * FROM responses", true},
		{"a qualified xmin is hinted", "SELECT r.xmin FROM responses r", true},
		{"ctid in a condition is hinted", "SELECT count(*) FROM responses WHERE ctid > '(0,1)'", true},
		{"a column that is no system column is not", "SELECT nosuch FROM responses", false},
	} {
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			t.Run(st.name+" "+mode.String(), func(t *testing.T) {
				_, err := c.Exec(ctx, st.sql, mode)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != "42703" {
					t.Fatalf("want 42703, got %v", err)
				}
				has := strings.Contains(pe.Hint, "System columns (tableoid, ctid, xmin, xmax, cmin, cmax) are not available on tables pgveil governs")
				if has != st.hinted {
					t.Fatalf("hint %q (want the system-column hint: %v): %s", pe.Hint, st.hinted, pe.Message)
				}
				if strings.Contains(pe.Hint+pe.Detail+pe.Message, "country") {
					t.Fatalf("the error names the policy: %+v", pe)
				}
			})
		}
	}
	t.Run("the session stays usable", func(t *testing.T) {
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM responses").Scan(&n); err != nil || n == 0 {
			t.Fatalf("count %d, %v", n, err)
		}
	})
}
