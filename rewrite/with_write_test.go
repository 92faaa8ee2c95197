package rewrite_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// everyKind lets a policy run every statement kind, so that only the
// statement's shape decides.
type everyKind struct{ rewrite.Policy }

func (w everyKind) Key() string                                         { return w.Policy.Key() + "+every" }
func (w everyKind) AllowStatement(rewrite.StatementKind) (bool, string) { return true, "" }

// TestWriteInWithIsRefusedByName: a data-modifying WITH is refused with a
// message naming the write and the WITH query, not the table it writes.
func TestWriteInWithIsRefusedByName(t *testing.T) {
	env := demoEnvironment(t)
	p := everyKind{env.policy(t, "hq")}
	for sql, want := range map[string]string{
		"WITH d AS (DELETE FROM responses WHERE id = 1 RETURNING id) SELECT * FROM d":                        "DELETE in WITH (d)",
		"WITH u AS (UPDATE responses SET nps = 1 WHERE id = 1 RETURNING id) SELECT * FROM u":                 "UPDATE in WITH (u)",
		"WITH i AS (INSERT INTO countries VALUES ('ZZ', 'Zed') RETURNING code) SELECT 1":                     "INSERT in WITH (i)",
		"WITH r AS (SELECT 1), d AS (DELETE FROM countries) DELETE FROM countries":                           "DELETE in WITH (d)",
		"WITH m AS (MERGE INTO countries c USING countries s ON true WHEN MATCHED THEN DO NOTHING) SELECT 1": "",
	} {
		t.Run("refuses "+sql, func(t *testing.T) {
			_, err := rewrite.Rewrite(sql, env.cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if want != "" && (r.Rule != "statement_kind" || !strings.Contains(err.Error(), want)) {
				t.Fatalf("got %v, want a statement_kind refusal naming %q", err, want)
			}
		})
	}
}

// TestWriteInWithRefusalNamesItsTable: the refusal of a data-modifying
// WITH names the table the write would have changed, as the refusal of
// the write alone does, so that the audit trail's tables (and pgveil
// audit search --table) find the attempt.
func TestWriteInWithRefusalNamesItsTable(t *testing.T) {
	env := demoEnvironment(t)
	p := everyKind{env.policy(t, "hq")}
	for sql, want := range map[string]string{
		"WITH d AS (DELETE FROM responses WHERE id = 1 RETURNING id) SELECT * FROM d":                        "public.responses",
		"WITH u AS (UPDATE responses SET nps = 1 WHERE id = 1 RETURNING id) SELECT * FROM u":                 "public.responses",
		"WITH i AS (INSERT INTO public.countries VALUES ('ZZ', 'Zed') RETURNING code) SELECT 1":              "public.countries",
		"WITH m AS (MERGE INTO countries c USING countries s ON true WHEN MATCHED THEN DO NOTHING) SELECT 1": "public.countries",
	} {
		t.Run("names "+want+" for "+sql, func(t *testing.T) {
			_, err := rewrite.Rewrite(sql, env.cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) {
				t.Fatalf("got %v, want a refusal", err)
			}
			if !slices.Contains(r.Tables, want) {
				t.Errorf("refusal %v names tables %v, want %s among them", err, r.Tables, want)
			}
		})
	}
	t.Run("a table that does not exist leaves the refusal as it is", func(t *testing.T) {
		_, err := rewrite.Rewrite("WITH d AS (DELETE FROM nosuch RETURNING 1) SELECT * FROM d", env.cat, p)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "statement_kind" {
			t.Fatalf("got %v, want the statement_kind refusal", err)
		}
	})
}

// TestWriteInWithRefusalHasTheWritesKind: the refusal of a
// data-modifying WITH has the write's kind, not its statement's, so that
// the audit trail's kind (pgveil audit search --kind delete) finds the
// write refused. No data-modifying WITH is ever allowed: no allowed
// statement's kind says otherwise. A statement other than a SELECT keeps
// its own kind before the write's, so that --kind insert or --kind
// explain finds it too.
func TestWriteInWithRefusalHasTheWritesKind(t *testing.T) {
	env := demoEnvironment(t)
	p := everyKind{env.policy(t, "hq")}
	for sql, want := range map[string]string{
		"WITH d AS (DELETE FROM responses WHERE id = 1 RETURNING id) SELECT * FROM d":        "delete",
		"WITH u AS (UPDATE responses SET nps = 1 WHERE id = 1 RETURNING id) SELECT * FROM u": "update",
		"WITH i AS (INSERT INTO countries VALUES ('ZZ', 'Zed') RETURNING code) SELECT 1":     "insert",
		// A statement that is not a SELECT keeps its own kind first:
		// --kind insert finds the INSERT refused, --kind delete the
		// write in its WITH.
		"INSERT INTO countries WITH d AS (DELETE FROM countries RETURNING *) SELECT * FROM d":                                 "insert,delete",
		"DELETE FROM countries WHERE code IN (WITH u AS (UPDATE countries SET name = 'x' RETURNING code) SELECT code FROM u)": "delete,update",
		"EXPLAIN WITH d AS (DELETE FROM responses WHERE id = 1 RETURNING id) SELECT * FROM d":                                 "explain,delete",
		"SELECT * FROM (WITH d AS (DELETE FROM responses WHERE id = 1 RETURNING id) SELECT * FROM d) s":                       "delete",
		"WITH d AS (DELETE FROM nosuch RETURNING 1) SELECT * FROM d":                                                          "delete",
	} {
		t.Run("kind "+want+" for "+sql, func(t *testing.T) {
			_, err := rewrite.Rewrite(sql, env.cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "statement_kind" {
				t.Fatalf("got %v, want the statement_kind refusal", err)
			}
			if r.Kind != want {
				t.Errorf("kind %q, want %q", r.Kind, want)
			}
		})
	}
}

// noExport is a policy that refuses COPY TO.
type noExport struct{ rewrite.Policy }

func (w noExport) Key() string { return w.Policy.Key() + "-export" }
func (w noExport) AllowStatement(k rewrite.StatementKind) (bool, string) {
	if k == rewrite.KindCopyOut {
		return false, "no export"
	}
	return w.Policy.AllowStatement(k)
}

// TestExportRefusalNamesItsTable: COPY table TO refused names the table
// it would have exported, for the audit trail's tables.
func TestExportRefusalNamesItsTable(t *testing.T) {
	env := demoEnvironment(t)
	p := noExport{env.policy(t, "hq")}
	for sql, want := range map[string][]string{
		"COPY responses (id) TO STDOUT": {"public.responses"},
		"COPY (SELECT r.id FROM responses r JOIN (SELECT code FROM countries) c ON true WHERE r.id IN (SELECT 1 FROM nosuch)) TO STDOUT": {
			"public.responses", "public.countries"},
	} {
		t.Run("names "+strings.Join(want, ", ")+" for "+sql, func(t *testing.T) {
			_, err := rewrite.Rewrite(sql, env.cat, p)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "statement_kind" {
				t.Fatalf("got %v, want the statement_kind refusal", err)
			}
			for _, table := range want {
				if !slices.Contains(r.Tables, table) {
					t.Errorf("refusal names tables %v, want %s among them", r.Tables, table)
				}
			}
		})
	}
}
