package adversarial_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdversarial19PartitionBoundReview: rev19b's angles on partitions a
// key over a masked column bounds (feef783). salary is "technical": hq
// reads it, marie does not. Every partition below adv19_t, however bound
// (a range, DEFAULT, a sub-partition bounded by its grandparent's key),
// and every partition of a list on salary (IN (NULL)) or a hash of it
// (modulus and remainder narrow the value to one class of a hash: refused
// alike), is refused to marie by name, through COPY, a view or tableoid;
// hq, who reads salary, reads them by name, and the catalog's listing of
// partitions answers both; statistics and sizes do not count a
// partition's rows.
func TestAdversarial19PartitionBoundReview(t *testing.T) {
	ctx := context.Background()
	const drop = `DROP TABLE IF EXISTS public.adv19_t, public.adv19_u, public.adv19_h CASCADE`
	tables := []string{"adv19_t", "adv19_t_low", "adv19_t_def", "adv19_t_sub", "adv19_t_sub1",
		"adv19_u", "adv19_u_null", "adv19_u_rest", "adv19_h", "adv19_h0", "adv19_h1"}
	p := adv19Schema(t, `
table "public.adv19_t" {
  column "salary" { class = "technical" }
}
table "public.adv19_u" {
  column "salary" { class = "technical" }
}
table "public.adv19_h" {
  column "salary" { class = "technical" }
}
rule "adv19_t_all" {
  tables = ["public.adv19_t", "public.adv19_u", "public.adv19_h"]
  roles  = ["country_analyst", "central_analyst"]
  scope  = "all"
}
`, drop,
		`CREATE TABLE public.adv19_t (id int, country text, grade int, salary int) PARTITION BY RANGE (salary)`,
		`CREATE TABLE public.adv19_t_low PARTITION OF public.adv19_t FOR VALUES FROM (MINVALUE) TO (5000)`,
		`CREATE TABLE public.adv19_t_sub PARTITION OF public.adv19_t FOR VALUES FROM (5000) TO (9000) PARTITION BY LIST (grade)`,
		`CREATE TABLE public.adv19_t_sub1 PARTITION OF public.adv19_t_sub FOR VALUES IN (1)`,
		`CREATE TABLE public.adv19_t_def PARTITION OF public.adv19_t DEFAULT`,
		`INSERT INTO public.adv19_t VALUES (1, 'France', 1, 4242), (2, 'France', 1, 6000), (3, 'France', 1, 9999), (4, 'France', 1, 100)`,
		`CREATE TABLE public.adv19_u (id int, country text, grade int, salary int) PARTITION BY LIST (salary)`,
		`CREATE TABLE public.adv19_u_null PARTITION OF public.adv19_u FOR VALUES IN (NULL)`,
		`CREATE TABLE public.adv19_u_rest PARTITION OF public.adv19_u DEFAULT`,
		`INSERT INTO public.adv19_u VALUES (1, 'France', 1, NULL), (2, 'France', 1, 6000)`,
		`CREATE TABLE public.adv19_h (id int, country text, grade int, salary int) PARTITION BY HASH (salary)`,
		`CREATE TABLE public.adv19_h0 PARTITION OF public.adv19_h FOR VALUES WITH (MODULUS 2, REMAINDER 0)`,
		`CREATE TABLE public.adv19_h1 PARTITION OF public.adv19_h FOR VALUES WITH (MODULUS 2, REMAINDER 1)`,
		`INSERT INTO public.adv19_h VALUES (1, 'France', 1, 4242), (2, 'France', 1, 6000)`,
		`CREATE VIEW public.adv19_tv AS SELECT id FROM public.adv19_t_low`,
		`GRANT SELECT ON public.`+strings.Join(tables, ", public.")+`, public.adv19_tv TO pgveil_svc`,
		`ANALYZE public.adv19_t, public.adv19_u, public.adv19_h`)
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	marie, hq := p.Connect(t, "marie"), p.Connect(t, "hq")
	refused := func(t *testing.T, err error) {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "42501" && pe.Code != "42703") {
			t.Fatalf("got %v; want a refusal (42501, or 42703 for a system column)", err)
		}
	}
	for _, sql := range []string{
		"SELECT count(*) FROM adv19_t_low",
		"SELECT count(*) FROM adv19_t_def",
		"SELECT count(*) FROM adv19_t_sub",
		"SELECT count(*) FROM ONLY adv19_t_sub1",
		"SELECT count(*) FROM adv19_u_null",
		"SELECT count(*) FROM adv19_u_rest",
		"SELECT count(*) FROM adv19_h0",
		"SELECT count(*) FROM adv19_tv",
		"SELECT count(*) FROM adv19_t WHERE tableoid = 'adv19_t_low'::regclass",
		"SELECT count(*) FROM adv19_t t JOIN adv19_t_low l USING (id)",
		"SELECT count(DISTINCT ctid) FROM adv19_t", // (0,1) starts each partition
		"SELECT count(*) FROM adv19_t t WHERE t.ctid = '(0,1)'",
		"SELECT count(*) FROM adv19_t GROUP BY xmin",
		"SELECT count(*) FROM adv19_t WHERE id IN (SELECT id FROM adv19_t_low)",
	} {
		t.Run("marie is refused "+sql, func(t *testing.T) {
			var n any
			refused(t, marie.QueryRow(ctx, sql).Scan(&n))
		})
	}
	t.Run("marie is refused COPY of a partition", func(t *testing.T) {
		_, err := marie.PgConn().CopyTo(ctx, io.Discard, "COPY adv19_t_low TO STDOUT")
		refused(t, err)
		_, err = marie.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT id FROM adv19_t_def) TO STDOUT")
		refused(t, err)
	})
	for _, sql := range []string{
		"SELECT count(*) FROM adv19_t_low",
		"SELECT count(*) FROM adv19_t_sub1",
		"SELECT count(*) FROM adv19_u_null",
		"SELECT count(*) FROM adv19_h0",
	} {
		t.Run("hq, who reads salary, reads "+sql, func(t *testing.T) {
			var n int
			if err := hq.QueryRow(ctx, sql).Scan(&n); err != nil || n == 0 {
				t.Fatalf("%d, %v; want rows", n, err)
			}
		})
	}
	for _, sql := range []string{
		"SELECT count(*) FROM pg_partition_tree('adv19_t')",
		"SELECT count(*) FROM pg_class c JOIN pg_inherits i ON i.inhrelid = c.oid WHERE c.relispartition AND c.relname LIKE 'adv19_t%'",
		"SELECT count(*) FROM information_schema.tables WHERE table_name LIKE 'adv19_t%'",
		"SELECT count(pg_get_expr(c.relpartbound, c.oid)) FROM pg_class c WHERE c.relname LIKE 'adv19_t%'",
		"SELECT count(pg_get_partkeydef(c.oid)) FROM pg_class c WHERE c.relname = 'adv19_t'",
		"SELECT count(*) FROM adv19_t",
	} {
		t.Run("marie lists and reads whole: "+sql, func(t *testing.T) {
			var n int
			if err := marie.QueryRow(ctx, sql).Scan(&n); err != nil || n == 0 {
				t.Fatalf("%d, %v; want rows", n, err)
			}
		})
	}
	for _, sql := range []string{
		"SELECT reltuples::int FROM pg_class WHERE relname = 'adv19_t_low'",
		"SELECT n_live_tup::int FROM pg_stat_user_tables WHERE relname = 'adv19_t_low'",
		"SELECT pg_relation_size('adv19_t_low')::int",
		"SELECT pg_total_relation_size('adv19_t_low')::int",
		"SELECT relpages FROM pg_class WHERE relname = 'adv19_t_low'",
		"SELECT n_tup_ins::int FROM pg_stat_all_tables WHERE relname = 'adv19_t_low'",
		"SELECT heap_blks_read::int FROM pg_statio_user_tables WHERE relname = 'adv19_t_low'",
		"SELECT array_length(histogram_bounds::text::int[], 1) FROM pg_stats WHERE tablename = 'adv19_t_low' AND attname = 'salary'",
		"SELECT n_distinct::int FROM pg_stats WHERE tablename = 'adv19_t_low' AND attname = 'id'",
	} {
		t.Run("marie does not count a partition's rows: "+sql, func(t *testing.T) {
			var n any
			err := marie.QueryRow(ctx, sql).Scan(&n)
			if err == nil && n != nil && n != int32(0) && n != int32(-1) {
				t.Fatalf("%v: the partition's size tells how many salaries are below 5000", n)
			}
		})
	}
	// NOTE: not held, and left to SECURITY.md ("What remains"): the scan
	// of the partitioned table reads its partitions in bound order, so
	// rows numbered in insertion order come back grouped by salary range
	// (1 4 | 2 | 3). Logged, not asserted.
	t.Run("the order of a partitioned table's rows is logged", func(t *testing.T) {
		rows, err := marie.Query(ctx, "SELECT id FROM adv19_t")
		if err != nil {
			t.Fatal(err)
		}
		var ids []int
		for rows.Next() {
			var id int
			_ = rows.Scan(&id)
			ids = append(ids, id)
		}
		t.Logf("ids in scan order (inserted 1, 2, 3, 4 with salaries 4242, 6000, 9999, 100): %v", ids)
	})
}
