package proxy_test

import (
	"context"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestDeclaredParameterTypes runs, through pgveil and directly, statements
// whose parameters the client declares wider than the column they are
// compared with: PostgreSQL compares in the wider type, and so must the
// copy of the comparison pgveil makes in the scoped subquery, or the
// statement fails (integer out of range) where PostgreSQL answers.
func TestDeclaredParameterTypes(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()
	c := p.Connect(t, "marie")
	const oidInt8, oidNumeric, oidFloat8 = 20, 1700, 701
	want := proxytest.Through(t, c, "SELECT count(*) FROM responses")[0][0]
	cases := []struct {
		name  string
		sql   string
		oid   uint32
		value string
	}{
		{"a numeric beyond integer", "SELECT count(*) FROM responses WHERE nps < $1", oidNumeric, "1e20"},
		{"a bigint beyond integer", "SELECT count(*) FROM responses WHERE nps < $1", oidInt8, "3000000000"},
		{"a float infinity", "SELECT count(*) FROM responses WHERE nps > $1", oidFloat8, "-Infinity"},
		{"a numeric beyond bigint", "SELECT count(*) FROM responses WHERE id < $1", oidNumeric, "1e30"},
	}
	for _, tc := range cases {
		t.Run(tc.name+", in Parse", func(t *testing.T) {
			if _, err := c.PgConn().Prepare(ctx, "declared", tc.sql, []uint32{tc.oid}); err != nil {
				t.Fatal(err)
			}
			defer func() { _, _ = c.PgConn().Exec(ctx, "DEALLOCATE declared").ReadAll() }()
			res := c.PgConn().ExecPrepared(ctx, "declared", [][]byte{[]byte(tc.value)}, nil, nil).Read()
			if res.Err != nil {
				t.Fatalf("%s with %s: %v", tc.sql, tc.value, res.Err)
			}
			if got := string(res.Rows[0][0]); got != want {
				t.Fatalf("%s with %s: %s rows, want %s", tc.sql, tc.value, got, want)
			}
		})
	}
	t.Run("a numeric beyond integer, in SQL PREPARE", func(t *testing.T) {
		proxytest.Through(t, c, "PREPARE q(numeric) AS SELECT count(*) FROM responses WHERE nps < $1")
		defer proxytest.Through(t, c, "DEALLOCATE q")
		if got := proxytest.Through(t, c, "EXECUTE q(1e20)")[0][0]; got != want {
			t.Fatalf("EXECUTE q(1e20): %s rows, want %s", got, want)
		}
	})
}
