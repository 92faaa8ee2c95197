package proxy_test

import (
	"context"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestAuditKinds checks that every statement kind is a word, MOVE apart
// from FETCH, whichever protocol ran it.
func TestAuditKinds(t *testing.T) {
	recs := auditedRun(t, nil, func(ctx context.Context, c *pgx.Conn) {
		for _, sql := range []string{
			"SHOW search_path", "BEGIN", "DECLARE c CURSOR FOR SELECT id FROM responses", "FETCH 1 FROM c", "MOVE 1 IN c",
			"CLOSE c", "SET CONSTRAINTS ALL IMMEDIATE", "COMMIT", "PREPARE q AS SELECT 1", "EXECUTE q", "DEALLOCATE q", "UNLISTEN *",
		} {
			simpleExec(ctx, t, c, sql)
		}
		if _, err := c.Exec(ctx, "SHOW work_mem"); err != nil {
			t.Fatal(err)
		}
	})
	for sql, kind := range map[string]string{
		"SHOW search_path": "show", "SHOW work_mem": "show", "FETCH 1 FROM c": "fetch", "MOVE 1 IN c": "move", "CLOSE c": "close",
		"DECLARE c CURSOR FOR SELECT id FROM responses": "declare", "BEGIN": "transaction", "SET CONSTRAINTS ALL IMMEDIATE": "set_constraints",
		"PREPARE q AS SELECT 1": "prepare", "EXECUTE q": "execute", "DEALLOCATE q": "deallocate", "UNLISTEN *": "unlisten",
	} {
		if e := recordOf(t, recs, sql); e.Kind != kind {
			t.Errorf("%s: kind %q, want %q", sql, e.Kind, kind)
		}
	}
}

// TestAuditDeniedKinds checks that a denied statement has its kind too,
// so that --kind finds refused exports, DDL and the like.
func TestAuditDeniedKinds(t *testing.T) {
	want := map[string]string{
		"SELECT * FROM employees": "select",
		"DROP TABLE responses":    "drop",
		"CREATE FUNCTION f() RETURNS int AS 'SELECT 1' LANGUAGE sql": "create_function",
		"COPY responses TO '/tmp/x'":                                 "copy",
		"SELECT 1; TRUNCATE responses":                               "truncate",
		"SELECT id FROM responses FOR UPDATE":                        "select",
	}
	recs := auditedRun(t, nil, func(ctx context.Context, c *pgx.Conn) {
		for sql := range want {
			if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err == nil {
				t.Errorf("%s ran", sql)
			}
		}
	})
	for sql, kind := range want {
		if e := recordOf(t, recs, sql); e.Decision != "denied" || e.Kind != kind {
			t.Errorf("%s: %s, kind %q, want denied, %q", sql, e.Decision, e.Kind, kind)
		}
	}
}
