package policy

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// testVerifier is a valid SCRAM verifier for test users.
const testVerifier = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="

// writePolicy writes the listen and upstream blocks followed by policy,
// in which VERIFIER stands for testVerifier, to a file and returns its
// path.
func writePolicy(t *testing.T, policy string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	writeFile(t, path, []byte(`
listen {
  address = "127.0.0.1:6432"
}
upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
`+strings.ReplaceAll(policy, "VERIFIER", testVerifier)))
	return path
}

// loadPolicy loads the listen and upstream blocks followed by policy, in
// which VERIFIER stands for testVerifier, and fails t on errors.
func loadPolicy(t *testing.T, policy string) *Config {
	t.Helper()
	path := writePolicy(t, policy)
	l := NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var out strings.Builder
		_ = WriteDiagnostics(&out, l.Files(), diags)
		t.Fatalf("loading the policy:\n%s", out.String())
	}
	return cfg
}

// compile loads policy and compiles login with HCL identities.
func compile(t *testing.T, policy, login string) *UserPolicy {
	t.Helper()
	cfg := loadPolicy(t, policy)
	p, err := cfg.compile(login, cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// responses is the relation most tests govern.
var responses = relation("public", "responses", []string{"id", "country", "email", "score", "agent_login", "team_id", "comment"})

// relation returns a catalog relation with the named columns.
func relation(schema, name string, columns []string, ancestors ...rewrite.QName) *rewrite.Relation {
	r := &rewrite.Relation{QName: rewrite.QName{Schema: schema, Name: name}, Ancestors: ancestors}
	for _, c := range columns {
		r.Columns = append(r.Columns, rewrite.Column{Name: c})
	}
	return r
}

// modeName names an access mode in expected strings.
func modeName(m rewrite.AccessMode) string {
	return map[rewrite.AccessMode]string{rewrite.Denied: "denied", rewrite.Open: "open", rewrite.Governed: "governed"}[m]
}

// accessSQL renders acc for rel as the statement the rewriter would
// build around it: SELECT <columns or masks> FROM rel WHERE <filter>. A
// denied or open relation renders as its mode and reason.
func accessSQL(t *testing.T, rel *rewrite.Relation, acc rewrite.Access) string {
	t.Helper()
	if acc.Mode != rewrite.Governed {
		return modeName(acc.Mode) + ": " + acc.Reason
	}
	var targets []*pg_query.Node
	for _, c := range rel.Columns {
		if m, ok := acc.Masks[c.Name]; ok {
			targets = append(targets, pg_query.MakeResTargetNodeWithNameAndVal(c.Name, m, -1))
		} else {
			targets = append(targets, pg_query.MakeResTargetNodeWithVal(columnRef(c.Name), -1))
		}
	}
	stmt := selectOf(targets...)
	stmt.GetSelectStmt().FromClause = []*pg_query.Node{rangeVar(rel.QName)}
	stmt.GetSelectStmt().WhereClause = acc.Filter
	sql, err := deparseStmt(stmt)
	if err != nil {
		t.Fatalf("deparsing: %v", err)
	}
	// NOTE: what the rewriter sends must parse again, to the same text.
	if again, err := pg_query.Parse(sql); err != nil {
		t.Fatalf("deparsed SQL does not parse: %v\n%s", err, sql)
	} else if s, _ := pg_query.Deparse(again); s != sql {
		t.Fatalf("deparsed SQL is not stable:\n%s\n%s", sql, s)
	}
	return sql
}

// whereOf returns the WHERE clause of accessSQL, "" without one.
func whereOf(t *testing.T, rel *rewrite.Relation, acc rewrite.Access) string {
	t.Helper()
	sql := accessSQL(t, rel, acc)
	if acc.Mode != rewrite.Governed {
		return sql
	}
	_, where, _ := strings.Cut(sql, " WHERE ")
	return where
}

// users is the user blocks most tests use.
const users = `
user "marie" {
  password   = "VERIFIER"
  roles      = ["analyst"]
  team       = 2
  groups     = ["vendor_a"]
  attributes = { country = "France", regions = ["north", "south"] }
}
user "paul" {
  password = "VERIFIER"
  roles    = ["manager"]
  team     = 7
  groups   = ["vendor_a", "vendor_b"]
}
user "tom" {
  password = "VERIFIER"
  roles    = ["agent"]
  groups   = ["vendor_b"]
}
role "analyst" {
  statements = ["select"]
}
role "manager" {
  statements = ["select", "insert"]
}
role "agent" {
  statements = ["select"]
}
table "public.responses" {
  owner_column = "agent_login"
  team_column  = "team_id"
}
`

func TestCompileCombinesRules(t *testing.T) {
	cases := []struct {
		name, policy, login, where string
		rules                      []string
	}{
		{
			name: "permissive rules are OR-ed",
			policy: users + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}
rule "b" {
  tables = ["public.responses"]
  users  = ["marie"]
  where  = "score > 50"
}`,
			login: "marie",
			where: "country OPERATOR(pg_catalog.=) 'France' OR score OPERATOR(pg_catalog.>) 50",
			rules: []string{"a", "b"},
		},
		{
			name: "restrictive rules are AND-ed with the permissive ones",
			policy: users + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}
rule "b" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "score > 50"
}
rule "r1" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "comment IS NOT NULL"
}
rule "r2" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "id < 1000"
}`,
			login: "marie",
			where: "(country OPERATOR(pg_catalog.=) 'France' OR score OPERATOR(pg_catalog.>) 50) AND comment IS NOT NULL AND id OPERATOR(pg_catalog.<) 1000",
			rules: []string{"a", "b", "r1", "r2"},
		},
		{
			name: "restrictive rules alone give no row",
			policy: users + `
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "id < 1000"
}`,
			login: "marie",
			where: "false",
			rules: []string{"r"},
		},
		{
			name:   "no rule gives no row, not a denial",
			policy: users,
			login:  "marie",
			where:  "false",
		},
		{
			name: "a disabled rule is ignored",
			policy: users + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}
rule "off" {
  tables  = ["public.responses"]
  roles   = ["analyst"]
  scope   = "all"
  enabled = false
}`,
			login: "marie",
			where: "country OPERATOR(pg_catalog.=) 'France'",
			rules: []string{"a"},
		},
		{
			name: "a rule for other roles and users does not apply",
			policy: users + `
rule "managers" {
  tables = ["public.responses"]
  roles  = ["manager"]
  users  = ["tom"]
  scope  = "all"
}`,
			login: "marie",
			where: "false",
		},
		{
			name: "scope all gives every row",
			policy: users + `
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}`,
			login: "marie",
			where: "",
			rules: []string{"all"},
		},
		{
			name: "a role's ceiling bounds what rules grant",
			policy: strings.Replace(users, `role "analyst" {`, `role "analyst" {
  scope = "self"`, 1) + `
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}`,
			login: "marie",
			where: "agent_login OPERATOR(pg_catalog.=) 'marie'",
			rules: []string{"all", "role.analyst.scope"},
		},
		{
			name: "the ceilings of several roles are OR-ed",
			policy: strings.NewReplacer(`roles      = ["analyst"]`, `roles      = ["analyst", "agent"]`,
				`role "analyst" {`, "role \"analyst\" {\n  scope = \"self\"",
				`role "agent" {`, "role \"agent\" {\n  scope = \"own_team\"").Replace(users) + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}`,
			login: "marie",
			where: "country OPERATOR(pg_catalog.=) 'France' AND (team_id OPERATOR(pg_catalog.=) 2 OR agent_login OPERATOR(pg_catalog.=) 'marie')",
			rules: []string{"a", "role.agent.scope", "role.analyst.scope"},
		},
		{
			name: "a role with scope all lifts the ceiling of the others",
			policy: strings.NewReplacer(`roles      = ["analyst"]`, `roles      = ["analyst", "agent"]`,
				`role "analyst" {`, "role \"analyst\" {\n  scope = \"self\"").Replace(users) + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}`,
			login: "marie",
			where: "country OPERATOR(pg_catalog.=) 'France'",
			rules: []string{"a"},
		},
		{
			name: "own rows escape rules, restrictive rules and ceilings",
			policy: strings.Replace(users, `role "analyst" {`, `role "analyst" {
  scope    = "none"
  own_rows = true`, 1) + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "id < 1000"
}`,
			login: "marie",
			where: "agent_login OPERATOR(pg_catalog.=) 'marie'",
			rules: []string{"a", "r", "role.analyst.scope", "role.analyst.own_rows"},
		},
		{
			name: "own rows are OR-ed with the rest",
			policy: strings.Replace(users, `role "analyst" {`, `role "analyst" {
  own_rows = true`, 1) + `
rule "a" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "id < 1000"
}`,
			login: "marie",
			where: "(country OPERATOR(pg_catalog.=) 'France' AND id OPERATOR(pg_catalog.<) 1000) OR agent_login OPERATOR(pg_catalog.=) 'marie'",
			rules: []string{"a", "r", "role.analyst.own_rows"},
		},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, tt.policy, tt.login)
			acc := p.Relation(responses)
			if acc.Mode != rewrite.Governed {
				t.Fatalf("mode %v (%s), want governed", acc.Mode, acc.Reason)
			}
			if got := whereOf(t, responses, acc); got != tt.where {
				t.Errorf("filter\n got: %s\nwant: %s", got, tt.where)
			}
			if strings.Join(acc.Rules, ",") != strings.Join(tt.rules, ",") {
				t.Errorf("rules %q, want %q", acc.Rules, tt.rules)
			}
		})
	}
}

func TestCompileScopes(t *testing.T) {
	withTeams := `
team "HQ" {
  id = 1
}
team "France" {
  id     = 2
  parent = "HQ"
}
team "Paris" {
  id     = 3
  parent = "France"
}
team "Lyon" {
  id     = 4
  parent = "France"
}
team "Frozen Food" {
  id     = 7
  parent = "HQ"
}
`
	withTeamsTable := `
teams {
  table         = "org.teams"
  id_column     = "team id"
  parent_column = "parent"
}
`
	cases := []struct {
		name, extra, scope, login, where string
	}{
		{"self compares the owner column with the login", "", "self", "marie", "agent_login OPERATOR(pg_catalog.=) 'marie'"},
		{"own_team compares the team column with the user's team", "", "own_team", "marie", "team_id OPERATOR(pg_catalog.=) 2"},
		{"own_team gives no row to a user without a team", "", "own_team", "tom", "false"},
		{"team_subtree with team blocks lists the subtree's ids", withTeams, "team_subtree", "marie", "team_id OPERATOR(pg_catalog.=) ANY(ARRAY[2, 3, 4])"},
		{"team_subtree of a leaf team is the team alone", withTeams, "team_subtree", "paul", "team_id OPERATOR(pg_catalog.=) ANY(ARRAY[7])"},
		{"team_subtree gives no row to a user without a team", withTeams, "team_subtree", "tom", "false"},
		{"team_subtree with a teams table walks it recursively", withTeamsTable, "team_subtree", "marie",
			`team_id OPERATOR(pg_catalog.=) ANY (WITH RECURSIVE pgveil_subtree(id) AS (SELECT t."team id" FROM org.teams t ` +
				`WHERE t."team id" OPERATOR(pg_catalog.=) 2 UNION SELECT c."team id" FROM org.teams c JOIN pgveil_subtree s ` +
				`ON c.parent OPERATOR(pg_catalog.=) s.id) SELECT pgveil_subtree.id FROM pgveil_subtree)`},
		{"own_groups lists everyone sharing a group", "", "own_groups", "marie", "agent_login OPERATOR(pg_catalog.=) ANY(ARRAY['marie', 'paul'])"},
		{"own_groups unions every group of the user", "", "own_groups", "paul", "agent_login OPERATOR(pg_catalog.=) ANY(ARRAY['marie', 'paul', 'tom'])"},
		{"all gives every row", "", "all", "marie", ""},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			policy := strings.Replace(users, `roles    = ["agent"]`, `roles    = ["analyst"]`, 1) + tt.extra + `
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst", "manager"]
  scope  = "` + tt.scope + `"
}`
			p := compile(t, policy, tt.login)
			if got := whereOf(t, responses, p.Relation(responses)); got != tt.where {
				t.Errorf("filter\n got: %s\nwant: %s", got, tt.where)
			}
		})
	}
	t.Run("groups lists the members of the rule's groups", func(t *testing.T) {
		p := compile(t, users+`
rule "vendors" {
  tables = ["public.responses"]
  roles  = ["manager"]
  scope  = "groups"
  groups = ["vendor_b"]
}`, "paul")
		if got, want := whereOf(t, responses, p.Relation(responses)), "agent_login OPERATOR(pg_catalog.=) ANY(ARRAY['paul', 'tom'])"; got != want {
			t.Errorf("filter\n got: %s\nwant: %s", got, want)
		}
	})
}

func TestCompileTables(t *testing.T) {
	policy := users + `
table "public.*" {
  owner_column = "owner"
  column "email" { class = "pii" }
}
table "public.resp*" {
  column "email" {
    class = "pii"
    mask  = "redact"
  }
}
table "public.a*" {}
table "public.*b" {}
table "public.children" {
  column "email" {
    class = "pii"
    mask  = "redact"
    value = "child"
  }
}
schema "open" { default = "allow" }
rule "everything" {
  tables = ["public.*"]
  roles  = ["analyst"]
  where  = "country = me.country"
}
rule "owners" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "self"
}
`
	cfg := loadPolicy(t, policy)
	p, err := cfg.compile("marie", cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Dir(cfg.Files[0]) + string(filepath.Separator)
	rel := func(schema, name string, columns []string, ancestors ...rewrite.QName) *rewrite.Relation {
		return relation(schema, name, columns, ancestors...)
	}
	cases := []struct {
		name string
		rel  *rewrite.Relation
		want string
	}{
		{"an exact table block governs alone, without the column blocks of patterns", responses,
			"SELECT id, country, email, score, agent_login, team_id, comment FROM public.responses " +
				"WHERE country OPERATOR(pg_catalog.=) 'France' OR agent_login OPERATOR(pg_catalog.=) 'marie'"},
		{"a longer pattern beats a shorter one", rel("public", "resp_2025", []string{"email", "country", "owner"}),
			"SELECT '***' AS email, country, owner FROM public.resp_2025 WHERE country OPERATOR(pg_catalog.=) 'France'"},
		{"a pattern's column blocks apply to every table it governs", rel("public", "surveys_2", []string{"email", "country", "owner"}),
			"SELECT NULL AS email, country, owner FROM public.surveys_2 WHERE country OPERATOR(pg_catalog.=) 'France' OR owner OPERATOR(pg_catalog.=) 'marie'"},
		{"a partition is governed by its parent's table block", rel("archive", "responses_2025", []string{"email", "country", "agent_login"},
			rewrite.QName{Schema: "public", Name: "responses"}),
			"SELECT email, country, agent_login FROM archive.responses_2025 WHERE country OPERATOR(pg_catalog.=) 'France' OR agent_login OPERATOR(pg_catalog.=) 'marie'"},
		{"a child's own exact block beats its parent's", rel("public", "children", []string{"email", "country"}, rewrite.QName{Schema: "public", Name: "responses"}),
			"SELECT 'child' AS email, country FROM public.children WHERE country OPERATOR(pg_catalog.=) 'France'"},
		{"a where over a column the relation lacks gives no row", rel("public", "surveys", []string{"id", "owner"}),
			"SELECT id, owner FROM public.surveys WHERE owner OPERATOR(pg_catalog.=) 'marie'"},
		{"a scope needing a column the relation lacks gives no row", rel("public", "notes", []string{"country"}),
			"SELECT country FROM public.notes WHERE country OPERATOR(pg_catalog.=) 'France'"},
		{"equally specific patterns deny", rel("public", "ab", []string{"country"}),
			`denied: table public.ab is matched by equally specific table blocks "public.a*" (at pgveil.hcl:53:1) and ` +
				`"public.*b" (at pgveil.hcl:54:1): add a table block naming it exactly`},
		{"an ungoverned table is denied by default", rel("sales", "orders", []string{"id"}),
			`denied: table sales.orders is not governed by any table block and schema sales denies ungoverned tables ` +
				`(add a table block for it, or schema "sales" { default = "allow" })`},
		{"a schema may leave its ungoverned tables open", rel("open", "t", []string{"id"}), "open: "},
		{"catalog relations are open", rel("pg_catalog", "pg_class", []string{"oid"}), "open: "},
		{"information_schema relations are open", rel("information_schema", "tables", []string{"table_name"}), "open: "},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.ReplaceAll(accessSQL(t, tt.rel, p.Relation(tt.rel)), dir, ""); got != tt.want {
				t.Errorf("\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

func TestCompileMasks(t *testing.T) {
	policy := users + `
table "public.people" {
  column "a" { class = "pii" }
  column "b" {
    class = "pii"
    mask  = "redact"
  }
  column "c" {
    class = "pii"
    mask  = "redact"
    value = 0
  }
  column "d" {
    class      = "pii"
    mask       = "partial"
    keep_start = 1
    keep_end   = 4
  }
  column "e" {
    class  = "pii"
    mask   = "hash"
    secret = "k"
  }
  column "f" {
    class      = "pii"
    mask       = "expression"
    expression = "left(f, 2) || me.country"
  }
  column "g" {
    class      = "pii"
    mask       = "expression"
    expression = "left(missing, 2)"
  }
  column "h" { class = "technical" }
}
rule "all" {
  tables = ["public.people"]
  roles  = ["analyst", "manager"]
  scope  = "all"
}
`
	people := relation("public", "people", []string{"a", "b", "c", "d", "e", "f", "g", "h", "plain"})
	t.Run("every kind of mask replaces a column the user's roles do not see", func(t *testing.T) {
		p := compile(t, strings.Replace(policy, `role "analyst" {`, "role \"analyst\" {\n  columns = [\"technical\"]", 1), "marie")
		keyID := maskKeyID(hmacPads([]byte("k")))
		want := "SELECT NULL AS a, '***' AS b, 0 AS c, " +
			"CASE WHEN d IS NULL THEN NULL WHEN pg_catalog.length(d::pg_catalog.text) OPERATOR(pg_catalog.<=) 5 " +
			"THEN pg_catalog.repeat('*', pg_catalog.length(d::pg_catalog.text)) " +
			`ELSE (pg_catalog."left"(d::pg_catalog.text, 1) OPERATOR(pg_catalog.||) pg_catalog.repeat('*', ` +
			`pg_catalog.length(d::pg_catalog.text) OPERATOR(pg_catalog.-) 5)) ` +
			`OPERATOR(pg_catalog.||) pg_catalog."right"(d::pg_catalog.text, 4) END AS d, ` +
			`pgveil.mask_hash(e::pg_catalog.text, '` + keyID + `') AS e, ` +
			`pg_catalog."left"(f, 2) OPERATOR(pg_catalog.||) 'France' AS f, NULL AS g, h, plain FROM public.people`
		if got := accessSQL(t, people, p.Relation(people)); got != want {
			t.Errorf("\n got: %s\nwant: %s", got, want)
		}
	})
	t.Run("a hash mask of an integer or uuid column is a pseudonym of the same HMAC, served as bigint or uuid", func(t *testing.T) {
		p := compile(t, policy, "marie")
		keyID := maskKeyID(hmacPads([]byte("k")))
		digest := `pgveil.mask_hash(e::pg_catalog.text, '` + keyID + `')`
		for _, tc := range []struct{ typ, maskType, want, served string }{
			{"integer", "", `('x'::pg_catalog.text OPERATOR(pg_catalog.||) pg_catalog."left"(` + digest + `, 16))::pg_catalog.bit(64)::bigint ` +
				`OPERATOR(pg_catalog.&) 9223372036854775807`, "pg_catalog.int8"},
			{"smallint", "", "", "pg_catalog.int8"},
			{"bigint", "", "", "pg_catalog.int8"},
			{"customer_ref", "integer", "", "pg_catalog.int8"},
			{"uuid", "", `pg_catalog."left"(` + digest + `, 32)::pg_catalog.uuid`, "pg_catalog.uuid"},
			{"text", "", digest, ""},
			{"character varying(80)", "", digest, ""},
			{"integer[]", "", digest, ""},
		} {
			rel := relation("public", "people", nil)
			rel.Columns = []rewrite.Column{{Name: "e", Type: tc.typ}}
			if tc.maskType != "" {
				// A domain: its base type is the masked value's.
				rel.Columns[0].MaskType, rel.Columns[0].MaskTypeName = tc.maskType, scalarType("int4")
			}
			acc := p.Relation(rel)
			if tc.want != "" {
				if got, want := accessSQL(t, rel, acc), "SELECT "+tc.want+" AS e FROM public.people"; got != want {
					t.Errorf("%s:\n got: %s\nwant: %s", tc.typ, got, want)
				}
			}
			var served []string
			for _, n := range acc.MaskTypes["e"].GetNames() {
				served = append(served, n.GetString_().GetSval())
			}
			if got := strings.Join(served, "."); got != tc.served {
				t.Errorf("%s: served as %q, want %q", tc.typ, got, tc.served)
			}
		}
	})
	t.Run("a class listed by any role of the user is visible", func(t *testing.T) {
		p := compile(t, strings.Replace(policy, `role "manager" {`, "role \"manager\" {\n  columns = [\"pii\"]", 1), "paul")
		want := "SELECT a, b, c, d, e, f, g, NULL AS h, plain FROM public.people"
		if got := accessSQL(t, people, p.Relation(people)); got != want {
			t.Errorf("\n got: %s\nwant: %s", got, want)
		}
	})
}

func TestCompileMissingAttributes(t *testing.T) {
	policy := users + `
identity "x" {
  query = "SELECT 'x' AS login"
}
table "public.people" {
  column "email" {
    class      = "pii"
    mask       = "expression"
    expression = "CASE WHEN me.department <> 'support' THEN NULL ELSE email END"
  }
}
rule "everyone" {
  tables = ["public.people"]
  roles  = ["analyst", "agent"]
  scope  = "all"
}
rule "outside_the_department" {
  tables = ["public.people", "public.responses"]
  roles  = ["analyst", "agent"]
  kind   = "restrictive"
  where  = "CASE WHEN me.department = 'audit' THEN false ELSE true END"
}
rule "own_team" {
  tables = ["public.responses"]
  roles  = ["analyst", "agent"]
  where  = "team_id = me.team"
}
`
	people := relation("public", "people", []string{"id", "email"})
	cases := []struct {
		name, attributes, login string
		rel                     *rewrite.Relation
		want                    string
	}{
		{"a mask falling to its ELSE shows no value without the attribute", `{}`, "marie", people,
			"SELECT id, NULL AS email FROM public.people WHERE false"},
		{"a mask binds the attribute the user has", `{ department = "support" }`, "marie", people,
			"SELECT id, CASE WHEN 'support' OPERATOR(pg_catalog.<>) 'support' THEN NULL ELSE email END AS email FROM public.people " +
				"WHERE CASE WHEN 'support' OPERATOR(pg_catalog.=) 'audit' THEN false ELSE true END"},
		{"a restrictive rule reading a missing attribute lets no row pass", `{}`, "marie", responses,
			"SELECT id, country, email, score, agent_login, team_id, comment FROM public.responses WHERE false"},
		{"me.team without a team grants no row", `{ department = "support" }`, "tom", responses,
			"SELECT id, country, email, score, agent_login, team_id, comment FROM public.responses WHERE false"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			pol := strings.Replace(policy, `attributes = { country = "France", regions = ["north", "south"] }`, "attributes = "+tt.attributes, 1)
			pol = strings.Replace(pol, `groups   = ["vendor_b"]`, "groups   = [\"vendor_b\"]\n  attributes = "+tt.attributes, 1)
			p := compile(t, pol, tt.login)
			if got := accessSQL(t, tt.rel, p.Relation(tt.rel)); got != tt.want {
				t.Errorf("\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// hexString is hex.EncodeToString, short for expected SQL.
func hexString(b []byte) string {
	const digits = "0123456789abcdef"
	out := make([]byte, 0, 2*len(b))
	for _, c := range b {
		out = append(out, digits[c>>4], digits[c&15])
	}
	return string(out)
}

func TestCompileBindsAttributes(t *testing.T) {
	cases := []struct {
		name, attributes, where, want string
	}{
		{"a string binds as a string constant", `{ country = "France" }`, "country = me.country", "country OPERATOR(pg_catalog.=) 'France'"},
		{"a number binds as a numeric constant", `{ level = 3 }`, "nps > me.level", "nps OPERATOR(pg_catalog.>) 3"},
		{"a negative number keeps its sign", `{ level = -3 }`, "nps > me.level AND nps::text <> me.level::text", "nps OPERATOR(pg_catalog.>) -3 AND nps::text OPERATOR(pg_catalog.<>) (-3)::text"},
		{"a big number binds as a numeric constant", `{ level = 12345678901234567890 }`, "id < me.level", "id OPERATOR(pg_catalog.<) 12345678901234567890"},
		{"a decimal binds as a numeric constant", `{ ratio = 0.25 }`, "score > me.ratio", "score OPERATOR(pg_catalog.>) 0.25"},
		{"a boolean binds as a boolean constant", `{ active = true }`, "me.active AND id > 0", "true AND id OPERATOR(pg_catalog.>) 0"},
		{"a list binds as an array", `{ regions = ["north", "south"] }`, "region = ANY(me.regions)", "region OPERATOR(pg_catalog.=) ANY(ARRAY['north', 'south'])"},
		{"a string in = ANY binds as a one-element array", `{ regions = "{north,south}" }`, "region = ANY(me.regions)", "region OPERATOR(pg_catalog.=) ANY(ARRAY['{north,south}'])"},
		{"a number in <> ALL binds as a one-element array", `{ level = 3 }`, "nps <> ALL(me.level)", "nps OPERATOR(pg_catalog.<>) ALL(ARRAY[3])"},
		{"an empty list binds as a typed empty array", `{ regions = [] }`, "region = ANY(me.regions)", "region OPERATOR(pg_catalog.=) ANY(ARRAY[]::pg_catalog.text[])"},
		{"a rule reading a missing attribute grants no row", `{}`, "country = me.country", "false"},
		{"a rule reading a missing attribute past a NULL grants no row", `{}`, "country LIKE concat(me.prefix, '%')", "false"},
		{"a rule reading a missing attribute with IS NULL grants no row", `{}`, "me.country IS NULL OR country = me.country", "false"},
		{"a rule reading a present and a missing attribute grants no row", `{}`, "owner = me.login OR country = COALESCE(me.country, country)", "false"},
		{"login, team, groups and roles are attributes", `{}`, "owner = me.login AND t = me.team AND g = ANY(me.groups) AND 'analyst' = ANY(me.roles)",
			"owner OPERATOR(pg_catalog.=) 'marie' AND t OPERATOR(pg_catalog.=) 2 AND g OPERATOR(pg_catalog.=) ANY(ARRAY['vendor_a']) AND 'analyst' OPERATOR(pg_catalog.=) ANY(ARRAY['analyst'])"},
		{"attributes bind inside subqueries", `{ country = "France" }`, "id IN (SELECT x.id FROM public.x x WHERE x.c = me.country)",
			"id OPERATOR(pg_catalog.=) ANY (SELECT x.id FROM public.x x WHERE x.c OPERATOR(pg_catalog.=) 'France')"},
		{"unqualified functions resolve in pg_catalog", `{}`, "lower(country) = 'france'", "pg_catalog.lower(country) OPERATOR(pg_catalog.=) 'france'"},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			policy := strings.Replace(users, `attributes = { country = "France", regions = ["north", "south"] }`, "attributes = "+tt.attributes, 1) + `
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "` + tt.where + `"
}`
			// NOTE: without identity blocks, an unknown attribute is a load
			// error; an identity block (never run here) makes it NULL.
			if tt.attributes == "{}" {
				policy += "\nidentity \"x\" {\n  query = \"SELECT 'x' AS login\"\n}\n"
			}
			p := compile(t, policy, "marie")
			rel := relation("public", "responses", []string{"country", "nps", "id", "score", "region", "owner", "t", "g"})
			if got := whereOf(t, rel, p.Relation(rel)); got != tt.want {
				t.Errorf("filter\n got: %s\nwant: %s", got, tt.want)
			}
		})
	}
}

// hostileValues must each come out of binding as one literal.
var hostileValues = []string{
	`O'Brien\'; DROP TABLE x; --`,
	`'); DELETE FROM responses; --`,
	`\\' OR 1=1 --`,
	`$$ OR true $$`,
	`$a$ OR true $a$`,
	"line\nbreak\r\n\t",
	`*/ OR true /*`,
	"日本語 ﷽ \u202e \\u0000",
	"\u2028\u2029\uFEFF",
	`E'\x27'`,
	`"quoted" identifier`,
	`ARRAY['a'] || me.country`,
}

func TestCompileHostileAttributesStayLiterals(t *testing.T) {
	for _, v := range hostileValues {
		t.Run(strings.ToValidUTF8(v, "?"), func(t *testing.T) {
			cfg := loadPolicy(t, strings.Replace(users, `attributes = { country = "France", regions = ["north", "south"] }`, "", 1)+`
identity "x" {
  query = "SELECT 'x' AS login"
}
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country AND country = ANY(me.regions)"
}`)
			// NOTE: identity rows can hold what HCL strings cannot write
			// easily: inject the value as if it came from upstream.
			ids := cfg.buildIdentities([]identityRow{{
				source: &IdentitySource{Name: "test"},
				login:  "marie",
				attrs:  map[string]Value{"country": mustString(t, v), "regions": stringsValue([]string{v, v})},
			}}, nil)
			p, err := cfg.compile("marie", ids)
			if err != nil {
				t.Fatal(err)
			}
			sql := accessSQL(t, responses, p.Relation(responses))
			tree, err := pg_query.Parse(sql)
			if err != nil {
				t.Fatal(err)
			}
			var consts []string
			walkNodes(tree.Stmts[0].Stmt, func(n *pg_query.Node) {
				if c := n.GetAConst(); c != nil && c.GetSval() != nil {
					consts = append(consts, c.GetSval().Sval)
				}
			})
			if len(consts) != 3 || consts[0] != v || consts[1] != v || consts[2] != v {
				t.Errorf("string constants %q, want the value three times; SQL:\n%s", consts, sql)
			}
			if n := len(tree.Stmts); n != 1 {
				t.Errorf("%d statements", n)
			}
		})
	}
}

// mustString returns the string Value of s.
func mustString(t *testing.T, s string) Value {
	t.Helper()
	v, problem := stringValue(s)
	if problem != "" {
		t.Fatal(problem)
	}
	return v
}

func TestCompileStatementsAndFunctions(t *testing.T) {
	p := compile(t, strings.Replace(users, `role "manager" {`, "role \"manager\" {\n  functions = [\"public.f\"]", 1), "paul")
	for _, k := range []rewrite.StatementKind{rewrite.KindSelect, rewrite.KindInsert} {
		if ok, reason := p.AllowStatement(k); !ok {
			t.Errorf("%s refused: %s", k, reason)
		}
	}
	ok, reason := p.AllowStatement(rewrite.KindDelete)
	if want := `user "paul" may not run delete statements: none of the roles manager lists "delete" in its statements`; ok || reason != want {
		t.Errorf("delete: %v, %q; want false, %q", ok, reason, want)
	}
	if !p.AllowFunction("public", "f") || p.AllowFunction("public", "g") || p.AllowFunction("other", "f") {
		t.Error("AllowFunction does not follow the role's functions")
	}
}

func TestCompileRefusesLoginsWithoutAccess(t *testing.T) {
	cfg := loadPolicy(t, strings.Replace(users, `roles    = ["agent"]`, "", 1)+`
identity "x" {
  query = "SELECT 'x' AS login"
}`)
	ids := cfg.buildIdentities([]identityRow{
		{source: cfg.IdentitySources[0], login: "paul", set: fieldTeam, team: new(int64)},
		{source: &IdentitySource{Name: "y"}, login: "paul", set: fieldTeam, team: func() *int64 { n := int64(3); return &n }()},
	}, map[string]string{"marie": "its row from identity \"x\" is invalid"})
	for _, tt := range []struct{ name, login, want string }{
		{"an unknown login has no access", "nobody", `no access: login "nobody": it is defined by no user block and no identity row`},
		{"a login with invalid identity rows has no access", "marie", `no access: login "marie": its row from identity "x" is invalid`},
		{"a login whose identity rows disagree has no access", "paul", `no access: login "paul": identity blocks "x" and "y" give different team`},
		{"a login without a role has no access", "tom", `no access: login "tom" has no role`},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := cfg.Compile(tt.login, ids)
			if err == nil || err.Error() != tt.want || !errors.Is(err, ErrNoAccess) {
				t.Errorf("error %v, want %q", err, tt.want)
			}
			if _, ok := ids.User(tt.login); ok {
				t.Error("the login may authenticate")
			}
		})
	}
}

func TestCompileKeys(t *testing.T) {
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	load := func(policy string) *Config {
		t.Helper()
		writeFile(t, path, []byte(strings.ReplaceAll(`
listen {
  address = "127.0.0.1:6432"
}
upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
`+policy, "VERIFIER", testVerifier)))
		cfg, diags := Load(path)
		if diags.HasErrors() {
			t.Fatal(diags)
		}
		return cfg
	}
	key := func(cfg *Config, ids *Identities, login string) string {
		t.Helper()
		p, err := cfg.Compile(login, ids)
		if err != nil {
			t.Fatal(err)
		}
		return p.Key()
	}
	cfg := load(users)
	ids := cfg.HCLIdentities()
	marie := key(cfg, ids, "marie")
	t.Run("the same files and identities give the same key", func(t *testing.T) {
		again := load(users)
		if key(again, again.HCLIdentities(), "marie") != marie || again.Version(again.HCLIdentities()) != cfg.Version(ids) {
			t.Error("keys or versions differ")
		}
	})
	t.Run("another login has another key", func(t *testing.T) {
		if key(cfg, ids, "paul") == marie {
			t.Error("same key")
		}
	})
	t.Run("other configuration bytes give another key", func(t *testing.T) {
		other := load(users + "\n# a comment\n")
		if key(other, other.HCLIdentities(), "marie") == marie {
			t.Error("same key")
		}
	})
	t.Run("other identity rows give another key and version", func(t *testing.T) {
		withRows := cfg.buildIdentities([]identityRow{{source: &IdentitySource{Name: "x"}, login: "zoe"}}, nil)
		if key(cfg, withRows, "marie") == marie || cfg.Version(withRows) == cfg.Version(ids) {
			t.Error("same key or version")
		}
	})
	t.Run("another value read by env gives another key but the same version", func(t *testing.T) {
		policy := users + `
table "public.x" {
  column "c" {
    class  = "pii"
    mask   = "hash"
    secret = env("PGVEIL_TEST_SECRET")
  }
}`
		t.Setenv("PGVEIL_TEST_SECRET", "one")
		a := load(policy)
		t.Setenv("PGVEIL_TEST_SECRET", "two")
		b := load(policy)
		if key(a, a.HCLIdentities(), "marie") == key(b, b.HCLIdentities(), "marie") {
			t.Error("same key")
		}
		if a.Version(a.HCLIdentities()) != b.Version(b.HCLIdentities()) {
			t.Error("versions differ")
		}
	})
}

func TestIdentitiesOfAConfigBuiltInGo(t *testing.T) {
	cfg := loadPolicy(t, users)
	built := &Config{
		Users: map[string]*User{"marie": {Login: "marie", Verifier: cfg.Users["marie"].Verifier, Roles: []string{"analyst"}}},
		Roles: cfg.Roles,
	}
	ids := built.HCLIdentities()
	if _, ok := ids.User("marie"); !ok {
		t.Error("a user built in Go cannot authenticate")
	}
	if _, err := built.Compile("marie", ids); err != nil {
		t.Error(err)
	}
	if acc := mustCompile(t, built, ids, "marie").Relation(responses); acc.Mode != rewrite.Denied {
		t.Errorf("a configuration without table blocks leaves %s %v", responses.QName, acc.Mode)
	}
}

// mustCompile compiles login or fails t.
func mustCompile(t *testing.T, cfg *Config, ids *Identities, login string) *UserPolicy {
	t.Helper()
	p, err := cfg.compile(login, ids)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCompileReturnsARewritePolicy(t *testing.T) {
	cfg := loadPolicy(t, users)
	ids := cfg.HCLIdentities()
	p, err := cfg.Compile("marie", ids)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := p.(*UserPolicy); !ok || p.Key() == "" {
		t.Errorf("Compile returned %T", p)
	}
	p, err = cfg.Compile("nobody", ids)
	if p != nil || !errors.Is(err, ErrNoAccess) {
		t.Errorf("an unknown login gives %#v, %v; want a nil interface and ErrNoAccess", p, err)
	}
}

func TestUserPolicyIsSafeForConcurrentUse(t *testing.T) {
	p := compile(t, users+`
table "public.people" {
  column "c" {
    class      = "pii"
    mask       = "expression"
    expression = "left(c, 1) || me.country"
  }
}
rule "a" {
  tables = ["public.*"]
  roles  = ["analyst"]
  where  = "country = me.country"
}`, "marie")
	people := relation("public", "people", []string{"c", "country"})
	want := accessSQL(t, people, p.Relation(people))
	done := make(chan string)
	for range 8 {
		go func() {
			var last string
			for range 50 {
				acc := p.Relation(people)
				_, _ = p.AllowStatement(rewrite.KindSelect)
				last = deparseExpr(acc.Filter) + deparseExpr(acc.Masks["c"])
			}
			done <- last
		}()
	}
	for range 8 {
		if got := <-done; got != "country OPERATOR(pg_catalog.=) 'France'pg_catalog.\"left\"(c, 1) OPERATOR(pg_catalog.||) 'France'" {
			t.Errorf("concurrent result %s (single: %s)", got, want)
		}
	}
}

func TestCompilePushdown(t *testing.T) {
	for _, tt := range []struct {
		name, attr string
		no         bool
	}{
		{"a table allows pushdown by default", "", false},
		{"pushdown = true allows it", "pushdown = true", false},
		{"pushdown = false tells the rewriter to push nothing", "pushdown = false", true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := compile(t, strings.Replace(users, `team_column  = "team_id"`, `team_column  = "team_id"`+"\n  "+tt.attr, 1)+`
rule "r" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "country = me.country"
}`, "marie")
			if acc := p.Relation(responses); acc.NoPushdown != tt.no {
				t.Errorf("NoPushdown %t, want %t", acc.NoPushdown, tt.no)
			}
		})
	}
}

// TestDescendantsGovernedOtherwise: a scan of a table reads its
// inheritance children's and partitions' rows under its own policy, so a
// table with a descendant governed otherwise is denied.
func TestDescendantsGovernedOtherwise(t *testing.T) {
	const head = `
role "analyst" { statements = ["select"] }
user "marie" {
  password = "VERIFIER"
  roles    = ["analyst"]
}
schema "public" { default = "allow" }
`
	for _, c := range []struct {
		name, policy string
		denied       bool
	}{
		{"a partition with its own table block", `
table "public.events" {}
table "public.events_2024" {
  column "secret" { class = "pii" }
}
rule "all" {
  tables = ["public.events"]
  roles  = ["analyst"]
  scope  = "all"
}`, true},
		{"a partition with a rule of its own", `
table "public.events*" {}
rule "all" {
  tables = ["public.events"]
  roles  = ["analyst"]
  scope  = "all"
}
rule "r2024" {
  tables = ["public.events_2024"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "id = 0"
}`, true},
		{"an ungoverned parent of a governed partition", `
table "public.events_2024" {}
rule "all" {
  tables = ["public.events_2024"]
  roles  = ["analyst"]
  scope  = "all"
}`, true},
		{"an open parent of a partition its schema denies", `
table "public.other" {}
rule "all" {
  tables = ["public.other"]
  roles  = ["analyst"]
  scope  = "all"
}`, true},
		{"partitions governed by their parent's block and rules", `
table "public.events" {
  column "secret" { class = "pii" }
}
rule "all" {
  tables = ["public.events"]
  roles  = ["analyst"]
  scope  = "all"
}`, false},
		{"partitions matched by the parent's pattern block", `
table "public.*" {}
rule "all" {
  tables = ["public.*"]
  roles  = ["analyst"]
  scope  = "all"
}`, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := compile(t, head+c.policy, "marie")
			parent := relation("public", "events", []string{"id", "secret"})
			child := relation("public", "events_2024", []string{"id", "secret"}, parent.QName)
			if strings.Contains(c.name, "schema denies") {
				child = relation("archive", "events_2024", []string{"id", "secret"}, parent.QName)
			}
			parent.Descendants = []*rewrite.Relation{child}
			acc := p.Relation(parent)
			if denied := acc.Mode == rewrite.Denied; denied != c.denied {
				t.Fatalf("parent: %s", accessSQL(t, parent, acc))
			}
			if c.denied && !strings.Contains(acc.Reason, child.QName.String()) {
				t.Fatalf("the reason does not name the partition: %s", acc.Reason)
			}
			if acc := p.Relation(child); acc.Mode == rewrite.Denied && child.Schema != "archive" {
				t.Fatalf("child: %s", accessSQL(t, child, acc))
			}
		})
	}
}

// TestViewsReadingGovernedTables: an ungoverned view of an allowing schema
// is denied when it reads, directly or through other views, a table the
// user may not read as it is; views reading each other end.
func TestViewsReadingGovernedTables(t *testing.T) {
	p := compile(t, `
role "analyst" { statements = ["select"] }
user "marie" {
  password = "VERIFIER"
  roles    = ["analyst"]
}
schema "reports" { default = "allow" }
table "public.responses" {}
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}`, "marie")
	view := func(name string, reads ...*rewrite.Relation) *rewrite.Relation {
		r := relation("reports", name, []string{"x"})
		r.Kind, r.Reads = 'v', reads
		return r
	}
	other := relation("reports", "lookup", []string{"x"})
	direct, open := view("direct", responses), view("open", other)
	through := view("through", open, direct)
	a, b := view("a"), view("b")
	a.Reads, b.Reads = []*rewrite.Relation{b}, []*rewrite.Relation{a}
	calling := func(name string, calls ...rewrite.QName) *rewrite.Relation {
		v := view(name)
		v.Calls = calls
		return v
	}
	lower := calling("lower", rewrite.QName{Schema: "pg_catalog", Name: "lower"})
	xml := calling("xml", rewrite.QName{Schema: "pg_catalog", Name: "query_to_xml"})
	own := calling("own", rewrite.QName{Schema: "reports", Name: "all_emails"})
	for _, c := range []struct {
		rel    *rewrite.Relation
		denied bool
	}{{direct, true}, {through, true}, {open, false}, {a, false}, {lower, false}, {xml, true}, {own, true}} {
		if acc := p.Relation(c.rel); (acc.Mode == rewrite.Denied) != c.denied {
			t.Errorf("%s: %s", c.rel.QName, accessSQL(t, c.rel, acc))
		}
	}
}

// TestPolicyInputsAreReadOnly: the relations the policy itself reads (the
// teams table, identity queries' and rules' subqueries' tables) may not
// be written by anyone, since a write would change what users may see.
func TestPolicyInputsAreReadOnly(t *testing.T) {
	p := compile(t, `
role "analyst" { statements = ["select", "update"] }
user "marie" {
  password = "VERIFIER"
  roles    = ["analyst"]
}
identity "people" {
  query = "WITH x AS (SELECT * FROM people) SELECT login FROM x JOIN hr.extra e USING (login)"
}
teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}
schema "public" { default = "allow" }
schema "other" { default = "allow" }
schema "hr" { default = "allow" }
table "public.responses" {}
rule "open_surveys" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  where  = "survey_id IN (SELECT s.id FROM public.surveys s WHERE s.open)"
}`, "marie")
	for _, c := range []struct {
		schema, name string
		readOnly     bool
	}{
		{"public", "teams", true},
		{"public", "people", true}, // unqualified in the query: any schema
		{"other", "people", true},
		{"hr", "extra", true},
		{"public", "extra", false},
		{"public", "surveys", true},
		{"public", "responses", false},
		{"public", "lookup", false},
	} {
		rel := relation(c.schema, c.name, []string{"id", "survey_id"})
		if acc := p.Relation(rel); (acc.ReadOnly != "") != c.readOnly {
			t.Errorf("%s: read-only %q", rel.QName, acc.ReadOnly)
		}
	}
	// A write of a partition is a write of its parent's rows, and the
	// reverse.
	partition := relation("public", "teams_2024", []string{"id"}, rewrite.QName{Schema: "public", Name: "teams"})
	parent := relation("public", "all_surveys", []string{"id"})
	parent.Descendants = []*rewrite.Relation{relation("public", "surveys", []string{"id"}, parent.QName)}
	// A write of a table changes the views reading it, at any depth: one
	// the policy reads makes the table an input too.
	view := relation("public", "people", []string{"login"})
	viewOfView := relation("public", "staff", []string{"login"})
	base, deeper := relation("public", "employees", []string{"login"}), relation("public", "persons", []string{"login"})
	base.ReadBy = []*rewrite.Relation{view}
	view.ReadBy = []*rewrite.Relation{viewOfView}
	deeper.ReadBy = []*rewrite.Relation{viewOfView}
	// NOTE: PostgreSQL has no cycle of views; pgveil stops at one anyway.
	viewOfView.ReadBy = []*rewrite.Relation{view}
	for _, rel := range []*rewrite.Relation{partition, parent, base} {
		if acc := p.Relation(rel); acc.ReadOnly == "" {
			t.Errorf("%s is writable", rel.QName)
		}
	}
	if acc := p.Relation(deeper); acc.ReadOnly == "" {
		t.Errorf("%s, read by a view read by a policy input, is writable", deeper.QName)
	}
}

// TestPatternGovernedViews: a view a pattern block governs may read open
// relations only: masks match by column name and rules by relation, and
// the view's author chose its names (a view renaming email to contact
// would show it).
func TestPatternGovernedViews(t *testing.T) {
	p := compile(t, `
role "analyst" { statements = ["select"] }
user "marie" {
  password = "VERIFIER"
  roles    = ["analyst"]
}
schema "public" { default = "allow" }
table "reports.*" {}
table "public.responses" {
  column "email" { class = "pii" }
}
rule "all" {
  tables = ["reports.*", "public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}`, "marie")
	lookup := relation("reports", "lookup", []string{"x"})
	view := func(name string, reads ...*rewrite.Relation) *rewrite.Relation {
		r := relation("reports", name, []string{"x"})
		r.Kind, r.Reads = 'v', reads
		return r
	}
	for _, c := range []struct {
		rel    *rewrite.Relation
		denied bool
	}{{view("emails", responses), true}, {view("lookups", lookup), true}, {view("nested", view("inner", responses)), true},
		{view("open", relation("public", "countries", []string{"x"})), false}} {
		if acc := p.Relation(c.rel); (acc.Mode == rewrite.Denied) != c.denied {
			t.Errorf("%s: %s", c.rel.QName, accessSQL(t, c.rel, acc))
		}
	}
}
