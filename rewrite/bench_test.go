package rewrite_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// biQuery builds a BI-style statement referencing n relations: a CTE per
// governed table slice, joined to dimension tables, with aggregates.
func biQuery(n int) string {
	var b strings.Builder
	b.WriteString("WITH ")
	parts := n / 2
	for i := 0; i < parts; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "s%d AS (SELECT r.country, count(*) AS n, avg(r.nps) AS nps FROM responses r JOIN countries c ON c.name = r.country WHERE r.nps >= %d GROUP BY r.country)", i, i%10)
	}
	b.WriteString(" SELECT * FROM s0")
	for i := 1; i < parts; i++ {
		fmt.Fprintf(&b, " UNION ALL SELECT * FROM s%d", i)
	}
	return b.String()
}

// BenchmarkRewrite100Relations measures the rewrite of a statement with
// 100 relation references (target: under 2 ms).
func BenchmarkRewrite100Relations(b *testing.B) {
	cat := demoCatalog(b)
	p := marie(b)
	sql := biQuery(100)
	res, err := rewrite.Rewrite(sql, cat, p)
	if err != nil {
		b.Fatal(err)
	}
	if got := strings.Count(res.SQL, "OFFSET 0"); got != 100 {
		b.Fatalf("%d relations wrapped, want 100", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteSmall measures a one-table statement, the common case
// the cache absorbs.
func BenchmarkRewriteSmall(b *testing.B) {
	cat := demoCatalog(b)
	p := marie(b)
	sql := "SELECT nps FROM responses WHERE id = $1"
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
			b.Fatal(err)
		}
	}
}
