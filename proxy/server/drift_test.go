package server

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// driftEnv is pgveil in front of a table shaped like the demo's
// responses: carol sees France only, contact, email and score masked.
// Catalog reads happen only when the test asks (refresh), or when a
// statement fails on a name the snapshot lacks.
type driftEnv struct {
	t    *testing.T
	srv  *Server
	c    *pgconn.PgConn
	logs *observer.ObservedLogs
	// path is the configuration's file.
	path string
}

const driftTable = "drift_resp"

func startDrift(t *testing.T, extraPolicy string, setup ...string) *driftEnv {
	t.Helper()
	pgtest.Require(t, cluster)
	ctx := context.Background()
	e := &driftEnv{t: t}
	drop := "DROP VIEW IF EXISTS drift_view; DROP TABLE IF EXISTS drift_other, " + driftTable + "_v2, " + driftTable + " CASCADE"
	e.exec(drop + "; CREATE TABLE " + driftTable + " (id int, contact text, email text, country text, score numeric(5,2), comment text); " +
		"INSERT INTO " + driftTable + " VALUES (1, 'Jean', 'jean@fr', 'France', 1.5, 'fr'), (2, 'Hans', 'hans@de', 'Germany', 2.5, 'de'); " +
		"CREATE TABLE drift_other (id int); INSERT INTO drift_other VALUES (7)")
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", drop) })
	for _, sql := range setup {
		e.exec(sql)
	}
	path := writeConfig(t, `
table "public.`+driftTable+`" {
  column "contact" { class = "pii" }
  column "email"   { class = "pii" }
  column "score"   { class = "technical" }
}
rule "france_only" {
  tables = ["public.`+driftTable+`"]
  roles  = ["reader"]
  where  = "country = me.country"
}
`+extraPolicy)
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := strings.Replace(string(b), "roles    = [\"reader\"]\n}", "roles    = [\"reader\"]\n  attributes = { country = \"France\" }\n}", 1)
	if driftStatements != "" {
		s = strings.Replace(s, "statements = [\"select\"]", driftStatements, 1)
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
	setUpstream(t, path, `catalog_refresh = "1h"`)
	e.path = path
	core, logs := observer.New(zapcore.InfoLevel)
	e.logs = logs
	srv, err := Start(ctx, Config{Path: path, Config: load(t, path), Version: "test", Logger: zap.New(core)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	e.srv = srv
	if e.c, err = pgconn.Connect(ctx, "postgres://carol:pw@"+srv.Addr().String()+"/postgres?sslmode=disable"); err != nil {
		t.Fatalf("connecting: %v", err)
	}
	t.Cleanup(func() { e.c.Close(context.Background()) })
	return e
}

func (e *driftEnv) exec(sql string) {
	e.t.Helper()
	if err := cluster.Exec(context.Background(), "postgres", sql); err != nil {
		e.t.Fatalf("%s: %v", sql, err)
	}
}

// refresh reads the catalog as the periodic read does.
func (e *driftEnv) refresh() {
	e.t.Helper()
	e.srv.catalog.read()
}

// rows runs sql as carol and returns its rows, "NULL" for NULL.
func (e *driftEnv) rows(sql string) ([]string, error) {
	res, err := e.c.Exec(context.Background(), sql).ReadAll()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, r := range res[len(res)-1].Rows {
		var vals []string
		for _, v := range r {
			if v == nil {
				vals = append(vals, "NULL")
			} else {
				vals = append(vals, string(v))
			}
		}
		out = append(out, strings.Join(vals, "|"))
	}
	return out, nil
}

// wantRefused checks that carol's sql is refused as policy_mismatch.
func (e *driftEnv) wantRefused(sql string) {
	e.t.Helper()
	rows, err := e.rows(sql)
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Hint, "policy") {
		e.t.Fatalf("%s: rows %v, error %v; want 42501 policy_mismatch", sql, rows, err)
	}
}

// wantRows checks carol's rows for sql.
func (e *driftEnv) wantRows(sql string, want ...string) {
	e.t.Helper()
	rows, err := e.rows(sql)
	if err != nil || strings.Join(rows, "\n") != strings.Join(want, "\n") {
		e.t.Fatalf("%s: rows %v, error %v; want %v", sql, rows, err, want)
	}
}

// errorLogged reports whether an ERROR line mentions sub.
func (e *driftEnv) errorLogged(sub string) bool {
	for _, l := range e.logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		for _, f := range l.Context {
			if strings.Contains(f.String, sub) || strings.Contains(strings.Join(stringsOf(f), " "), sub) {
				return true
			}
		}
	}
	return false
}

func stringsOf(f zapcore.Field) []string {
	if m, ok := f.Interface.(zapcore.ArrayMarshaler); ok {
		enc := zapcore.NewMapObjectEncoder()
		_ = enc.AddArray("a", m)
		var out []string
		for _, v := range enc.Fields["a"].([]any) {
			if s, ok := v.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// TestDDLNeverOpensWhatThePolicyGoverns holds pgveil to failing closed
// when DDL upstream leaves the policy not matching the database: start
// and reload refuse such a policy, and a catalog read while serving
// refuses the relations concerned instead of serving them open.
func TestDDLNeverOpensWhatThePolicyGoverns(t *testing.T) {
	t.Run("a masked column renamed is refused, not served in clear, after the catalog read", func(t *testing.T) {
		e := startDrift(t, "")
		e.wantRows("SELECT id, email FROM "+driftTable, "1|NULL")
		e.exec("ALTER TABLE " + driftTable + " RENAME COLUMN email TO contact_email")
		e.refresh()
		e.wantRefused("SELECT contact_email FROM " + driftTable)
		e.wantRefused("SELECT * FROM " + driftTable)
		e.wantRefused("SELECT count(*) FROM " + driftTable)
		if !e.errorLogged("public." + driftTable) {
			t.Errorf("no ERROR log names the refused table: %v", e.logs.All())
		}
		t.Run("and served again once the DDL is undone", func(t *testing.T) {
			e.exec("ALTER TABLE " + driftTable + " RENAME COLUMN contact_email TO email")
			e.refresh()
			e.wantRows("SELECT id, email FROM "+driftTable, "1|NULL")
		})
	})

	t.Run("a masked column renamed is refused once the catalog read a failing statement asks for has run", func(t *testing.T) {
		e := startDrift(t, "")
		e.exec("ALTER TABLE " + driftTable + " RENAME COLUMN email TO contact_email")
		// The snapshot lacks the name: the statement fails upstream
		// (42703), which asks for a catalog read within 5 s.
		if rows, err := e.rows("SELECT contact_email FROM " + driftTable); err == nil {
			t.Fatalf("before the catalog read: rows %v; want an error", rows)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			_, err := e.rows("SELECT * FROM " + driftTable)
			var pe *pgconn.PgError
			if errors.As(err, &pe) && pe.Code == "42501" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no refusal 15 s after the failing statement: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
		e.wantRefused("SELECT contact_email FROM " + driftTable)
	})

	t.Run("a scope column renamed is refused, not silently empty", func(t *testing.T) {
		e := startDrift(t, "")
		e.exec("ALTER TABLE " + driftTable + " RENAME COLUMN country TO country_code")
		e.refresh()
		e.wantRefused("SELECT id FROM " + driftTable)
	})

	t.Run("a governed table renamed in a schema whose default is allow is refused, not served open", func(t *testing.T) {
		e := startDrift(t, "schema \"public\" {\n  default = \"allow\"\n}\n")
		e.wantRows("SELECT id FROM drift_other", "7")
		e.exec("ALTER TABLE " + driftTable + " RENAME TO " + driftTable + "_v2")
		e.wantRefused("SELECT id, email FROM " + driftTable + "_v2")
		t.Run("and so is a view reading it", func(t *testing.T) {
			e.exec("CREATE VIEW drift_view AS SELECT * FROM " + driftTable + "_v2")
			e.refresh()
			e.wantRefused("SELECT id, email FROM drift_view")
		})
		t.Run("while the tables the policy still matches are served", func(t *testing.T) {
			e.wantRows("SELECT id FROM drift_other", "7")
		})
		t.Run("and a reload keeps refusing it", func(t *testing.T) {
			if err := e.srv.Reload(context.Background()); err == nil {
				t.Fatal("Reload accepted a table block naming a table that does not exist")
			}
			e.wantRefused("SELECT id, email FROM " + driftTable + "_v2")
		})
		t.Run("until a reload of a policy naming the new name, which serves it masked again", func(t *testing.T) {
			b, err := os.ReadFile(e.path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(e.path, []byte(strings.ReplaceAll(string(b), `"public.`+driftTable+`"`, `"public.`+driftTable+`_v2"`)), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := e.srv.Reload(context.Background()); err != nil {
				t.Fatalf("Reload: %v", err)
			}
			e.wantRows("SELECT id, email FROM "+driftTable+"_v2", "1|NULL")
		})
	})

	t.Run("DDL the policy does not notice refuses nothing", func(t *testing.T) {
		e := startDrift(t, "schema \"public\" {\n  default = \"allow\"\n}\n")
		e.exec("ALTER TABLE " + driftTable + " ADD COLUMN extra int; ALTER TABLE drift_other ADD COLUMN more int")
		e.refresh()
		e.wantRows("SELECT id, email, extra FROM "+driftTable, "1|NULL|NULL")
		e.wantRows("SELECT id FROM drift_other", "7")
		if e.errorLogged("public.") {
			t.Errorf("an ERROR was logged: %v", e.logs.FilterLevelExact(zapcore.ErrorLevel).All())
		}
	})
}

// TestDDLNotification holds pgveil to reading the catalog as soon as the
// DBA's event trigger reports DDL, not a catalog_refresh later.
func TestDDLNotification(t *testing.T) {
	pgtest.Require(t, cluster)
	uninstall := func() {
		_ = cluster.Exec(context.Background(), "postgres", "DROP EVENT TRIGGER IF EXISTS pgveil_ddl; DROP EVENT TRIGGER IF EXISTS pgveil_drop; DROP FUNCTION IF EXISTS pgveil.notify_ddl()")
	}
	uninstall()
	t.Cleanup(uninstall)
	e := startDrift(t, "")
	e.exec(DDLTriggerSQL)
	e.wantRows("SELECT id, email FROM "+driftTable, "1|NULL")
	e.exec("ALTER TABLE " + driftTable + " RENAME COLUMN email TO contact_email")
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, err := e.rows("SELECT id FROM " + driftTable)
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "42501" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("not refused 10 s after the DDL (catalog_refresh is an hour): %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	e.wantRefused("SELECT contact_email FROM " + driftTable)
}

// TestDDLTriggerSQLIsTheDocumented: the event trigger the tests and the
// demo install is the one configs/README.md gives DBAs.
func TestDDLTriggerSQLIsTheDocumented(t *testing.T) {
	b, err := os.ReadFile("../../configs/README.md")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "```sql\n"+DDLTriggerSQL+"\n```") {
		t.Errorf("configs/README.md does not give DDLTriggerSQL as it is:\n%s", DDLTriggerSQL)
	}
}

// TestStatementsPreparedBeforeARefusal holds pgveil to checking again a
// statement prepared before DDL made its table refused: PostgreSQL
// analyses a prepared statement again after DDL, and the text pgveil
// rewrote for the old snapshot would read the swapped columns.
func TestStatementsPreparedBeforeARefusal(t *testing.T) {
	e := startDrift(t, "")
	ctx := context.Background()
	if _, err := e.c.Prepare(ctx, "before", "SELECT id, comment FROM "+driftTable, nil); err != nil {
		t.Fatal(err)
	}
	run := func() ([]string, error) {
		res := e.c.ExecPrepared(ctx, "before", nil, nil, nil).Read()
		var out []string
		for _, r := range res.Rows {
			out = append(out, string(r[0])+"|"+string(r[1]))
		}
		return out, res.Err
	}
	if rows, err := run(); err != nil || strings.Join(rows, ",") != "1|fr" {
		t.Fatalf("before the DDL: %v, %v", rows, err)
	}
	e.exec("BEGIN; ALTER TABLE " + driftTable + " RENAME COLUMN email TO tmp; ALTER TABLE " + driftTable +
		" RENAME COLUMN comment TO email; ALTER TABLE " + driftTable + " RENAME COLUMN tmp TO comment; COMMIT")
	e.refresh()
	rows, err := run()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "42501" {
		t.Fatalf("the statement prepared before the DDL: rows %v, error %v; want 42501", rows, err)
	}
}
