package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// lastLine returns the last non-empty line of out.
func lastLine(out string) string {
	lines := strings.Split(strings.TrimSpace(out), "\n")
	return lines[len(lines)-1]
}

// testPolicy is the policy of the test-block cases, over checkDB's
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

func TestTestCommandOnTheDemo(t *testing.T) {
	pgtest.Require(t, cluster)
	setupDemo(t)
	t.Run("every demo test passes against the demo database", func(t *testing.T) {
		code, out, errOut := runCLI("", "test", "--config", "../../configs/demo.hcl", "--upstream")
		if code != 0 || lastLine(out) != "21 passed, 0 failed" || errOut != "" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[:21] {
			if !strings.HasPrefix(line, "PASS ") {
				t.Errorf("not a PASS line: %q", line)
			}
		}
	})
	t.Run("offline, refusals and masks are checked and the rest is skipped", func(t *testing.T) {
		code, out, errOut := runCLI("", "test", "--config", "../../configs/demo.hcl")
		for _, want := range []string{
			"PASS marie sees neither personal data nor the score\n",
			"PASS tom may not export\n",
			"PASS procedural code is refused\n",
			"SKIP marie sees French responses only: comparing rows needs --upstream",
			"SKIP employees are denied to everyone: no table block names employees exactly",
			"15 skipped: they need the live database; run pgveil test --upstream\n",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q", want)
			}
		}
		if code != 0 || lastLine(out) != "6 passed, 0 failed" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
	t.Run("--run selects tests by name", func(t *testing.T) {
		code, out, _ := runCLI("", "test", "--config", "../../configs/demo.hcl", "--upstream", "--run", "^tom ")
		if code != 0 || out != "PASS tom sees only the responses he handled\nPASS tom may not export\nPASS tom sees the notes on his responses, his colleagues' included\n3 passed, 0 failed\n" {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("an unknown user or relation is a diagnostic with a suggestion once identities and the catalog are loaded", func(t *testing.T) {
		dir := t.TempDir()
		demo, err := os.ReadFile("../../configs/demo.hcl")
		if err != nil {
			t.Fatal(err)
		}
		extra := "test \"a misspelt login\" {\n  user   = \"mari\"\n  query  = \"SELECT 1\"\n  denied = true\n}\n"
		// A relation the catalog does not hold, near one it does; and one
		// a test expects refused, which passes without a diagnostic.
		extra += "test \"a misspelt relation\" {\n  user   = \"marie\"\n  query  = \"SELECT id FROM respones\"\n  masked = []\n}\n"
		extra += "test \"a misspelt relation refused\" {\n  user   = \"marie\"\n  query  = \"SELECT id FROM respones\"\n  denied = true\n}\n"
		for name, body := range map[string]string{"demo.hcl": string(demo), "extra.hcl": extra} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, out, errOut := runCLI("", "test", "--config", dir, "--upstream", "--run", "misspelt login")
		extraPath := filepath.Join(dir, "extra.hcl")
		if code != 1 || !strings.Contains(errOut, extraPath+":2:12: error: Unknown user") ||
			!strings.Contains(errOut, `Did you mean "marie"?`) ||
			!strings.Contains(out, "FAIL a misspelt login: ") || lastLine(out) != "0 passed, 1 failed" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		code, out, _ = runCLI("", "test", "--config", dir, "--run", "misspelt login")
		if code != 0 || !strings.Contains(out, `SKIP a misspelt login: no user block defines mari, identity rows may (needs --upstream); did you mean "marie"?`) {
			t.Fatalf("offline: exit %d\n%s", code, out)
		}
		code, out, errOut = runCLI("", "test", "--config", dir, "--upstream", "--run", "misspelt relation")
		flat := strings.Join(strings.Fields(errOut), " ")
		if code != 1 || !strings.Contains(flat, extraPath+":8:12: error: Unknown relation") ||
			!strings.Contains(flat, `Test "a misspelt relation"'s query names respones, which the catalog does not hold. Did you mean "responses"?`) ||
			strings.Contains(flat, `"a misspelt relation refused"`) ||
			!strings.Contains(out, "FAIL a misspelt relation: ") || lastLine(out) != "1 passed, 1 failed" {
			t.Fatalf("relation: exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
	})
}

func TestTestCommandSuggestsARelation(t *testing.T) {
	t.Setenv("PGVEIL_TEST_SVC_PW", "x")
	cases := []struct {
		name, query string
		// want is what stderr must hold, nothing when empty.
		want []string
	}{
		{"a near miss of a table block's relation is a warning with a suggestion", "SELECT id FROM tickts",
			[]string{"PATH:3:12: warning: Unknown relation", `Test "t"'s query names tickts, which no table block names exactly. Did you mean "tickets"?`}},
		{"a qualified near miss is suggested qualified", "SELECT id FROM public.tikcets",
			[]string{"PATH:3:12: warning: Unknown relation", `Did you mean "public.tickets"?`}},
		{"a relation far from every table block's is no diagnostic", "SELECT id FROM employees", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			block := "test \"t\" {\n  user   = \"ann\"\n  query  = \"" + c.query + "\"\n  masked = []\n}\n"
			path := writeConfig(t, block+testPolicyTail)
			code, out, errOut := runCLI("", "test", "--config", path)
			if code != 0 || !strings.HasPrefix(out, "SKIP t: no table block names") {
				t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
			}
			flat := strings.Join(strings.Fields(errOut), " ")
			for _, w := range c.want {
				if w = strings.ReplaceAll(w, "PATH", path); !strings.Contains(flat, w) {
					t.Fatalf("stderr lacks %q\nstderr:\n%s", w, errOut)
				}
			}
			if c.want == nil && errOut != "" {
				t.Fatalf("want no diagnostic, stderr:\n%s", errOut)
			}
		})
	}
}

func TestTestBlockMistakes(t *testing.T) {
	t.Setenv("PGVEIL_TEST_SVC_PW", "x")
	cases := []struct {
		name  string
		block string
		want  []string
		// wantNot is what stderr must not hold.
		wantNot []string
	}{
		{
			name: "an unknown user is an error with a suggestion",
			block: `test "t" {
  user   = "anne"
  query  = "SELECT 1"
  denied = true
}`,
			want: []string{"PATH:2:12: error: Unknown user", `Did you mean "ann"?`},
		},
		{
			name: "groups without an ldap block are an error",
			block: `test "t" {
  user   = "ann"
  groups = ["cn=auditors,dc=example,dc=org"]
  query  = "SELECT 1"
  denied = true
}`,
			want: []string{"PATH:3:12: error: Setting without effect", "the configuration has no ldap block"},
		},
		{
			name:  "a test without expectation is an error",
			block: "test \"t\" {\n  user  = \"ann\"\n  query = \"SELECT 1\"\n}",
			want:  []string{"PATH:1:1: error: Test without expectation"},
		},
		{
			name: "denied with rows is a conflict",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1"
  rows   = [[1]]
  denied = true
}`,
			want: []string{"PATH:4:12: error: Conflicting expectations"},
		},
		{
			name: "rows with row_count is a conflict",
			block: `test "t" {
  user      = "ann"
  query     = "SELECT 1"
  rows      = [[1]]
  row_count = 1
}`,
			want: []string{"PATH:5:15: error: Conflicting expectations"},
		},
		{
			name: "a rule without denied = true has no effect",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1"
  masked = []
  rule   = "syntax"
}`,
			want: []string{"PATH:5:12: error: Setting without effect", "it needs denied = true"},
		},
		{
			name: "an unknown firewall rule is an error with a suggestion",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1"
  denied = true
  rule   = "ungoverned_tabel"
}`,
			want: []string{"PATH:5:12: error: Unknown firewall rule", `Did you mean "ungoverned_table"?`},
		},
		{
			name: "unordered without rows has no effect",
			block: `test "t" {
  user      = "ann"
  query     = "SELECT 1"
  row_count = 1
  unordered = true
}`,
			want: []string{"PATH:5:15: error: Setting without effect"},
		},
		{
			name: "a masked column no column block classifies is an error with a suggestion",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1"
  masked = ["public.tickets.emial"]
}`,
			want: []string{"PATH:4:13: error: Column never masked", `The table block "public.tickets" classifies a column "email"`,
				`write "public.tickets.email" here`},
		},
		{
			name: "a masked column the table block misspells is not suggested in the misspelt form alone",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1"
  masked = ["public.orders.customer_email"]
}
table "public.orders" {
  column "custmer_email" { class = "pii" }
}`,
			want: []string{"PATH:4:13: error: Column never masked", `classifies a column "custmer_email" (at PATH:7:3)`,
				`if the table's column is customer_email, fix the column block`},
			wantNot: []string{`Did you mean "public.orders.custmer_email"?`},
		},
		{
			name: "a masked column that is not schema.table.column is an error",
			block: `test "t" {
  user   = "ann"
  query  = "SELECT 1"
  masked = ["email"]
}`,
			want: []string{"PATH:4:13: error: Invalid column name"},
		},
		{
			name: "a boolean in rows is an error",
			block: `test "t" {
  user  = "ann"
  query = "SELECT true"
  rows  = [[true]]
}`,
			want: []string{"PATH:4:13: error: Incorrect attribute value type", `"t" or "f"`},
		},
		{
			name: "a negative row_count is an error",
			block: `test "t" {
  user      = "ann"
  query     = "SELECT 1"
  row_count = -1
}`,
			want: []string{"PATH:4:15: error: Invalid value"},
		},
		{
			name: "an empty query is an error",
			block: `test "t" {
  user   = "ann"
  query  = ""
  denied = true
}`,
			want: []string{"PATH:3:12: error: Invalid value"},
		},
		{
			name:  "two tests of one name are an error",
			block: "test \"t\" {\n  user = \"ann\"\n  query = \"SELECT 1\"\n  denied = true\n}\ntest \"t\" {\n  user = \"ann\"\n  query = \"SELECT 1\"\n  denied = true\n}",
			want:  []string{"PATH:6:1: error: Duplicate test"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.block+testPolicyTail)
			for _, cmd := range []string{"test", "check"} {
				code, out, errOut := runCLI("", cmd, "--config", path)
				flat := strings.Join(strings.Fields(errOut), " ")
				for _, w := range c.want {
					if w = strings.ReplaceAll(w, "PATH", path); code != 1 || !strings.Contains(flat, w) {
						t.Fatalf("pgveil %s: exit %d, stderr lacks %q\nstdout:\n%s\nstderr:\n%s", cmd, code, w, out, errOut)
					}
				}
				for _, w := range c.wantNot {
					if w = strings.ReplaceAll(w, "PATH", path); strings.Contains(flat, w) {
						t.Fatalf("pgveil %s: stderr holds %q\nstderr:\n%s", cmd, w, errOut)
					}
				}
			}
		})
	}
}

// testPolicyTail is testPolicy with listen and upstream blocks, written
// after a test block so that the block's line numbers are the file's.
var testPolicyTail = strings.ReplaceAll(testPolicy, "VERIFIER", verifier) + `
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "db"
  user     = "svc"
  password = env("PGVEIL_TEST_SVC_PW")
}
`

// directoryTail is an ldap block whose one group gives the role
// clerk, and a user block of a person who logs in through it.
const directoryTail = `
ldap {
  url             = "ldap://127.0.0.1:1"
  base_dn         = "dc=example,dc=org"
  allow_cleartext = true
  group "cn=analysts,dc=example,dc=org" { roles = ["clerk"] }
}
user "dir" {
  auth = "ldap"
}
`

func TestTestBlockDeniedWithoutRole(t *testing.T) {
	t.Setenv("PGVEIL_TEST_SVC_PW", "x")
	const nobody = "\nuser \"nobody\" {\n  password = \"VERIFIER\"\n}\n"
	for _, c := range []struct {
		name, block string
		warns       bool
	}{
		{"a denied test of a user with no role, without rule, is warned of at denied", "test \"t\" {\n  user   = \"nobody\"\n  query  = \"SELECT 1\"\n  denied = true\n}", true},
		{"one naming its rule is not", "test \"t\" {\n  user   = \"nobody\"\n  query  = \"SELECT 1\"\n  denied = true\n  rule   = \"no_policy\"\n}", false},
		{"one of a user with a role is not", "test \"t\" {\n  user   = \"ann\"\n  query  = \"SELECT 1\"\n  denied = true\n}", false},
		{"one giving the user directory groups is not: their group blocks may give roles", "test \"t\" {\n  user   = \"dir\"\n  query  = \"SELECT 1\"\n  denied = true\n  groups = [\"cn=analysts,dc=example,dc=org\"]\n}", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := writeConfig(t, c.block+strings.ReplaceAll(nobody, "VERIFIER", verifier)+testPolicyTail+directoryTail)
			code, out, errOut := runCLI("", "check", "--config", path)
			flat := strings.Join(strings.Fields(errOut), " ")
			want := path + ":4:12: warning: Test passes for any statement"
			if code != 0 || strings.Contains(flat, want) != c.warns || c.warns && !strings.Contains(flat, `write rule = "…"`) {
				t.Fatalf("exit %d, warning %q expected %v\nstdout:\n%s\nstderr:\n%s", code, want, c.warns, out, errOut)
			}
		})
	}
}
