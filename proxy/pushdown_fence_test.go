package proxy_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestPushdownFenceKeepsColumnTypes: with pushdown = false the scoped
// subquery stands behind the statistics fence, a UNION ALL of the scoped
// SELECT and the same SELECT with WHERE false (rewrite/subst.go, fenced).
// A set operation resolves each column's type from its arms: identical
// arms must give the column's own type, typmod (varchar(n),
// numeric(p,s), timestamptz(p)), domain, array, json and collation, as the
// unfenced subquery (pushdown = true) and the table itself do, masked
// columns cast back to their type included.
func TestPushdownFenceKeepsColumnTypes(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	su, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := su.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	// A collation other than the database's default (C): ICU's root
	// collation sorts 'a' before 'B', C the other way round.
	coll := "und-x-icu"
	if len(proxytest.Direct(t, `SELECT 1 FROM pg_collation WHERE collname = 'und-x-icu'`)) == 0 {
		coll = "C"
	}
	exec(`DROP TABLE IF EXISTS public.fence_types; DROP DOMAIN IF EXISTS public.fence_pct`)
	exec(`CREATE DOMAIN public.fence_pct AS numeric(5,2) CHECK (VALUE >= 0)`)
	exec(fmt.Sprintf(`CREATE TABLE public.fence_types (
		id int, code varchar(7), amount numeric(6,2), pct public.fence_pct, tags text[], doc json,
		docb jsonb, label text COLLATE %q, secret varchar(12), stamp timestamptz(3), bits bit(4))`, coll))
	exec(`INSERT INTO public.fence_types VALUES
		(1, 'FR', 1.5, 2.25, '{a,b}', '{"k": 1}', '{"k": 1}', 'a', 'x', '2025-01-01 10:00:00.1234+00', B'1010'),
		(2, 'FR', 2.5, 3.25, '{c}', '[1]', '[1]', 'B', 'y', '2025-01-02 10:00:00+00', B'0101'),
		(3, 'US', 9.5, 9.25, '{h}', '"h"', '"h"', 'hidden', 'z', '2025-01-03 10:00:00+00', B'1111')`)
	exec(`GRANT SELECT ON public.fence_types TO pgveil_svc`)
	t.Cleanup(func() {
		_, _ = su.Exec(context.Background(), `DROP TABLE IF EXISTS public.fence_types; DROP DOMAIN IF EXISTS public.fence_pct`).ReadAll()
	})

	raw, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.fence_types" {
  reference = true
  column "secret" { class = "pii" }
}
rule "fence_types_fr" {
  tables = ["public.fence_types"]
  roles  = ["country_analyst"]
  where  = "code = 'FR'"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}

	type field struct {
		name        string
		oid, typmod uint32
	}
	describe := func(pushdown bool) (fields []field, labels, types [][]string) {
		p, _ := proxytest.StartDemoWith(t, path, func(c *policy.Config) {
			for _, tb := range c.Tables {
				tb.Pushdown = pushdown
			}
		})
		c := p.Connect(t, "marie")
		res := c.PgConn().ExecParams(ctx, `SELECT * FROM fence_types`, nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("pushdown=%v: %v", pushdown, res.Err)
		}
		for _, f := range res.FieldDescriptions {
			fields = append(fields, field{f.Name, f.DataTypeOID, uint32(f.TypeModifier)})
		}
		if len(res.Rows) != 2 {
			t.Errorf("pushdown=%v: marie reads %d rows, want her 2", pushdown, len(res.Rows))
		}
		// RowDescription gives a domain's base type: pg_typeof tells.
		types = proxytest.Through(t, c, `SELECT DISTINCT pg_typeof(pct)::text, pg_typeof(secret)::text, pg_typeof(stamp)::text, pg_typeof(tags)::text FROM fence_types`)
		return fields, proxytest.Through(t, c, `SELECT label, secret FROM fence_types ORDER BY label`), types
	}
	before, beforeLabels, beforeTypes := describe(true)
	after, afterLabels, afterTypes := describe(false)
	if want := "[[fence_pct character varying timestamp with time zone text[]]]"; fmt.Sprint(beforeTypes) != want || fmt.Sprint(afterTypes) != want {
		t.Errorf("pg_typeof: pushdown=true %v, pushdown=false %v, want %s", beforeTypes, afterTypes, want)
	}

	// The table's own columns, as the service account reads them.
	c, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	res := c.ExecParams(ctx, `SELECT * FROM public.fence_types`, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	var table []field
	for _, f := range res.FieldDescriptions {
		table = append(table, field{f.Name, f.DataTypeOID, uint32(f.TypeModifier)})
	}
	if fmt.Sprint(after) != fmt.Sprint(before) || fmt.Sprint(after) != fmt.Sprint(table) {
		t.Errorf("RowDescription of a governed read:\n  table:          %v\n  pushdown=true:  %v\n  pushdown=false: %v", table, before, after)
	}
	t.Logf("RowDescription (name, type OID, typmod), the table's and both reads': %v; label COLLATE %q", after, coll)
	// The collation: the order of label, and the masked column NULL.
	if fmt.Sprint(afterLabels) != fmt.Sprint(beforeLabels) {
		t.Errorf("ORDER BY label: pushdown=true %v, pushdown=false %v", beforeLabels, afterLabels)
	}
	want := "[[a NULL] [B NULL]]"
	if coll == "C" {
		want = "[[B NULL] [a NULL]]"
	}
	if fmt.Sprint(afterLabels) != want {
		t.Errorf("ORDER BY label under COLLATE %q: %v, want %s", coll, afterLabels, want)
	}
}
