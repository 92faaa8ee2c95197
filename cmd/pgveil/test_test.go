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
// (auditor) sees every ticket with email.
const testPolicy = `
role "clerk"   { statements = ["select"] }
role "auditor" {
  statements = ["select", "copy_out"]
  columns    = ["pii"]
}
user "ann" {
  password = "VERIFIER"
  roles    = ["clerk"]
}
user "boss" {
  password = "VERIFIER"
  roles    = ["auditor"]
}
schema "public" { default = "deny" }
table "public.tickets" {
  owner_column = "owner"
  column "email" { class = "pii" }
}
rule "own_tickets" {
  tables = ["public.tickets"]
  roles  = ["clerk"]
  scope  = "self"
}
rule "all_tickets" {
  tables = ["public.tickets"]
  roles  = ["auditor"]
  scope  = "all"
}
`

func TestTestCommandOnTheDemo(t *testing.T) {
	pgtest.Require(t, cluster)
	setupDemo(t)
	t.Run("every demo test passes against the demo database", func(t *testing.T) {
		code, out, errOut := runCLI("", "test", "--config", "../../configs/demo.hcl", "--upstream")
		if code != 0 || lastLine(out) != "18 passed, 0 failed" || errOut != "" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n")[:18] {
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
			"12 skipped: they need the live database; run pgveil test --upstream\n",
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
		if code != 0 || out != "PASS tom sees only the responses he handled\nPASS tom may not export\n2 passed, 0 failed\n" {
			t.Fatalf("exit %d\n%s", code, out)
		}
	})
	t.Run("an unknown user is a diagnostic with a suggestion once identities are loaded", func(t *testing.T) {
		dir := t.TempDir()
		demo, err := os.ReadFile("../../configs/demo.hcl")
		if err != nil {
			t.Fatal(err)
		}
		extra := "test \"a misspelt login\" {\n  user   = \"mari\"\n  query  = \"SELECT 1\"\n  denied = true\n}\n"
		for name, body := range map[string]string{"demo.hcl": string(demo), "extra.hcl": extra} {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		code, out, errOut := runCLI("", "test", "--config", dir, "--upstream", "--run", "misspelt")
		extraPath := filepath.Join(dir, "extra.hcl")
		if code != 1 || !strings.Contains(errOut, extraPath+":2:12: error: Unknown user") ||
			!strings.Contains(errOut, `Did you mean "marie"?`) ||
			!strings.Contains(out, "FAIL a misspelt login: ") || lastLine(out) != "0 passed, 1 failed" {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errOut)
		}
		code, out, _ = runCLI("", "test", "--config", dir, "--run", "misspelt")
		if code != 0 || !strings.Contains(out, `SKIP a misspelt login: no user block defines mari, identity rows may (needs --upstream); did you mean "marie"?`) {
			t.Fatalf("offline: exit %d\n%s", code, out)
		}
	})
}

func TestTestBlocks(t *testing.T) {
	pgtest.Require(t, cluster)
	setupCheckDB(t)
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
			path := checkConfig(t, checkSvc, testPolicy+c.block)
			for _, mode := range []struct {
				args []string
				want string
			}{
				{[]string{"--upstream"}, c.online},
				{nil, c.offline},
			} {
				if mode.want == "" {
					continue
				}
				code, out, errOut := runCLI("", append([]string{"test", "--config", path}, mode.args...)...)
				lines := strings.Split(strings.TrimSpace(out), "\n")
				wantCode := 0
				if strings.HasPrefix(mode.want, "FAIL") {
					wantCode = 1
				}
				if code != wantCode || !strings.HasPrefix(lines[0], mode.want) || errOut != "" {
					t.Fatalf("pgveil test %v: exit %d, want %d and a line starting %q\nstdout:\n%s\nstderr:\n%s",
						mode.args, code, wantCode, mode.want, out, errOut)
				}
				summary := map[string]string{"PASS": "1 passed, 0 failed", "FAIL": "0 passed, 1 failed", "SKIP": "0 passed, 0 failed"}[mode.want[:4]]
				if lastLine(out) != summary {
					t.Fatalf("pgveil test %v: summary %q, want %q", mode.args, lastLine(out), summary)
				}
			}
		})
	}
	t.Run("the data is untouched", func(t *testing.T) {
		path := checkConfig(t, checkSvc, testPolicy+`test "t" {
  user      = "boss"
  query     = "SELECT * FROM tickets"
  row_count = 3
}`)
		if code, out, errOut := runCLI("", "test", "--config", path, "--upstream"); code != 0 {
			t.Fatalf("exit %d\n%s%s", code, out, errOut)
		}
	})
}

func TestTestBlockMistakes(t *testing.T) {
	t.Setenv("PGVEIL_TEST_SVC_PW", "x")
	cases := []struct {
		name  string
		block string
		want  []string
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
			want: []string{"PATH:4:13: error: Column never masked", `Did you mean "public.tickets.email"?`},
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
