package adversarial_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
)

// hrclinic20DB is the database of TestAdversarial20HRClinic: a small copy
// of the HR and clinic schema a new DBA wrote a policy for from the docs
// alone (a manager_id hierarchy as the teams tree, expression masks
// reading me.login and banding salaries, a hash mask over a domain, a
// generated column of masked columns, a composite column, a governed
// security_barrier view and materialized view, public.employees beside
// hr.employees, an identity table, a login with no employee row). Every
// login's password is "demo-<login>".
//
// NOTE: values no user may read carry HIDDEN (another's ssn, an
// out-of-scope patient's name, a masked name) or are odd salaries
// (95123.45) that no 25k band equals, so an answer quoting one fails the
// test whatever its shape.
const hrclinic20DB = "hrclinic20"

const hrclinic20Schema = `
CREATE SCHEMA hr; CREATE SCHEMA clinic;
CREATE DOMAIN public.email AS text CHECK (VALUE ~ '^[^@]+@[^@]+$');
CREATE TYPE clinic.addr AS (street text, city text, zip text);
CREATE TABLE hr.employees(
  id int PRIMARY KEY, login text UNIQUE NOT NULL, manager_id int REFERENCES hr.employees(id),
  department text, salary numeric(10,2), ssn text, photo bytea, address jsonb,
  first_name text, last_name text,
  full_name text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED);
-- 1 ceo > 3 mgr_maya > 4 dr_ana > 6 emp_eve, and 3 > 5 dr_ben; 7 sm_lyon and
-- 8 analyst_al report to 1. Then mgr_maya reports to emp_eve (a cycle
-- 3 > 4 > 6 > 3 under the ceo) and 10 self_sam is his own manager.
INSERT INTO hr.employees(id,login,manager_id,department,salary,ssn,photo,address,first_name,last_name) VALUES
 (1,'ceo',NULL,'Board',250777.77,'SSNHIDDEN-1','\x01','{"city":"HIDDEN-Paris"}','HIDDENClaire','Boss'),
 (3,'mgr_maya',1,'Medical',120321.99,'3-03','\x03','{"city":"HIDDEN-Lyon"}','Maya','Chef'),
 (4,'dr_ana',3,'Medical',95123.45,'SSNHIDDEN-4','\x04','{"city":"HIDDEN-Lyon"}','HIDDENAna','Doc'),
 (5,'dr_ben',3,'Medical',91456.78,'SSNHIDDEN-5','\x05',NULL,'Ben','Doc'),
 (6,'emp_eve',4,'Medical',30987.65,'9-09','\x09','{"city":"HIDDEN-Lyon"}','Eve','Intern'),
 (7,'sm_lyon',1,'Ops',80111.11,'SSNHIDDEN-7','\x07',NULL,'Sam','Lyon'),
 (8,'analyst_al',1,'Data',65432.10,'8-08','\x08',NULL,'Al','Yst'),
 (10,'self_sam',NULL,'Ops',50505.05,'SSNHIDDEN-10',NULL,NULL,'HIDDENSam','Self');
UPDATE hr.employees SET manager_id = 10 WHERE id = 10;
UPDATE hr.employees SET manager_id = 6 WHERE id = 3;
CREATE TABLE hr.absences(employee_id int REFERENCES hr.employees(id), day date, reason text);
INSERT INTO hr.absences VALUES (4,'2026-01-05','HIDDEN flu'),(6,'2026-03-01','HIDDEN burnout'),(1,'2026-03-02','HIDDEN ceo'),(10,'2026-03-03','HIDDEN sam');
CREATE TABLE hr.logins(login text PRIMARY KEY, roles text[], site text, pw text);
CREATE TABLE clinic.patients(id int PRIMARY KEY, name text, email public.email, site text, home clinic.addr);
INSERT INTO clinic.patients VALUES
 (101,'Paul Patient','paul@ex.fr','Lyon',ROW('1 rue A','Lyon','69001')),
 (103,'HIDDEN Nico','nicoHIDDEN@ex.fr','Nice',ROW('HIDDEN 3 bd C','Nice','06000')),
 (105,'HIDDEN Nobody','noHIDDEN@ex.fr','Lyon',NULL);
CREATE TABLE clinic.visits(id int PRIMARY KEY, patient_id int, doctor_login text, site text, notes text, cost money);
INSERT INTO clinic.visits VALUES
 (1,101,'dr_ana','Lyon','ana note',60),
 (3,103,'dr_ben','Nice','HIDDEN psoriasis',80),
 (5,101,'dr_ben','Lyon','HIDDEN depression',120),
 (6,103,'DR_ANA','Nice','HIDDEN case',1),
 (7,103,'dr_ana ','Nice','HIDDEN space',1);
CREATE MATERIALIZED VIEW clinic.visits_by_site AS SELECT site, count(*) AS n, sum(cost) AS total FROM clinic.visits GROUP BY site;
CREATE VIEW hr.directory WITH (security_barrier) AS SELECT id, login, department, full_name FROM hr.employees;
CREATE TABLE public.employees(id int, "user" text, "group" text);
INSERT INTO public.employees VALUES (1,'public_u','g1');
INSERT INTO hr.logins VALUES
 ('mgr_maya','{manager,employee}',NULL,'SCRAM-SHA-256$4096:Orh7C4HVYdCDcKF56Fz+lg==$7gtO9evggoQkZtVHPjtvF1QZb9dTbS1jKA3UA1D7npw=:AhV2G1u1jnlmI1Jmbu+AoLyffB8yniEgQ7+Xh8QdP9s='),
 ('dr_ana','{doctor,employee}',NULL,'SCRAM-SHA-256$4096:VuetnulOtdmm9lz2IX7Qkw==$wtPnOTlz/s/0L+wz46uJY6vXLvNkpk5TlorbBJXE+V8=:otrkgntzXSykRW96txJ2E9PPi34qSuVvL5tIPGFUO0w='),
 ('sm_lyon','{site_manager,employee}','Lyon','SCRAM-SHA-256$4096:ywSzefIq3+4/TxJeN+4I2w==$RPmyCF5tuGi50FhqSNwk7vNETOe6YcPZbnpLzyu8tNg=:lxokp3WWl0CkOPYY4H1Wwm7vxSN014oBGuvB/+hJleo='),
 ('analyst_al','{analyst,employee}',NULL,'SCRAM-SHA-256$4096:fB7j1w+FU9bVCUdq1//EEA==$9ssjDFSNpy8w/q4LjDSRDTvTlsVF5uGn0kuy5O7pxmg=:N9ynHfovrd0g+mUbxcrH22omwJEsVpBypsGfndouDTU='),
 ('ghost_mgr','{manager,employee}',NULL,'SCRAM-SHA-256$4096:dpJITleuEExxNHe3W4EV7g==$9052UGbKUdCtekbhm5adEYMzVuHWc0ol1EWB51W5XlY=:m64ODqc50ZQ2BXcgrduops8TT6NkmIVxzOW37XdVvNQ='),
 ('emp_eve','{employee}',NULL,'SCRAM-SHA-256$4096:QRULehjeF3JLQsAaibqNCg==$OckytHuQPPYs26xLTcYTjI50b5Pni5a1TvEQeGZoF4k=:/tYS+xRxOnbCMyKURKcz9qW/5tpAOnfOJzId7gcQna0=');
GRANT USAGE ON SCHEMA hr, clinic TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA hr, clinic, public TO pgveil_svc;
`

// hrclinic20Policy is the DBA's policy, cut to what the test reads.
const hrclinic20Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "hrclinic20"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "hrclinic20"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
identity "staff" {
  query = "SELECT l.login, l.roles, e.id AS team, l.site, l.pw AS password FROM hr.logins l LEFT JOIN hr.employees e ON e.login = l.login"
}
teams {
  table         = "hr.employees"
  id_column     = "id"
  parent_column = "manager_id"
}
role "employee" { statements = ["select"] }
role "manager" {
  statements = ["select"]
  columns    = ["person"]
}
role "doctor" {
  statements = ["select"]
  columns    = ["patient_pii", "clinical", "person"]
}
role "site_manager" {
  statements = ["select"]
  columns    = ["patient_pii", "person"]
}
role "analyst" { statements = ["select", "copy_out"] }
schema "public" { default = "deny" }
schema "hr"     { default = "deny" }
schema "clinic" { default = "deny" }
table "hr.employees" {
  owner_column = "login"
  team_column  = "id"
  column "salary" {
    class      = "salary"
    mask       = "expression"
    expression = "floor(salary / 25000) * 25000"
  }
  column "ssn" {
    class      = "hr_pii"
    mask       = "expression"
    expression = "CASE WHEN login = me.login THEN ssn ELSE NULL END"
  }
  column "photo"      { class = "hr_pii" }
  column "address"    { class = "hr_pii" }
  column "first_name" { class = "person" }
  column "last_name"  { class = "person" }
}
table "hr.absences" {
  team_column = "employee_id"
  column "reason" { class = "hr_pii" }
}
table "hr.directory" {
  column "full_name" { class = "person" }
}
table "clinic.patients" {
  column "name" { class = "patient_pii" }
  column "email" {
    class  = "patient_pii"
    mask   = "hash"
    secret = "hrclinic20-hash-secret"
  }
  column "home" { class = "patient_pii" }
}
table "clinic.visits" {
  column "notes" { class = "clinical" }
}
table "clinic.visits_by_site" {}
table "public.employees" {}
rule "own_row" {
  tables = ["hr.employees"]
  roles  = ["employee"]
  scope  = "self"
}
rule "own_absences" {
  tables = ["hr.absences"]
  roles  = ["employee"]
  where  = "employee_id = me.team"
}
rule "subtree" {
  tables = ["hr.employees", "hr.absences"]
  roles  = ["manager"]
  scope  = "team_subtree"
}
rule "directory" {
  tables = ["hr.directory"]
  roles  = ["employee"]
  scope  = "all"
}
rule "doctor_visits" {
  tables = ["clinic.visits"]
  roles  = ["doctor"]
  where  = "doctor_login = me.login"
}
rule "doctor_patients" {
  tables = ["clinic.patients"]
  roles  = ["doctor"]
  where  = "id IN (SELECT v.patient_id FROM clinic.visits v WHERE v.doctor_login = me.login)"
}
rule "site_visits" {
  tables = ["clinic.visits", "clinic.visits_by_site"]
  roles  = ["site_manager"]
  where  = "site = me.site"
}
rule "site_patients" {
  tables = ["clinic.patients"]
  roles  = ["site_manager"]
  where  = "id IN (SELECT v.patient_id FROM clinic.visits v WHERE v.site = me.site)"
}
rule "analyst_all" {
  tables = ["clinic.*", "hr.employees", "public.employees"]
  roles  = ["analyst"]
  scope  = "all"
}
`

// hrclinic20Data is the database and policy startHRClinic20 serves.
var hrclinic20Data = &proxytest.PolicyDB{DB: hrclinic20DB, What: "hr and clinic", Schema: hrclinic20Schema, Policy: hrclinic20Policy, MaskKeys: true}

// startHRClinic20 loads hrclinic20DB once and serves hrclinic20Policy in front of it.
func startHRClinic20(t *testing.T) *proxytest.Proxy {
	t.Helper()
	return hrclinic20Data.Start(t)
}

// hrclinic20Leaks are the texts no answer of TestAdversarial20HRClinic may
// hold: masked or out-of-scope values, and the real salaries' digits.
var hrclinic20Leaks = []string{"HIDDEN", "95123", "91456", "120321", "250777", "80111", "65432", "30987", "50505"}

// TestAdversarial20HRClinic holds the twentieth red team's angles on the
// new DBA's HR and clinic policy. Each statement runs on both protocols
// and must answer the same on both, hold none of hrclinic20Leaks, and
// give exactly the rows (or the SQLSTATE) the policy allows: the
// manager_id tree with a cycle and a self-managed employee, expression
// masks reading me.login and banding salaries under predicates, sorts,
// windows, errors and casts, the hash mask over a domain, the generated
// column of masked columns, the composite and bytea/jsonb masks, the
// governed views, the identity table, rule subqueries over visits with
// doctor logins differing in case or trailing space.
func TestAdversarial20HRClinic(t *testing.T) {
	p := startHRClinic20(t)
	ctx := context.Background()
	conns := map[string]*pgx.Conn{}
	conn := func(user string) *pgx.Conn {
		if c, ok := conns[user]; ok {
			return c
		}
		conns[user] = p.Connect(t, user)
		return conns[user]
	}
	answer := func(t *testing.T, c *pgx.Conn, sql string) string {
		t.Helper()
		var got [2]string
		for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			rs, err := c.Query(ctx, sql, mode)
			var b strings.Builder
			if err == nil {
				for rs.Next() {
					v, _ := rs.Values()
					fmt.Fprintf(&b, "%v\n", v)
				}
				rs.Close()
				err = rs.Err()
			}
			if err != nil {
				b.Reset()
				fmt.Fprintf(&b, "ERROR %s", proxytest.SQLState(err))
			}
			got[i] = b.String()
		}
		if got[0] != got[1] {
			t.Fatalf("%s: the protocols disagree:\nsimple: %s\nextended: %s", sql, got[0], got[1])
		}
		for _, l := range hrclinic20Leaks {
			if strings.Contains(got[0], l) {
				t.Fatalf("%s: the answer holds %q, which the user may not read:\n%s", sql, l, got[0])
			}
		}
		return got[0]
	}

	cases := []struct {
		name, user, sql, want string
	}{
		// The hierarchy in hr.employees itself.
		{"a manager's subtree stops at a cycle and leaves out the ceo", "mgr_maya",
			`SELECT id FROM hr.employees ORDER BY id`, "[3]\n[4]\n[5]\n[6]\n"},
		{"a manager's absences are her subtree's, reasons masked", "mgr_maya",
			`SELECT employee_id, reason FROM hr.absences ORDER BY 1`, "[4 <nil>]\n[6 <nil>]\n"},
		{"an employee reads her own row only, whatever she names", "emp_eve",
			`SELECT count(*) FROM hr.employees WHERE id IN (1, 4, 6, 10) OR manager_id = 10 OR login <> ''`, "[1]\n"},
		{"a recursive query of her own over the tree sees her own row only", "emp_eve",
			`WITH RECURSIVE up(id, m) AS (SELECT id, manager_id FROM hr.employees UNION SELECT e.id, e.manager_id FROM hr.employees e JOIN up ON e.id = up.m) SELECT count(*) FROM up`, "[1]\n"},
		{"a CTE named like the subtree's own changes nothing", "mgr_maya",
			`WITH pgveil_subtree(id) AS (SELECT 1 UNION SELECT 10) SELECT count(*) FROM hr.employees`, "[4]\n"},
		{"a manager with no employee row (a NULL team) reads no employee", "ghost_mgr",
			`SELECT count(*) FROM hr.employees`, "[0]\n"},
		{"a manager with no employee row reads no absence, self-managed ones included", "ghost_mgr",
			`SELECT count(*) FROM hr.absences WHERE employee_id IS NULL OR employee_id = 10 OR true`, "[0]\n"},
		{"writing the teams tree is refused", "mgr_maya",
			`UPDATE hr.employees SET manager_id = 3 WHERE id = 1`, "ERROR 42501"},
		// Expression masks reading me.*.
		{"ssn shows on one's own row only", "analyst_al",
			`SELECT login, ssn FROM hr.employees WHERE ssn IS NOT NULL OR login = 'dr_ana' ORDER BY id`, "[dr_ana <nil>]\n[analyst_al 8-08]\n"},
		{"a literal equal to the user's login in her WHERE does not reach the ssn mask's", "analyst_al",
			`SELECT login, ssn FROM hr.employees WHERE login IN ('analyst_al', 'dr_ana') ORDER BY id`, "[dr_ana <nil>]\n[analyst_al 8-08]\n"},
		{"salary reads as its 25k band", "analyst_al",
			`SELECT login, salary::text FROM hr.employees WHERE login IN ('dr_ana', 'dr_ben') ORDER BY id`, "[dr_ana 75000.00]\n[dr_ben 75000.00]\n"},
		{"comparisons inside a band see the band", "analyst_al",
			`SELECT count(*) FROM hr.employees WHERE salary > 90000 AND salary < 100000 OR salary BETWEEN 95000 AND 95200`, "[0]\n"},
		{"ORDER BY and window ranks see bands, not salaries", "analyst_al",
			`SELECT login, rank() OVER (ORDER BY salary), percent_rank() OVER (ORDER BY salary) FROM hr.employees WHERE login IN ('dr_ana', 'dr_ben') ORDER BY salary, login`,
			"[dr_ana 1 0]\n[dr_ben 1 0]\n"},
		{"width_bucket and a generate_series join bucket the band", "analyst_al",
			`SELECT width_bucket(salary, 0, 300000, 300000), count(g) FROM hr.employees, generate_series(1, 100000) g WHERE login = 'dr_ana' AND g * 1.0 <= salary - 75000 + 1 GROUP BY 1`, "[75001 1]\n"},
		{"a division by the band minus its bound fails on the band", "analyst_al",
			`SELECT 1 / (salary - 75000) FROM hr.employees WHERE login = 'dr_ana'`, "ERROR 22012"},
		{"a division by the salary minus the real value does not fail", "analyst_al",
			`SELECT (1 / (salary - 95123.45)) > 0 FROM hr.employees WHERE login = 'dr_ana'`, "[false]\n"},
		{"a cast of the band to text and json shows the band", "analyst_al",
			`SELECT salary::text, to_jsonb(e) ->> 'salary', (e).salary::text FROM hr.employees e WHERE login = 'dr_ana'`, "[75000.00 75000.00 75000.00]\n"},
		// The hash mask over a domain.
		{"the hash mask shows a digest, not the email", "analyst_al",
			`SELECT id, length(email), email LIKE '%@%' FROM clinic.patients ORDER BY id`, "[101 64 false]\n[103 64 false]\n[105 64 false]\n"},
		{"an attacker's email matches no hash", "analyst_al",
			`SELECT count(*) FROM clinic.patients p JOIN (VALUES ('paul@ex.fr'), (encode(sha256('paul@ex.fr'), 'hex'))) v(e) ON p.email = v.e`, "[0]\n"},
		{"the hash function is pgveil's own", "analyst_al",
			`SELECT pgveil.mask_hash('paul@ex.fr', 'x')`, "ERROR 42501"},
		{"the keys' table is pgveil's own", "analyst_al",
			`SELECT count(*) FROM pgveil.mask_keys`, "ERROR 42501"},
		{"the hash cast back to the domain fails its check", "analyst_al",
			`SELECT email::public.email FROM clinic.patients WHERE id = 101`, "ERROR 23514"},
		{"statement text is not echoed", "analyst_al",
			`SELECT current_query()`, "ERROR 42501"},
		{"prepared statements' text is not echoed", "analyst_al",
			`SELECT statement FROM pg_prepared_statements`, "ERROR 42501"},
		// The generated column, the composite, bytea and jsonb masks.
		{"full_name of masked names is NULL, in the table and whole rows", "analyst_al",
			`SELECT full_name, e::text LIKE '%Doc%', row_to_json(e) ->> 'full_name' FROM hr.employees e WHERE login = 'dr_ana'`, "[<nil> false <nil>]\n"},
		{"full_name compared with the real name matches nothing", "analyst_al",
			`SELECT count(*) FROM hr.employees WHERE full_name = 'HIDDENAna Doc' OR full_name LIKE '%Doc'`, "[0]\n"},
		{"the composite mask gives NULL fields and text", "analyst_al",
			`SELECT (home).city, home::text, (home).street IS NULL FROM clinic.patients WHERE id = 103`, "[<nil> <nil> true]\n"},
		{"bytea and jsonb masks give NULL", "emp_eve",
			`SELECT photo || '\x00'::bytea, jsonb_typeof(address), (SELECT count(*) FROM jsonb_each(address)) FROM hr.employees`, "[<nil> <nil> 0]\n"},
		// Views, public.employees, the identity table.
		{"the directory masks full_name for an employee", "emp_eve",
			`SELECT count(*), count(full_name) FROM hr.directory`, "[8 0]\n"},
		{"the site manager reads her site's row of the materialized view", "sm_lyon",
			`SELECT site, n FROM clinic.visits_by_site ORDER BY 1`, "[Lyon 2]\n"},
		{"a doctor reads no row of the materialized view", "dr_ana",
			`SELECT count(*) FROM clinic.visits_by_site`, "[0]\n"},
		{"unqualified employees is public.employees", "analyst_al",
			`SELECT "user", e."group", user = 'pgveil_svc' FROM employees e`, "[public_u g1 true]\n"},
		{"the search_path stays pinned", "analyst_al",
			`SET search_path = hr, public`, "ERROR 42501"},
		{"hr.logins is refused", "emp_eve",
			`SELECT count(*) FROM hr.employees e WHERE EXISTS (SELECT 1 FROM hr.logins l WHERE l.login = e.login)`, "ERROR 42501"},
		{"hr.logins is refused to a query-from-text function", "emp_eve",
			`SELECT table_to_xml('hr.logins', true, false, '')`, "ERROR 42501"},
		// Rule subqueries over visits.
		{"a doctor's visits are hers exactly, not a case or trailing-space twin", "dr_ana",
			`SELECT id, notes FROM clinic.visits ORDER BY id`, "[1 ana note]\n"},
		{"a doctor's patients are those of her visits only", "dr_ana",
			`SELECT id, name FROM clinic.patients ORDER BY id`, "[101 Paul Patient]\n"},
		{"a shared patient's other visits stay hidden through a join", "dr_ana",
			`SELECT p.id, count(v.id) FROM clinic.patients p LEFT JOIN clinic.visits v ON v.patient_id = p.id GROUP BY 1 ORDER BY 1`, "[101 1]\n"},
		{"a record comparison that fails on a hidden street's match does not run on hidden rows", "dr_ana",
			`SELECT count(*) FROM clinic.patients WHERE home = ROW('HIDDEN 3 bd C'::text, 1, 'x'::text)`, "[0]\n"},
		{"a site manager's patients are those with a visit at her site, notes masked", "sm_lyon",
			`SELECT p.id, v.id, v.notes FROM clinic.patients p JOIN clinic.visits v ON v.patient_id = p.id ORDER BY 2`, "[101 1 <nil>]\n[101 5 <nil>]\n"},
		{"a patient without a visit is no one's but the analyst's", "sm_lyon",
			`SELECT count(*) FROM clinic.patients WHERE id = 105 OR site = 'Lyon'`, "[1]\n"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := answer(t, conn(c.user), c.sql); got != c.want {
				t.Fatalf("%s as %s:\n got %q\nwant %q", c.sql, c.user, got, c.want)
			}
		})
	}
}
