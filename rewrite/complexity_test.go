package rewrite_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// repeated returns head, then n copies of item (each # replaced by its
// index) separated by sep, then tail.
func repeated(head, item, sep, tail string, n int) string {
	var b strings.Builder
	b.WriteString(head)
	for i := 0; i < n; i++ {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(strings.ReplaceAll(item, "#", fmt.Sprint(i)))
	}
	b.WriteString(tail)
	return b.String()
}

// TestStatementCost holds the rewrite of one statement to bounded costs:
// the red team's shapes (a FROM list of 100,000 governed references,
// 40,000 scalar subqueries, the same ending in a refused table or
// function) are refused by the complexity rule, before or right after
// the parse, and statements at the limits pass.
func TestStatementCost(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	cases := []struct {
		name, sql string
		// want is a substring of the complexity refusal, "" for a
		// statement that passes.
		want string
	}{
		{"a FROM list of 1,000 governed references passes", repeated("SELECT 1 FROM ", "responses r#", ", ", "", 1000), ""},
		{"one of 1,001 is refused", repeated("SELECT 1 FROM ", "responses r#", ", ", "", 1001), "more than 1000 relations"},
		{"20,000 are refused before the parse", repeated("SELECT 1 FROM ", "responses r#", ", ", ", employees", 20000), "words, numbers and punctuation marks"},
		{"the red team's 100,000 unread", repeated("SELECT 1 FROM ", "responses r#", ", ", ", employees", 100000), "longer than 1048576 bytes"},
		{"1,000 scalar subqueries pass", repeated("SELECT ", "(SELECT nps FROM responses)", ", ", "", 999), ""},
		{"1,001 SELECTs without a relation are refused", repeated("SELECT ", "(SELECT 1)", ", ", "", 1001), "more than 1000 SELECTs"},
		{"so are 2,000 governed scalar subqueries", repeated("SELECT ", "(SELECT nps FROM responses)", ", ", "", 2000), "more than 1000"},
		{"and 2,000 ending in a refused function", repeated("SELECT ", "(SELECT nps FROM responses)", ", ", ", pg_read_file('/etc/passwd')", 2000), "more than 1000"},
		{"the red team's 40,000 before the parse", repeated("SELECT ", "(SELECT nps FROM responses)", ", ", ", pg_read_file('/etc/passwd')", 40000), "longer than 1048576 bytes"},
		{"a UNION of 1,001 arms", repeated("", "SELECT 1", " UNION ALL ", "", 1001), "more than 1000 SELECTs"},
		{"a chain of 1,001 CTEs", repeated("WITH ", "a# AS (SELECT 1)", ", ", " SELECT 1", 1001), "more than 1000 SELECTs"},
		{"a VALUES list counts as a SELECT", repeated("SELECT * FROM ", "(VALUES (1)) v#", ", ", "", 1001), "more than 1000"},
		{"CTE names count as relations", repeated("WITH a AS (SELECT 1) SELECT 1 FROM ", "a a#", ", ", "", 1001), "more than 1000 relations"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for path, rw := range map[string]func() (*rewrite.Result, error){
				"deparse": func() (*rewrite.Result, error) { return rewrite.Rewrite(tc.sql, cat, p) },
				"splice":  func() (*rewrite.Result, error) { return rewrite.NewSplicer().Rewrite(tc.sql, cat, p) },
			} {
				res, err := rw()
				if tc.want == "" {
					if err != nil {
						t.Fatalf("%s: %v", path, err)
					}
					if len(res.SQL) > 4<<20 {
						t.Fatalf("%s: rewritten to %d bytes", path, len(res.SQL))
					}
					continue
				}
				assertComplexity(t, path, err, tc.want)
			}
		})
	}
}

// assertComplexity fails unless err is the complexity rule's refusal
// (42501) with a message holding want.
func assertComplexity(t *testing.T, what string, err error, want string) {
	t.Helper()
	var r *rewrite.Refused
	if !errors.As(err, &r) {
		t.Fatalf("%s: got %v, want a complexity refusal", what, err)
	}
	if r.Rule != "complexity" || r.Code != rewrite.CodeInsufficientPrivilege || !strings.Contains(r.Message, want) {
		t.Fatalf("%s: refused by %s (%s): %q, want complexity (42501) with %q", what, r.Rule, r.Code, r.Message, want)
	}
}

// TestRewrittenLength: a rewrite longer than the limit is refused,
// spliced or deparsed, rather than built further, cached and sent.
func TestRewrittenLength(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	sql := "SELECT * FROM responses r WHERE r.nps > 5"
	full, err := rewrite.Rewrite(sql, cat, p)
	if err != nil {
		t.Fatal(err)
	}
	defer rewrite.SetMaxRewritten(len(full.SQL) - 1)()
	_, err = rewrite.Rewrite(sql, cat, p)
	assertComplexity(t, "deparse", err, "rewritten statement would be longer than")
	_, err = rewrite.NewSplicer().Rewrite(sql, cat, p)
	assertComplexity(t, "splice", err, "rewritten statement would be longer than")
	// A statement forwarded unchanged is not a rewrite: the guard bounds
	// it.
	if _, err := rewrite.Rewrite("SELECT '"+strings.Repeat("x", len(full.SQL))+"'", cat, p); err != nil {
		t.Fatal(err)
	}
}

// TestGroupingWideningCost: widening the GROUP BY of a SELECT whose FROM
// items are all grouped by their keys reads the SELECT's clauses once,
// not once per item (a red team's 990 items under a target of 19,500
// constants took seconds to rewrite), and still widens each item.
func TestGroupingWideningCost(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	const items, constants = 200, 2000
	sql := repeated("SELECT ARRAY[", "1", ", ", "], r0.nps, r199.nps FROM ", constants) +
		repeated("", "responses r#", ", ", " GROUP BY ", items) +
		repeated("", "r#.id", ", ", "", items)
	before := rewrite.ReadAboveWalked()
	res, err := rewrite.Rewrite(sql, cat, p)
	if err != nil {
		t.Fatal(err)
	}
	// NOTE: the clauses hold some 2 nodes a constant; walked once for
	// the deparse, the bound leaves them a few times over.
	if walked := rewrite.ReadAboveWalked() - before; walked > 10*constants {
		t.Errorf("the widening walked %d nodes for a SELECT of %d constants and %d items", walked, constants, items)
	}
	for _, want := range []string{"r0.nps", "r199.nps"} {
		if !strings.Contains(res.SQL[strings.LastIndex(res.SQL, "GROUP BY"):], want) {
			t.Errorf("the GROUP BY was not widened by %s: %s", want, res.SQL[strings.LastIndex(res.SQL, "GROUP BY"):])
		}
	}
}
