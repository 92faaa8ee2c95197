package rewrite_test

import (
	"context"
	"fmt"
	"strconv"
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

// BenchmarkEngineSimpleGoverned measures the engine on what a simple-
// protocol client sends for a governed table: the same statement with a
// different constant each time (pgbench -S -M simple), which the exact-
// text cache never serves.
func BenchmarkEngineSimpleGoverned(b *testing.B) {
	benchEngineSimple(b, "SELECT nps FROM responses WHERE id = ")
}

// BenchmarkEngineSimpleOpen is BenchmarkEngineSimpleGoverned for a
// statement forwarded unchanged.
func BenchmarkEngineSimpleOpen(b *testing.B) {
	benchEngineSimple(b, "SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = ")
}

// benchEngineSimple runs the engine for marie on prefix followed by a
// different integer constant each time.
func benchEngineSimple(b *testing.B, prefix string) {
	cat := demoCatalog(b)
	p := marie(b)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sql := prefix + strconv.Itoa(i*7919%1000003) + ";"
		if _, err := e.Rewrite(ctx, "marie", 'Q', sql); err != nil {
			b.Fatal(err)
		}
	}
}
