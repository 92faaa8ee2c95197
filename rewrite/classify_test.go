package rewrite_test

import (
	"context"
	"maps"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// upstreamNames runs sql, a query of one text column, on the test
// cluster and returns its values.
func upstreamNames(t *testing.T, sql string) []string {
	t.Helper()
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "postgres")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	res := conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	var out []string
	for _, r := range res.Rows {
		out = append(out, string(r[0]))
	}
	return out
}

// TestClassificationCoversUpstream fails when the upstream PostgreSQL has
// a pg_catalog function or relation that functions.tsv or relations.tsv
// does not name: a new version must not open a hole unnoticed (pgveil
// refuses such names, but a client that needs one would break, and the
// classification is where it gets decided).
func TestClassificationCoversUpstream(t *testing.T) {
	t.Run("every pg_catalog function of the upstream is classified", func(t *testing.T) {
		names := upstreamNames(t, `SELECT DISTINCT proname::text FROM pg_catalog.pg_proc WHERE pronamespace = 'pg_catalog'::regnamespace ORDER BY 1`)
		if len(names) < 1000 {
			t.Fatalf("only %d pg_catalog functions upstream: the query is wrong", len(names))
		}
		var missing []string
		for _, n := range names {
			if _, _, ok := rewrite.ClassifiedFunction(n); !ok {
				missing = append(missing, n)
			}
		}
		if len(missing) > 0 {
			t.Errorf("rewrite/functions.tsv does not classify these pg_catalog functions of the upstream:\n%s", strings.Join(missing, "\n"))
		}
	})
	t.Run("every pg_catalog table and view of the upstream is classified", func(t *testing.T) {
		names := upstreamNames(t, `SELECT relname::text FROM pg_catalog.pg_class WHERE relnamespace = 'pg_catalog'::regnamespace
			AND relkind IN ('r', 'p', 'v', 'm', 'f') ORDER BY 1`)
		var missing []string
		for _, n := range names {
			class, _, ok := rewrite.ClassifiedRelation(n)
			if !ok {
				missing = append(missing, n)
			} else if class == "masked" && !rewrite.MaskedCatalogRelation(n) {
				t.Errorf("%s is classified masked, but catalogmask.go does not serve it", n)
			}
		}
		if len(missing) > 0 {
			t.Errorf("rewrite/relations.tsv does not classify these pg_catalog relations of the upstream:\n%s", strings.Join(missing, "\n"))
		}
	})
	t.Run("every function answered NULL returns the type of its NULL", func(t *testing.T) {
		rows := upstreamNames(t, `SELECT DISTINCT proname || ' ' || pg_catalog.format_type(prorettype, NULL) FROM pg_catalog.pg_proc
			WHERE pronamespace = 'pg_catalog'::regnamespace ORDER BY 1`)
		nulls := 0
		for _, r := range rows {
			name, typ, _ := strings.Cut(r, " ")
			if class, _, _ := rewrite.ClassifiedFunction(name); class == "null" {
				nulls++
				want := map[string]string{"int8": "bigint"}[rewrite.NullType(name)]
				if want == "" {
					want = rewrite.NullType(name)
				}
				if typ != want {
					t.Errorf("%s returns %s, but is answered NULL::%s", name, typ, want)
				}
			}
		}
		if nulls == 0 {
			t.Error("no function is answered NULL: the size functions are missing")
		}
	})
	// Operators, casts and type input and output call their functions
	// without a function call the walker sees: none may be a function the
	// classification refuses for what it reveals or does.
	t.Run("no operator, cast or type I/O runs a refused function", func(t *testing.T) {
		rows := upstreamNames(t, `
			SELECT 'operator ' || o.oid::regoperator::text || E'\t' || p.proname FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode
			UNION SELECT 'cast ' || c.castsource::regtype::text || ' AS ' || c.casttarget::regtype::text || E'\t' || p.proname
			FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc
			UNION SELECT 'type ' || t.oid::regtype::text || E'\t' || p.proname FROM pg_catalog.pg_type t JOIN pg_catalog.pg_proc p
			ON p.oid IN (t.typinput, t.typoutput, t.typreceive, t.typsend, t.typmodin, t.typmodout, t.typsubscript)`)
		if len(rows) < 100 {
			t.Fatalf("only %d operators, casts and types: the query is wrong", len(rows))
		}
		for _, r := range rows {
			what, fn, _ := strings.Cut(r, "\t")
			if class, rule, _ := rewrite.ClassifiedFunction(fn); class != "allow" && rule != "internal_function" {
				t.Errorf("%s runs %s, classified %s (%s)", what, fn, class, rule)
			}
		}
	})
	t.Run("the masked relations are those catalogmask.go serves", func(t *testing.T) {
		for _, n := range rewrite.MaskedCatalogRelationNames() {
			if class, _, _ := rewrite.ClassifiedRelation(n); class != "masked" {
				t.Errorf("catalogmask.go serves %s, classified %q", n, class)
			}
		}
	})
}

func TestParseClassification(t *testing.T) {
	for _, tc := range []struct{ name, text, err string }{
		{"a name before any group is an error", "pg_foo\n", "before any group"},
		{"an unknown class is an error", "== g\tmaybe\tx\twhy\nabs\n", "unknown class"},
		{"a refusal without a rule is an error", "== g\trefuse\t-\twhy\nabs\n", "name a rule"},
		{"an allowed group with a rule is an error", "== g\tallow\tfiles\twhy\nabs\n", "name a rule"},
		{"a name listed twice is an error", "== g\tallow\t-\twhy\nabs\n== h\trefuse\tfiles\twhy\nabs\n", "already in group g"},
		{"a group without a reason is an error", "== g\tallow\t-\nabs\n", "tab-separated"},
		{"comments and blank lines are skipped", "# c\n\n== g\tallow\t-\twhy\nabs\n# other versions\nceil\n", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := rewrite.ParseClassification(tc.text)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Fatalf("got %v, want %q", err, tc.err)
			}
		})
	}
}

// openPolicy opens every relation and allows every function: whatever a
// policy says, the firewall's own classification must hold.
type openPolicy struct{ *fakePolicy }

func (openPolicy) Relation(*rewrite.Relation) rewrite.Access {
	return rewrite.Access{Mode: rewrite.Open}
}
func (openPolicy) AllowFunction(schema, name string) bool { return true }

func TestCatalogFunctionClasses(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	cases := []rewriteCase{
		{name: "pg_cursor is refused: it returns the rewritten SQL", sql: "SELECT statement FROM pg_cursor()", rule: "statement_text"},
		{name: "pg_prepared_statement is refused", sql: "SELECT statement FROM pg_catalog.pg_prepared_statement()", rule: "statement_text"},
		{name: "current_query is refused", sql: "SELECT current_query()", rule: "statement_text"},
		{name: "pg_get_backend_memory_contexts is refused", sql: "SELECT ident FROM pg_get_backend_memory_contexts()", rule: "statement_text"},
		{name: "pg_backend_memory_contexts is refused", sql: "SELECT ident FROM pg_backend_memory_contexts", rule: "statement_text"},
		{name: "pg_lock_status is refused", sql: "SELECT * FROM pg_lock_status()", rule: "server_state"},
		{name: "pg_current_snapshot is refused", sql: "SELECT pg_current_snapshot()", rule: "server_state"},
		{name: "txid_current is refused", sql: "SELECT txid_current()", rule: "server_state"},
		{name: "pg_current_wal_lsn is refused", sql: "SELECT pg_current_wal_lsn()", rule: "server_state"},
		{name: "pg_backend_pid is refused", sql: "SELECT pg_backend_pid()", rule: "server_state"},
		{name: "pg_shmem_allocations is refused", sql: "SELECT * FROM pg_shmem_allocations", rule: "server_state"},
		{name: "an advisory lock is refused", sql: "SELECT pg_advisory_lock(1)", rule: "advisory_locks"},
		{name: "a try of an advisory lock is refused", sql: "SELECT pg_catalog.pg_try_advisory_xact_lock(1, 2)", rule: "advisory_locks"},
		{name: "a relation's file node is refused", sql: "SELECT pg_relation_filenode('responses')", rule: "files"},
		{name: "pg_hba_file_rules is refused", sql: "SELECT * FROM pg_hba_file_rules", rule: "files"},
		{name: "a progress view is refused", sql: "SELECT * FROM pg_stat_progress_vacuum", rule: "statistics"},
		{name: "a type's receive function is refused", sql: "SELECT int4recv(NULL)", rule: "internal_function"},
		{name: "an unclassified pg_catalog function is refused", sql: "SELECT pg_catalog.pg_some_future_function()", rule: "unclassified_function"},
		{name: "a size function is answered NULL", sql: "SELECT pg_relation_size('responses')", want: []string{"SELECT NULL::bigint"}},
		{name: "set_config of an allowed setting still runs", sql: "SELECT set_config('application_name', 'x', false)", want: []string{"set_config('application_name'"}},
		{name: "set_config of a pinned setting is still refused", sql: "SELECT set_config('search_path', 'x', false)", rule: "pinned_settings"},
		{name: "catalog introspection stays allowed",
			sql:  "SELECT format_type(atttypid, atttypmod), pg_get_viewdef('pg_tables'), pg_get_viewdef('pg_tables'::regclass, true), has_table_privilege('teams', 'SELECT'), pg_table_is_visible('teams'::regclass), pg_get_constraintdef(oid) FROM pg_attribute, pg_constraint LIMIT 1",
			want: []string{"pg_get_viewdef('pg_tables')"}},
		{name: "pg_settings stays allowed", sql: "SELECT name, setting FROM pg_settings", want: []string{"FROM pg_settings"}},
	}
	runCases(t, cat, p, cases)

	// pg_stat_statements lives in the schema its extension was created
	// in: it is refused there too, whatever the policy allows.
	ext := *cat
	ext.Relations = maps.Clone(cat.Relations)
	ext.Functions = maps.Clone(cat.Functions)
	ext.Functions["public"] = map[string]bool{}
	maps.Copy(ext.Functions["public"], cat.Functions["public"])
	for _, n := range []string{"pg_stat_statements", "pg_stat_statements_info"} {
		q := rewrite.QName{Schema: "public", Name: n}
		ext.Relations[q] = &rewrite.Relation{QName: q, Kind: 'v', Columns: []rewrite.Column{{Name: "query", Type: "text", TypeName: expr(t, "NULL::text").GetTypeCast().TypeName}}}
		ext.Functions["public"][n] = true
	}
	ext.Functions["public"]["pg_stat_statements_reset"] = true
	open := openPolicy{p}
	runCases(t, &ext, open, []rewriteCase{
		{name: "the pg_stat_statements view is refused in any schema", sql: "SELECT query FROM pg_stat_statements", rule: "statement_text"},
		{name: "a qualified pg_stat_statements_info is refused", sql: "SELECT * FROM public.pg_stat_statements_info", rule: "statement_text"},
		{name: "the pg_stat_statements function is refused however the policy allows it", sql: "SELECT * FROM public.pg_stat_statements(true)", rule: "statement_text"},
		{name: "an unqualified pg_stat_statements_reset is refused", sql: "SELECT pg_stat_statements_reset()", rule: "statement_text"},
	})

	// A pg_catalog view of a newer PostgreSQL is refused until classified.
	next := *cat
	next.Relations = maps.Clone(cat.Relations)
	q := rewrite.QName{Schema: "pg_catalog", Name: "pg_stat_of_the_future"}
	next.Relations[q] = &rewrite.Relation{QName: q, Kind: 'v'}
	q2 := rewrite.QName{Schema: "pg_catalog", Name: "pg_future_view"}
	next.Relations[q2] = &rewrite.Relation{QName: q2, Kind: 'v'}
	runCases(t, &next, p, []rewriteCase{
		{name: "an unclassified pg_catalog view is refused", sql: "SELECT * FROM pg_future_view", rule: "unclassified_relation"},
		{name: "an unclassified pg_stat_ view is refused", sql: "SELECT * FROM pg_catalog.pg_stat_of_the_future", rule: "unclassified_relation"},
	})
}
