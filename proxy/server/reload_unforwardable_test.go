package server

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy"
)

// TestReloadRefusesAnUnforwardableExpression: a reload whose rule has a
// where pgveil cannot forward (policy's validateForwardable) is refused
// as any configuration error is, and the running policies keep serving.
func TestReloadRefusesAnUnforwardableExpression(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	if err := cluster.Exec(ctx, "postgres", "DROP TABLE IF EXISTS reload_unfwd; CREATE TABLE reload_unfwd (amname text)"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", "DROP TABLE IF EXISTS reload_unfwd") })
	rule := `
table "public.reload_unfwd" {}
rule "r" {
  tables = ["public.reload_unfwd"]
  roles  = ["reader"]
  where  = "amname = me.login"
}
`
	path := writeConfig(t, rule)
	srv, err := Start(ctx, Config{Path: path, Config: load(t, path), Version: "test"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(string(body), `where  = "amname = me.login"`,
		`where  = "(CASE WHEN amname = me.login THEN ARRAY[amname] END)[1] IS NOT NULL"`, 1)
	if changed == string(body) {
		t.Fatal("the test did not change the rule")
	}
	if err := os.WriteFile(path, []byte(changed), 0o600); err != nil {
		t.Fatal(err)
	}
	l := policy.NewLoader()
	if _, diags := l.Load(path); len(diags.Errs()) != 1 || diags.Errs()[0].(*hcl.Diagnostic).Summary != policy.UnforwardableSummary {
		t.Fatalf("the changed configuration's errors are not the one unforwardable where: %v", diags)
	}
	before := srv.Policies().Current()
	err = srv.Reload(ctx)
	if !errors.Is(err, ErrReloadRefused) {
		t.Fatalf("Reload = %v; want ErrReloadRefused", err)
	}
	if srv.Policies().Current() != before {
		t.Fatal("a refused reload replaced the policies in force")
	}
}
