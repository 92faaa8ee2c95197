package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

func TestApplicationNameKeepsTheUserUpstream(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()
	c := p.Connect(t, "marie")
	upstreamName := func(t *testing.T) string {
		t.Helper()
		rows := proxytest.Direct(t, "SELECT application_name FROM pg_stat_activity WHERE application_name LIKE 'pgveil:marie:%'")
		if len(rows) != 1 {
			t.Fatalf("%d upstream sessions of marie: %v", len(rows), rows)
		}
		return rows[0][0]
	}
	for _, tc := range []struct{ name, sql, client, upstream string }{
		{"SET names the application, after the user", "SET application_name = 'Tableau'", "Tableau", "pgveil:marie:Tableau"},
		{"set_config does too", "SELECT set_config('application_name', 'DBeaver', false)", "DBeaver", "pgveil:marie:DBeaver"},
		{"posing as another user still names marie", "SET application_name = 'pgveil:hq:x'", "pgveil:hq:x", "pgveil:marie:pgveil:hq:x"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.PgConn().Exec(ctx, tc.sql).ReadAll(); err != nil {
				t.Fatal(err)
			}
			if got := c.PgConn().ParameterStatus("application_name"); got != tc.client {
				t.Errorf("the client is told %q, want %q", got, tc.client)
			}
			if got := upstreamName(t); got != tc.upstream {
				t.Errorf("upstream shows %q, want %q", got, tc.upstream)
			}
		})
	}
}
