package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestCopyTableReadsTheTableOnly: COPY table TO STDOUT, which pgveil
// forwards as COPY (SELECT … FROM table) TO STDOUT for a governed table,
// copies the rows PostgreSQL's COPY table copies: the table's own, not
// those of the tables that inherit from it, as a SELECT without ONLY
// would; and a partitioned table, which PostgreSQL's COPY table TO
// refuses, is refused, not read through its partitions.
func TestCopyTableReadsTheTableOnly(t *testing.T) {
	proxytest.SetupDemo(t)
	for _, sql := range []string{
		"CREATE SCHEMA IF NOT EXISTS copy_scratch",
		"DROP TABLE IF EXISTS copy_scratch.parent, copy_scratch.part CASCADE",
		"CREATE TABLE copy_scratch.parent (id int, note text)",
		"CREATE TABLE copy_scratch.child (extra int) INHERITS (copy_scratch.parent)",
		"INSERT INTO copy_scratch.parent VALUES (1, 'parent')",
		"INSERT INTO copy_scratch.child VALUES (2, 'child', 7)",
		"CREATE TABLE copy_scratch.part (id int, y int) PARTITION BY RANGE (y)",
		"CREATE TABLE copy_scratch.part_2024 PARTITION OF copy_scratch.part FOR VALUES FROM (2024) TO (2025)",
		"INSERT INTO copy_scratch.part VALUES (3, 2024)",
		"GRANT USAGE ON SCHEMA copy_scratch TO pgveil_svc",
		"GRANT SELECT ON ALL TABLES IN SCHEMA copy_scratch TO pgveil_svc",
	} {
		proxytest.Direct(t, sql)
	}
	src, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, append(src, `
table "copy_scratch.*" {}
rule "copy_scratch_all" {
  tables = ["copy_scratch.parent", "copy_scratch.child", "copy_scratch.part", "copy_scratch.part_2024"]
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
	copyOut := func(c *pgconn.PgConn, sql string) (string, error) {
		var b bytes.Buffer
		_, err := c.CopyTo(ctx, &b, sql)
		return b.String(), err
	}
	for _, tc := range []struct{ name, sql string }{
		{"a parent copies its own rows", "COPY copy_scratch.parent TO STDOUT"},
		{"a parent's columns copy its own rows", "COPY copy_scratch.parent (note, id) TO STDOUT"},
		{"a child copies its rows", "COPY copy_scratch.child TO STDOUT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want, err := copyOut(dc, tc.sql)
			if err != nil {
				t.Fatalf("directly: %v", err)
			}
			got, err := copyOut(c.PgConn(), tc.sql)
			if err != nil || got != want {
				t.Fatalf("%s through pgveil: %q, %v; directly %q", tc.sql, got, err, want)
			}
		})
	}
	t.Run("a partitioned table is refused, as PostgreSQL refuses it", func(t *testing.T) {
		const sql = "COPY copy_scratch.part TO STDOUT"
		if _, err := copyOut(dc, sql); err == nil {
			t.Fatal("PostgreSQL copies a partitioned table: the test proves nothing")
		}
		got, err := copyOut(c.PgConn(), sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) {
			t.Fatalf("through pgveil: %q, %v", got, err)
		}
		// The session stays usable.
		if _, err := copyOut(c.PgConn(), "COPY copy_scratch.child TO STDOUT"); err != nil {
			t.Fatal(err)
		}
	})
}
