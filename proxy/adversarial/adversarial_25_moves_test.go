package adversarial_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/internal/proxytest"
	"github.com/pgveil/pgveil/proxy/server"
)

// hr25DB is the database of TestAdversarial25Moves: a small feedback
// platform whose people are rows of hr.employees, read again every
// refresh, moved, demoted and removed while they and a BI service acting
// for them keep sessions open.
const hr25DB = "hr25"

// hr25Schema: subsidiary 1 holds department 10 (teams 100, 101) and
// department 11 (team 110); subsidiary 2 holds department 20 (team 200).
const hr25Schema = `
CREATE SCHEMA hr;
CREATE TABLE hr.org_units (id integer PRIMARY KEY, parent_id integer REFERENCES hr.org_units(id), name text NOT NULL);
CREATE TABLE hr.employees (login text, unit_id integer, persona text);
CREATE TABLE hr.answers (id integer PRIMARY KEY, employee_login text NOT NULL, unit_id integer NOT NULL, score integer NOT NULL);
INSERT INTO hr.org_units VALUES (1, NULL, 'Retail'), (2, NULL, 'Logistics'), (10, 1, 'Sales'), (11, 1, 'IT'),
 (20, 2, 'Ops'), (100, 10, 'North'), (101, 10, 'South'), (110, 11, 'Platform'), (200, 20, 'Warehouse');
INSERT INTO hr.answers VALUES (1, 'eric', 100, 1), (2, 'eric', 100, 2), (3, 'sam', 101, 3), (4, 'ivan', 110, 4),
 (5, 'lars', 200, 5), (6, 'lars', 200, 1);
GRANT USAGE ON SCHEMA hr TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA hr TO pgveil_svc;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE TEMP ON DATABASE hr25 FROM PUBLIC;
`

// hr25People are the rows of hr.employees each test starts from: hanna
// reads subsidiary 1 (4 answers, respondents shown), mona department 10
// (3), tim department 11 (1), eric his own (2), the service none.
const hr25People = `DELETE FROM hr.employees;
INSERT INTO hr.employees VALUES ('hanna', 1, 'hr_bp'), ('mona', 10, 'manager'), ('tim', 11, 'manager'),
 ('eric', 100, 'employee'), ('sam', 101, 'employee')`

// hr25Policy reads the people upstream every 200ms (the tests refresh
// them themselves, at once) in a transaction pool of two backends; the
// user blocks (passwords "pw-<login>", metabase's act_for) are the
// twenty-fourth red team's.
var hr25Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "hr25"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "hr25"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
  search_path = "hr"
  pool {
    mode = "transaction"
    size = 2
  }
}
identity "employees" {
  query   = "SELECT login, unit_id AS team, persona AS roles FROM hr.employees"
  refresh = "200ms"
}
teams {
  table         = "hr.org_units"
  id_column     = "id"
  parent_column = "parent_id"
}
role "hr_bp" {
  statements = ["select"]
  columns    = ["respondent"]
  scope      = "team_subtree"
}
role "manager" {
  statements = ["select"]
  scope      = "team_subtree"
}
role "employee" {
  statements = ["select"]
  columns    = ["respondent"]
  scope      = "self"
  own_rows   = true
}
role "works_council" {
  statements = ["select"]
  scope      = "none"
}
role "bi_service" {
  statements = ["select"]
  scope      = "none"
}
schema "hr" { default = "deny" }
table "hr.org_units" { reference = true }
table "hr.answers" {
  owner_column = "employee_login"
  team_column  = "unit_id"
  column "employee_login" { class = "respondent" }
}
rule "reference_data" {
  tables = ["hr.org_units"]
  roles  = ["hr_bp", "manager", "employee"]
  scope  = "all"
}
rule "line_subtree" {
  tables = ["hr.answers"]
  roles  = ["hr_bp", "manager"]
  scope  = "team_subtree"
}
rule "own_answers" {
  tables = ["hr.answers"]
  roles  = ["employee"]
  scope  = "self"
}
` + hr24Policy[strings.Index(hr24Policy, `user "hanna"`):]

var hr25Once struct {
	sync.Once
	err error
}

// hr25Stack is the served stack: the proxy, the reloader whose identity
// refresh the tests run, and the audit trail both write.
type hr25Stack struct {
	p         *proxytest.Proxy
	rl        *server.Reloader
	alog      *audit.Log
	auditPath string
}

func hr25Start(t *testing.T) *hr25Stack {
	t.Helper()
	proxytest.SetupDemo(t)
	ctx := context.Background()
	t.Setenv("PGVEIL_DEMO_UPSTREAM", proxytest.Cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	hr25Once.Do(func() {
		if hr25Once.err = proxytest.Cluster.CreateDatabase(ctx, hr25DB); hr25Once.err == nil {
			hr25Once.err = proxytest.Cluster.Exec(ctx, hr25DB, hr25Schema)
		}
	})
	if hr25Once.err != nil {
		t.Fatalf("loading %s: %v", hr25DB, hr25Once.err)
	}
	hr25DBA(t, hr25People)
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), hr25DB, hr25People) })
	dir := t.TempDir()
	path := filepath.Join(dir, "hr25.hcl")
	if err := os.WriteFile(path, []byte(hr25Policy), 0o600); err != nil {
		t.Fatal(err)
	}
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		t.Fatalf("loading the policy:\n%s", b.String())
	}
	enf, _, err := server.LoadEnforcement(ctx, cfg)
	if err != nil {
		t.Fatalf("loading enforcement: %v", err)
	}
	s := &hr25Stack{auditPath: filepath.Join(dir, "audit.log")}
	if s.alog, err = audit.Open(audit.Options{File: s.auditPath, Key: []byte("hr25-key")}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.alog.Close() })
	pols := server.NewPolicies(enf)
	po := proxy.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel)), Audit: s.alog}
	pols.Apply(&po)
	s.p = proxytest.Serve(t, cfg, po)
	s.rl = &server.Reloader{Path: path, Base: cfg, Policies: pols, Server: s.p.Server, Audit: s.alog,
		Logger: zaptest.NewLogger(t, zaptest.Level(zap.FatalLevel))}
	return s
}

// hr25DBA runs sql upstream as the DBA.
func hr25DBA(t *testing.T, sql string) {
	t.Helper()
	if err := proxytest.Cluster.Exec(context.Background(), hr25DB, sql); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
}

// change runs sql upstream and reads the identities again at once, as
// the next refresh tick would.
func (s *hr25Stack) change(t *testing.T, sql string) {
	t.Helper()
	hr25DBA(t, sql)
	changed, err := s.rl.RefreshIdentities(context.Background())
	if err != nil || !changed {
		t.Fatalf("refresh after %s: changed %v, %v", sql, changed, err)
	}
}

// entries closes the audit trail and returns its records.
func (s *hr25Stack) entries(t *testing.T) []*audit.Entry {
	t.Helper()
	if err := s.alog.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(s.auditPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []*audit.Entry
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		e, err := audit.ParseLine(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

type hr25Step struct{ sql, want string }

func hr25Run(t *testing.T, c *pgconn.PgConn, steps ...hr25Step) {
	t.Helper()
	for _, s := range steps {
		rr, err := c.Exec(context.Background(), s.sql).ReadAll()
		got := hr24Rows(rr, err)
		if err != nil && s.want != got {
			t.Logf("%s: %v", s.sql, err)
		}
		if s.want != "*" && got != s.want {
			t.Errorf("%s: got %s, want %s", s.sql, got, s.want)
		}
	}
}

func hr25Prepared(t *testing.T, c *pgconn.PgConn, name string) string {
	t.Helper()
	return hr24Rows([]*pgconn.Result{c.ExecPrepared(context.Background(), name, nil, nil, nil).Read()}, nil)
}

const (
	hr25Who   = `SELECT coalesce(current_setting('pgveil.act_for', true), ''), (SELECT count(*) FROM answers)`
	hr25Names = `SELECT string_agg(employee_login, ',' ORDER BY id) FROM answers`
)

// TestAdversarial25Moves holds a person's access to the identity rows in
// force at each statement, whoever runs it: she herself or a BI service
// acting for her, through prepared statements, WITH HOLD cursors,
// savepoints and the transaction pool's shared backends.
func TestAdversarial25Moves(t *testing.T) {
	s := hr25Start(t)
	ctx := context.Background()

	t.Run("a person demoted keeps no cursor, statement or view of her old role", func(t *testing.T) {
		h := hr24Conn(t, s.p, "hanna")
		mb := hr24Conn(t, s.p, "metabase")
		hr25Run(t, h, hr25Step{hr25Names, "[eric,eric,sam,ivan]"},
			hr25Step{"BEGIN", ""}, hr25Step{"DECLARE hc CURSOR WITH HOLD FOR SELECT employee_login FROM answers ORDER BY id", ""},
			hr25Step{"COMMIT", ""}, hr25Step{"FETCH 1 FROM hc", "[eric]"})
		if _, err := h.Prepare(ctx, "q", hr25Names, nil); err != nil {
			t.Fatal(err)
		}
		hr25Run(t, mb, hr25Step{"SET ROLE hanna", ""}, hr25Step{hr25Names, "[eric,eric,sam,ivan]"})
		if _, err := mb.Prepare(ctx, "mq", hr25Names, nil); err != nil {
			t.Fatal(err)
		}
		s.change(t, "UPDATE hr.employees SET persona = 'employee' WHERE login = 'hanna'")
		if got := hr24Rows(h.Exec(ctx, "FETCH ALL FROM hc").ReadAll()); got != "ERROR 42501" {
			t.Errorf("the demoted person fetched her old role's cursor: %s", got)
		}
		for _, c := range []struct {
			who string
			c   *pgconn.PgConn
			q   string
		}{{"hanna", h, "q"}, {"the service for hanna", mb, "mq"}} {
			if got := hr25Prepared(t, c.c, c.q); got != "[NULL]" {
				t.Errorf("%s's statement prepared before the demotion reads %s", c.who, got)
			}
			if got := hr24Rows(c.c.Exec(ctx, hr25Names).ReadAll()); got != "[NULL]" {
				t.Errorf("%s reads %s after the demotion", c.who, got)
			}
		}
		hr25Run(t, mb, hr25Step{"RESET ROLE", ""})
		s.change(t, hr25People)
	})

	t.Run("a person removed while the service acts for her", func(t *testing.T) {
		mb := hr24Conn(t, s.p, "metabase")
		e := hr24Conn(t, s.p, "eric")
		hr25Run(t, mb, hr25Step{"SET ROLE eric", ""}, hr25Step{hr25Who, "[eric 2]"})
		if _, err := mb.Prepare(ctx, "w", hr25Who, nil); err != nil {
			t.Fatal(err)
		}
		s.change(t, "DELETE FROM hr.employees WHERE login = 'eric'")
		hr25Run(t, mb, hr25Step{hr25Who, "ERROR 42501"}, hr25Step{hr25Names, "ERROR 42501"})
		if got := hr25Prepared(t, mb, "w"); got != "ERROR 42501" {
			t.Errorf("the statement prepared for the removed person answers %s", got)
		}
		if got := hr24Rows(e.Exec(ctx, hr25Who).ReadAll()); !strings.HasPrefix(got, "ERROR") {
			t.Errorf("the removed person's own session reads %s", got)
		}
		hr25Run(t, mb, hr25Step{"RESET ROLE", ""}, hr25Step{hr25Who, "[ 0]"}, hr25Step{"SET ROLE eric", "ERROR 42501"},
			hr25Step{hr25Who, "[ 0]"})
		s.change(t, hr25People)
	})

	t.Run("a person moved reads her new subtree at once, in the pool too", func(t *testing.T) {
		mb := hr24Conn(t, s.p, "metabase")
		m := hr24Conn(t, s.p, "mona")
		hr25Run(t, mb, hr25Step{"SET ROLE tim", ""}, hr25Step{hr25Who, "[tim 1]"})
		ext := func(c *pgconn.PgConn) string {
			return hr24Rows([]*pgconn.Result{c.ExecParams(ctx, hr25Who, nil, nil, nil, nil).Read()}, nil)
		}
		if got := ext(mb); got != "[tim 1]" {
			t.Fatalf("extended: %s", got)
		}
		s.change(t, "UPDATE hr.employees SET unit_id = 20 WHERE login = 'tim'")
		for range 3 {
			if got := ext(mb); got != "[tim 2]" {
				t.Errorf("the service acting for the moved person reads %s, want [tim 2]", got)
			}
			if got := ext(m); got != "[ 3]" {
				t.Errorf("a session sharing the pool reads %s, want [ 3]", got)
			}
		}
		hr25Run(t, mb, hr25Step{hr25Who, "[tim 2]"}, hr25Step{"RESET ROLE", ""})
		s.change(t, hr25People)
	})

	t.Run("a savepoint returns to a person the refresh kept, never to one it removed", func(t *testing.T) {
		mb := hr24Conn(t, s.p, "metabase")
		hr25Run(t, mb, hr25Step{"BEGIN", ""}, hr25Step{"SET ROLE mona", ""}, hr25Step{"SAVEPOINT s", ""},
			hr25Step{"SET ROLE eric", ""}, hr25Step{hr25Who, "[eric 2]"}, hr25Step{"SAVEPOINT t", ""})
		s.change(t, "DELETE FROM hr.employees WHERE login = 'eric'; UPDATE hr.employees SET unit_id = 1 WHERE login = 'mona'")
		hr25Run(t, mb, hr25Step{hr25Who, "ERROR 42501"}, hr25Step{"ROLLBACK TO t", ""}, hr25Step{hr25Who, "ERROR 42501"},
			hr25Step{"ROLLBACK TO s", ""}, hr25Step{hr25Who, "[mona 4]"}, hr25Step{"ROLLBACK", ""}, hr25Step{hr25Who, "[ 0]"})
		s.change(t, hr25People)
	})

	t.Run("a transaction acting for a removed person still rolls back", func(t *testing.T) {
		// Every statement is refused for her, but a ROLLBACK touches no
		// row: refused too, the block held its pool backend until the
		// client hung up.
		mb := hr24Conn(t, s.p, "metabase")
		hr25Run(t, mb, hr25Step{"BEGIN", ""}, hr25Step{"SET ROLE eric", ""}, hr25Step{hr25Who, "[eric 2]"})
		s.change(t, "DELETE FROM hr.employees WHERE login = 'eric'")
		hr25Run(t, mb, hr25Step{"COMMIT", "ERROR 42501"}, hr25Step{"ABORT", ""}, hr25Step{hr25Who, "[ 0]"},
			hr25Step{"BEGIN", ""}, hr25Step{"SET ROLE eric", "ERROR 42501"}, hr25Step{"ROLLBACK", ""}, hr25Step{hr25Who, "[ 0]"})
		s.change(t, hr25People)
		// The extended protocol's ROLLBACK too, in a failed block.
		hr25Run(t, mb, hr25Step{"BEGIN", ""}, hr25Step{"SET ROLE eric", ""}, hr25Step{"SAVEPOINT a", ""})
		s.change(t, "DELETE FROM hr.employees WHERE login = 'eric'")
		hr25Run(t, mb, hr25Step{hr25Who, "ERROR 42501"})
		for _, q := range []string{"ROLLBACK TO a", "ROLLBACK"} {
			if got := hr24Rows([]*pgconn.Result{mb.ExecParams(ctx, q, nil, nil, nil, nil).Read()}, nil); got != "" {
				t.Errorf("%s (extended): %s", q, got)
			}
		}
		hr25Run(t, mb, hr25Step{hr25Who, "[ 0]"})
		s.change(t, hr25People)
	})

	t.Run("a pipeline straddling a refresh runs nothing for the person as she was", func(t *testing.T) {
		for _, c := range []struct{ name, change, want string }{
			{"moved", "UPDATE hr.employees SET unit_id = 20 WHERE login = 'tim'", "[tim 2]"},
			{"removed", "DELETE FROM hr.employees WHERE login = 'tim'", "ERROR 42501"},
		} {
			t.Run(c.name, func(t *testing.T) {
				mb := hr24Conn(t, s.p, "metabase")
				hr25Run(t, mb, hr25Step{"SET ROLE tim", ""})
				if _, err := mb.Prepare(ctx, "w", hr25Who, nil); err != nil {
					t.Fatal(err)
				}
				pl := mb.StartPipeline(ctx)
				read := func() string {
					t.Helper()
					r, err := pl.GetResults()
					if err != nil {
						return "ERROR " + proxytest.SQLState(err)
					}
					rr, ok := r.(*pgconn.ResultReader)
					if !ok {
						t.Fatalf("got %T, want a result", r)
					}
					return hr24Rows([]*pgconn.Result{rr.Read()}, nil)
				}
				pl.SendQueryPrepared("w", nil, nil, nil)
				pl.SendFlushRequest()
				if err := pl.Flush(); err != nil {
					t.Fatal(err)
				}
				if got := read(); got != "[tim 1]" {
					t.Fatalf("before the change: %s", got)
				}
				s.change(t, c.change)
				pl.SendQueryPrepared("w", nil, nil, nil)
				pl.SendQueryParams(hr25Who, nil, nil, nil, nil)
				if err := pl.Sync(); err != nil {
					t.Fatal(err)
				}
				for _, what := range []string{"the statement prepared before", "a statement parsed after"} {
					got := read()
					t.Logf("%s: %s", what, got)
					if got != c.want && got != "ERROR 42501" {
						t.Errorf("%s the change answers %s, want %s", what, got, c.want)
					}
					if strings.HasPrefix(got, "ERROR") {
						break // the batch's other statements are skipped
					}
				}
				_ = pl.Close()
				hr25Run(t, mb, hr25Step{"RESET ROLE", "*"})
				s.change(t, hr25People)
			})
		}
	})

	t.Run("a cursor the service declared for a person demoted since is not read", func(t *testing.T) {
		mb := hr24Conn(t, s.p, "metabase")
		hr25Run(t, mb, hr25Step{"SET ROLE hanna", ""}, hr25Step{"BEGIN", ""},
			hr25Step{"DECLARE mc CURSOR WITH HOLD FOR SELECT employee_login FROM answers ORDER BY id", ""},
			hr25Step{"COMMIT", ""}, hr25Step{"FETCH 1 FROM mc", "[eric]"})
		s.change(t, "UPDATE hr.employees SET persona = 'employee' WHERE login = 'hanna'")
		hr25Run(t, mb, hr25Step{"FETCH ALL FROM mc", "ERROR 42501"}, hr25Step{"RESET ROLE", ""},
			hr25Step{"FETCH ALL FROM mc", "ERROR 42501"})
		s.change(t, hr25People)
	})

	t.Run("the audit trail names the person and the policy version in force", func(t *testing.T) {
		mb := hr24Conn(t, s.p, "metabase")
		hr25Run(t, mb, hr25Step{"SET ROLE tim", ""}, hr25Step{"SELECT 'before' AS marker, count(*) FROM answers", "[before 1]"})
		before := s.rl.Policies.Current().Version
		s.change(t, "UPDATE hr.employees SET persona = 'hr_bp', unit_id = 2 WHERE login = 'tim'")
		after := s.rl.Policies.Current().Version
		hr25Run(t, mb, hr25Step{"SELECT 'after' AS marker, count(*) FROM answers", "[after 2]"},
			// s is set before the block's first switch: pgveil does not
			// follow it, and after the ROLLBACK TO knows not whom the
			// session acts for (PostgreSQL: tim again) until it switches.
			hr25Step{"BEGIN", ""}, hr25Step{"SAVEPOINT s", ""}, hr25Step{"SET ROLE mona", ""}, hr25Step{"ROLLBACK TO s", ""},
			hr25Step{"COMMIT", ""}, hr25Step{hr25Who, "ERROR 42501"}, hr25Step{"SET ROLE mona", ""}, hr25Step{hr25Who, "[mona 3]"},
			hr25Step{"RESET ROLE", ""})
		mb.Close(ctx)
		found := 0
		var acts []string
		entries := s.entries(t)
		session := ""
		for _, e := range entries {
			if e.Event == "statement" && strings.Contains(e.SQL, "'after' AS marker") {
				session = e.Session
			}
		}
		for _, e := range entries {
			if e.Event == audit.EventActFor && e.Session == session {
				act := e.ActingForBefore + ">" + e.ActingFor + " " + e.Reason
				if strings.Contains(e.Message, "was not known") {
					act += " (before not known)"
				}
				acts = append(acts, act)
				if e.PolicyVersion != after && e.ActingFor != "tim" {
					t.Errorf("%s: under %s, want %s", act, e.PolicyVersion, after)
				}
			}
			if e.Event != "statement" || !strings.Contains(e.SQL, "AS marker") {
				continue
			}
			found++
			want, roles := before, "manager"
			if strings.Contains(e.SQL, "'after'") {
				want, roles = after, "hr_bp"
			}
			if e.ActingFor != "tim" || e.PolicyVersion != want || strings.Join(e.ActingRoles, ",") != roles {
				t.Errorf("%s: acting for %q as %v under %s; want tim as %s under %s", e.SQL, e.ActingFor, e.ActingRoles, e.PolicyVersion, roles, want)
			}
		}
		// The switch back to mona after the ROLLBACK TO is a change
		// from whom PostgreSQL acted for, tim, not from no one.
		if want := []string{">tim set role", "tim>mona set role", "mona>mona set role (before not known)", "mona> reset role"}; !slices.Equal(acts, want) {
			t.Errorf("the act_for records are %q, want %q", acts, want)
		}
		if found != 2 {
			t.Errorf("%d statement records of the markers, want 2", found)
		}
	})
}
