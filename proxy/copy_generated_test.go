package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestCopyTableLeavesGeneratedColumnsOut: COPY table TO STDOUT, without a
// column list, copies what PostgreSQL's COPY table copies: every column
// but the generated ones (CopyGetAttnums), not the * of a SELECT; one
// that reads no other column (a constant) too. A generated column in the
// list is refused (42P10), as PostgreSQL refuses it.
func TestCopyTableLeavesGeneratedColumnsOut(t *testing.T) {
	proxytest.SetupDemo(t)
	for _, sql := range []string{
		"CREATE SCHEMA IF NOT EXISTS gen_scratch",
		"DROP TABLE IF EXISTS gen_scratch.items",
		"CREATE TABLE gen_scratch.items (id int, price int, doubled int GENERATED ALWAYS AS (price * 2) STORED, note text, one int GENERATED ALWAYS AS (1) STORED)",
		"INSERT INTO gen_scratch.items (id, price, note) VALUES (1, 10, 'a')",
		"GRANT USAGE ON SCHEMA gen_scratch TO pgveil_svc",
		"GRANT SELECT ON ALL TABLES IN SCHEMA gen_scratch TO pgveil_svc",
	} {
		proxytest.Direct(t, sql)
	}
	src, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, append(src, `
table "gen_scratch.items" {}
rule "gen_scratch_all" {
  tables = ["gen_scratch.items"]
  roles  = ["country_analyst"]
  scope  = "all"
}
`...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	c := p.Connect(t, "marie")
	ctx := context.Background()
	dc, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close(ctx)
	for _, sql := range []string{
		"COPY gen_scratch.items TO STDOUT",
		"COPY gen_scratch.items TO STDOUT WITH (FORMAT csv, HEADER)",
		"COPY gen_scratch.items (note, id) TO STDOUT",
	} {
		var want, got bytes.Buffer
		if _, err := dc.CopyTo(ctx, &want, sql); err != nil {
			t.Fatalf("directly: %s: %v", sql, err)
		}
		if _, err := c.PgConn().CopyTo(ctx, &got, sql); err != nil || got.String() != want.String() {
			t.Errorf("%s through pgveil: %q, %v; directly %q", sql, got.String(), err, want.String())
		}
	}
	// A generated column named in the list is refused, as PostgreSQL
	// refuses it.
	for _, sql := range []string{"COPY gen_scratch.items (id, doubled) TO STDOUT", "COPY gen_scratch.items (one) TO STDOUT"} {
		var pgErr *pgconn.PgError
		if _, err := dc.CopyTo(ctx, io.Discard, sql); !errors.As(err, &pgErr) || pgErr.Code != "42P10" {
			t.Fatalf("directly: %s: %v", sql, err)
		}
		var b bytes.Buffer
		if _, err := c.PgConn().CopyTo(ctx, &b, sql); !errors.As(err, &pgErr) || pgErr.Code != "42P10" {
			t.Errorf("%s through pgveil: %q, %v", sql, b.String(), err)
		}
	}
}
