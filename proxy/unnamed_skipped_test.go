package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestTheUnnamedStatementASkippedParseLeavesIsNotRunForAnotherViewer: a
// BI service prepares the unnamed statement while acting for hq (every
// row), switches to marie (France only), and sends a batch in which an
// error makes the server skip a Parse of the unnamed statement: the
// server keeps hq's statement. A Bind and an Execute of the unnamed
// statement in the next batch must not run hq's text for marie.
func TestTheUnnamedStatementASkippedParseLeavesIsNotRunForAnotherViewer(t *testing.T) {
	p := proxytest.StartDemo(t)
	a := actConn{c: p.Connect(t, "metabase")}
	france, all := directCount(t, proxytest.Scopes["marie"]), directCount(t, "true")
	const q = "SELECT count(*)::text FROM responses"

	must(t, a.exec("SET ROLE hq"))
	vals, codes, _ := proxytest.PipelineBatches(t, a.c, 1, &pgproto3.Parse{Query: q}, &pgproto3.Sync{})
	if codes[0] != "" {
		t.Fatalf("the Parse as hq: %q %q", vals, codes)
	}
	// Extended protocol switch, which drops no unnamed statement.
	vals, codes, _ = proxytest.PipelineBatches(t, a.c, 1, &pgproto3.Parse{Name: "sw", Query: "SET ROLE marie"},
		&pgproto3.Bind{PreparedStatement: "sw"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes[0] != "" {
		t.Fatalf("SET ROLE marie (extended): %q %q", vals, codes)
	}
	// An error at the Execute (SELECT 1/0 fails at its Bind, where the
	// planner folds it), then a Parse of the unnamed statement the
	// server skips.
	vals, codes, _ = proxytest.PipelineBatches(t, a.c, 1,
		&pgproto3.Parse{Name: "f", Query: "SELECT 1/(SELECT 0)"}, &pgproto3.Bind{PreparedStatement: "f"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 'skipped'"}, &pgproto3.Sync{})
	if codes[0] != "22012" {
		t.Fatalf("the failing batch: %q %q", vals, codes)
	}
	vals, codes, errs := proxytest.PipelineBatches(t, a.c, 1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("Bind and Execute of the unnamed statement as marie: %q %q %q (france %d, all %d)", vals, codes, errs, france, all)
	if codes[0] == "" && vals[0] == strconv.Itoa(all) {
		t.Fatalf("acting for marie, the unnamed statement checked for hq ran: %s responses (marie sees %d)", vals[0], france)
	}
}

// TestTheUnnamedStatementASkippedParseLeavesIsNotRunAfterAReload is
// TestTheUnnamedStatementASkippedParseLeavesIsCheckedAfterAReload with
// an error at the Execute rather than at the Bind: there SELECT 1/0
// fails at its Bind (the planner folds it), which leaves the unnamed
// portal of the old policy in the tracker's history, and the Execute was
// refused for that portal, not for the statement. With the Bind
// answered, nothing refuses the statement checked under the old policy.
func TestTheUnnamedStatementASkippedParseLeavesIsNotRunAfterAReload(t *testing.T) {
	src, err := os.ReadFile("../configs/demo.hcl")
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
	// An error at the Execute, then a Parse of the unnamed statement
	// the server skips: the server keeps the statement of the old
	// policy.
	vals, codes, _ = proxytest.PipelineBatches(t, m, 1,
		&pgproto3.Parse{Name: "f", Query: "SELECT 1/(SELECT 0)"}, &pgproto3.Bind{PreparedStatement: "f"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 'skipped'"}, &pgproto3.Sync{})
	if codes[0] != "22012" {
		t.Fatalf("the failing batch: %q %q", vals, codes)
	}
	vals, codes, errs := proxytest.PipelineBatches(t, m, 1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("after the reload: %q %q %q", vals, codes, errs)
	if codes[0] == "" && vals[0] == before {
		t.Fatalf("after the reload, the unnamed statement checked under the old policy ran: %q (the new policy gives marie no row)", vals)
	}
}

// TestTheUnnamedStatementASkippedParseLeavesIsNotRunForAnotherViewerPooled
// is TestTheUnnamedStatementASkippedParseLeavesIsNotRunForAnotherViewer in
// transaction pooling, where a change of the acting user keeps the
// session's backend.
func TestTheUnnamedStatementASkippedParseLeavesIsNotRunForAnotherViewerPooled(t *testing.T) {
	p, _ := proxytest.StartDemoFrom(t, proxytest.PooledDemo(t, 2))
	a := actConn{c: p.Connect(t, "metabase")}
	france, all := directCount(t, proxytest.Scopes["marie"]), directCount(t, "true")
	const q = "SELECT count(*)::text FROM responses"
	must(t, a.exec("SET ROLE hq"))
	vals, codes, _ := proxytest.PipelineBatches(t, a.c, 1, &pgproto3.Parse{Query: q}, &pgproto3.Sync{})
	if codes[0] != "" {
		t.Fatalf("the Parse as hq: %q %q", vals, codes)
	}
	vals, codes, _ = proxytest.PipelineBatches(t, a.c, 1, &pgproto3.Parse{Name: "sw", Query: "SET ROLE marie"},
		&pgproto3.Bind{PreparedStatement: "sw"}, &pgproto3.Execute{}, &pgproto3.Sync{})
	if codes[0] != "" {
		t.Fatalf("SET ROLE marie (extended): %q %q", vals, codes)
	}
	vals, codes, _ = proxytest.PipelineBatches(t, a.c, 1,
		&pgproto3.Parse{Name: "f", Query: "SELECT 1/(SELECT 0)"}, &pgproto3.Bind{PreparedStatement: "f"}, &pgproto3.Execute{},
		&pgproto3.Parse{Query: "SELECT 'skipped'"}, &pgproto3.Sync{})
	if codes[0] != "22012" {
		t.Fatalf("the failing batch: %q %q", vals, codes)
	}
	vals, codes, errs := proxytest.PipelineBatches(t, a.c, 1, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	t.Logf("Bind and Execute of the unnamed statement as marie: %q %q %q (france %d, all %d)", vals, codes, errs, france, all)
	if codes[0] == "" && vals[0] == strconv.Itoa(all) {
		t.Fatalf("acting for marie, the unnamed statement checked for hq ran: %s responses (marie sees %d)", vals[0], france)
	}
}
