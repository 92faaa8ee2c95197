package reload_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestTheUnnamedStatementASkippedParseLeavesIsCheckedAfterAReload: the
// unnamed statement prepared under one policy stays upstream when a later
// Parse of it is skipped after an error; after a reload, a Bind of it
// must not run the text checked under the old policy.
func TestTheUnnamedStatementASkippedParseLeavesIsCheckedAfterAReload(t *testing.T) {
	src, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, src, 0o600); err != nil {
		t.Fatal(err)
	}
	var po proxy.Options
	p, pols := proxytest.StartDemoFrom(t, path, func(opts *proxy.Options) { po = *opts })
	rl := &server.Reloader{Path: path, Base: p.Config, Policies: pols, Server: p.Server, Audit: po.Audit, Metrics: po.Metrics,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	m := p.Connect(t, "marie")
	const q = "SELECT count(*)::text FROM responses"
	vals, codes, _ := proxytest.PipelineBatches(t, m, 1, &pgproto3.Parse{Query: q}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes[0] != "" || vals[0] == "0" {
		t.Fatalf("before the reload: %q %q", vals, codes)
	}
	before := vals[0]
	proxytest.EditConfig(t, path, `  where  = "country = me.country"`, "  where  = \"country = me.country\"\n  enabled = false")
	if err := rl.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	// An error, then a Parse of the unnamed statement the server skips.
	vals, codes, _ = proxytest.PipelineBatches(t, m, 1,
		&pgproto3.Parse{Name: "f", Query: "SELECT 1/0"}, &pgproto3.Bind{PreparedStatement: "f"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 'skipped'"}, &pgproto3.Sync{})
	if codes[0] != "22012" {
		t.Fatalf("the failing batch: %q %q", vals, codes)
	}
	vals, codes, errs := proxytest.PipelineBatches(t, m, 1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes[0] == "" && vals[0] == before {
		t.Fatalf("after the reload, the unnamed statement checked under the old policy ran: %q (the new policy gives marie no row)", vals)
	}
	t.Logf("after the reload: %q %q %q", vals, codes, errs)
}
