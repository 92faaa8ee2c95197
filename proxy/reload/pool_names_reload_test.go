package reload_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestTransactionPoolLongNameRefusedAfterReload: a statement named by
// more than 63 bytes, prepared by marie in
// transaction pooling, which a reload then refuses her: no Bind after the
// reload may run the text checked before it.
func TestTransactionPoolLongNameRefusedAfterReload(t *testing.T) {
	path := proxytest.PooledDemo(t, 1)
	var po proxy.Options
	p, pols := proxytest.StartDemoFrom(t, path, func(o *proxy.Options) { po = *o })
	rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	c := p.Connect(t, "marie")
	name := strings.Repeat("s", 64)
	const q = "SELECT count(*) FROM surveys"
	want := proxytest.Direct(t, q)[0][0]
	if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: name, Query: q}, &pgproto3.Sync{}); err != nil {
		t.Fatal(err)
	}
	rows, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if err != nil || len(rows) != 1 || rows[0] != want {
		t.Fatalf("before the reload: %q %v, want %s", rows, err, want)
	}
	proxytest.EditConfig(t, path, "table \"public.surveys\" {\n  reference = true\n}", "")
	proxytest.EditConfig(t, path, `tables = ["public.surveys", "public.teams"]`, `tables = ["public.teams"]`)
	if err := rl.Reload(context.Background()); err != nil {
		t.Fatal(err)
	}
	{
		rows, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		t.Logf("fresh after the reload: %q %v", rows, err)
	}
	for i := 0; i < 3; i++ {
		rows, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: name}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
		t.Logf("Bind %d after the reload: rows %q, err %v", i, rows, err)
		if err == nil && len(rows) == 1 && rows[0] == want {
			t.Fatalf("Bind %d after the reload: the statement checked under the old policy ran: %s rows", i, rows[0])
		}
	}
}
