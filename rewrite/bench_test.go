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
func biQuery(n int) string { return biQueryWith(n, 0) }

// biQueryWith is biQuery with its constants shifted by k: the same
// literal shape for every k.
func biQueryWith(n, k int) string {
	// NOTE: k*10 keeps every k's text apart, (i+k)%10 the relations'.
	var b strings.Builder
	b.WriteString("WITH ")
	parts := n / 2
	for i := 0; i < parts; i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "s%d AS (SELECT r.country, count(*) AS n, avg(r.nps) AS nps FROM responses r JOIN countries c ON c.name = r.country WHERE r.nps >= %d GROUP BY r.country)", i, (i+k)%10+10*(k/10))
	}
	b.WriteString(" SELECT * FROM s0")
	for i := 1; i < parts; i++ {
		fmt.Fprintf(&b, " UNION ALL SELECT * FROM s%d", i)
	}
	return b.String()
}

// BenchmarkRewrite100Relations measures the engine's cold path on a
// statement with 100 relation references it has not seen before: parsed,
// checked and spliced (splice.go), the relations' subquery templates
// made by earlier statements (target: under 2 ms, or 5 ms when the rest
// is parsing).
func BenchmarkRewrite100Relations(b *testing.B) {
	cat := demoCatalog(b)
	p := marie(b)
	sql := biQuery(100)
	sp := rewrite.NewSplicer()
	res, err := sp.Rewrite(sql, cat, p)
	if err != nil {
		b.Fatal(err)
	}
	if !rewrite.Spliced(res) {
		b.Fatal("not spliced")
	}
	if got := strings.Count(res.SQL, "OFFSET 0"); got != 100 {
		b.Fatalf("%d relations wrapped, want 100", got)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := sp.Rewrite(sql, cat, p); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRewriteRelations measures, for statements of 10, 100 and 600
// table references, the three ways the engine rewrites: deparse (what
// Rewrite does, the reference), splice (the engine's cold path for a
// statement seen once) and template (a statement whose literal shape the
// engine has seen twice, with other constants).
//
// NOTE: 600, not 1,000: biQuery's n table references come with n/2
// references of its CTEs, and the complexity guard refuses statements
// of over 1,000 relation references (maxRelations); 600 is 900 of them.
func BenchmarkRewriteRelations(b *testing.B) {
	cat := demoCatalog(b)
	p := marie(b)
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	for _, n := range []int{10, 100, 600} {
		sql := biQuery(n)
		b.Run(fmt.Sprintf("n=%d/deparse", n), func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				if _, err := rewrite.Rewrite(sql, cat, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/splice", n), func(b *testing.B) {
			sp := rewrite.NewSplicer()
			if _, err := sp.Rewrite(sql, cat, p); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := sp.Rewrite(sql, cat, p); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run(fmt.Sprintf("n=%d/engine", n), func(b *testing.B) {
			// The engine's cold path as a BI tool meets it: a statement
			// of a shape never seen before (its CTEs named anew), the
			// relations' subquery templates made by earlier ones.
			e := rewrite.NewEngine(cat, policy, nil, 10000)
			ctx := context.Background()
			if _, err := e.Rewrite(ctx, "marie", 'Q', sql); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				b.StopTimer()
				text := strings.ReplaceAll(sql, " s", fmt.Sprintf(" q%d_", i))
				text = strings.Replace(text, "WITH s", fmt.Sprintf("WITH q%d_", i), 1)
				b.StartTimer()
				if _, err := e.Rewrite(ctx, "marie", 'Q', text); err != nil {
					b.Fatal(err)
				}
			}
		})
		if len(sql) > 64<<10 {
			continue // longer than the engine caches (maxCachedText)
		}
		b.Run(fmt.Sprintf("n=%d/template", n), func(b *testing.B) {
			e := rewrite.NewEngine(cat, policy, nil, 10000)
			ctx := context.Background()
			for k := 0; k < 2; k++ {
				if _, err := e.Rewrite(ctx, "marie", 'Q', biQueryWith(n, k)); err != nil {
					b.Fatal(err)
				}
			}
			hits, _ := e.CacheStats()
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// Other constants each time: never the exact-text cache.
				b.StopTimer()
				text := biQueryWith(n, 10*(i+2))
				b.StartTimer()
				if _, err := e.Rewrite(ctx, "marie", 'Q', text); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if after, _ := e.CacheStats(); after-hits != uint64(b.N) {
				b.Fatalf("%d of %d statements served from a template", after-hits, b.N)
			}
		})
	}
}

// i0 reports whether a run of n iterations ended on the first engine.
func i0(n int) bool { return n <= 8 }

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
	benchEngineSimple(b, "SELECT nps FROM responses WHERE id = ", "")
}

// BenchmarkEngineSimpleDirect is BenchmarkEngineSimpleGoverned for a
// statement whose governed table is read directly (flatten.go).
func BenchmarkEngineSimpleDirect(b *testing.B) {
	benchEngineSimple(b, "SELECT name FROM countries WHERE code = '", "'")
}

// BenchmarkEngineSimpleOpen is BenchmarkEngineSimpleGoverned for a
// statement forwarded unchanged.
func BenchmarkEngineSimpleOpen(b *testing.B) {
	benchEngineSimple(b, "SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = ", "")
}

// BenchmarkEngineSimpleGovernedNoPushdown is BenchmarkEngineSimpleGoverned
// with pushdown = false: the subquery behind the statistics fence, the
// client's comparison outside.
func BenchmarkEngineSimpleGovernedNoPushdown(b *testing.B) {
	benchEnginePolicy(b, subqueryOnly(marie(b)), "SELECT nps FROM responses WHERE id = ", "")
}

// benchEngineSimple runs the engine for marie on prefix, a different
// integer each time, and suffix.
func benchEngineSimple(b *testing.B, prefix, suffix string) {
	benchEnginePolicy(b, marie(b), prefix, suffix)
}

// benchEnginePolicy is benchEngineSimple with the policy p.
func benchEnginePolicy(b *testing.B, p rewrite.Policy, prefix, suffix string) {
	cat := demoCatalog(b)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 10000)
	ctx := context.Background()
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		sql := prefix + strconv.Itoa(i*7919%1000003) + suffix + ";"
		if _, err := e.Rewrite(ctx, "marie", 'Q', sql); err != nil {
			b.Fatal(err)
		}
	}
}
