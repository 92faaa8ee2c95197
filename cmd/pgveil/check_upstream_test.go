package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
)

const (
	// demoDB is the database testdata/demo is loaded into.
	demoDB = "feedback"
	// demoServicePassword is the demo service account's password.
	demoServicePassword = "demo-service-account"
	// checkDB is the database of the check and test cases.
	checkDB = "pgveil_check"
	// checkSvc is a least-privilege service account of checkDB;
	// checkOwnerSvc owns a table and may create in public;
	// checkMemberSvc is a member of predefined roles it should not be.
	checkSvc, checkOwnerSvc = "pgveil_check_svc", "pgveil_check_owner"
	checkMemberSvc          = "pgveil_check_member"
	checkSvcPassword        = "check-service-account"
)

var (
	demoOnce, checkOnce sync.Once
	demoErr, checkErr   error
)

// setupDemo loads testdata/demo into the database feedback once, sets
// the demo service account's password, and sets the environment
// configs/demo.hcl reads.
func setupDemo(t *testing.T) {
	t.Helper()
	pgtest.Require(t, cluster)
	demoOnce.Do(func() {
		ctx := context.Background()
		demoErr = cluster.LoadDemo(ctx, "../../testdata/demo", demoDB, demoServicePassword)
	})
	if demoErr != nil {
		t.Fatalf("loading the demo database: %v", demoErr)
	}
	t.Setenv("PGVEIL_DEMO_UPSTREAM", cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", demoServicePassword)
	t.Setenv("PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
}

// setupCheckDB creates the database of the check and test cases once:
// tickets and the sequence ticket_numbers (granted to the service
// account), vault (not granted), owned (owned by checkOwnerSvc).
func setupCheckDB(t *testing.T) {
	t.Helper()
	pgtest.Require(t, cluster)
	checkOnce.Do(func() {
		ctx := context.Background()
		if checkErr = cluster.CreateDatabase(ctx, checkDB); checkErr != nil {
			return
		}
		checkErr = cluster.Exec(ctx, checkDB, fmt.Sprintf(`
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%[1]s') THEN CREATE ROLE %[1]s LOGIN; END IF;
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%[2]s') THEN CREATE ROLE %[2]s LOGIN; END IF;
END $$;
ALTER ROLE %[1]s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '%[3]s';
ALTER ROLE %[2]s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '%[3]s';
DROP ROLE IF EXISTS %[5]s_group;
CREATE ROLE %[5]s_group NOLOGIN;
GRANT pg_read_server_files, pg_monitor TO %[5]s_group;
DROP ROLE IF EXISTS %[5]s;
CREATE ROLE %[5]s LOGIN PASSWORD '%[3]s' IN ROLE %[5]s_group, pg_signal_backend;
GRANT CONNECT ON DATABASE %[4]s TO %[5]s;
GRANT USAGE ON SCHEMA public TO %[5]s;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
REVOKE TEMP ON DATABASE %[4]s FROM PUBLIC;
GRANT CONNECT ON DATABASE %[4]s TO %[1]s, %[2]s;
GRANT USAGE ON SCHEMA public TO %[1]s, %[2]s;
CREATE TABLE tickets (
  id     int PRIMARY KEY,
  owner  text,
  team   int,
  amount numeric(8,2),
  code   varchar(10),
  email  text
);
INSERT INTO tickets VALUES
  (1, 'ann', 1, 10.50, 'A1', 'ann@example.org'),
  (2, 'bob', 1, 20.00, 'B2', NULL),
  (3, 'ann', 2, 30.25, NULL, 'ann@example.net');
CREATE SEQUENCE ticket_numbers;
GRANT USAGE ON SEQUENCE ticket_numbers TO %[1]s;
CREATE TABLE vault (id int, secret text);
CREATE TABLE owned (id int);
ALTER TABLE owned OWNER TO %[2]s;
GRANT SELECT ON tickets TO %[1]s, %[2]s, %[5]s;
CREATE DOMAIN badge_code AS varchar(40) NOT NULL CHECK (VALUE ~ '^[A-Z]+$');
CREATE TABLE badges (id int, code badge_code);
GRANT SELECT ON badges TO %[1]s, %[2]s, %[5]s;
GRANT CREATE ON SCHEMA public TO %[2]s;
GRANT TEMP ON DATABASE %[4]s TO %[2]s;
CREATE TABLE payroll (id int, grade int, salary int) PARTITION BY RANGE (salary);
CREATE TABLE payroll_low PARTITION OF payroll FOR VALUES FROM (0) TO (5000);
CREATE TABLE payroll_high PARTITION OF payroll FOR VALUES FROM (5000) TO (MAXVALUE);
GRANT SELECT ON payroll, payroll_low, payroll_high TO %[1]s, %[2]s, %[5]s;
`, checkSvc, checkOwnerSvc, checkSvcPassword, checkDB, checkMemberSvc))
	})
	if checkErr != nil {
		t.Fatalf("creating the check database: %v", checkErr)
	}
	t.Setenv("PGVEIL_TEST_SVC_PW", checkSvcPassword)
}

// verifier is a SCRAM verifier for the users of test configurations.
var verifier = func() string {
	v, err := scram.NewVerifier("pw", 4096)
	if err != nil {
		panic(err)
	}
	return v.String()
}()

// checkConfig writes a configuration of body (written first, so that its
// line numbers are those of the file) followed by listen and upstream
// blocks reaching checkDB as user, whose password is in
// PGVEIL_TEST_SVC_PW.
func checkConfig(t *testing.T, user, body string) string {
	t.Helper()
	body = strings.ReplaceAll(body, "VERIFIER", verifier)
	return writeConfig(t, fmt.Sprintf(`%s
listen { address = "127.0.0.1:6432" }
upstream {
  address  = %q
  database = %q
  user     = %q
  password = env("PGVEIL_TEST_SVC_PW")
}
`, body, cluster.Addr(), checkDB, user))
}

func TestCheckUpstream(t *testing.T) {
	pgtest.Require(t, cluster)
	t.Run("the demo configuration is valid against the demo database", func(t *testing.T) {
		setupDemo(t)
		code, out, errOut := runCLI("", "check", "--config", "../../configs/demo.hcl", "--upstream")
		want := "configuration is valid against upstream " + cluster.Addr() + "/feedback as pgveil_svc: 5 tables governed (public.response_comments follows public.responses), 14 rules, "
		if code != 0 || !strings.Contains(out, want) || !strings.Contains(out, ", 0 warnings") || errOut != "" {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})

	setupCheckDB(t)
	superUser, superPassword := cluster.SuperUser()
	cases := []struct {
		// maskKeys: install the hash masks' keys (pgveil mask-keys, run
		// as the database owner) before the check.
		maskKeys bool
		name     string
		// user is the service account (checkSvc when empty).
		user string
		body string
		// code is the expected exit status; want and wantNot are what
		// stderr must and must not hold ("PATH" is the file's name).
		code    int
		want    []string
		wantNot []string
	}{
		{
			name: "a table block naming a table that does not exist is an error with a suggestion",
			body: `table "public.tickts" {}`,
			code: 1,
			want: []string{`PATH:1:1: error: Unknown table`, `Did you mean "public.tickets"?`, "1 error, 0 warnings"},
		},
		{
			name: "an owner_column the table lacks is an error at the attribute, with a suggestion",
			body: `table "public.tickets" {
  owner_column = "ownr"
}`,
			code: 1,
			want: []string{`PATH:2:18: error: Unknown column`, `names owner_column = "ownr"`, `Did you mean "owner"?`},
		},
		{
			name: "a column block naming a column the table lacks is an error",
			body: `table "public.tickets" {
  column "emial" { class = "pii" }
}`,
			code: 1,
			want: []string{`PATH:2:3: error: Unknown column`, `Did you mean "email"?`},
		},
		{
			name: "a more specific table block dropping a pattern block's column classification is a warning",
			body: `table "public.*" {
  column "email" { class = "pii" }
  column "code" { class = "internal" }
  column "nothere" { class = "pii" }
}
table "public.tickets" {
  column "code" { class = "finance" }
}`,
			code: 0,
			want: []string{`PATH:6:1: warning: Column classification shadowed`,
				`The table block "public.tickets" governs public.tickets, so the block "public.*" (at PATH:1:1) does not`,
				`email (class "pii"), which that block classifies, is unclassified there`},
			wantNot: []string{`code (class`, `nothere (class`},
		},
		{
			name: "a redact constant on a numeric column is an error",
			body: `table "public.tickets" {
  column "amount" {
    class = "finance"
    mask  = "redact"
  }
}`,
			code: 1,
			want: []string{`PATH:4:13: error: Mask does not fit column type`, `invalid input syntax for type numeric: "***"`},
		},
		{
			name: "a redact value of the column's type fits",
			body: `table "public.tickets" {
  column "amount" {
    class = "finance"
    mask  = "redact"
    value = 0
  }
}`,
			code: 0,
		},
		{
			name: "a partial mask on a column of a domain over varchar fits: it is cast to the base type",
			body: `table "public.badges" {
  column "code" {
    class = "finance"
    mask  = "partial"
  }
}`,
			code:    0,
			wantNot: []string{"Mask does not fit column type"},
		},
		{
			name: "a partial mask on a numeric column is an error",
			body: `table "public.tickets" {
  column "amount" {
    class = "finance"
    mask  = "partial"
  }
}`,
			code:    1,
			want:    []string{`PATH:4:13: error: Mask does not fit column type`, "a partial mask produces text (the value with characters replaced by stars)"},
			wantNot: []string{"hex digest"},
		},
		{
			name: "a hash mask on a numeric column is an error that speaks of a digest, not stars",
			body: `table "public.tickets" {
  column "amount" {
    class  = "finance"
    mask   = "hash"
    secret = env("PGVEIL_TEST_SVC_PW")
  }
}`,
			maskKeys: true,
			code:     1,
			want: []string{`PATH:4:14: error: Mask does not fit column type`, "a hash mask produces text (a hex digest)",
				"a bigint pseudonym for smallint, integer or bigint, a uuid pseudonym for uuid", "a column of type numeric(8,2) is none of these"},
			wantNot: []string{"stars"},
		},
		{
			name: "a hash mask on an integer column is valid: its value is a bigint pseudonym",
			body: `table "public.tickets" {
  column "team" {
    class  = "org"
    mask   = "hash"
    secret = env("PGVEIL_TEST_SVC_PW")
  }
}`,
			maskKeys: true,
			code:     0,
			wantNot:  []string{"Mask does not fit column type", "Hash mask truncated", "PATH:4"},
		},
		{
			name: "a hash mask on a short varchar column is a warning",
			body: `table "public.tickets" {
  column "code" {
    class  = "pii"
    mask   = "hash"
    secret = env("PGVEIL_TEST_SVC_PW")
  }
}`,
			maskKeys: true,
			code:     0,
			want:     []string{`PATH:4:14: warning: Hash mask truncated`, "character varying(10)"},
		},
		{
			name: "a hash mask whose key is not installed upstream is one error, not also a mask that does not fit",
			body: `table "public.tickets" {
  column "email" {
    class  = "pii"
    mask   = "hash"
    secret = env("PGVEIL_TEST_SVC_PW")
  }
}`,
			code:    1,
			want:    []string{`error: Hash mask keys are not installed`, "pgveil mask-keys"},
			wantNot: []string{"Mask does not fit column type", "Unknown column"},
		},
		{
			name: "a mask expression that cannot be cast to the column's type is an error",
			body: `table "public.tickets" {
  column "team" {
    class      = "org"
    mask       = "expression"
    expression = "now()"
  }
}`,
			code: 1,
			want: []string{`PATH:5:18: error: Mask does not fit column type`, "cannot cast type timestamp with time zone to integer"},
		},
		{
			name: "a mask expression cast only explicitly to the column's type is a warning",
			body: `table "public.tickets" {
  column "team" {
    class      = "org"
    mask       = "expression"
    expression = "left(owner, 1)"
  }
}`,
			code: 0,
			want: []string{`PATH:5:18: warning: Mask expression of another type`, "yields text, and the column is integer"},
		},
		{
			name: "a mask expression of a type cast implicitly draws no warning",
			body: `table "public.tickets" {
  column "id" {
    class      = "org"
    mask       = "expression"
    expression = "0"
  }
  column "amount" {
    class      = "finance"
    mask       = "expression"
    expression = "round(amount)"
  }
}
user "ann" { password = "VERIFIER" }`,
			code:    0,
			wantNot: []string{"warning:"},
		},
		{
			name: "a rule where that does not type-check for a sample user is an error",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password   = "VERIFIER"
  roles      = ["clerk"]
  attributes = { country = "France" }
}
table "public.tickets" {}
rule "by_country" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "team = me.country"
}`,
			code: 1,
			want: []string{`PATH:11:12: error: Rule does not type-check`, `bound for user "ann"`, `invalid input syntax for type integer: "France"`},
		},
		{
			name: "a rule comparing a column with a list attribute by = or IN says to write = ANY",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password   = "VERIFIER"
  roles      = ["clerk"]
  attributes = { teams = [1, 2] }
}
table "public.tickets" {}
rule "by_team_eq" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "team = me.teams"
}
rule "by_team_in" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "team IN (me.teams)"
}`,
			code: 1,
			want: []string{`PATH:11:12: error: Rule does not type-check`, `PATH:16:12: error: Rule does not type-check`,
				`operator does not exist: integer pg_catalog.= integer[]`, `me.teams is a list`, `= ANY(me.teams)`},
		},
		{
			name: "a rule failing on a scalar attribute gets no list hint",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password   = "VERIFIER"
  roles      = ["clerk"]
  attributes = { teams = [1, 2], country = "France" }
}
table "public.tickets" {}
rule "by_country" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "team = me.country AND team = ANY(me.teams)"
}`,
			code:    1,
			want:    []string{`PATH:11:12: error: Rule does not type-check`},
			wantNot: []string{"is a list"},
		},
		{
			// The deparser prints now() AT TIME ZONE ('Europe/' || owner)
			// as now() AT TIME ZONE 'Europe/' || owner, which reads
			// (now() AT TIME ZONE 'Europe/') || owner, a text, which has
			// no > with a timestamp: the check must type-check the where
			// the rewriter forwards.
			name: "a rule where the deparser would print otherwise type-checks as written",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.tickets" {}
rule "big_teams" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "now() AT TIME ZONE ('Europe/' || owner) > now()"
}`,
			code:    0,
			wantNot: []string{"error:"},
		},
		{
			// The deparser prints now() AT TIME ZONE ('Europe/' || owner)
			// as now() AT TIME ZONE 'Europe/' || owner, a text: the check
			// must see the timestamp the rewriter forwards.
			name: "a mask expression the deparser would print otherwise is checked as written",
			body: `table "public.tickets" {
  column "owner" {
    class      = "pii"
    mask       = "expression"
    expression = "now() AT TIME ZONE ('Europe/' || owner)"
  }
}`,
			code: 0,
			want: []string{`PATH:5:18: warning: Mask expression of another type`, "yields timestamp without time zone, and the column is text"},
		},
		{
			// The deparser prints (CASE … END)[1] without the
			// parentheses the grammar needs, and no node of the CASE's
			// value prints with them under a subscript: the rewriter
			// refuses every statement the where goes into. The check says
			// so at the where, once (loading already does, offline, and
			// the check stops there), and does not blame PostgreSQL,
			// which never saw it.
			name: "a rule where pgveil cannot print faithfully is an error saying so",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.tickets" {}
rule "a_to_m" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "(CASE WHEN owner = me.login THEN ARRAY[owner] END)[1] IS NOT NULL"
}`,
			code:    1,
			want:    []string{`PATH:10:12: error: Expression pgveil cannot forward`, `the where of rule "a_to_m"`, "every statement"},
			wantNot: []string{"PostgreSQL rejects"},
		},
		{
			// The same for a mask: a subscript of a CASE.
			name: "a mask pgveil cannot print faithfully is an error saying so",
			body: `table "public.tickets" {
  column "owner" {
    class      = "pii"
    mask       = "expression"
    expression = "(CASE WHEN owner = '' THEN ARRAY[owner] END)[1]"
  }
}`,
			code:    1,
			want:    []string{`PATH:5:18: error: Expression pgveil cannot forward`, `the expression mask of column owner`},
			wantNot: []string{"does not fit"},
		},
		{
			name: "a rule where reading a column the table lacks is an error with a suggestion",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.tickets" {}
rule "mine" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "ownr = me.login"
}`,
			code: 1,
			want: []string{`PATH:10:12: error: Unknown column`, `Rule "mine" reads ownr`, `did you mean "owner"?`},
		},
		{
			name: "a short column name with two letters swapped gets a suggestion too",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.tickets" {}
rule "mine" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  where  = "di > 0"
}`,
			code: 1,
			want: []string{`PATH:10:12: error: Unknown column`, `Rule "mine" reads di`, `did you mean "id"?`},
		},
		{
			name: "a scope over an owner column of the wrong type is an error",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.tickets" { owner_column = "team" }
rule "mine" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  scope  = "self"
}`,
			code: 1,
			want: []string{`PATH:10:12: error: Rule does not type-check`, `scope "self"`},
		},
		{
			name: "an integer owner_column with own_rows is an error at the attribute",
			body: `role "clerk" {
  statements = ["select"]
  own_rows   = true
}
user "sarah" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.tickets" { owner_column = "team" }`,
			code: 1,
			want: []string{`PATH:9:41: error: Scope column of the wrong type`, `PostgreSQL rejects team = 'sarah' (bound for user "sarah")`,
				`on public.tickets (type integer): invalid input syntax for type integer: "sarah"`, `Name a column holding logins (text) in owner_column`},
		},
		{
			name: "a text team_column is an error at the attribute",
			body: `table "public.tickets" { team_column = "owner" }`,
			code: 1,
			want: []string{`PATH:1:40: error: Scope column of the wrong type`, `operator does not exist: text pg_catalog.= integer`,
				`Name a column holding team ids (integer) in team_column`},
		},
		{
			name: "owner and team columns of the right types draw no error",
			body: `table "public.tickets" {
  owner_column = "owner"
  team_column  = "team"
}`,
			code:    0,
			wantNot: []string{"Scope column"},
		},
		{
			name: "a restrictive rule naming no table is an error with a suggestion",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.*" {}
rule "all" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  scope  = "all"
}
rule "mine" {
  tables = ["public.Tickets", "pubic.tick*"]
  roles  = ["clerk"]
  kind   = "restrictive"
  where  = "owner = me.login"
}`,
			code: 1,
			want: []string{`PATH:13:13: error: Rule names no table`, `Rule "mine" names public.Tickets`, `it would restrict nothing`,
				`Did you mean "public.tickets"?`, `PATH:13:31: error: Rule names no table`, `names pubic.tick*`},
		},
		{
			name: "a permissive rule naming no table is a warning",
			body: `role "clerk" { statements = ["select"] }
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
table "public.*" {}
rule "all" {
  tables = ["public.tickets", "public.tickets_2027"]
  roles  = ["clerk"]
  scope  = "all"
}`,
			code: 0,
			want: []string{`PATH:8:31: warning: Rule names no table`, `it grants nothing there (yet)`},
		},
		{
			name: "a classified column a partition key reads is a warning",
			body: `table "public.payroll" {
  column "salary" { class = "pay" }
  column "grade" { class = "hr" }
}`,
			code:    0,
			want:    []string{`PATH:2:3: warning: Partition key reads a masked column`, `public.payroll is partitioned by a key reading column "salary"`},
			wantNot: []string{`column "grade"`},
		},
		{
			name: "a pattern matching no table is a warning",
			body: `table "audit.*" {}`,
			code: 0,
			want: []string{`PATH:1:1: warning: Pattern matches no table`},
		},
		{
			name: "a governed table the service account cannot read is a warning",
			body: `table "public.vault" {}`,
			code: 0,
			want: []string{`PATH:1:1: warning: Governed table not readable by the service account`, "GRANT SELECT ON public.vault TO pgveil_check_svc."},
		},
		{
			// A review: the scope column's type check runs EXPLAIN on the
			// table, which the service account may not read; a warning
			// for the table, not an error about the column's type.
			name:    "a text owner_column of a governed table the service account cannot read is no type error",
			body:    `table "public.vault" { owner_column = "secret" }`,
			code:    0,
			want:    []string{`PATH:1:1: warning: Governed table not readable by the service account`},
			wantNot: []string{"Scope column of the wrong type"},
		},
		{
			name: "a least-privilege service account draws no warning",
			body: `table "public.tickets" {}
user "ann" { password = "VERIFIER" }`,
			code:    0,
			wantNot: []string{"warning:"},
		},
		{
			name: "a superuser service account is a warning",
			user: superUser,
			body: `table "public.tickets" {}`,
			code: 0,
			want: []string{`warning: Service account is a superuser`},
		},
		{
			name: "a service account in predefined roles reaching files or other sessions is warned about, with the role to revoke",
			user: checkMemberSvc,
			body: `table "public.tickets" {}`,
			code: 0,
			want: []string{
				`warning: Service account is a member of pg_read_server_files`,
				`is a member of pg_read_server_files (through pgveil_check_member_group)`,
				`REVOKE "pgveil_check_member_group" FROM "pgveil_check_member"`,
				`warning: Service account is a member of pg_signal_backend`,
				`REVOKE "pg_signal_backend" FROM "pgveil_check_member"`,
				`warning: Service account is a member of pg_read_all_stats`,
				`warning: Service account is a member of pg_read_all_settings`,
			},
			wantNot: []string{"pg_execute_server_program", "pg_read_all_data"},
		},
		{
			name: "a service account owning a governed table, creating in public or TEMP is warned about",
			user: checkOwnerSvc,
			body: `table "public.owned" {}`,
			code: 0,
			want: []string{
				`PATH:1:1: warning: Service account owns a governed table`,
				`warning: Service account can create temporary tables`,
				`warning: Service account can create objects on the search_path`,
				`REVOKE CREATE ON SCHEMA public FROM PUBLIC, pgveil_check_owner.`,
			},
			wantNot: []string{"superuser"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			user := c.user
			if user == "" {
				user = checkSvc
			}
			if user == superUser {
				t.Setenv("PGVEIL_TEST_SVC_PW", superPassword)
			}
			path := checkConfig(t, user, c.body)
			if c.maskKeys {
				installMaskKeys(t, path)
			}
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			// NOTE: details are wrapped: compare with white space collapsed.
			flat := strings.Join(strings.Fields(errOut), " ")
			for _, w := range c.want {
				if w = strings.ReplaceAll(w, "PATH", path); !strings.Contains(flat, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(errOut, w) {
					t.Errorf("stderr holds %q:\n%s", w, errOut)
				}
			}
			if c.code == 0 && !strings.Contains(out, "configuration is valid against upstream") {
				t.Errorf("no summary on stdout: %q", out)
			}
		})
	}

	t.Run("a test block naming a login no identity row defines is an error", func(t *testing.T) {
		setupDemo(t)
		dir := t.TempDir()
		demo, err := os.ReadFile("../../configs/demo.hcl")
		if err != nil {
			t.Fatal(err)
		}
		extra := "test \"a misspelt login\" {\n  user   = \"tomm\"\n  query  = \"SELECT 1\"\n  denied = true\n}\n"
		for name, body := range map[string]string{"demo.hcl": string(demo), "extra.hcl": extra} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, out, errOut := runCLI("", "check", "--config", dir, "--upstream")
		flat := strings.Join(strings.Fields(errOut), " ")
		if code != 1 || !strings.Contains(flat, filepath.Join(dir, "extra.hcl")+":2:12: error: Unknown user") ||
			!strings.Contains(flat, `Did you mean "tom"?`) {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})

	t.Run("errors in test blocks alone leave the rest checked against the catalog", func(t *testing.T) {
		path := checkConfig(t, checkSvc, `table "public.tickts" {}
test "t" {
  user  = "ann"
  query = "SELECT 1"
}`)
		code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
		flat := strings.Join(strings.Fields(errOut), " ")
		for _, w := range []string{
			path + ":2:1: error: Test without expectation",
			"the errors above are in test blocks only: checking the rest against the upstream",
			path + `:1:1: error: Unknown table`, `Did you mean "public.tickets"?`,
		} {
			if !strings.Contains(flat, w) {
				t.Errorf("stderr lacks %q", w)
			}
		}
		if code != 1 || out != "" || !strings.Contains(lastLine(errOut), "errors, ") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})

	t.Run("an unreachable upstream exits 1", func(t *testing.T) {
		t.Setenv("PGVEIL_TEST_SVC_PW", "wrong")
		path := checkConfig(t, checkSvc, "")
		code, _, errOut := runCLI("", "check", "--config", path, "--upstream")
		if code != 1 || !strings.Contains(errOut, "pgveil check: connecting upstream") {
			t.Fatalf("exit %d: %s", code, errOut)
		}
	})
}

// installMaskKeys runs what pgveil mask-keys prints for the configuration
// at path as the superuser, and removes the keys when the test ends.
func installMaskKeys(t *testing.T, path string) {
	t.Helper()
	code, script, errOut := runCLI("", "mask-keys", "--config", path)
	if code != 0 {
		t.Fatalf("pgveil mask-keys: exit %d: %s", code, errOut)
	}
	ctx := context.Background()
	if err := cluster.ExecScript(ctx, checkDB, script); err != nil {
		t.Fatalf("installing the keys: %v", err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), checkDB, "DROP SCHEMA pgveil CASCADE") })
}

func TestCheckUpstreamSaysWhenFileErrorsSkipTheCatalogChecks(t *testing.T) {
	t.Setenv("PGVEIL_TEST_SVC_PW", "x")
	cases := []struct{ name, block string }{
		{"an error in a role block", `role "typo" { statements = ["selec"] }`},
		{"an error in a table block beside a test block's", "table \"public.tickets\" { owner_column = 1 }\ntest \"t\" {\n  user  = \"ann\"\n  query = \"SELECT 1\"\n}"},
	}
	for _, c := range cases {
		t.Run("after "+c.name, func(t *testing.T) {
			path := writeConfig(t, c.block+"\n"+testPolicyTail)
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			if code != 1 || out != "" || !strings.Contains(errOut, "error: ") ||
				!strings.Contains(errOut, "pgveil check: catalog checks skipped: fix the errors above first") ||
				strings.Contains(errOut, "connecting upstream") {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
		})
	}
}

// TestCheckUpstreamWarnsOfViewColumnsLeftUnclassified: a view's table
// block is its whole policy (the view reads its tables as the service
// account), so a column named like one the table it reads classifies, or
// generates from a classified one, and left unclassified in the view's
// block is shown to every user its rules grant rows.
func TestCheckUpstreamWarnsOfViewColumnsLeftUnclassified(t *testing.T) {
	setupCheckDB(t)
	ctx := context.Background()
	drop := "DROP MATERIALIZED VIEW IF EXISTS staff_mails; DROP VIEW IF EXISTS staff_emails, staff_contact, staff_tree, staff_parts_view, staff_directory, staff_renamed, staff_all; DROP TABLE IF EXISTS staff, staff_parts"
	if err := cluster.Exec(ctx, checkDB, drop+`;
CREATE TABLE staff (id int, first_name text, last_name text, email text,
  full_name text GENERATED ALWAYS AS (first_name || ' ' || last_name) STORED);
CREATE VIEW staff_directory WITH (security_barrier) AS SELECT id, full_name, email FROM staff;
CREATE VIEW staff_all AS SELECT * FROM staff;
CREATE VIEW staff_emails WITH (security_barrier) AS SELECT id, email FROM staff_all;
CREATE VIEW staff_renamed AS SELECT id, full_name AS display, upper(first_name) AS given, last_name FROM staff;
CREATE VIEW staff_contact AS SELECT id, upper(email) AS contact FROM staff_all;
CREATE MATERIALIZED VIEW staff_mails AS SELECT id, lower(email) AS mail FROM staff;
CREATE RECURSIVE VIEW staff_tree (id, contact) AS SELECT id, email FROM staff UNION ALL SELECT id + 1, contact FROM staff_tree WHERE id < 0;
CREATE TABLE staff_parts (id int, email text) PARTITION BY RANGE (id);
CREATE TABLE staff_parts_1 PARTITION OF staff_parts FOR VALUES FROM (0) TO (100);
CREATE VIEW staff_parts_view AS SELECT id, lower(email) AS mail FROM staff_parts;
GRANT SELECT ON staff, staff_directory, staff_all, staff_emails, staff_renamed, staff_contact, staff_mails, staff_tree, staff_parts, staff_parts_1, staff_parts_view TO `+checkSvc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), checkDB, drop) })
	staff := `table "public.staff" {
  column "first_name" { class = "person" }
  column "email" { class = "person" }
}
`
	for _, c := range []struct {
		name, view string
		want       []string
	}{
		{
			name: "a view block without column blocks is warned about, naming each column",
			view: `table "public.staff_directory" {}`,
			want: []string{"PATH:5:1: warning: View column left unclassified",
				`full_name, named like public.staff.full_name (generated from first_name, class "person"); email, named like public.staff.email (class "person")`},
		},
		{
			name: "a view block of a view reading the table through an ungoverned view is warned about",
			view: `table "public.staff_emails" {}`,
			want: []string{"PATH:5:1: warning: View column left unclassified",
				`email, named like public.staff.email (class "person")`},
		},
		{
			name: "a view block classifying those columns is not",
			view: `table "public.staff_directory" {
  column "full_name" { class = "person" }
  column "email" { class = "person" }
}`,
		},
		{
			name: "a view reading a classified column under another name is warned about, naming what it reads",
			view: `table "public.staff_directory" {
  column "full_name" { class = "person" }
  column "email" { class = "person" }
}
table "public.staff_renamed" {}`,
			want: []string{"PATH:9:1: warning: View column left unclassified",
				`reads public.staff.first_name (class "person") and public.staff.full_name (generated from first_name, class "person"), which none of its columns is named like`},
		},
		{
			name: "a view reading a classified column under another name through an ungoverned view is warned about",
			view: `table "public.staff_contact" {}`,
			want: []string{"PATH:5:1: warning: View column left unclassified",
				`reads public.staff_all.email (named like public.staff.email (class "person")), which none of its columns is named like`},
		},
		{
			name: "a materialized view reading a classified column under another name is warned about",
			view: `table "public.staff_mails" {}`,
			want: []string{"PATH:5:1: warning: View column left unclassified", `reads public.staff.email (class "person")`},
		},
		{
			name: "a recursive view reading a classified column under another name is warned about",
			view: `table "public.staff_tree" {}`,
			want: []string{"PATH:5:1: warning: View column left unclassified", `reads public.staff.email (class "person")`},
		},
		{
			name: "a view of a partitioned table reading a classified column under another name is warned about",
			view: `table "public.staff_parts*" {
  column "email" { class = "person" }
}
table "public.staff_parts_view" {}`,
			want: []string{"PATH:8:1: warning: View column left unclassified", `reads public.staff_parts.email (class "person")`},
		},
		{
			name: "a view block classifying a renamed column is taken to have looked at them",
			view: `table "public.staff_directory" {
  column "full_name" { class = "person" }
  column "email" { class = "person" }
}
table "public.staff_renamed" {
  column "display" { class = "person" }
  column "given" { class = "person" }
}`,
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := checkConfig(t, checkSvc, staff+c.view)
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			flat := strings.Join(strings.Fields(errOut), " ")
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, w := range c.want {
				if w = strings.ReplaceAll(w, "PATH", path); !strings.Contains(flat, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			if len(c.want) == 0 && strings.Contains(errOut, "View column left unclassified") {
				t.Errorf("warned:\n%s", errOut)
			}
		})
	}
}

// TestCheckUpstreamTellsWhatARedactValueOfAnEnumCanBe: a redact value
// that does not fit an enum column is told to be one of the enum's
// labels, which the hint names, not "0 for a number", which no enum
// takes.
func TestCheckUpstreamTellsWhatARedactValueOfAnEnumCanBe(t *testing.T) {
	setupCheckDB(t)
	ctx := context.Background()
	drop := `DROP TABLE IF EXISTS plans; DROP TYPE IF EXISTS plan_kind; DROP SCHEMA IF EXISTS "Billing" CASCADE; DROP SCHEMA IF EXISTS "Hidden" CASCADE`
	if err := cluster.Exec(ctx, checkDB, drop+`;
CREATE TYPE plan_kind AS ENUM ('free', 'pro', 'enterprise');
CREATE SCHEMA "Billing";
CREATE TYPE "Billing"."Tier Kind" AS ENUM ('Gold', 'say "hi"');
CREATE SCHEMA "Hidden";
CREATE TYPE "Hidden".region AS ENUM ('eu', 'us');
CREATE TABLE plans (id int, plan plan_kind, seats int, tier "Billing"."Tier Kind", region "Hidden".region);
GRANT SELECT ON plans TO `+checkSvc+`; GRANT USAGE ON SCHEMA "Billing" TO `+checkSvc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), checkDB, drop) })
	for _, c := range []struct {
		name, column, value string
		want, wantNot       []string
	}{
		{
			name: "a redact value that is no label of an enum column names the enum's labels", column: "plan", value: `"hidden"`,
			want:    []string{"error: Mask does not fit column type", `plan_kind is an enum: give the redact mask one of its labels as a string (value = "free"; its labels are free, pro, enterprise), or use mask = "null".`},
			wantNot: []string{"value = 0 for a number"},
		},
		{
			name: "an enum of another schema, quoted and mixed-case, names its labels", column: "tier", value: `"hidden"`,
			want:    []string{"error: Mask does not fit column type", `"Billing"."Tier Kind" is an enum: give the redact mask one of its labels as a string (value = "Gold"; its labels are Gold, say "hi"), or use mask = "null".`},
			wantNot: []string{"value = 0 for a number"},
		},
		{
			name: "an enum of a schema the service account may not use says to grant USAGE, and its labels", column: "region", value: `"eu"`,
			want: []string{"error: Mask does not fit column type", `The service account has no USAGE on schema "Hidden", so the cast of the mask to "Hidden".region fails whatever its value: GRANT USAGE ON SCHEMA "Hidden" TO the service account.`,
				`"Hidden".region is an enum: give the redact mask one of its labels as a string (value = "eu"; its labels are eu, us)`},
			wantNot: []string{"value = 0 for a number"},
		},
		{
			name: "a redact value that does not fit a number column still says a number", column: "seats", value: `"hidden"`,
			want:    []string{"error: Mask does not fit column type", "(value = 0 for a number)"},
			wantNot: []string{"is an enum"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := checkConfig(t, checkSvc, fmt.Sprintf("table \"public.plans\" {\n  column %q {\n    class = \"billing\"\n    mask  = \"redact\"\n    value = %s\n  }\n}\n", c.column, c.value))
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			flat := strings.Join(strings.Fields(errOut), " ")
			if code != 1 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(flat, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(flat, w) {
					t.Errorf("stderr holds %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// TestCheckUpstreamWarnsOfRelationsRefusedForAnOperatorClassFunction: a
// range type's subtype_diff and a default hash operator class of a DBA's
// type call functions the walker refuses to roles that do not list them,
// on every statement reading a relation with such a column; check names
// the relation, the function and the key to list it under.
func TestCheckUpstreamWarnsOfRelationsRefusedForAnOperatorClassFunction(t *testing.T) {
	setupCheckDB(t)
	ctx := context.Background()
	drop := `DROP TABLE IF EXISTS quotas; DROP TYPE IF EXISTS seat_range; DROP FUNCTION IF EXISTS seat_diff(int4, int4);
DROP OPERATOR CLASS IF EXISTS money2_hash USING hash; DROP OPERATOR FAMILY IF EXISTS money2_hash USING hash;
DROP OPERATOR IF EXISTS = (money2, money2); DROP FUNCTION IF EXISTS m_hash(money2), m_eq(money2, money2); DROP TYPE IF EXISTS money2`
	if err := cluster.Exec(ctx, checkDB, drop+`;
CREATE FUNCTION seat_diff(int4, int4) RETURNS float8 LANGUAGE sql IMMUTABLE AS 'SELECT ($1 - $2)::float8';
CREATE TYPE seat_range AS RANGE (subtype = int4, subtype_diff = seat_diff);
CREATE TYPE money2 AS (amount numeric, cur text);
CREATE FUNCTION m_eq(money2, money2) RETURNS bool LANGUAGE sql IMMUTABLE AS 'SELECT $1.amount = $2.amount AND $1.cur = $2.cur';
CREATE OPERATOR = (LEFTARG = money2, RIGHTARG = money2, FUNCTION = m_eq, HASHES);
CREATE FUNCTION m_hash(money2) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT hashtext($1.cur)';
CREATE OPERATOR CLASS money2_hash DEFAULT FOR TYPE money2 USING hash AS OPERATOR 1 =(money2, money2), FUNCTION 1 m_hash(money2);
CREATE TABLE quotas (id int, seats seat_range, price money2);
GRANT SELECT ON quotas TO `+checkSvc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), checkDB, drop) })
	for _, c := range []struct {
		name, roles   string
		want, wantNot []string
	}{
		{
			name: "a role that lists none of the functions is told each, with the relation and the key",
			want: []string{
				`warning: Operator class calls a function`,
				`The type seat_range, through its range functions, calls public.seat_diff, which role "reader" may not call. pgveil refuses these roles every statement that reads or writes public.quotas,`,
				`functions = ["public.seat_diff"] in role "reader"`,
				`The type money2, through its default hash operator class public.money2_hash, calls public.m_hash`,
			},
		},
		{
			name:    "a function the role lists is not warned about",
			roles:   `functions = ["public.seat_diff"]`,
			want:    []string{`calls public.m_hash, which role "reader" may not call`},
			wantNot: []string{`calls public.seat_diff`},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := checkConfig(t, checkSvc, "table \"public.quotas\" {}\nrole \"reader\" {\n  statements = [\"select\"]\n  "+c.roles+"\n}\n")
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			flat := strings.Join(strings.Fields(errOut), " ")
			if code != 0 {
				t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
			}
			for _, w := range c.want {
				if !strings.Contains(flat, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(flat, w) {
					t.Errorf("stderr holds %q:\n%s", w, errOut)
				}
			}
		})
	}
}
