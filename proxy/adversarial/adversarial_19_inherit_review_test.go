package adversarial_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdversarial19InheritanceLines: a table inheriting from governed
// tables by more than one line holds rows each line's scan reads, under
// the block nearest on that line. The blocks that disagree need not be
// equally near: a parent's own block (everything visible) and a
// grandparent's (salary masked, marie's country only) reached through
// the other, ungoverned, parent, or through both parents (a diamond).
// Governed by the nearer block, the child showed marie, by name, the real
// salary of a USA row the other line's block masks and filters.
func TestAdversarial19InheritanceLines(t *testing.T) {
	ctx := context.Background()
	p := adv19Schema(t, `
table "public.adv19_k" {
}
table "public.adv19_d1" {
}
rule "adv19_k_all" {
  tables = ["public.adv19_k", "public.adv19_d1"]
  roles  = ["country_analyst"]
  scope  = "all"
}
`, `CREATE TABLE public.adv19_k (id int, country text, grade int, salary int, note text)`,
		`CREATE TABLE public.adv19_q () INHERITS (public.adv19_i)`,
		`CREATE TABLE public.adv19_k2 () INHERITS (public.adv19_k, public.adv19_q)`,
		`CREATE TABLE public.adv19_d1 () INHERITS (public.adv19_i)`,
		`CREATE TABLE public.adv19_d2 () INHERITS (public.adv19_i)`,
		`CREATE TABLE public.adv19_k3 () INHERITS (public.adv19_d1, public.adv19_d2)`,
		`INSERT INTO public.adv19_k2 VALUES (5, 'USA', 1, 5555, 'q')`,
		`INSERT INTO public.adv19_k3 VALUES (6, 'USA', 1, 6666, 'q')`,
		`GRANT ALL ON public.adv19_k, public.adv19_q, public.adv19_k2, public.adv19_d1, public.adv19_d2, public.adv19_k3 TO pgveil_svc`)
	marie := p.Connect(t, "marie")
	for _, tc := range []struct{ name, table string }{
		{"a child of a governed parent and of an ungoverned one whose parent is governed otherwise is refused by name", "adv19_k2"},
		{"a child of a diamond whose side and top are governed otherwise is refused by name", "adv19_k3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var salary any
			err := marie.QueryRow(ctx, "SELECT salary FROM "+tc.table+" LIMIT 1").Scan(&salary)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Fatalf("want a refusal (42501), got salary %v, %v: the row is adv19_i's too, whose policy masks and filters it", salary, err)
			}
		})
	}
}

// TestAdversarial19PartitionKeyWithoutMask: a DBA's partition tree whose
// keys read no masked column (events by date, then by grade, beside a
// masked salary) keeps its UPDATEs of key columns, moving rows between
// partitions; only keys reading a masked column pair their columns.
func TestAdversarial19PartitionKeyWithoutMask(t *testing.T) {
	ctx := context.Background()
	p := adv19Schema(t, `
table "public.adv19_ev" {
  column "salary" { class = "pii" }
}
rule "adv19_ev_country" {
  tables = ["public.adv19_ev"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`, `CREATE TABLE public.adv19_ev (id int, country text, at date, grade int, salary int) PARTITION BY RANGE (at)`,
		`CREATE TABLE public.adv19_ev1 PARTITION OF public.adv19_ev FOR VALUES FROM ('2026-01-01') TO ('2026-02-01') PARTITION BY LIST (grade)`,
		`CREATE TABLE public.adv19_ev1a PARTITION OF public.adv19_ev1 DEFAULT`,
		`CREATE TABLE public.adv19_ev2 PARTITION OF public.adv19_ev FOR VALUES FROM ('2026-02-01') TO ('2026-03-01')`,
		`INSERT INTO public.adv19_ev VALUES (1, 'France', '2026-01-15', 1, 4242)`,
		`GRANT SELECT, INSERT, UPDATE, DELETE ON public.adv19_ev, public.adv19_ev1, public.adv19_ev1a, public.adv19_ev2 TO pgveil_svc`)
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, `DROP TABLE IF EXISTS public.adv19_ev CASCADE`)
	})
	marie := p.Connect(t, "marie")
	for _, sql := range []string{
		"UPDATE adv19_ev SET grade = 2 WHERE id = 1",
		"UPDATE adv19_ev SET at = '2026-02-10' WHERE id = 1",
	} {
		t.Run(sql+" moves the row", func(t *testing.T) {
			if tag, err := marie.Exec(ctx, sql); err != nil || tag.RowsAffected() != 1 {
				t.Fatalf("%v, %v; want one row updated", tag, err)
			}
		})
	}
}

// TestAdversarial19PartitionMembership: a partition's bound over a
// masked column (salary below 5000) is in the catalog, so which rows a
// partition read by name holds, or which partition a row's tableoid
// names, tells the masked value's range.
func TestAdversarial19PartitionMembership(t *testing.T) {
	ctx := context.Background()
	p := adv19Schema(t, `
table "public.adv19_s" {
  column "salary" { class = "pii" }
}
rule "adv19_s_country" {
  tables = ["public.adv19_s"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`, `CREATE TABLE public.adv19_s (id int, country text, grade int, salary int) PARTITION BY RANGE (salary)`,
		`CREATE TABLE public.adv19_s_low PARTITION OF public.adv19_s FOR VALUES FROM (MINVALUE) TO (5000)`,
		`CREATE TABLE public.adv19_s_high PARTITION OF public.adv19_s FOR VALUES FROM (5000) TO (MAXVALUE)`,
		`INSERT INTO public.adv19_s VALUES (1, 'France', 1, 4242), (2, 'France', 1, 6000)`,
		`GRANT SELECT ON public.adv19_s, public.adv19_s_low, public.adv19_s_high TO pgveil_svc`)
	t.Cleanup(func() {
		_ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, `DROP TABLE IF EXISTS public.adv19_s CASCADE`)
	})
	marie := p.Connect(t, "marie")
	for _, sql := range []string{
		"SELECT id FROM adv19_s_low",
		"SELECT id FROM ONLY adv19_s_high",
		"SELECT tableoid::regclass::text FROM adv19_s WHERE id = 1", // a system column is unknown (42703)
		"EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT id FROM adv19_s WHERE id = 1",
	} {
		t.Run(sql+" does not tell the salary's range", func(t *testing.T) {
			var got any
			err := marie.QueryRow(ctx, sql).Scan(&got)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "42703") {
				t.Fatalf("got %v, %v; want a refusal (42501)", got, err)
			}
		})
	}
	t.Run("a partition refused by name says to query the partitioned table, and no hint contradicts it", func(t *testing.T) {
		// NOTE: a table block naming the partition would not open it (a
		// parent with a child governed otherwise is denied): the hint of
		// ungoverned_table must not tell the BI user to ask for one.
		var got any
		err := marie.QueryRow(ctx, "SELECT id FROM adv19_s_low").Scan(&got)
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || !strings.Contains(pe.Message, "query the partitioned table") {
			t.Fatalf("got %v, %v; want a refusal saying to query the partitioned table", got, err)
		}
		if strings.Contains(pe.Hint, "add a table block") {
			t.Fatalf("hint %q tells the user to ask for a table block, which would not open a partition", pe.Hint)
		}
	})
	t.Run("the partitioned table is read whole", func(t *testing.T) {
		var n int
		if err := marie.QueryRow(ctx, "SELECT count(*) FROM adv19_s").Scan(&n); err != nil || n != 2 {
			t.Fatalf("%d rows, %v; want 2", n, err)
		}
	})
}
