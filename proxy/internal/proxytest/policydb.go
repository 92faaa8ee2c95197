package proxytest

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

// PolicyDB is a database of its own on the test cluster, loaded with
// schema, and served by pgveil with policy (not the demo's): the red
// teams' and reviews' policies.
type PolicyDB struct {
	// DB is the database's name, What names the policy in messages.
	DB, What string
	// Schema is the SQL creating and filling the database.
	Schema string
	// Policy is the HCL; it reads the upstream's address and password
	// from the demo's environment variables.
	Policy string
	// MaskKeys installs the policy's hash-mask keys upstream too.
	MaskKeys bool
	// Loaded says another PolicyDB of the same DB loaded the database:
	// Start only serves Policy in front of it.
	Loaded bool

	// NOTE: the database is created once per test binary, whichever
	// test asks first; err is that outcome for every test.
	once sync.Once
	err  error
}

// Start loads d's database (once) and serves its policy in front of it.
func (d *PolicyDB) Start(t *testing.T) *Proxy {
	t.Helper()
	SetupDemo(t) // creates pgveil_svc and sets its password
	ctx := context.Background()
	t.Setenv("PGVEIL_DEMO_UPSTREAM", Cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	path := filepath.Join(t.TempDir(), d.DB+".hcl")
	if err := os.WriteFile(path, []byte(d.Policy), 0o600); err != nil {
		t.Fatal(err)
	}
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		t.Fatalf("loading the %s policy:\n%s", d.What, b.String())
	}
	d.once.Do(func() {
		if d.Loaded {
			return
		}
		if d.err = Cluster.CreateDatabase(ctx, d.DB); d.err != nil {
			return
		}
		if d.err = Cluster.Exec(ctx, d.DB, d.Schema); d.err == nil && d.MaskKeys {
			d.err = Cluster.ExecScript(ctx, d.DB, cfg.MaskKeysSQL())
		}
	})
	if d.err != nil {
		t.Fatalf("loading %s: %v", d.DB, d.err)
	}
	enf, _, err := server.LoadEnforcement(ctx, cfg)
	if err != nil {
		t.Fatalf("loading enforcement: %v", err)
	}
	po := proxy.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))}
	server.NewPolicies(enf).Apply(&po)
	return Serve(t, cfg, po)
}
