package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// hr24DB is the database of TestAdversarial24HR: an employee-engagement
// survey platform a new DBA put behind pgveil (schema hr): an org tree of
// subsidiaries, departments and teams, employees whose persona is their
// pgveil role (the identity block), answers whose respondent and model
// score are masked for managers, comments that follow the answers, and
// a works council's threshold view.
const hr24DB = "hr24"

// hr24Schema builds hr24DB as the DBA's schema.sql does. Subsidiary 1
// (Acme Retail) holds departments 10 (teams 100, 101) and 11 (team 110);
// subsidiary 2 holds department 20 (team 200). Passwords are "pw-<login>".
const hr24Schema = `
CREATE SCHEMA hr;
CREATE TABLE hr.org_units (
  id        integer PRIMARY KEY,
  parent_id integer REFERENCES hr.org_units(id),
  kind      text NOT NULL CHECK (kind IN ('subsidiary','department','team')),
  name      text NOT NULL
);
CREATE TABLE hr.employees (
  id            integer PRIMARY KEY,
  login         text UNIQUE NOT NULL,
  unit_id       integer NOT NULL REFERENCES hr.org_units(id),
  full_name     text NOT NULL,
  email         text,
  date_of_birth date,
  persona       text            -- the pgveil role this login holds (identity query)
);
CREATE TABLE hr.surveys (id integer PRIMARY KEY, title text NOT NULL, opened date NOT NULL);
CREATE TABLE hr.answers (
  id                    integer PRIMARY KEY,
  survey_id             integer NOT NULL REFERENCES hr.surveys(id),
  employee_id           integer NOT NULL REFERENCES hr.employees(id),
  employee_login        text NOT NULL,
  unit_id               integer NOT NULL REFERENCES hr.org_units(id),
  question              text NOT NULL,
  score                 integer NOT NULL CHECK (score BETWEEN 1 AND 5),
  sentiment_model_score numeric(4,3)
);
CREATE TABLE hr.answer_comments (
  id        integer PRIMARY KEY,
  answer_id integer NOT NULL REFERENCES hr.answers(id),
  body      text NOT NULL
);
-- what the works council may read: aggregates with at least 5 answers per cell
CREATE VIEW hr.council_scores AS
  SELECT a.survey_id, a.unit_id, a.question, count(*) AS answers, round(avg(a.score), 2) AS avg_score
  FROM hr.answers a GROUP BY 1, 2, 3 HAVING count(*) >= 5;

-- tree: two subsidiaries, departments, teams
INSERT INTO hr.org_units VALUES
 (1, NULL, 'subsidiary', 'Acme Retail'),
 (2, NULL, 'subsidiary', 'Acme Logistics'),
 (10, 1, 'department', 'Retail Sales'),
 (11, 1, 'department', 'Retail IT'),
 (20, 2, 'department', 'Logistics Ops'),
 (100, 10, 'team', 'Sales North'),
 (101, 10, 'team', 'Sales South'),
 (110, 11, 'team', 'IT Platform'),
 (200, 20, 'team', 'Warehouse A');
INSERT INTO hr.employees VALUES
 (1, 'hanna', 1,   'Hanna HRBP',   'hanna@acme.example', '1980-01-01', 'hr_bp'),
 (2, 'mona',  10,  'Mona Manager', 'mona@acme.example',  '1981-02-02', 'manager'),
 (3, 'eric',  100, 'Eric Employee','eric@acme.example',  '1990-03-03', 'employee'),
 (4, 'wanda', 20,  'Wanda Council','wanda@acme.example', '1975-04-04', 'works_council'),
 (5, 'sam',   101, 'Sam South',    'sam@acme.example',   '1992-05-05', 'employee'),
 (6, 'ivan',  110, 'Ivan IT',      'ivan@acme.example',  '1988-06-06', 'employee'),
 (7, 'lars',  200, 'Lars Lager',   'lars@acme.example',  '1985-07-07', 'employee'),
 (8, 'tim',   11,  'Tim ITlead',   'tim@acme.example',   '1983-08-08', 'manager'),
 (9, 'petra', 2,   'Petra HRBP',   'petra@acme.example', '1979-09-09', 'hr_bp');
INSERT INTO hr.surveys VALUES (1, 'Pulse 2026-Q4', '2026-10-01');
-- Sales North: 6 answers (eric + 5 generated rows by sam to make groups), Sales South: 1 (sam), IT: 2 (ivan), Warehouse: 5 (lars)
INSERT INTO hr.answers
SELECT g, 1, e.id, e.login, e.unit_id, 'q1', 1 + (g % 5), round((g % 7) / 7.0, 3)
FROM (VALUES (1,3),(2,3),(3,3),(4,3),(5,3),(6,3),(7,5),(8,6),(9,6),(10,7),(11,7),(12,7),(13,7),(14,7)) v(g, emp)
JOIN hr.employees e ON e.id = v.emp;
INSERT INTO hr.answer_comments VALUES
 (1, 1, 'EricComment: my manager ignores me'),
 (2, 7, 'SamComment: South is understaffed'),
 (3, 8, 'IvanComment: on-call is too heavy'),
 (4, 10, 'LarsComment: forklifts broken');

GRANT USAGE ON SCHEMA hr TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA hr TO pgveil_svc;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE TEMP ON DATABASE hr24 FROM PUBLIC;
`

// hr24Policy is the DBA's engage.hcl (without admin, audit and test
// blocks), in a transaction pool of two backends so that sessions share
// them.
const hr24Policy = `
# Employee-engagement survey platform behind pgveil (trial configuration)
listen {
  address  = "127.0.0.1:6432"
  database = "hr24"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "hr24"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
  search_path = "hr"
  pool {
    mode = "transaction"
    size = 2
  }
}

identity "employees" {
  query = "SELECT login, unit_id AS team, persona AS roles, id AS employee_id FROM hr.employees"
}
teams {
  table         = "hr.org_units"
  id_column     = "id"
  parent_column = "parent_id"
}

role "hr_bp" {
  statements = ["select", "copy_out"]
  columns    = ["personal", "respondent"]
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
table "hr.surveys"   { reference = true }
table "hr.council_scores" { reference = true }

table "hr.employees" {
  owner_column = "login"
  team_column  = "unit_id"
  column "email" {
    class      = "personal"
    mask       = "partial"
    keep_start = 1
    keep_end   = 12
  }
  column "date_of_birth" { class = "personal" }
}
table "hr.answers" {
  owner_column = "employee_login"
  team_column  = "unit_id"
  column "sentiment_model_score" { class = "technical" }
  column "employee_id"    { class = "respondent" }
  column "employee_login" { class = "respondent" }
}
table "hr.answer_comments" {
  follows = { table = "hr.answers", column = "answer_id", key = "id" }
}

rule "reference_data" {
  tables = ["hr.org_units", "hr.surveys"]
  roles  = ["hr_bp", "manager", "employee", "works_council"]
  scope  = "all"
}
rule "council_aggregates" {
  tables = ["hr.council_scores"]
  roles  = ["works_council", "hr_bp"]
  scope  = "all"
}
rule "line_subtree" {
  tables = ["hr.answers", "hr.employees"]
  roles  = ["hr_bp", "manager"]
  scope  = "team_subtree"
}
rule "own_answers" {
  tables = ["hr.answers", "hr.employees"]
  roles  = ["employee"]
  scope  = "self"
}

user "hanna" {
  password = "SCRAM-SHA-256$4096:f0GzXvsq3JC8t2TWyuWeew==$l7lRsulWTMU1W6OPeMj+Zl9kJA730wz2XQ62dTEUwXM=:BoSir20oXsocrq5lHC5RKbkw++Jr6b66eOjwZg3gm54="
}
user "petra" {
  password = "SCRAM-SHA-256$4096:EONnGUNN4u/G5++PmTRhhw==$JaK4Z07nbQj4hPE57xyRLplpzy5F9uLFmKy5WZ7fG4A=:m5hotEQVTb7PPFNo5iYWVO/Z4gN/R2JPSm2x0BCR284="
}
user "mona" {
  password = "SCRAM-SHA-256$4096:VnfvSOTEB0rTtIDh+YDEqA==$LdixZWJdJnfhLT6fRAcLqJmU48NgVPqah1750aNwmic=:PGww40Z6NhA8o3W/I/g9YczTexZGmf/+qZnZRbiviu0="
}
user "tim" {
  password = "SCRAM-SHA-256$4096:rdBGxLceJYL0QlFS+2KsrQ==$X8+IFUUdH0wqoVjabtYfCkB8Ut059RS3DcnKip3gSe8=:Psb9v5LEElbFKiLUBKshRfZLc1jzhg5+UvgLyAFgP2k="
}
user "eric" {
  password = "SCRAM-SHA-256$4096:8HJ6k3q1SIjZSTefrNNMWg==$HC6Jkjjk/4hXNR4VljnWAJsOdC43FJMFbkJg/8URqiA=:OSp/M/9bRhLhb2MQE5oxy0xamyup5LiFEVNBH3NCMd4="
}
user "sam" {
  password = "SCRAM-SHA-256$4096:oZI9Fezqx28dVLemDrcQ5g==$K+yMa/pCsZjkteJODoEs3N/+Zk5jW8zoD23m7QQOCrw=:cfT/6qiqXp5jLhFLMGFknz4ffMayc/XtAVLEEhO1trg="
}
user "wanda" {
  password = "SCRAM-SHA-256$4096:PlmHyC6XbS12J4nNRDitxg==$RVEbFOUp5fjbT8JGDffJdy7aFPjqwTI5IysjwdwfjEQ=:q+HnhF2KkTCuVhwT3vAmFffvfTrdJNVlgNKnTbV6kiY="
}
user "metabase" {
  password = "SCRAM-SHA-256$4096:/Q/ZtefSluGC6m/YtUuIxw==$Dy/KNtks//7cn8hhi9uMrqPA/FyMRYbdx8VO8vd5Bs0=:hI3Ydloq5KHIZF/26EjH7bhHSa21wgKgyV8W5qzNANY="
  roles    = ["bi_service"]
  act_for  = ["role:manager", "role:hr_bp", "role:works_council", "role:employee"]
}
`

// hr24Data is the database and policy TestAdversarial24HR serves.
var hr24Data = &proxytest.PolicyDB{DB: hr24DB, What: "hr24", Schema: hr24Schema, Policy: hr24Policy}

// hr24Conn connects to p as user with the stack's password, pw-<login>.
func hr24Conn(t *testing.T, p *proxytest.Proxy, user string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), p.URL(user, "pw-"+user, nil))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// hr24Rows is a result's rows as text, or "ERROR <sqlstate>".
func hr24Rows(rr []*pgconn.Result, err error) string {
	var b strings.Builder
	for _, r := range rr {
		if err == nil && r.Err != nil {
			err = r.Err
		}
		for _, row := range r.Rows {
			b.WriteString("[")
			for i, v := range row {
				if i > 0 {
					b.WriteString(" ")
				}
				if v == nil {
					b.WriteString("NULL")
				} else {
					b.Write(v)
				}
			}
			b.WriteString("]")
		}
	}
	if err != nil {
		return "ERROR " + proxytest.SQLState(err)
	}
	return b.String()
}

// TestAdversarial24HR holds the twenty-fourth red team's (b) angles on
// the survey stack, as each persona through pgveil: every answer, on
// both protocols, is the rows the truth read directly gives, or a
// refusal. Masked columns (respondent, model score, e-mail, birth date)
// answer no predicate, order or window; another unit's answers and
// comments reach no one; the works council reads only its view.
func TestAdversarial24HR(t *testing.T) {
	p := hr24Data.Start(t)
	ctx := context.Background()

	answer := func(t *testing.T, c *pgconn.PgConn, sql string) string {
		t.Helper()
		simple := hr24Rows(c.Exec(ctx, sql).ReadAll())
		extended := hr24Rows([]*pgconn.Result{c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()}, nil)
		if simple != extended {
			t.Fatalf("%s: the protocols disagree:\nsimple: %s\nextended: %s", sql, simple, extended)
		}
		return simple
	}
	truth := func(t *testing.T, sql string) string {
		t.Helper()
		c, err := proxytest.Cluster.Connect(ctx, hr24DB)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		return hr24Rows([]*pgconn.Result{c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()}, nil)
	}

	const (
		refused = "ERROR 42501"
		// dept10 is mona's subtree, sub1 hanna's, dept11 tim's.
		dept10 = `unit_id IN (10, 100, 101)`
		sub1   = `unit_id IN (1, 10, 11, 100, 101, 110)`
		dept11 = `unit_id IN (11, 110)`
	)
	cases := []struct{ name, user, sql, truth string }{
		// Managers: the subtree, respondents and model score masked.
		{"a manager reads her subtree's answers", "mona",
			`SELECT unit_id, count(*), sum(score) FROM answers GROUP BY 1 ORDER BY 1`,
			`SELECT unit_id, count(*), sum(score) FROM hr.answers WHERE ` + dept10 + ` GROUP BY 1 ORDER BY 1`},
		{"respondent and model score answer no predicate or aggregate", "mona",
			`SELECT count(*) FILTER (WHERE employee_login = 'eric' OR employee_id = 3 OR sentiment_model_score > 0),
			   max(sentiment_model_score), count(DISTINCT employee_id) FROM answers`,
			`SELECT 0, NULL, 0`},
		{"ordering and ranking by the model score keep the id order", "mona",
			`SELECT id, rank() OVER (ORDER BY sentiment_model_score) FROM answers ORDER BY sentiment_model_score DESC, id`,
			`SELECT id, 1 FROM hr.answers WHERE ` + dept10 + ` ORDER BY id`},
		{"answers join no employee by the masked respondent", "mona",
			`SELECT count(*) FROM answers a JOIN employees e ON e.login = a.employee_login OR e.id = a.employee_id`, `SELECT 0`},
		{"a LATERAL count per unit counts the subtree's", "mona",
			`SELECT u.id, x.n FROM org_units u, LATERAL (SELECT count(*) AS n FROM answers a WHERE a.unit_id = u.id) x ORDER BY 1`,
			`SELECT u.id, (SELECT count(*) FROM hr.answers a WHERE a.unit_id = u.id AND a.` + dept10 + `) FROM hr.org_units u ORDER BY 1`},
		{"a recursive CTE over the whole tree counts the subtree's", "mona",
			`WITH RECURSIVE t AS (SELECT id FROM org_units WHERE parent_id IS NULL UNION SELECT o.id FROM org_units o JOIN t ON o.parent_id = t.id)
			 SELECT count(*) FROM answers WHERE unit_id IN (SELECT id FROM t)`,
			`SELECT count(*) FROM hr.answers WHERE ` + dept10},
		{"comments are the subtree's answers' comments", "mona",
			`SELECT body FROM answer_comments ORDER BY id`,
			`SELECT body FROM hr.answer_comments WHERE answer_id IN (SELECT id FROM hr.answers WHERE ` + dept10 + `) ORDER BY id`},
		{"a division by zero only another unit's row causes raises nothing", "mona",
			`SELECT count(*) FROM answers WHERE 1 / (unit_id - 200) IS NOT NULL`,
			`SELECT count(*) FROM hr.answers WHERE ` + dept10},
		{"the whole employee row carries no e-mail or birth date", "mona",
			`SELECT count(*) FROM employees e WHERE e::text LIKE '%@acme.example%' OR to_jsonb(e)::text ~ '19[0-9][0-9]-'`, `SELECT 0`},
		{"the birth date answers no predicate or order", "mona",
			`SELECT min(date_of_birth), count(*) FILTER (WHERE date_of_birth < '2000-01-01'), string_agg(login, ',' ORDER BY date_of_birth, login) FROM employees`,
			`SELECT NULL, 0, string_agg(login, ',' ORDER BY login) FROM hr.employees WHERE ` + dept10},
		{"the e-mail mask answers LIKE on its masked text only", "mona",
			`SELECT count(*) FROM employees WHERE email LIKE 'mon%' OR email LIKE '%a@%'`, `SELECT 0`},
		{"a CTE named as the subtree's CTE narrows nothing", "mona",
			`WITH RECURSIVE pgveil_subtree(id) AS (SELECT id FROM org_units) SELECT count(*) FROM answers WHERE unit_id IN (SELECT id FROM pgveil_subtree)`,
			`SELECT count(*) FROM hr.answers WHERE ` + dept10},
		{"CTEs named as the subtree query's aliases widen nothing", "mona",
			`WITH s AS (SELECT id FROM org_units), c AS (SELECT id, NULL::int AS parent_id FROM org_units), t AS (SELECT 1) SELECT count(*) FROM answers`,
			`SELECT count(*) FROM hr.answers WHERE ` + dept10},
		{"a column alias list keeps the respondent masked", "mona",
			`SELECT count(e) FROM answers AS a(i, s, e)`, `SELECT 0`},
		{"WITH TIES by the masked respondent ties every row", "mona",
			`SELECT count(*) FROM (SELECT id FROM answers ORDER BY employee_id FETCH FIRST 1 ROWS WITH TIES) x`,
			`SELECT count(*) FROM hr.answers WHERE ` + dept10},
		{"TABLESAMPLE is refused", "mona", `SELECT count(*) FROM answers TABLESAMPLE SYSTEM (100)`, refused},
		{"FOR UPDATE is refused", "mona", `SELECT id FROM answers FOR UPDATE`, refused},
		{"a manager reads no council view", "mona", `SELECT count(*) FROM council_scores`, `SELECT 0`},
		{"another department's manager reads his own", "tim",
			`SELECT (SELECT count(*) FROM answers), (SELECT string_agg(body, ',') FROM answer_comments)`,
			`SELECT (SELECT count(*) FROM hr.answers WHERE ` + dept11 + `), (SELECT string_agg(body, ',') FROM hr.answer_comments WHERE answer_id IN (SELECT id FROM hr.answers WHERE ` + dept11 + `))`},
		{"a manager's plan is refused", "mona", `EXPLAIN SELECT * FROM answers WHERE sentiment_model_score > 0.5`, refused},
		{"pg_stats is refused", "mona", `SELECT most_common_vals::text FROM pg_stats WHERE tablename = 'answers'`, refused},
		{"a query given as text is refused", "mona", `SELECT query_to_xml('SELECT * FROM hr.answers', true, false, '')`, refused},
		// Employees: their own rows.
		{"an employee reads his own answers", "eric",
			`SELECT count(*), string_agg(DISTINCT employee_login, ',') FROM answers`,
			`SELECT count(*), string_agg(DISTINCT employee_login, ',') FROM hr.answers WHERE employee_login = 'eric'`},
		{"an employee counts no colleague's answer", "eric",
			`SELECT (SELECT count(*) FROM answers WHERE employee_login = 'sam' OR unit_id = 101), (SELECT count(*) FROM employees WHERE login <> 'eric')`,
			`SELECT 0, 0`},
		{"an employee's comments have his answers", "eric",
			`SELECT count(*) FROM answer_comments c WHERE NOT EXISTS (SELECT 1 FROM answers a WHERE a.id = c.answer_id)`, `SELECT 0`},
		{"an employee's own model score is masked", "eric", `SELECT count(sentiment_model_score) FROM answers`, `SELECT 0`},
		{"an employee may not export", "eric", `COPY (SELECT * FROM answers) TO STDOUT`, refused},
		{"an employee may not act for another", "eric", `SET ROLE mona`, refused},
		// The works council: its view only.
		{"the works council reads the view", "wanda",
			`SELECT unit_id, answers, avg_score FROM council_scores ORDER BY 1`,
			`SELECT unit_id, answers, avg_score FROM hr.council_scores ORDER BY 1`},
		{"the works council reads no answer, comment or employee", "wanda",
			`SELECT (SELECT count(*) FROM answers), (SELECT count(*) FROM answer_comments), (SELECT count(*) FROM employees)`,
			`SELECT 0, 0, 0`},
		{"a LATERAL from the view into the answers counts none", "wanda",
			`SELECT c.unit_id, x.n FROM council_scores c, LATERAL (SELECT count(*) AS n FROM answers a WHERE a.unit_id = c.unit_id) x ORDER BY 1`,
			`SELECT unit_id, 0 FROM hr.council_scores ORDER BY 1`},
		{"a CTE named answers hides no table reference beside it", "wanda",
			`SELECT (SELECT count(*) FROM answers), (WITH answers AS (SELECT 1) SELECT count(*) FROM answers), (WITH answers AS (SELECT * FROM hr.employees) SELECT count(*) FROM answers)`,
			`SELECT 0, 1, 0`},
		{"a recursive CTE with CYCLE reads the answers scoped", "wanda",
			`WITH RECURSIVE t(id, n) AS (SELECT id, 0::bigint FROM org_units WHERE parent_id IS NULL
			   UNION ALL SELECT o.id, (SELECT count(*) FROM answers a WHERE a.unit_id = o.id) FROM org_units o JOIN t ON o.parent_id = t.id)
			 CYCLE id SET c USING p SELECT sum(n) FROM t`,
			`SELECT 0::numeric`},
		{"the works council may not export the view", "wanda", `COPY (SELECT * FROM council_scores) TO STDOUT`, refused},
		// HR business partners: the subsidiary, personal and respondent columns.
		{"an HR partner reads her subsidiary's respondents", "hanna",
			`SELECT employee_login, count(*) FROM answers GROUP BY 1 ORDER BY 1`,
			`SELECT employee_login, count(*) FROM hr.answers WHERE ` + sub1 + ` GROUP BY 1 ORDER BY 1`},
		{"an HR partner's model score is masked", "hanna",
			`SELECT count(sentiment_model_score), count(*) FILTER (WHERE sentiment_model_score >= 0) FROM answers`, `SELECT 0, 0`},
		{"an HR partner reads no other subsidiary's comment", "hanna",
			`SELECT count(*) FROM answer_comments WHERE body LIKE 'Lars%'`, `SELECT 0`},
		{"the other HR partner reads her subsidiary's", "petra",
			`SELECT (SELECT count(*) FROM answers), (SELECT string_agg(login, ',' ORDER BY login) FROM employees)`,
			`SELECT (SELECT count(*) FROM hr.answers WHERE unit_id IN (2, 20, 200)), (SELECT string_agg(login, ',' ORDER BY login) FROM hr.employees WHERE unit_id IN (2, 20, 200))`},
	}
	conns := map[string]*pgconn.PgConn{}
	for _, c := range cases {
		if conns[c.user] == nil {
			conns[c.user] = hr24Conn(t, p, c.user)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.truth
			if !strings.HasPrefix(want, "ERROR") {
				want = truth(t, c.truth)
			}
			if got := answer(t, conns[c.user], c.sql); got != want {
				t.Errorf("%s: got\n%s\nwant\n%s", c.sql, got, want)
			}
		})
	}
}

// TestAdversarial24HRActFor holds the BI service's switches in the
// transaction pool (two backends; a switch in a block keeps the
// service's backend, so the sessions sharing one come first): whom it
// acts for after blocks that
// fail, roll back or chain, an extended batch whose implicit
// transaction fails, a cursor declared for another viewer, another
// session's cursor, and what a session sharing its backend reads. Each
// answer is who (pgveil.act_for upstream) and what that viewer counts:
// eric 6 answers, hanna 9, tim 2, mona 7, the service itself 0.
func TestAdversarial24HRActFor(t *testing.T) {
	p := hr24Data.Start(t)
	ctx := context.Background()
	const who = `SELECT current_setting('pgveil.act_for', true), (SELECT count(*) FROM answers)`
	run := func(t *testing.T, c *pgconn.PgConn, steps [][2]string) {
		t.Helper()
		for _, s := range steps {
			got := hr24Rows(c.Exec(ctx, s[0]).ReadAll())
			if s[1] != "*" && got != s[1] {
				t.Errorf("%s: got %s, want %s", s[0], got, s[1])
			}
		}
	}
	mb := hr24Conn(t, p, "metabase")
	t.Run("another session's cursor and viewer stay on their backend", func(t *testing.T) {
		h := hr24Conn(t, p, "hanna")
		run(t, h, [][2]string{{"BEGIN", ""}, {"DECLARE hc CURSOR WITH HOLD FOR SELECT employee_login FROM answers", ""}, {"COMMIT", ""}})
		run(t, mb, [][2]string{{"SET ROLE hanna", ""}, {"FETCH ALL FROM hc", "ERROR 34000"}})
		e := hr24Conn(t, p, "eric")
		for range 3 {
			run(t, e, [][2]string{{who, "[ 6]"}, {"SHOW application_name", "[pgveil:eric:]"}})
		}
		run(t, mb, [][2]string{{"RESET ROLE", ""}})
	})
	t.Run("blocks that fail, roll back or chain", func(t *testing.T) {
		run(t, mb, [][2]string{
			{"SET ROLE eric", ""},
			{"BEGIN", ""}, {"SET ROLE hanna", ""}, {"SELECT 1/0", "ERROR 22012"}, {"COMMIT", ""},
			{who, "[eric 6]"},
			{"BEGIN", ""}, {"SET ROLE hanna", ""}, {"ROLLBACK AND CHAIN", ""}, {who, "[eric 6]"}, {"COMMIT", ""},
			{"BEGIN", ""}, {"SET ROLE hanna", ""}, {"COMMIT AND CHAIN", ""}, {"SET ROLE mona", ""}, {"ROLLBACK", ""},
			{who, "[hanna 9]"},
			// tim was set before the savepoint: PostgreSQL keeps him
			// past the ROLLBACK TO, and so does pgveil.
			{"BEGIN", ""}, {"SET ROLE tim", ""}, {"SAVEPOINT s", ""}, {"SELECT 1/0", "ERROR 22012"}, {"ROLLBACK TO s", ""},
			{who, "[tim 2]"}, {"ROLLBACK", ""},
			{who, "[hanna 9]"},
			{"START TRANSACTION", ""}, {"SET ROLE tim", ""}, {"ABORT", ""}, {who, "[hanna 9]"},
			{"SET LOCAL ROLE tim", "ERROR 42501"},
			{"SELECT set_config('role', 'tim', false)", "ERROR 42501"},
			{"SET ROLE tim; " + who, "ERROR 42501"},
			{"SET ROLE \"TIM\"", "ERROR 42501"},
			{"SET ROLE pgveil_svc", "ERROR 42501"},
			{who, "[hanna 9]"},
			{"RESET ROLE", ""}, {who, "[ 0]"},
		})
	})
	t.Run("an extended batch whose implicit transaction fails undoes its switch", func(t *testing.T) {
		run(t, mb, [][2]string{{"SET ROLE eric", ""}})
		b := &pgconn.Batch{}
		b.ExecParams("SET ROLE hanna", nil, nil, nil, nil)
		b.ExecParams("SELECT 1/0", nil, nil, nil, nil)
		if _, err := mb.ExecBatch(ctx, b).ReadAll(); proxytest.SQLState(err) != "22012" {
			t.Fatalf("the batch answered %v, want division by zero", err)
		}
		run(t, mb, [][2]string{{who, "[eric 6]"}, {"RESET ROLE", ""}})
	})
	t.Run("a cursor declared for one viewer is not read for another", func(t *testing.T) {
		// The cursor keeps m's backend for the session: m ends with the
		// subtest.
		m, err := pgconn.Connect(ctx, p.URL("metabase", "pw-metabase", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close(ctx)
		run(t, m, [][2]string{
			{"SET ROLE hanna", ""}, {"BEGIN", ""},
			{"DECLARE c CURSOR WITH HOLD FOR SELECT employee_login FROM answers", ""}, {"COMMIT", ""},
			{"SET ROLE eric", ""}, {"FETCH ALL FROM c", "ERROR 42501"},
			{"RESET ROLE", ""}, {"FETCH ALL FROM c", "ERROR 42501"},
		})
	})
}

// TestAdversarial24HRReorg holds a reorganisation upstream while a
// manager's session is open: the subtree is read when each statement
// runs, a prepared statement's too, and a REPEATABLE READ transaction
// keeps the tree of its snapshot. Team IT Platform (110) moves under
// her department (10) and back.
func TestAdversarial24HRReorg(t *testing.T) {
	p := hr24Data.Start(t)
	ctx := context.Background()
	dba := func(t *testing.T, sql string) {
		t.Helper()
		if err := proxytest.Cluster.Exec(ctx, hr24DB, sql); err != nil {
			t.Fatal(err)
		}
	}
	const (
		units   = `SELECT array_agg(DISTINCT unit_id ORDER BY unit_id) FROM answers`
		before  = "[{100,101}]"
		moved   = "[{100,101,110}]"
		restore = `UPDATE hr.org_units SET parent_id = 11 WHERE id = 110`
	)
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(ctx, hr24DB, restore) })
	m := hr24Conn(t, p, "mona")
	if _, err := m.Prepare(ctx, "units", units, nil); err != nil {
		t.Fatal(err)
	}
	read := func(t *testing.T, want string) {
		t.Helper()
		simple := hr24Rows(m.Exec(ctx, units).ReadAll())
		prepared := hr24Rows([]*pgconn.Result{m.ExecPrepared(ctx, "units", nil, nil, nil).Read()}, nil)
		if simple != want || prepared != want {
			t.Errorf("mona reads units %s (prepared %s), want %s", simple, prepared, want)
		}
	}
	read(t, before)
	dba(t, `UPDATE hr.org_units SET parent_id = 10 WHERE id = 110`)
	read(t, moved)
	if got := hr24Rows(m.Exec(ctx, "BEGIN ISOLATION LEVEL REPEATABLE READ; "+units).ReadAll()); got != moved {
		t.Errorf("in her snapshot mona reads %s, want %s", got, moved)
	}
	dba(t, restore)
	if got := hr24Rows(m.Exec(ctx, units+"; COMMIT").ReadAll()); got != moved {
		t.Errorf("later in her snapshot mona reads %s, want %s", got, moved)
	}
	read(t, before)
}
