package policy

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
)

// mistakesBase is a valid configuration the cases of
// TestCommonMistakesArePointedAt change one line of.
const mistakesBase = `listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
  password = env("PGVEIL_UPSTREAM_PASSWORD")
}
table "public.responses" {
  owner_column = "agent_login"
  column "email" {
    class = "pii"
    mask  = "partial"
  }
}
role "country_analyst" { statements = ["select"] }
rule "france_only" {
  tables = ["public.responses"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
user "marie" {
  password   = "VERIFIER"
  roles      = ["country_analyst"]
  attributes = { country = "France" }
}
`

// TestCommonMistakesArePointedAt holds the diagnostics of the mistakes a
// DBA makes most, offline: each gives the file:line:col of the mistake,
// and a "Did you mean" where a defined name is close.
func TestCommonMistakesArePointedAt(t *testing.T) {
	for _, c := range []struct {
		name, old, new string
		// want are texts the printed diagnostics hold, wantNot texts
		// they do not.
		want, wantNot []string
	}{
		{
			name: "a misspelt table in a rule suggests the governed table",
			old:  `tables = ["public.responses"]`, new: `tables = ["public.respones"]`,
			want: []string{"pgveil.hcl:17:13: error: Ungoverned table",
				`The table block "public.responses" (at pgveil.hcl:8:1), which no rule names, is close: ` +
					`if the table is "public.responses", write that here; if it is "public.respones", correct the block's label.`},
		},
		{
			name: "a misspelt table in a rule beside another rule naming the table suggests it",
			old:  "tables = [\"public.responses\"]\n  roles  = [\"country_analyst\"]\n  where  = \"country = me.country\"\n}",
			new: "tables = [\"public.respones\"]\n  roles  = [\"country_analyst\"]\n  where  = \"country = me.country\"\n}\n" +
				"rule \"all\" {\n  tables = [\"public.responses\"]\n  roles = [\"country_analyst\"]\n  where = \"true\"\n}",
			want:    []string{"pgveil.hcl:17:13: error: Ungoverned table", `Did you mean "public.responses"?`},
			wantNot: []string{"which no rule names"},
		},
		{
			name: "a partition named in a rule is told to name its partitioned table",
			old:  `tables = ["public.responses"]`, new: `tables = ["public.responses_2026_11"]`,
			want: []string{"pgveil.hcl:17:13: error: Ungoverned table",
				`If public.responses_2026_11 is a partition of public.responses, name the partitioned table here: write "public.responses".`},
			wantNot: []string{`Add table "public.responses_2026_11"`, "Did you mean"},
		},
		{
			name:    "a partition named in a rule beside another partition's block is not pointed at that partition",
			old:     "rule \"france_only\" {\n  tables = [\"public.responses\"]",
			new:     "table \"public.responses_2026_10\" {}\nrule \"france_only\" {\n  tables = [\"public.responses_2026_11\"]",
			want:    []string{"Ungoverned table", `write "public.responses"`},
			wantNot: []string{`Did you mean "public.responses_2026_10"`},
		},
		{
			name: "a column named user written unquoted is told to be quoted",
			old:  `where  = "country = me.country"`, new: `where  = "user = me.login"`,
			want: []string{"pgveil.hcl:19:13: error: Session user in policy expression", `A column named user must be quoted: "user".`},
		},
		{
			name: "a misspelt table block label is pointed at from the rule naming the table",
			old:  `table "public.responses" {`, new: `table "public.response" {`,
			want: []string{"pgveil.hcl:17:13: error: Ungoverned table",
				`The table block "public.response" (at pgveil.hcl:8:1), which no rule names, is close: ` +
					`if the table is "public.response", write that here; if it is "public.responses", correct the block's label.`},
			wantNot: []string{`Did you mean "public.response"?`},
		},
		{
			name: "a role typo in a user suggests the role",
			old:  `roles      = ["country_analyst"]`, new: `roles      = ["country_analysts"]`,
			want: []string{"pgveil.hcl:23:17: error: Unknown role", `Did you mean "country_analyst"?`},
		},
		{
			name: "an unknown mask kind suggests the kind",
			old:  `mask  = "partial"`, new: `mask  = "partail"`,
			want: []string{"pgveil.hcl:12:13: error: Invalid mask kind", `Did you mean "partial"?`},
		},
		{
			name: "a duplicate rule name points at both rules",
			old:  `user "marie" {`, new: "rule \"france_only\" {\n  tables = [\"public.responses\"]\n  roles = [\"country_analyst\"]\n  where = \"true\"\n}\nuser \"marie\" {",
			want: []string{"pgveil.hcl:21:1: error: Duplicate rule", "already defined at pgveil.hcl:16:1"},
		},
		{
			name: "a where reading another table's column says to use a subquery",
			old:  `where  = "country = me.country"`, new: `where  = "countries.name = me.country"`,
			want: []string{"pgveil.hcl:19:13: error: Qualified column in policy expression", "only be read in a subquery"},
		},
		{
			name: "a role without a ceiling lifts the ceiling of a user's other role",
			old:  `user "marie" {`,
			new: `role "agent" {
  statements = ["select"]
  scope      = "self"
}
rule "handled" {
  tables = ["public.responses"]
  roles  = ["agent"]
  where  = "true"
}
user "tom" {
  password = "VERIFIER"
  roles    = ["agent", "country_analyst"]
}
user "marie" {`,
			want: []string{"pgveil.hcl:32:24: warning: Ceiling lifted",
				`User "tom" holds role "country_analyst", whose scope is "all", and role "agent", whose scope is "self"`,
				`rule handled`},
		},
		{
			name: "a rule granting a role whose ceiling needs a column the table lacks is pointed at",
			old:  `user "marie" {`,
			new: `role "lead" {
  statements = ["select"]
  scope      = "own_team"
}
rule "team_rows" {
  tables = ["public.responses"]
  roles  = ["lead"]
  where  = "true"
}
user "marie" {`,
			want: []string{"pgveil.hcl:27:13: warning: Ceiling grants no row",
				`Rule "team_rows" grants role "lead" rows of public.responses, but the role's ceiling scope = "own_team" needs the team of each row, and the table block "public.responses" (at pgveil.hcl:8:1) has no team_column`},
		},
		{
			name: "a rule granting a role whose ceiling is none is pointed at",
			old:  `user "marie" {`,
			new: `role "council" {
  statements = ["select"]
  scope      = "none"
}
rule "council_rows" {
  tables = ["public.responses"]
  roles  = ["council"]
  where  = "true"
}
user "marie" {`,
			want: []string{"pgveil.hcl:27:13: warning: Ceiling grants no row",
				`Rule "council_rows" grants role "council" rows of public.responses, but the role's ceiling scope = "none" grants no row of a table without reference = true`,
				`or reference = true on the table block "public.responses" (at pgveil.hcl:8:1)`},
		},
		{
			name: "a role that may write a table the policy reads is told its writes are refused",
			old:  `role "country_analyst" { statements = ["select"] }`,
			new: `role "country_analyst" { statements = ["select", "update"] }
table "public.surveys" {}
rule "surveys_answered" {
  tables = ["public.surveys"]
  roles  = ["country_analyst"]
  where  = "id IN (SELECT r.survey_id FROM public.responses r WHERE r.country = me.country)"
}`,
			want: []string{"pgveil.hcl:23:13: warning: Writes refused",
				`Rule "france_only" grants role "country_analyst" rows of public.responses, and the role lists update, but a rule's or a mask's subquery reads public.responses`},
		},
		{
			name: "a rule reading a column its role sees masked points at the column",
			old:  `where  = "country = me.country"`, new: `where  = "country = me.country AND email LIKE '%@acme.com'"`,
			want: []string{"pgveil.hcl:19:38: warning: Rule reads a masked column",
				`Rule "france_only" reads email of public.responses, which role "country_analyst" sees masked (class "pii")`},
		},
		{
			name: "a where comparing a column with itself suggests the attribute",
			old:  `where  = "country = me.country"`, new: `where  = "country = country"`,
			want: []string{"pgveil.hcl:19:13: warning: Column compared with itself",
				`Rule "france_only" compares country with itself, which is true on every row where it is not NULL`,
				`Did you mean me.country?`},
		},
		{
			name: "an attribute in a LIKE pattern is pointed at",
			old:  `where  = "country = me.country"`, new: `where  = "country LIKE me.country || '%'"`,
			want: []string{"pgveil.hcl:19:26: warning: Attribute in a pattern",
				`Rule "france_only" builds a LIKE pattern from me.country: a value holding % or _ matches more than itself, and an empty one matches every row`},
		},
		{
			name: "a time window of days after now() is pointed at",
			old:  `where  = "country = me.country"`, new: `where  = "country = me.country AND submitted_at > now() - interval '90 days'"`,
			want: []string{"pgveil.hcl:19:12: warning: Time window follows the session's TimeZone",
				`Rule "france_only" adds interval '90 days' to now()`, `interval '2160 hours'`},
		},
		{
			name: "a mask reading another classified column is refused, pointed at",
			old:  `column "email" {`, new: `column "contact" {
    class      = "pii"
    mask       = "expression"
    expression = "left(email, 3)"
  }
  column "email" {`,
			want: []string{"pgveil.hcl:13:24: error: Mask reads a classified column",
				`The mask of column contact of public.responses reads column email, which is classified too (class "pii"`},
		},
		{
			name: "a where that is not SQL points into the string",
			old:  `where  = "country = me.country"`, new: `where  = "country = = me.country"`,
			want: []string{"pgveil.hcl:19:23: error:"},
		},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
			src := strings.ReplaceAll(mistakesBase, "VERIFIER", testVerifier)
			if !strings.Contains(src, c.old) {
				t.Fatalf("the base has no %q", c.old)
			}
			src = strings.Replace(src, c.old, c.new, 1)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(src))
			t.Chdir(dir)
			l := NewLoader()
			_, diags := l.Load("pgveil.hcl")
			var out bytes.Buffer
			if err := WriteDiagnostics(&out, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(strings.Fields(out.String()), " ")
			for _, w := range c.want {
				if !strings.Contains(got, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("diagnostics lack %q:\n%s", w, out.String())
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(got, strings.Join(strings.Fields(w), " ")) {
					t.Errorf("diagnostics hold %q:\n%s", w, out.String())
				}
			}
		})
	}
	t.Run("the base configuration is valid", func(t *testing.T) {
		t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
		path := filepath.Join(t.TempDir(), "pgveil.hcl")
		writeFile(t, path, []byte(strings.ReplaceAll(mistakesBase, "VERIFIER", testVerifier)))
		if _, diags := Load(path); diags.HasErrors() {
			t.Fatal(diags)
		}
	})
}

// TestDiagnosticsAreInert: a diagnostic quotes what the database holds
// (a column's name, chosen by whoever may create a table there) and what
// the file holds; a DBA reads them in a terminal, which must print them,
// not act on them.
func TestDiagnosticsAreInert(t *testing.T) {
	src := []byte("table \"public.t\" {\n\towner_column = \"x\x1b]0;title\x07\"\n}\n")
	f, _ := hclsyntax.ParseConfig(src, "evil.hcl", hcl.InitialPos)
	rng := hcl.Range{Filename: "evil.hcl", Start: hcl.Pos{Line: 2, Column: 17}, End: hcl.Pos{Line: 2, Column: 30}}
	diags := hcl.Diagnostics{{
		Severity: hcl.DiagError, Summary: "Unknown column\x1b[2J", Subject: &rng,
		Detail: "public.t has no such column. Its columns are q\x1b[7mINV\x1b[0m, y\u202e.\nSecond line.",
	}}
	var out bytes.Buffer
	if err := WriteDiagnostics(&out, map[string]*hcl.File{"evil.hcl": f}, diags); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	if strings.ContainsAny(got, "\x1b\x07\u202e") {
		t.Errorf("raw controls in the diagnostics:\n%q", got)
	}
	for _, want := range []string{`Unknown column\u001b[2J`, `q\u001b[7mINV\u001b[0m,`, `y\u202e.`, "\n  Second line.", "\towner_column", `x\u001b]0;title\u0007`} {
		if !strings.Contains(got, want) {
			t.Errorf("the diagnostics lack %q:\n%s", want, got)
		}
	}
}

// TestLDAPGroupLiftingACeilingIsAWarning: an ldap group block giving a
// role with scope "all" and a bounded role lifts the latter's ceiling for
// every member, as a user block would.
func TestLDAPGroupLiftingACeilingIsAWarning(t *testing.T) {
	t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
	src := strings.ReplaceAll(mistakesBase, "VERIFIER", testVerifier) + `
role "agent" {
  statements = ["select"]
  scope      = "self"
}
rule "handled" {
  tables = ["public.responses"]
  roles  = ["agent"]
  where  = "true"
}
ldap {
  url             = "ldaps://ldap.example.org"
  base_dn         = "ou=people,dc=example,dc=org"
  search_filter   = "(uid=$username)"
  bind_dn         = "cn=pgveil,dc=example,dc=org"
  bind_password   = env("PGVEIL_UPSTREAM_PASSWORD")
  member_of_attribute = "memberOf"

  group "cn=support,ou=groups,dc=example,dc=org" {
    roles = ["agent", "country_analyst"]
  }
}
`
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(src))
	t.Chdir(dir)
	l := NewLoader()
	_, diags := l.Load("pgveil.hcl")
	var out bytes.Buffer
	if err := WriteDiagnostics(&out, l.Files(), diags); err != nil {
		t.Fatal(err)
	}
	got := strings.Join(strings.Fields(out.String()), " ")
	want := `LDAP group "cn=support,ou=groups,dc=example,dc=org" gives role "country_analyst", whose scope is "all", and role "agent", whose scope is "self"`
	if !strings.Contains(got, "pgveil.hcl:45:23: warning: Ceiling lifted") || !strings.Contains(got, want) ||
		!strings.Contains(got, "what its rules grant its members (rule handled)") {
		t.Errorf("diagnostics lack %q:\n%s", want, out.String())
	}
}

func TestTimeWindowsFollowingTheTimeZoneAreWarnedOf(t *testing.T) {
	for _, c := range []struct {
		where string
		warn  bool
	}{
		{"submitted_at > now() - interval '90 days'", true},
		{"submitted_at > CURRENT_TIMESTAMP - '3 mons'::interval", true},
		{"submitted_at > now() - interval '1 year 2 hours'", true},
		{"submitted_at > interval 'P2W' + pg_catalog.now()", true},
		{"submitted_at > now() - interval '90' day", true},
		{"submitted_at > now() - interval '2160 hours'", false},
		{"submitted_at > now() - interval '30 minutes'", false},
		{"submitted_at > now() - interval 'PT36H'", false},
		{"submitted_at > now() - '01:30:00'::interval", false},
		{"submitted_at > '2025-03-02 10:00:00+00'::timestamptz - interval '1 day'", false},
	} {
		name := "a window of " + c.where + " is left alone"
		if c.warn {
			name = "a window of " + c.where + " is warned of"
		}
		t.Run(name, func(t *testing.T) {
			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
			src := strings.ReplaceAll(mistakesBase, "VERIFIER", testVerifier)
			src = strings.Replace(src, `where  = "country = me.country"`, `where  = "country = me.country AND `+c.where+`"`, 1)
			path := filepath.Join(t.TempDir(), "pgveil.hcl")
			writeFile(t, path, []byte(src))
			_, diags := NewLoader().Load(path)
			if diags.HasErrors() {
				t.Fatalf("errors: %s", diags.Error())
			}
			got := false
			for _, d := range diags {
				got = got || d.Summary == "Time window follows the session's TimeZone"
			}
			if got != c.warn {
				t.Fatalf("warned %v, want %v: %s", got, c.warn, diags.Error())
			}
		})
	}
}

// TestLDAPGroupsTogetherLiftingACeilingAreAWarning: a person's roles are
// the union of her groups', known only at her login; a group giving a
// role that only unmasks columns (scope "all" by default) lifts the
// ceiling another group's role keeps, for the members of both.
func TestLDAPGroupsTogetherLiftingACeilingAreAWarning(t *testing.T) {
	const base = `
role "manager" {
  statements = ["select"]
  scope      = "own_team"
}
role "pii" {
  columns = ["pii"]
  SCOPE
}
rule "detractors" {
  tables = ["public.responses"]
  roles  = ["manager"]
  RULE
}
ldap {
  url             = "ldaps://ldap.example.org"
  base_dn         = "ou=people,dc=example,dc=org"
  bind_dn         = "cn=pgveil,dc=example,dc=org"
  bind_password   = env("PGVEIL_UPSTREAM_PASSWORD")
  member_of_attribute = "memberOf"

  group "cn=managers,ou=groups,dc=example,dc=org" { roles = ["manager"] }
  group "cn=pii,ou=groups,dc=example,dc=org"      { roles = ["pii"] }
}
`
	for _, c := range []struct {
		name, scope, rule string
		warn              bool
	}{
		{"a columns-only role with the default scope lifting a manager's ceiling is warned of", "", `where = "nps <= 6"`, true},
		{"a columns-only role with scope none is left alone", `scope = "none"`, `where = "nps <= 6"`, false},
		{"a rule whose scope is the ceiling itself is left alone", "", `scope = "own_team"`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
			src := strings.ReplaceAll(mistakesBase, "VERIFIER", testVerifier) +
				strings.NewReplacer("SCOPE", c.scope, "RULE", c.rule).Replace(base)
			src = strings.Replace(src, `table "public.responses" {`, `table "public.responses" {
  team_column = "team_id"`, 1)
			dir := t.TempDir()
			writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(src))
			t.Chdir(dir)
			l := NewLoader()
			_, diags := l.Load("pgveil.hcl")
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			var out bytes.Buffer
			if err := WriteDiagnostics(&out, l.Files(), diags); err != nil {
				t.Fatal(err)
			}
			got := strings.Join(strings.Fields(out.String()), " ")
			want := `A member of LDAP groups "cn=pii,ou=groups,dc=example,dc=org" and "cn=managers,ou=groups,dc=example,dc=org" holds role "pii", whose scope is "all", and role "manager", whose scope is "own_team"`
			if strings.Contains(got, want) != c.warn {
				t.Errorf("warning %q given: %v, want %v:\n%s", want, !c.warn, c.warn, out.String())
			}
		})
	}
}
