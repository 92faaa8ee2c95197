package policytest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/policy/live"
	"github.com/pgveil/pgveil/policy/policytest"
	"github.com/pgveil/pgveil/rewrite"
)

// cluster is shared by the tests of this package; see TestMain.
var cluster *pgtest.Cluster

func TestMain(m *testing.M) { os.Exit(pgtest.Main(m, &cluster)) }

const (
	// testDB is the database the test blocks read: tickets and the
	// sequence ticket_numbers (granted to the service account), vault
	// (not granted).
	testDB = "pgveil_policytest"
	// svc and svcPassword are testDB's least-privilege service account.
	svc, svcPassword = "pgveil_policytest_svc", "policytest-service-account"
)

var (
	// setupOnce guards creating testDB; setupErr is its outcome.
	setupOnce sync.Once
	setupErr  error
)

// setupDB creates testDB once.
func setupDB(t *testing.T) {
	t.Helper()
	pgtest.Require(t, cluster)
	setupOnce.Do(func() {
		ctx := context.Background()
		if setupErr = cluster.CreateDatabase(ctx, testDB); setupErr != nil {
			return
		}
		setupErr = cluster.Exec(ctx, testDB, fmt.Sprintf(`
DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '%[1]s') THEN CREATE ROLE %[1]s LOGIN; END IF;
END $$;
ALTER ROLE %[1]s LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOBYPASSRLS PASSWORD '%[2]s';
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
GRANT CONNECT ON DATABASE %[3]s TO %[1]s;
GRANT USAGE ON SCHEMA public TO %[1]s;
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
GRANT SELECT ON tickets TO %[1]s;
`, svc, svcPassword, testDB))
	})
	if setupErr != nil {
		t.Fatalf("creating the test database: %v", setupErr)
	}
}

// verifier is a SCRAM verifier for the users of test configurations.
var verifier = func() string {
	v, err := scram.NewVerifier("pw", 4096)
	if err != nil {
		panic(err)
	}
	return v.String()
}()

// testPolicy is the policy of the test-block cases, over testDB's
// tickets: ann (clerk) sees her own tickets, without email; boss
// (auditor) sees every ticket with email. The same policy serves
// cmd/pgveil's and policy/policytest's tests: testdata/policies/tickets.hcl.
var testPolicy = func() string {
	b, err := os.ReadFile("../../testdata/policies/tickets.hcl")
	if err != nil {
		panic(err)
	}
	return "\n" + string(b)
}()

// load loads testPolicy followed by block, with listen and upstream
// blocks reaching testDB as svc, and returns the configuration and its
// test blocks.
func load(t *testing.T, block string) (*policy.Config, []*policy.Test) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	body := strings.ReplaceAll(testPolicy, "VERIFIER", verifier) + block + fmt.Sprintf(`
listen { address = "127.0.0.1:6432" }
upstream {
  address  = %q
  database = %q
  user     = %q
}
`, cluster.Addr(), testDB, svc)
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		t.Fatalf("loading the configuration:\n%s", b.String())
	}
	return cfg, cfg.Tests
}

// testLDAP is an ldap block mapping the directory group auditors to
// the role auditor; tests never ask the directory.
const testLDAP = `
ldap {
  url                 = "ldap://127.0.0.1:1"
  base_dn             = "ou=people,dc=example,dc=org"
  member_of_attribute = "memberOf"
  allow_cleartext     = true
  group "cn=auditors,ou=groups,dc=example,dc=org" { roles = ["auditor"] }
}
`

// online returns the environment of pgveil test --upstream for cfg: the
// identities and catalog loaded over a connection as svc.
func online(t *testing.T, ctx context.Context, cfg *policy.Config) (*policytest.Env, *pgconn.PgConn) {
	t.Helper()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", svc, svcPassword, cluster.Addr(), testDB))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
	if diags.HasErrors() {
		t.Fatalf("loading identities: %v", diags)
	}
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	return policytest.Online(cfg, ids, cat, conn), conn
}

// testContext bounds a test's statements.
func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func TestRun(t *testing.T) {
	setupDB(t)
	ctx := testContext(t)
	cases := []struct {
		name string
		// block is one test block.
		block string
		// online and offline are the expected result lines, with and
		// without --upstream.
		online, offline string
	}{
		{
			name: "matching rows pass",
			block: `test "t" {
  user  = "ann"
  query = "SELECT id, owner FROM tickets ORDER BY id"
  rows  = [[1, "ann"], [3, "ann"]]
}`,
			online:  "PASS t",
			offline: "SKIP t: comparing rows needs --upstream (offline, pgveil accepts the statement)",
		},
		{
			name: "rows in another order fail unless unordered",
			block: `test "t" {
  user  = "ann"
  query = "SELECT id FROM tickets ORDER BY id DESC"
  rows  = [[1], [3]]
}`,
			online: `FAIL t: rows: expected [["1"], ["3"]] (2 rows), got [["3"], ["1"]] (2 rows)`,
		},
		{
			name: "unordered rows compare as a multiset",
			block: `test "t" {
  user      = "ann"
  query     = "SELECT id FROM tickets ORDER BY id DESC"
  rows      = [[1], [3]]
  unordered = true
}`,
			online: "PASS t",
		},
		{
			name: "null matches NULL only",
			block: `test "t" {
  user  = "ann"
  query = "SELECT email, 'x' FROM tickets WHERE id = 1"
  rows  = [[null, "x"]]
}`,
			online: "PASS t",
		},
		{
			name: "a row that differs fails, showing expected and got",
			block: `test "t" {
  user  = "boss"
  query = "SELECT email FROM tickets WHERE id = 2"
  rows  = [["bob@example.org"]]
}`,
			online: `FAIL t: rows: expected [["bob@example.org"]] (1 row), got [[null]] (1 row)`,
		},
		{
			name: "a number that differs from the value only in its text fails, saying to write the text",
			block: `test "t" {
  user  = "ann"
  query = "SELECT 75000::numeric(10, 2)"
  rows  = [[75000.00]]
}`,
			online:  `FAIL t: rows: expected [["75000"]] (1 row), got [["75000.00"]] (1 row) (values are compared as PostgreSQL prints them: write "75000.00", a string, not 75000)`,
			offline: "SKIP t: comparing rows needs --upstream (offline, pgveil accepts the statement)",
		},
		{
			name: "a row count that differs fails",
			block: `test "t" {
  user      = "ann"
  query     = "SELECT * FROM tickets"
  row_count = 3
}`,
			online:  "FAIL t: row_count: expected 3, got 2",
			offline: "SKIP t: comparing the row count needs --upstream (offline, pgveil accepts the statement)",
		},
		{
			name: "masked columns are checked without the upstream",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT * FROM tickets"
  masked = ["public.tickets.email"]
}`,
			online:  "PASS t",
			offline: "PASS t",
		},
		{
			name: "masked columns are compared exactly",
			block: `test "t" {
  user   = "boss"
  query  = "SELECT * FROM tickets"
  masked = ["public.tickets.email"]
}`,
			online:  `FAIL t: masked columns: expected ["public.tickets.email"], got []`,
			offline: `FAIL t: masked columns: expected ["public.tickets.email"], got []`,
		},
		{
			name: "a refusal passes a test expecting denied, with its firewall rule",
			block: `test "t" {
  user   = "ann"
  query  = "COPY tickets TO STDOUT"
  denied = true
  rule   = "statement_kind"
}`,
			online:  "PASS t",
			offline: "PASS t",
		},
		{
			name: "a refusal by another firewall rule fails",
			block: `test "t" {
  user   = "ann"
  query  = "DO $$ BEGIN END $$"
  denied = true
  rule   = "statement_kind"
}`,
			online:  "FAIL t: refused by firewall rule procedural_code, expected rule statement_kind",
			offline: "FAIL t: refused by firewall rule procedural_code, expected rule statement_kind",
		},
		{
			name: "an accepted statement fails a test expecting denied",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT * FROM tickets"
  denied = true
}`,
			online:  "FAIL t: accepted, expected a refusal",
			offline: "FAIL t: accepted, expected a refusal",
		},
		{
			name: "an unparsable query is refused by rule syntax, not a configuration error",
			block: `test "t" {
  user   = "ann"
  query  = "SELEC * FROM tickets"
  denied = true
  rule   = "syntax"
}`,
			online:  "PASS t",
			offline: "PASS t",
		},
		{
			name: "an unparsable query fails a test expecting rows",
			block: `test "t" {
  user  = "ann"
  query = "SELEC 1"
  rows  = [[1]]
}`,
			online:  "FAIL t: refused by firewall rule syntax: syntax error at or near \"SELEC\"",
			offline: "FAIL t: refused by firewall rule syntax: syntax error at or near \"SELEC\"",
		},
		{
			name: "an ungoverned table is denied, but offline only the catalog knows it",
			block: `test "t" {
  user   = "boss"
  query  = "SELECT * FROM vault"
  denied = true
  rule   = "ungoverned_table"
}`,
			online:  "PASS t",
			offline: "SKIP t: no table block names vault exactly: only the live catalog knows it (needs --upstream)",
		},
		{
			name: "denied = false expects the statement to be accepted and to run",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1/0 FROM tickets"
  denied = false
}`,
			online:  "FAIL t: the statement pgveil forwards failed upstream: division by zero (SQLSTATE 22012)",
			offline: "PASS t",
		},
		{
			name: "statements other than SELECT are not run",
			block: `test "t" {
  user  = "ann"
  query = "SELECT 1; COMMIT; SELECT 2"
  rows  = [[2]]
}`,
			online: "FAIL t: pgveil test runs only SELECT statements upstream, and this one is select, transaction, select",
		},
		{
			name: "a person only the directory knows gets the roles of the groups the test gives",
			block: testLDAP + `test "t" {
  user   = "erik"
  groups = ["cn=Auditors,ou=groups,dc=example,dc=org"]
  query  = "SELECT email FROM tickets"
  masked = []
}`,
			online:  "PASS t",
			offline: "PASS t",
		},
		{
			name: "a user block with auth = ldap gets its groups' roles besides its own",
			block: testLDAP + `user "carl" {
  auth = "ldap"
}
test "t" {
  user      = "carl"
  groups    = ["cn=auditors,ou=groups,dc=example,dc=org", "cn=elsewhere,dc=example,dc=org"]
  query     = "SELECT * FROM tickets"
  row_count = 3
}`,
			online: "PASS t",
		},
		{
			name: "groups no group block maps give no access",
			block: testLDAP + `test "t" {
  user   = "erik"
  groups = ["cn=elsewhere,dc=example,dc=org"]
  query  = "SELECT 1"
  denied = true
  rule   = "no_policy"
}`,
			online:  "PASS t",
			offline: "PASS t",
		},
		{
			name: "groups for a login with a password fail the test",
			block: testLDAP + `test "t" {
  user   = "ann"
  groups = ["cn=auditors,ou=groups,dc=example,dc=org"]
  query  = "SELECT 1"
  denied = true
}`,
			online:  "FAIL t: groups: ann does not log in through the directory",
			offline: "FAIL t: groups: ann does not log in through the directory",
		},
		{
			name: "a sequence function is refused before it reaches the upstream",
			block: `test "t" {
  user  = "boss"
  query = "SELECT nextval('public.ticket_numbers')"
  rows  = [[1]]
}`,
			online: "FAIL t: refused by firewall rule sequences:",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, tests := load(t, c.block)
			on, _ := online(t, ctx, cfg)
			for _, mode := range []struct {
				name string
				env  *policytest.Env
				want string
			}{
				{"online", on, c.online},
				{"offline", policytest.Offline(cfg, []string{"public"}), c.offline},
			} {
				if mode.want == "" {
					continue
				}
				if got := mode.env.Run(ctx, tests[0]).String(tests[0].Name); !strings.HasPrefix(got, mode.want) {
					t.Errorf("%s: %q, want a line starting %q", mode.name, got, mode.want)
				}
			}
		})
	}
	t.Run("the data is untouched", func(t *testing.T) {
		cfg, tests := load(t, `test "t" {
  user      = "boss"
  query     = "SELECT * FROM tickets"
  row_count = 3
}`)
		env, _ := online(t, ctx, cfg)
		if o := env.Run(ctx, tests[0]); o.Status != policytest.Pass {
			t.Fatalf("%+v", o)
		}
	})
}

func TestRunAll(t *testing.T) {
	setupDB(t)
	ctx := testContext(t)
	const blocks = `
test "refused" {
  user   = "ann"
  query  = "COPY tickets TO STDOUT"
  denied = true
}
test "needs rows" {
  user      = "ann"
  query     = "SELECT * FROM tickets"
  row_count = 2
}
test "wrong masks" {
  user   = "boss"
  query  = "SELECT * FROM tickets"
  masked = ["public.tickets.email"]
}
`
	t.Run("offline, each outcome is reported and counted", func(t *testing.T) {
		cfg, tests := load(t, blocks)
		var lines []string
		sum := policytest.Offline(cfg, []string{"public"}).RunAll(ctx, tests, func(t *policy.Test, o policytest.Outcome) {
			lines = append(lines, string(o.Status)+" "+t.Name)
		})
		if want := "PASS refused|SKIP needs rows|FAIL wrong masks"; strings.Join(lines, "|") != want {
			t.Errorf("reported %q, want %q", lines, want)
		}
		if sum != (policytest.Summary{Passed: 1, Failed: 1, Skipped: 1}) {
			t.Errorf("summary %+v", sum)
		}
	})
	t.Run("a broken connection stops the run and fails the tests left", func(t *testing.T) {
		cfg, tests := load(t, blocks)
		env, conn := online(t, ctx, cfg)
		conn.Close(ctx)
		var lines []string
		sum := env.RunAll(ctx, tests, func(t *policy.Test, o policytest.Outcome) {
			lines = append(lines, o.String(t.Name))
		})
		if len(lines) != 2 || !strings.HasPrefix(lines[1], "FAIL needs rows: the upstream connection failed") {
			t.Errorf("reported %q", lines)
		}
		if !env.Broken() || sum != (policytest.Summary{Passed: 1, Failed: 2}) {
			t.Errorf("broken %v, summary %+v", env.Broken(), sum)
		}
	})
}
