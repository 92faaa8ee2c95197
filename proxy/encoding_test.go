package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestUpstreamEncodingMustBeUTF8 holds pgveil to refusing a database
// whose encoding is not UTF8. pgveil reads names as PostgreSQL does in
// UTF8; a LATIN1 database cuts a name at 63 bytes of LATIN1, where é is
// one: a red team named a CTE by a governed table's 63-byte UTF-8 name
// plus a letter, which pgveil cut to the table's name and took for the
// CTE, and which PostgreSQL kept apart: marie read every row of the
// table, emails unmasked.
func TestUpstreamEncodingMustBeUTF8(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	const db = "pgveil_latin1"
	for _, sql := range []string{
		"DROP DATABASE IF EXISTS " + db + " WITH (FORCE)",
		"CREATE DATABASE " + db + " TEMPLATE template0 ENCODING 'LATIN1' LC_COLLATE 'C' LC_CTYPE 'C'",
	} {
		if err := proxytest.Cluster.Exec(ctx, "postgres", sql); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(ctx, "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)") })
	change := func(c *policy.Config) { c.Upstream.Database = db }
	cfg := proxytest.DemoConfig(t, "../configs/demo.hcl", change)
	if pc, err := proxy.ConnectService(ctx, cfg, "test"); err == nil {
		pc.Close(ctx)
		t.Fatal("connected to a LATIN1 database")
	} else if !strings.Contains(err.Error(), `encoding is "LATIN1"`) {
		t.Fatalf("connecting: %v, want the encoding named", err)
	}
	if _, _, err := server.LoadEnforcement(ctx, cfg); err == nil || !strings.Contains(err.Error(), "UTF8") {
		t.Fatalf("loading the policy against a LATIN1 database: %v, want a refusal naming UTF8", err)
	}
}
