package rewrite_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestSpliceOnly: the engine's cold path splices ONLY name, ONLY (name)
// and name *, whatever comments and spaces sit between their tokens, into
// the deparse-based rewrite's statement, and ONLY's subquery reads the
// relation alone: the rows of an inheritance child, which name and
// name * read, do not reach it.
func TestSpliceOnly(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// NOTE: the child lives in a transaction rolled back at the end; the
	// catalog read inside it sees it, no other test does.
	results, err := conn.Exec(ctx, `BEGIN;
CREATE TABLE public.responses_child () INHERITS (public.responses);
INSERT INTO public.responses_child SELECT * FROM ONLY public.responses;
SELECT count(*) FROM ONLY public.responses WHERE country = 'France'`).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	n, err := strconv.Atoi(string(results[3].Rows[0][0]))
	if err != nil || n == 0 {
		t.Fatalf("no French responses to count: %v", err)
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	splicer := rewrite.NewSplicer()
	for _, tc := range []struct {
		sql  string
		want int // French rows counted
	}{
		{"SELECT count(*) FROM ONLY responses", n},
		{"SELECT count(*) FROM responses", 2 * n},
		{"SELECT count(*) FROM responses *", 2 * n},
		{"SELECT count(*) FROM public . responses*r", 2 * n},
		{"SELECT count(*) FROM ONLY responses r WHERE r.id > 0", n},
		{"SELECT count(*) FROM only(responses)", n},
		{"SELECT count(*) FROM ONLY /* c */ ( public . responses /* d */ ) AS r", n},
		{"SELECT count(*) FROM ONLY\n-- c\n\"responses\" WHERE \"responses\".nps >= 0 OR true", n},
		{"SELECT count(*) FROM ONLY public.responses JOIN responses * x ON x.id = responses.id", 2 * n},
		{"SELECT count(*) FROM responses JOIN ONLY (responses) x ON x.id = responses.id", 2 * n},
		{"SELECT count(*), 'ONLY (' FROM /* ONLY ( */ responses", 2 * n},
		// The star and ONLY's parenthesis end the span with no space
		// before the client's next token: the alias the splice adds
		// must not swallow it (responsesLEFT, an inner join).
		{"SELECT count(*) FROM responses*LEFT JOIN countries c ON false", 2 * n},
		{"SELECT count(*) FROM ONLY(responses)LEFT JOIN countries c ON false", n},
		{"SELECT count(*) FROM countries c RIGHT JOIN public.responses*FULL JOIN countries d ON false ON false", 2*n + 1},
		// TABLE [ONLY] name: SELECT * FROM name, written out around the
		// subquery (TABLE takes no subquery).
		{"SELECT count(*) FROM (TABLE ONLY responses) t", n},
		{"SELECT count(*) FROM (TABLE responses) t", 2 * n},
		{"SELECT count(*) FROM (table/* c */only(public.responses)) t", n},
		{"WITH x AS (TABLE responses *) SELECT count(*) FROM x", 2 * n},
		{"SELECT count(*) FROM (TABLE public.responses UNION ALL TABLE ONLY responses) t", 3 * n},
		{"SELECT count(*) FROM (TABLE responses ORDER BY id LIMIT 1) t", 1},
		{"SELECT count(*) FROM (SELECT 'TABLE' FROM responses) t", 2 * n},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			want, err := rewrite.Rewrite(tc.sql, cat, marie(t))
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			got, err := splicer.Rewrite(tc.sql, cat, marie(t))
			if err != nil || !rewrite.Spliced(got) {
				t.Fatalf("the cold path does not splice it: %v", err)
			}
			if same, err := rewrite.SameStatements(got.SQL, want.SQL); err != nil || !same {
				t.Fatalf("the splice is not the rewrite (%v):\nspliced:  %s\ndeparsed: %s", err, got.SQL, want.SQL)
			}
			rows, err := conn.Exec(ctx, got.SQL).ReadAll()
			if err != nil {
				t.Fatalf("upstream: %v\n%s", err, got.SQL)
			}
			if c, _ := strconv.Atoi(string(rows[0].Rows[0][0])); c != tc.want {
				t.Errorf("counts %d rows, want %d:\n%s", c, tc.want, got.SQL)
			}
		})
	}
}

// TestDeparseCastsBoolTestOperands: pg_query's deparser drops the
// parentheses around an AND, OR or NOT under IS NULL and around IS [NOT]
// DISTINCT FROM under IS NULL or IS TRUE; the rewriter casts the operand
// to boolean, which it prints with them (castBoolTestArgs). The deparsed
// rewrite is accepted, and reads upstream what the client's own text,
// spliced, reads, NULLs included.
func TestDeparseCastsBoolTestOperands(t *testing.T) {
	cat := demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	splicer := rewrite.NewSplicer()
	for _, e := range []string{
		"(v.b AND r.nps > 8) IS NULL",
		"(v.b OR r.comment IS NULL) IS NOT NULL",
		"(NOT v.b) IS NULL",
		"(NOT r.nps IN (SELECT 9)) IS NULL",
		"(v.b IS NOT DISTINCT FROM (r.nps > 8)) IS TRUE",
		"(r.nps IS DISTINCT FROM NULL) IS NOT FALSE",
		"(v.b IS DISTINCT FROM true) IS NULL",
		"(v.b IS NOT DISTINCT FROM r.nps > 8) IS UNKNOWN",
	} {
		sql := "SELECT string_agg((" + e + ")::text, ',' ORDER BY r.id, v.b) FROM responses r, (VALUES (NULL::boolean), (true), (false)) v(b)"
		t.Run(e, func(t *testing.T) {
			deparsed, err := rewrite.Rewrite(sql, cat, marie(t))
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			spliced, err := splicer.Rewrite(sql, cat, marie(t))
			if err != nil || !rewrite.Spliced(spliced) {
				t.Fatalf("the cold path does not splice it: %v", err)
			}
			var got [2]string
			for i, s := range []string{deparsed.SQL, spliced.SQL} {
				rows, err := conn.Exec(ctx, s).ReadAll()
				if err != nil {
					t.Fatalf("upstream: %v\n%s", err, s)
				}
				got[i] = string(rows[0].Rows[0][0])
			}
			if got[0] != got[1] || got[0] == "" {
				t.Errorf("the deparse reads %q, the client's text %q:\n%s", got[0], got[1], deparsed.SQL)
			}
		})
	}
}

// TestDeparseKeepsUnknownCollateUpstream: a COLLATE over a value of type
// unknown leaves the type to the comparison around it, here the char(3)
// of c: 'ab ' reads 'ab', and c = 'ab' is in the range. When another
// operand of the statement needs a wrap (r.nps = 8 under BETWEEN), the
// deparsed rewrite is refused or reads upstream what the client's own
// text, spliced, reads: never the text comparison a COALESCE of the
// literal would make, where 'ab' < 'ab '.
func TestDeparseKeepsUnknownCollateUpstream(t *testing.T) {
	cat := demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	splicer := rewrite.NewSplicer()
	for _, e := range []string{
		`v.c BETWEEN ('ab '::unknown COLLATE "C") AND 'zz'`,
		`v.c = (('ab ' COLLATE "C") COLLATE "C")`,
		`v.c >= CAST('ab ' AS pg_catalog.unknown) COLLATE "C"`,
	} {
		sql := "SELECT string_agg((" + e + ")::text || ((r.nps = 8) BETWEEN false AND true)::text, ',' ORDER BY r.id) " +
			"FROM responses r, (VALUES ('ab'::char(3))) v(c)"
		t.Run(e, func(t *testing.T) {
			spliced, err := splicer.Rewrite(sql, cat, marie(t))
			if err != nil || !rewrite.Spliced(spliced) {
				t.Fatalf("the cold path does not splice it: %v", err)
			}
			deparsed, err := rewrite.Rewrite(sql, cat, marie(t))
			if err != nil {
				return // refused: fail closed
			}
			var got [2]string
			for i, s := range []string{deparsed.SQL, spliced.SQL} {
				rows, err := conn.Exec(ctx, s).ReadAll()
				if err != nil {
					t.Fatalf("upstream: %v\n%s", err, s)
				}
				got[i] = string(rows[0].Rows[0][0])
			}
			if got[0] != got[1] || got[0] == "" {
				t.Errorf("the deparse reads %.40q, the client's text %.40q:\n%s", got[0], got[1], deparsed.SQL)
			}
		})
	}
}

// qnamePolicy governs the relations of a map keyed by their schema and
// name apart, everything else in pg_catalog open, the rest denied.
type qnamePolicy struct {
	access map[rewrite.QName]rewrite.Access
}

func (q *qnamePolicy) Key() string { return "qname" }
func (q *qnamePolicy) AllowStatement(k rewrite.StatementKind) (bool, string) {
	return k == rewrite.KindSelect, "role analyst"
}
func (q *qnamePolicy) Relation(r *rewrite.Relation) rewrite.Access {
	if r.Schema == "pg_catalog" || r.Schema == "information_schema" {
		return rewrite.Access{Mode: rewrite.Open}
	}
	if a, ok := q.access[r.QName]; ok {
		return a
	}
	return rewrite.Access{Mode: rewrite.Denied, Reason: "table " + r.QName.String() + " is not governed"}
}
func (q *qnamePolicy) AllowFunction(schema, name string) bool { return false }

// TestSpliceTemplateNamesRelationApart: the subquery template of
// "a.b".c is not served for a."b.c", whose schema and name, written with
// a dot between them, read alike.
func TestSpliceTemplateNamesRelationApart(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// NOTE: the relations live in a transaction rolled back at the end.
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE SCHEMA "a.b"; CREATE SCHEMA a;
CREATE TABLE "a.b".c (v text); INSERT INTO "a.b".c VALUES ('in a.b . c');
CREATE TABLE a."b.c" (v text); INSERT INTO a."b.c" VALUES ('in a . b.c')`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	p := &qnamePolicy{access: map[rewrite.QName]rewrite.Access{
		{Schema: "a.b", Name: "c"}: {Mode: rewrite.Governed, Filter: expr(t, "true"), Rules: []string{"abc"}},
		{Schema: "a", Name: "b.c"}: {Mode: rewrite.Governed, Filter: expr(t, "true"), Rules: []string{"abc"}},
	}}
	splicer := rewrite.NewSplicer()
	for _, tc := range []struct{ sql, want string }{
		{`SELECT v FROM "a.b".c`, "in a.b . c"},
		{`SELECT v FROM a."b.c"`, "in a . b.c"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			got, err := splicer.Rewrite(tc.sql, cat, p)
			if err != nil || !rewrite.Spliced(got) {
				t.Fatalf("the cold path does not splice it: %v", err)
			}
			rows, err := conn.Exec(ctx, got.SQL).ReadAll()
			if err != nil {
				t.Fatalf("upstream: %v\n%s", err, got.SQL)
			}
			if v := string(rows[0].Rows[0][0]); v != tc.want {
				t.Errorf("reads %q, want %q:\n%s", v, tc.want, got.SQL)
			}
		})
	}
}

// TestSpliceScopeDeparsedFaithfully: a scoped SELECT a splice puts in
// the client's text reads the policy's scope as the policy wrote it, when
// pg_query's deparser would drop the parentheses of (a OR b) IS NOT NULL
// (castBoolTestArgs): the rows are those the scope picks, not those of
// a OR (b IS NOT NULL).
func TestSpliceScopeDeparsedFaithfully(t *testing.T) {
	cat := demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, scope := range []string{
		"(nps > 8 OR comment = '') IS NOT NULL",
		"(nps IS DISTINCT FROM 9) IS TRUE",
		"(NOT nps > 8) IS NULL",
	} {
		t.Run(scope, func(t *testing.T) {
			p := marie(t)
			p.access["public.responses"] = rewrite.Access{Mode: rewrite.Governed, Filter: expr(t, scope), Rules: []string{"odd"}}
			rows, err := conn.Exec(ctx, "SELECT count(*) FROM responses WHERE "+scope).ReadAll()
			if err != nil {
				t.Fatal(err)
			}
			want := string(rows[0].Rows[0][0])
			sql := "SELECT count(*) FROM responses"
			got, err := rewrite.NewSplicer().Rewrite(sql, cat, p)
			if err != nil {
				t.Fatalf("the cold path refuses it: %v", err)
			}
			if rows, err = conn.Exec(ctx, got.SQL).ReadAll(); err != nil {
				t.Fatalf("upstream: %v\n%s", err, got.SQL)
			}
			if c := string(rows[0].Rows[0][0]); c != want {
				t.Errorf("counts %s rows, the scope picks %s:\n%s", c, want, got.SQL)
			}
		})
	}
}

// TestSkeletonMatchesTheWalkedTree: the engine takes a splice only when
// its skeleton parses into the tree the walker checked, not merely into
// as many statements: a skeleton whose alias swallows the next token, or
// whose alias or span is another, is refused, and the statement
// deparsed.
func TestSkeletonMatchesTheWalkedTree(t *testing.T) {
	cat := demoCatalog(t)
	for _, tc := range []struct {
		name, sql, from, to string
	}{
		{"an alias glued to LEFT reads an inner join", "SELECT count(*) FROM responses LEFT JOIN countries c ON false",
			"AS responses LEFT", "AS responsesLEFT"},
		{"another alias reads another FROM item", "SELECT count(*) FROM ONLY responses, countries WHERE responses.id > 0",
			"AS responses", "AS countries2"},
		{"a span that takes the join's ON reads another join", "SELECT 1 FROM countries c JOIN ONLY (responses) r ON true JOIN countries d ON true",
			"(SELECT) r ON true", "(SELECT) r"},
		{"a shortened column reference left long reads another column", "SELECT public.responses.nps FROM responses",
			"SELECT responses.nps", "SELECT public.responses.nps"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			skeleton, ok, tampered, err := rewrite.SkeletonMatches(tc.sql, cat, marie(t), func(s string) string {
				return strings.Replace(s, tc.from, tc.to, 1)
			})
			if err != nil || !ok {
				t.Fatalf("the skeleton does not match the tree (%v): %s", err, skeleton)
			}
			if !strings.Contains(skeleton, tc.from) {
				t.Fatalf("no %q in the skeleton: %s", tc.from, skeleton)
			}
			if tampered {
				t.Errorf("the skeleton with %q for %q matches the tree: %s", tc.to, tc.from, skeleton)
			}
		})
	}
}

// writerPolicy is qnamePolicy for a role that may also update.
type writerPolicy struct{ qnamePolicy }

func (w *writerPolicy) AllowStatement(k rewrite.StatementKind) (bool, string) {
	return k == rewrite.KindSelect || k == rewrite.KindUpdate, "role writer"
}

// TestWriteColumnsNameRelationApart: a column reference of a governed
// write's WHERE that names a."b.c" is not taken for one of the target
// "a.b".c, whose schema and name, written with a dot between them, read
// alike: it names a relation the write does not read, which is refused.
func TestWriteColumnsNameRelationApart(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// NOTE: the relations live in a transaction rolled back at the end.
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE SCHEMA "a.b"; CREATE SCHEMA a;
CREATE TABLE "a.b".c (v text, w int); CREATE TABLE a."b.c" (v text, w int)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	p := &writerPolicy{qnamePolicy{access: map[rewrite.QName]rewrite.Access{
		{Schema: "a.b", Name: "c"}: {Mode: rewrite.Governed, Filter: expr(t, "w > 0"), Rules: []string{"abc"}},
		{Schema: "a", Name: "b.c"}: {Mode: rewrite.Governed, Filter: expr(t, "true"), Rules: []string{"abc"}},
	}}}
	if _, err := rewrite.Rewrite(`UPDATE "a.b".c SET v = 'x' WHERE "a.b".c.v = 'y'`, cat, p); err != nil {
		t.Fatalf("the target's own column, schema qualified: %v", err)
	}
	_, err = rewrite.Rewrite(`UPDATE "a.b".c SET v = 'x' WHERE a."b.c".v = 'y'`, cat, p)
	var r *rewrite.Refused
	if !errors.As(err, &r) || r.Rule != "write_governed" {
		t.Fatalf("a column of a.\"b.c\" in the WHERE of a write on \"a.b\".c: %v, want refused write_governed", err)
	}
}

// TestDeparseParenthesizesOperands: pg_query's deparser drops the
// parentheses around other operands than those of IS NULL and IS TRUE —
// a comparison under BETWEEN, IN or = ANY, an IS DISTINCT FROM under
// another, a concatenation as the zone of AT TIME ZONE, a COLLATE as
// BETWEEN's lower bound, an IN (subquery) under a cast. The rewriter
// wraps them, once their deparse came back unfaithful, in a cast to
// boolean, COALESCE of one argument or the call AT TIME ZONE stands for
// (parenthesizeOperands). The deparsed rewrite is accepted, and reads
// upstream what the client's own text, spliced, reads, NULLs included.
func TestDeparseParenthesizesOperands(t *testing.T) {
	cat := demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	splicer := rewrite.NewSplicer()
	for _, e := range []string{
		"(r.nps IS DISTINCT FROM 9) IS NOT DISTINCT FROM (v.b IS DISTINCT FROM true)",
		"v.b IS NOT DISTINCT FROM (r.nps IS NOT DISTINCT FROM 9)",
		"(r.nps > 8) BETWEEN v.b AND true",
		"v.b BETWEEN (r.nps > 8) AND true",
		"v.b NOT BETWEEN SYMMETRIC (r.nps < 3 OR v.b) AND (r.nps = 7)",
		"(r.nps > 8) IN (v.b, false)",
		"(r.nps > 8) = ANY (ARRAY[v.b])",
		"(r.nps < 5) IN (SELECT v.b)",
		"(NOT v.b) NOT IN (SELECT r.nps > 8)",
		"- (r.nps = ANY (SELECT 9))::int",
		"v.b = (r.comment IS NORMALIZED)",
		"'2024-06-01'::timestamp BETWEEN (r.submitted_at AT TIME ZONE 'UTC') AND 'infinity'",
		"(r.submitted_at AT TIME ZONE ('Europe/' || 'Paris'))::text",
		"r.comment BETWEEN (r.comment COLLATE \"C\") AND 'zzz'",
		"(r.comment = 'a') LIKE 't%'",
	} {
		sql := "SELECT string_agg((" + e + ")::text, ',' ORDER BY r.id, v.b) FROM responses r, (VALUES (NULL::boolean), (true), (false)) v(b)"
		t.Run(e, func(t *testing.T) {
			deparsed, err := rewrite.Rewrite(sql, cat, marie(t))
			if err != nil {
				t.Fatalf("Rewrite: %v", err)
			}
			spliced, err := splicer.Rewrite(sql, cat, marie(t))
			if err != nil || !rewrite.Spliced(spliced) {
				t.Fatalf("the cold path does not splice it: %v", err)
			}
			var got [2]string
			var fails [2]string
			for i, s := range []string{deparsed.SQL, spliced.SQL} {
				rows, err := conn.Exec(ctx, s).ReadAll()
				if err != nil {
					fails[i] = err.Error()
					continue
				}
				got[i] = string(rows[0].Rows[0][0])
			}
			if fails != [2]string{} {
				if fails[0] != fails[1] {
					t.Errorf("the deparse fails with %q, the client's text with %q:\n%s", fails[0], fails[1], deparsed.SQL)
				}
				return
			}
			if got[0] != got[1] || got[0] == "" {
				t.Errorf("the deparse reads %q, the client's text %q:\n%s", got[0], got[1], deparsed.SQL)
			}
		})
	}
}
