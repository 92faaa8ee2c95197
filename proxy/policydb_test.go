package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// policyDB is a database of its own on the test cluster, loaded with
// schema, and served by pgveil with policy (not the demo's): the red
// teams' and reviews' policies.
type policyDB struct {
	// db is the database's name, what names the policy in messages.
	db, what string
	// schema is the SQL creating and filling the database.
	schema string
	// policy is the HCL; it reads the upstream's address and password
	// from the demo's environment variables.
	policy string
	// maskKeys installs the policy's hash-mask keys upstream too.
	maskKeys bool

	// NOTE: the database is created once per test binary, whichever
	// test asks first; err is that outcome for every test.
	once sync.Once
	err  error
}

// start loads d's database (once) and serves its policy in front of it.
func (d *policyDB) start(t *testing.T) *testProxy {
	t.Helper()
	setupDemo(t) // creates pgveil_svc and sets its password
	ctx := context.Background()
	t.Setenv("PGVEIL_DEMO_UPSTREAM", cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	path := filepath.Join(t.TempDir(), d.db+".hcl")
	if err := os.WriteFile(path, []byte(d.policy), 0o600); err != nil {
		t.Fatal(err)
	}
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		t.Fatalf("loading the %s policy:\n%s", d.what, b.String())
	}
	d.once.Do(func() {
		if d.err = cluster.CreateDatabase(ctx, d.db); d.err != nil {
			return
		}
		if d.err = cluster.Exec(ctx, d.db, d.schema); d.err == nil && d.maskKeys {
			d.err = cluster.ExecScript(ctx, d.db, cfg.MaskKeysSQL())
		}
	})
	if d.err != nil {
		t.Fatalf("loading %s: %v", d.db, d.err)
	}
	enf, _, err := server.LoadEnforcement(ctx, cfg)
	if err != nil {
		t.Fatalf("loading enforcement: %v", err)
	}
	po := proxy.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))}
	server.NewPolicies(enf).Apply(&po)
	return serve(t, cfg, po)
}
