package rewrite_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/rewrite"
)

// TestLeakproofPairs checks the rewriter's list of operators it runs on
// hidden rows against the upstream's own catalog: each is pg_catalog's
// operator for the type pair, and its function is the one listed and is
// leak-proof.
func TestLeakproofPairs(t *testing.T) {
	demoCatalog(t) // NOTE: creates the feedback database.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	const q = `SELECT p.proname, p.proleakproof FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
WHERE o.oprnamespace = 'pg_catalog'::pg_catalog.regnamespace AND o.oprname = $1
  AND o.oprleft = $2::pg_catalog.regtype AND o.oprright = $3::pg_catalog.regtype`
	for pair, procs := range rewrite.LeakproofPairs {
		for i, op := range rewrite.PushComparisons {
			res := conn.ExecParams(ctx, q, [][]byte{[]byte(op), []byte(pair[0]), []byte(pair[1])}, nil, nil, nil).Read()
			if res.Err != nil {
				t.Fatalf("%s %s %s: %v", pair[0], op, pair[1], res.Err)
			}
			if len(res.Rows) != 1 {
				t.Errorf("%s %s %s: %d operators in pg_catalog, want 1", pair[0], op, pair[1], len(res.Rows))
				continue
			}
			if name, leakproof := string(res.Rows[0][0]), string(res.Rows[0][1]); name != procs[i] || leakproof != "t" {
				t.Errorf("%s %s %s: function %s (leakproof %s), the list says %s, leakproof", pair[0], op, pair[1], name, leakproof, procs[i])
			}
		}
	}
}

// TestPushDown checks which comparisons of the client's are copied into
// the scope subquery, and how: only what runs a listed leak-proof
// operator of the column's own type on hidden rows.
func TestPushDown(t *testing.T) {
	cat := demoCatalog(t)
	// The subquery qualifies every column of the relation by its name.
	const scope = "responses.country = 'France'"
	cases := []struct{ name, where, inner string }{
		{"an integer constant compares with the int8 column as int8 = int4",
			"id = 5", scope + " AND responses.id OPERATOR(pg_catalog.=) 5"},
		{"a long integer constant is int8",
			"id < 5000000000", scope + " AND responses.id OPERATOR(pg_catalog.<) 5000000000"},
		{"a string constant is read as the column's type",
			"submitted_at >= '2025-01-01 00:00:00+00' AND branch <> 'Paris'",
			scope + " AND responses.submitted_at OPERATOR(pg_catalog.>=) '2025-01-01 00:00:00+00' AND responses.branch OPERATOR(pg_catalog.<>) 'Paris'"},
		{"a constant on the left stays on the left", "5 > nps", scope + " AND 5 OPERATOR(pg_catalog.>) responses.nps"},
		{"a numeric constant would cast the column: not pushed", "nps = 1.5", scope},
		{"a numeric constant beyond int8 would cast the column: not pushed", "id = 99999999999999999999", scope},
		{"a string constant against an array column: not pushed", "tags = '{}'", scope},
		{"a boolean constant against an integer column: not pushed", "nps = true", scope},
		{"a cast constant: not pushed", "id = '5'::oid", scope},
		{"a constant with a collation: not pushed", "branch < 'P' COLLATE \"C\"", scope},
		{"a parameter is cast to the column's type",
			"id = $1", scope + " AND responses.id OPERATOR(pg_catalog.=) $1::bigint"},
		{"a parameter on the left is cast too",
			"$1 = nps", scope + " AND $1::int OPERATOR(pg_catalog.=) responses.nps"},
		{"a strict range on a parameter is copied as a non-strict one",
			"submitted_at < $1 AND $2 < nps", scope + " AND responses.submitted_at OPERATOR(pg_catalog.<=) $1::timestamp with time zone AND $2::int OPERATOR(pg_catalog.<=) responses.nps"},
		{"<> with a parameter: not pushed", "id <> $1", scope},
		{"a text column compares with a text parameter", "agent_login = $1", scope + " AND responses.agent_login OPERATOR(pg_catalog.=) $1::pg_catalog.text"},
		{"an operator the client qualified: not pushed", "id OPERATOR(pg_catalog.=) 5", scope},
	}
	pol := marie(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := rewrite.Rewrite("SELECT 1 FROM responses WHERE "+tc.where, cat, pol)
			if err != nil {
				t.Fatal(err)
			}
			if got := innerWhere(t, res.SQL); got != tc.inner {
				t.Errorf("scope subquery filters with\n  %s\nwant\n  %s\n(%s)", got, tc.inner, res.SQL)
			}
		})
	}
	t.Run("nothing is pushed into a table whose policy says NoPushdown", func(t *testing.T) {
		p := marie(t)
		acc := p.access["public.responses"]
		acc.NoPushdown = true
		p.access["public.responses"] = acc
		res, err := rewrite.Rewrite("SELECT 1 FROM responses WHERE id = 5 AND nps = $1", cat, p)
		if err != nil {
			t.Fatal(err)
		}
		if got := innerWhere(t, res.SQL); got != scope {
			t.Errorf("scope subquery filters with %s, want %s", got, scope)
		}
		// The statistics fence (subst.go, fenced): the planner does not
		// read the table's statistics for the client's conditions.
		if !strings.Contains(res.SQL, " UNION ALL SELECT ") || !strings.Contains(res.SQL, " FROM public.responses WHERE false OFFSET 0) responses WHERE ") {
			t.Errorf("no statistics fence around responses: %s", res.SQL)
		}
	})
}

// innerWhere returns the WHERE clause of the scope subquery around
// public.responses in sql.
func innerWhere(t *testing.T, sql string) string {
	t.Helper()
	_, after, ok := strings.Cut(sql, "FROM public.responses WHERE ")
	where, _, ok2 := strings.Cut(after, " OFFSET 0)")
	// Behind the statistics fence (NoPushdown) the scoped SELECT is the
	// first arm of a UNION ALL.
	where, _, _ = strings.Cut(where, " UNION ALL ")
	if !ok || !ok2 {
		t.Fatalf("no scope subquery in %s", sql)
	}
	return where
}

// TestPushDownBound checks that the comparisons copied into one scope
// subquery are bounded: each is built, deparsed and parsed again, more
// times for the splice's template, and 10,000 of them cost seconds of
// CPU on their first sight. The client's own stay outside, all of them.
func TestPushDownBound(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	p.kinds[rewrite.KindUpdate] = true
	const copied = "responses.id OPERATOR(pg_catalog.>) "
	cases := []struct {
		name, sql string
		want      int
	}{
		{"a WHERE of 100 comparisons has all copied", repeated("SELECT nps FROM responses WHERE ", "id > #", " AND ", "", 100), 100},
		{"one of 150 has the first 100 copied", repeated("SELECT nps FROM responses WHERE ", "id > #", " AND ", "", 150), 100},
		{"so does an UPDATE's", repeated("UPDATE responses SET nps = 1 WHERE ", "id > #", " AND ", "", 150), 100},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for path, rw := range map[string]func() (*rewrite.Result, error){
				"deparse": func() (*rewrite.Result, error) { return rewrite.Rewrite(tc.sql, cat, p) },
				"splice":  func() (*rewrite.Result, error) { return rewrite.NewSplicer().Rewrite(tc.sql, cat, p) },
			} {
				res, err := rw()
				if err != nil {
					t.Fatalf("%s: %v", path, err)
				}
				if got := strings.Count(res.SQL, copied); got != tc.want {
					t.Errorf("%s: %d comparisons copied, want %d:\n%s", path, got, tc.want, res.SQL)
				}
				if !strings.Contains(res.SQL, "id > 149") && !strings.Contains(res.SQL, "id > 99") {
					t.Errorf("%s: the client's own comparisons are gone:\n%s", path, res.SQL)
				}
			}
		})
	}
}
