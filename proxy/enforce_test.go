package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestEnforcementRefusesAPolicyTheDatabaseContradicts: a policy naming a
// column or a table otherwise than the database does would be served
// open, so pgveil refuses to serve it, as `pgveil check --upstream`
// reports it.
func TestEnforcementRefusesAPolicyTheDatabaseContradicts(t *testing.T) {
	setupDemo(t)
	const head = `
listen {
  address  = "127.0.0.1:6432"
  database = "feedback"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "feedback"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
role "analyst" { statements = ["select"] }
user "marie" {
  password   = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles      = ["analyst"]
  attributes = { country = "FR" }
}
`
	t.Setenv("PGVEIL_DEMO_UPSTREAM", cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	ctx := context.Background()
	for _, c := range []struct {
		name, body, want string
	}{
		{"a mask of a column spelled otherwise", `
table "public.responses" {
  column "Email" { class = "pii" }
}
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}`, "Unknown column"},
		{"a restrictive rule on a table spelled otherwise", `
table "public.*" {}
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}
rule "france" {
  tables = ["public.Responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "country = me.country"
}`, "Rule names no table"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgveil.hcl")
			if err := os.WriteFile(path, []byte(head+c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, diags := policy.NewLoader().Load(path)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			_, diags, err := server.LoadEnforcement(ctx, cfg)
			if err == nil {
				t.Fatal("enforcement loaded")
			}
			if !strings.Contains(diags.Error(), c.want) {
				t.Fatalf("diagnostics %q, want %q", diags.Error(), c.want)
			}
		})
	}
}
