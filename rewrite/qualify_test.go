package rewrite_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/rewrite"
)

// qualifyPolicy scopes responses with a scope that reads columns bare,
// around a subquery of its own (whose columns are its FROM's), and masks
// a column with an expression over another; countries, with no mask,
// may be read directly (flatten.go).
func qualifyPolicy(t testing.TB) *fakePolicy {
	return &fakePolicy{
		access: map[string]rewrite.Access{
			"public.responses": {Mode: rewrite.Governed,
				Filter: expr(t, "country = 'France' AND (team_id IN (SELECT t.id FROM public.teams t WHERE t.name <> 'x') OR nps IS NULL)"),
				Masks: map[string]*pg_query.Node{
					"email":   expr(t, "left(email, 2) || '…' || branch"),
					"contact": nil,
				},
				Rules: []string{"france_only"}},
			"public.countries": {Mode: rewrite.Governed, Filter: expr(t, "name = 'France'"), Rules: []string{"france_countries"}},
			"public.teams":     {Mode: rewrite.Open},
			// As configs/demo.hcl: the notes follow responses, so a
			// DELETE of responses reaches only notes the user sees.
			"public.response_comments": {Mode: rewrite.Governed,
				Filter:  expr(t, "response_id = ANY (SELECT id FROM public.responses WHERE country = 'France')"),
				Rules:   []string{"follows.public.responses", "france_only"},
				Follows: &rewrite.Follow{Parent: rewrite.QName{Schema: "public", Name: "responses"}, Column: "response_id", Key: "id"}},
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindCopyOut: true,
			rewrite.KindUpdate: true, rewrite.KindDelete: true},
	}
}

// TestScopedSubqueryQualifiesColumns checks that every reference the
// rewriter writes to a governed relation's columns (its subquery's
// targets, masks, scope and pushed comparisons; a direct read's or
// write's WHERE; a write's row identities) is qualified by the name of
// the FROM item reading the relation, and that a policy subquery's own
// columns are left as they are. A bare name the table no longer has
// (renamed upstream since the catalog snapshot) would resolve to a
// column of the client's enclosing query, and a scope on it would let
// every row through; qualified, PostgreSQL fails with 42703.
func TestScopedSubqueryQualifiesColumns(t *testing.T) {
	cat := demoCatalog(t)
	p := qualifyPolicy(t)
	cases := []struct {
		name, sql string
		want      []string
	}{
		{"a scalar subquery under an outer query with a column of the scope's name",
			"SELECT (SELECT count(*) FROM responses) FROM (SELECT 'France'::text AS country) x",
			[]string{
				"FROM public.responses WHERE responses.country = 'France' AND (responses.team_id IN (SELECT t.id FROM public.teams t WHERE t.name <> 'x') OR responses.nps IS NULL) OFFSET 0) responses",
				"((\"left\"(responses.email, 2) || '…') || responses.branch)::text AS email",
				"SELECT responses.id, responses.survey_id, NULL::text AS contact",
			}},
		{"a lateral subquery with the client's alias and a pushed comparison",
			"SELECT r.id FROM (SELECT 'France'::text AS country) x CROSS JOIN LATERAL (SELECT * FROM responses) r WHERE r.id = 3",
			[]string{"FROM public.responses WHERE responses.country = 'France'"}},
		{"an alias: the inner FROM item keeps the relation's name",
			"SELECT r.nps FROM responses r WHERE r.id = 3",
			[]string{"FROM public.responses WHERE responses.country = 'France' AND (responses.team_id IN (SELECT t.id FROM public.teams t WHERE t.name <> 'x') OR responses.nps IS NULL) AND responses.id OPERATOR(pg_catalog.=) 3 OFFSET 0) r"}},
		{"an outer FROM item named like the relation",
			"SELECT (SELECT count(*) FROM responses) FROM (SELECT 'France'::text AS country) responses",
			[]string{"FROM public.responses WHERE responses.country = 'France'"}},
		{"COPY TO",
			"COPY responses (id, email) TO STDOUT",
			[]string{"COPY (SELECT id, email FROM (SELECT responses.id,", "FROM ONLY public.responses WHERE responses.country = 'France'"}},
		{"a scoped DELETE's row identities",
			"DELETE FROM responses WHERE nps < 2",
			[]string{"FROM (SELECT responses.tableoid AS pgveil_tableoid, responses.ctid AS pgveil_ctid, responses.id,",
				"FROM public.responses WHERE responses.country = 'France' AND (responses.team_id IN (SELECT t.id FROM public.teams t WHERE t.name <> 'x') OR responses.nps IS NULL) AND responses.nps OPERATOR(pg_catalog.<) 2 OFFSET 0) responses WHERE nps < 2"}},
		{"a direct read",
			"SELECT code FROM countries c WHERE code = 'FR'",
			[]string{"FROM public.countries c WHERE c.name = 'France' AND c.code OPERATOR(pg_catalog.=) 'FR'"}},
		{"a direct write",
			"DELETE FROM countries WHERE code = 'FR'",
			[]string{"DELETE FROM public.countries countries WHERE countries.name = 'France' AND countries.code OPERATOR(pg_catalog.=) 'FR'"}},
		{"ONLY",
			"SELECT count(*) FROM ONLY responses WHERE id > 5",
			[]string{"FROM ONLY public.responses WHERE responses.country = 'France'", "responses.id OPERATOR(pg_catalog.>) 5 OFFSET 0) responses"}},
		{"pg_class, its masks and its xmin",
			"SELECT c.relname, c.xmin FROM pg_catalog.pg_class c WHERE c.relname = 'responses'",
			[]string{"CASE WHEN pg_class.relnamespace OPERATOR(pg_catalog.=) 'pg_catalog'::pg_catalog.regnamespace", "THEN pg_class.reltuples ELSE -1 END::real AS reltuples",
				", pg_class.xmin FROM pg_catalog.pg_class WHERE pg_class.relname OPERATOR(pg_catalog.=) 'responses' OFFSET 0) c"}},
	}
	engine := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			res, err := rewrite.Rewrite(tc.sql, cat, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, w := range tc.want {
				if !strings.Contains(res.SQL, w) {
					t.Errorf("output lacks %q:\n%s", w, res.SQL)
				}
			}
			if bad := bareGovernedColumns(t, res.SQL, cat); len(bad) > 0 {
				t.Errorf("bare columns %q in\n%s", bad, res.SQL)
			}
			// The engine's cold path splices subquery templates: they
			// are qualified alike.
			for range 2 {
				got, err := engine.Rewrite(context.Background(), "marie", 'Q', tc.sql)
				if err != nil {
					t.Fatal(err)
				}
				if bad := bareGovernedColumns(t, got.SQL, cat); len(bad) > 0 {
					t.Errorf("engine: bare columns %q in\n%s", bad, got.SQL)
				}
			}
		})
	}
}

// bareGovernedColumns returns the column references of sql's statements
// that stand in a SELECT reading one relation of the catalog by its
// schema-qualified name (the rewriter's scoped subquery, or a direct
// read), outside that SELECT's own subqueries, and are not qualified by
// the name of its FROM item.
func bareGovernedColumns(t *testing.T, sql string, cat *rewrite.Catalog) []string {
	t.Helper()
	tree, err := pg_query.Parse(sql)
	if err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	var bad []string
	// check walks one SELECT's own expressions (not its subqueries),
	// reporting references not qualified by q.
	var check func(m protoreflect.Message, q string)
	check = func(m protoreflect.Message, q string) {
		switch x := m.Interface().(type) {
		case *pg_query.ColumnRef:
			if len(x.Fields) != 2 || x.Fields[0].GetString_().GetSval() != q {
				bad = append(bad, exprSQL(&pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: x}}))
			}
			return
		case *pg_query.SubLink:
			if x.Testexpr != nil {
				check(x.Testexpr.ProtoReflect(), q)
			}
			return
		case *pg_query.SelectStmt:
			return
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			if fd.IsList() {
				for i := 0; i < v.List().Len(); i++ {
					check(v.List().Get(i).Message(), q)
				}
			} else {
				check(v.Message(), q)
			}
			return true
		})
	}
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		var where *pg_query.Node
		var q string
		var targets []*pg_query.Node
		switch x := m.Interface().(type) {
		case *pg_query.SelectStmt:
			if len(x.FromClause) == 1 && x.LimitOffset.GetAConst().GetIval().GetIval() == 0 && x.LimitOffset != nil {
				if rv := x.FromClause[0].GetRangeVar(); rv != nil && rv.Schemaname != "" {
					if cat.Relations[rewrite.QName{Schema: rv.Schemaname, Name: rv.Relname}] != nil {
						// The scoped subquery: every target and the WHERE.
						q, where, targets = rv.Relname, x.WhereClause, x.TargetList
					}
				}
			} else if len(x.FromClause) == 1 && x.WhereClause != nil {
				if rv := x.FromClause[0].GetRangeVar(); rv != nil && rv.Schemaname == "public" && rv.Alias != nil {
					// A direct read: its WHERE is the scope's.
					q, where = rv.Alias.Aliasname, x.WhereClause
				}
			}
		case *pg_query.DeleteStmt:
			if x.Relation.GetSchemaname() == "public" && x.Relation.Alias != nil && x.WhereClause.GetSubLink() == nil {
				q, where = x.Relation.Alias.Aliasname, x.WhereClause
			}
		}
		if q != "" {
			for _, n := range targets {
				// A mask is cast: its arguments are the relation's.
				check(n.ProtoReflect(), q)
			}
			if where != nil {
				check(where.ProtoReflect(), q)
			}
		}
		m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
			if fd.Kind() != protoreflect.MessageKind {
				return true
			}
			if fd.IsList() {
				for i := 0; i < v.List().Len(); i++ {
					walk(v.List().Get(i).Message())
				}
			} else {
				walk(v.Message())
			}
			return true
		})
	}
	for _, s := range tree.Stmts {
		walk(s.ProtoReflect())
	}
	return bad
}

// TestScopedSubqueryFailsOnStaleColumn runs rewrites made from a catalog
// snapshot taken before the scope's column was renamed upstream: the
// scoped subquery must fail (42703), never read the column of the same
// name the client's outer query offers, which let every country's rows
// through when the subquery named it bare.
func TestScopedSubqueryFailsOnStaleColumn(t *testing.T) {
	cat := demoCatalog(t)
	p := qualifyPolicy(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	for _, sql := range []string{
		"SELECT (SELECT count(*) FROM responses) FROM (SELECT 'France'::text AS country) x",
		"SELECT (SELECT count(*) FROM responses) FROM (SELECT 'France'::text AS country) responses",
		"SELECT r.country FROM (SELECT 'France'::text AS country) x CROSS JOIN LATERAL (SELECT * FROM responses) r WHERE r.id = 3",
		"SELECT count(*) FROM (SELECT 'France'::text AS country) x WHERE EXISTS (SELECT 1 FROM responses WHERE id = 3)",
		"COPY responses (id, email) TO STDOUT",
	} {
		t.Run(sql, func(t *testing.T) {
			res, err := rewrite.Rewrite(sql, cat, p)
			if err != nil {
				t.Fatal(err)
			}
			// The rename and the statement in one transaction, rolled
			// back: other tests see the table as it was.
			script := "BEGIN; ALTER TABLE public.responses RENAME COLUMN country TO country_name; " + res.SQL + "; ROLLBACK"
			_, err = conn.Exec(ctx, script).ReadAll()
			if rb := conn.Exec(ctx, "ROLLBACK").Close(); rb != nil {
				t.Fatal(rb)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42703" {
				t.Fatalf("ran with the scope's column renamed: %v, want 42703\n%s", err, res.SQL)
			}
			if !strings.Contains(pe.Message, "responses.country") {
				t.Errorf("error %q does not name responses.country", pe.Message)
			}
		})
	}
}
