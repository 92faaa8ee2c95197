package proxy_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// adv19Schema builds partitioned tables governed for marie (France rows
// only, salary masked), each with a partition key reading the masked
// salary beside the visible grade, at one level or across levels: a range
// key over both columns, a list key whose partitions (a DEFAULT one
// too) are partitioned again by salary or an expression over it, and a
// key expression. Row 1 earns 4242, row 2 6000; both are grade 1.
func adv19Schema(t *testing.T) *pgx.Conn {
	t.Helper()
	setupDemo(t)
	ctx := context.Background()
	drop := `DROP TABLE IF EXISTS public.adv19_r, public.adv19_l, public.adv19_e, public.adv19_i CASCADE`
	cols := `(id int, country text, grade int, salary int, note text)`
	for _, sql := range []string{drop,
		`CREATE TABLE public.adv19_r ` + cols + ` PARTITION BY RANGE (grade, salary)`,
		`CREATE TABLE public.adv19_r1 PARTITION OF public.adv19_r FOR VALUES FROM (1, MINVALUE) TO (1, MAXVALUE)`,
		`CREATE TABLE public.adv19_r2 PARTITION OF public.adv19_r FOR VALUES FROM (2, MINVALUE) TO (2, 5000)`,
		`CREATE TABLE public.adv19_l ` + cols + ` PARTITION BY LIST (grade)`,
		`CREATE TABLE public.adv19_l1 PARTITION OF public.adv19_l FOR VALUES IN (1)`,
		`CREATE TABLE public.adv19_l2 PARTITION OF public.adv19_l FOR VALUES IN (2) PARTITION BY RANGE (salary)`,
		`CREATE TABLE public.adv19_l2a PARTITION OF public.adv19_l2 FOR VALUES FROM (MINVALUE) TO (5000)`,
		`CREATE TABLE public.adv19_ld PARTITION OF public.adv19_l DEFAULT PARTITION BY RANGE ((salary / 1000))`,
		`CREATE TABLE public.adv19_lda PARTITION OF public.adv19_ld FOR VALUES FROM (0) TO (5)`,
		`CREATE TABLE public.adv19_e ` + cols + ` PARTITION BY RANGE ((grade * 100000 + salary))`,
		`CREATE TABLE public.adv19_e1 PARTITION OF public.adv19_e FOR VALUES FROM (100000) TO (205000)`,
		`CREATE TABLE public.adv19_e2 PARTITION OF public.adv19_e FOR VALUES FROM (205000) TO (MAXVALUE)`,
		`CREATE TABLE public.adv19_i (id int, country text, grade int, salary int, note text)`,
		`CREATE TABLE public.adv19_i1 (CHECK (grade < 2 OR salary < 5000)) INHERITS (public.adv19_i)`,
	} {
		if err := cluster.Exec(ctx, demoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	for _, tab := range []string{"adv19_r", "adv19_l", "adv19_e", "adv19_i1"} {
		for _, sql := range []string{
			`INSERT INTO public.` + tab + ` VALUES (1, 'France', 1, 4242, 'n'), (2, 'France', 1, 6000, 'n'), (3, 'USA', 1, 100, 'n')`,
		} {
			if err := cluster.Exec(ctx, demoDB, sql); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
	}
	for _, tab := range []string{"adv19_r", "adv19_r1", "adv19_r2", "adv19_l", "adv19_l1", "adv19_l2", "adv19_l2a", "adv19_ld", "adv19_lda",
		"adv19_e", "adv19_e1", "adv19_e2", "adv19_i", "adv19_i1"} {
		if err := cluster.Exec(ctx, demoDB, `GRANT SELECT, INSERT, UPDATE, DELETE ON public.`+tab+` TO pgveil_svc`); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), demoDB, drop) })
	raw, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.adv19_r" {
  column "salary" { class = "pii" }
}
table "public.adv19_l" {
  column "salary" { class = "pii" }
}
table "public.adv19_e" {
  column "salary" { class = "pii" }
}
table "public.adv19_i" {
  column "salary" { class = "pii" }
}
rule "adv19_own_country" {
  tables = ["public.adv19_r", "public.adv19_l", "public.adv19_e", "public.adv19_i"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := startDemoWith(t, path, func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements,
			rewrite.KindUpdate, rewrite.KindInsert, rewrite.KindDelete)
	})
	return p.connect(t, "marie")
}

// TestAdversarial19PartitionKeyOracle: a partition key reading a column
// the user may write beside one masked for her routes an UPDATE of the
// visible one by the real masked value: the row moves, or no partition
// takes it (23514), and the verdict answers a question about the masked
// value, as a CHECK's would (TestAdversarial18CheckOracle). Such an
// UPDATE is refused with write_key, at whatever level of the partition
// tree the masked column is a key, and on a partition updated by name,
// whose partition constraint reads its ancestors' keys.
func TestAdversarial19PartitionKeyOracle(t *testing.T) {
	ctx := context.Background()
	marie := adv19Schema(t)
	refused := func(t *testing.T, sql string) {
		t.Helper()
		_, err := marie.Exec(ctx, sql)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "42501" {
			t.Fatalf("%s: want a refusal (42501), got %v: where the row may go tells the salary", sql, err)
		}
	}
	for _, c := range []struct{ name, table, set string }{
		{"an UPDATE of a range key's visible column beside a masked one is refused", "adv19_r", "grade = 2"},
		{"an UPDATE routed into a partition partitioned by the masked column is refused", "adv19_l", "grade = 2"},
		{"an UPDATE routed into a DEFAULT partition partitioned by an expression over it is refused", "adv19_l", "grade = 3"},
		{"an UPDATE of a column a key expression reads with a masked one is refused", "adv19_e", "grade = 2"},
		{"an UPDATE of a partition by name, whose constraint reads its parent's key, is refused", "adv19_e1", "grade = 2"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for _, id := range []string{"1", "2"} {
				refused(t, "UPDATE "+c.table+" SET "+c.set+" WHERE id = "+id)
			}
		})
	}
	t.Run("an UPDATE of a column no partition key reads passes", func(t *testing.T) {
		for _, tab := range []string{"adv19_r", "adv19_l", "adv19_e", "adv19_e1"} {
			if _, err := marie.Exec(ctx, "UPDATE "+tab+" SET note = 'm' WHERE id = 1"); err != nil {
				t.Fatalf("%s: %v", tab, err)
			}
		}
	})
}
