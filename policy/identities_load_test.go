package policy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy/live"
)

// identitiesDB holds the tables the LoadIdentities tests read.
const identitiesDB = "policy_identities"

var (
	// identitiesOnce guards creating identitiesDB; identitiesErr is its
	// outcome.
	identitiesOnce sync.Once
	identitiesErr  error
)

// hostileLogin's region is a value that must bind as one literal.
const hostileRegion = `O'Brien\'; DROP TABLE x; --`

// setupIdentitiesDB creates identitiesDB once.
func setupIdentitiesDB(t *testing.T) {
	t.Helper()
	loadDemoDatabase(t) // NOTE: creates pgveil_svc, which may read what follows.
	identitiesOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if identitiesErr = cluster.CreateDatabase(ctx, identitiesDB); identitiesErr != nil {
			return
		}
		identitiesErr = cluster.Exec(ctx, identitiesDB, fmt.Sprintf(`
CREATE TABLE people (
    login text, roles text[], team int, groups text, password text,
    region text, regions text[], level int, ratio numeric, big bigint, active boolean,
    born date, codes int[], grid int[], odd float8
);
INSERT INTO people VALUES
    ('ann', ARRAY['analyst', 'ghost', 'analyst'], 3, 'g1', '%[1]s',
     'north', ARRAY['n', 's'], 5, 1.50, 12345678901, true, '2000-01-02', ARRAY[1, 2], NULL, NULL),
    ('bob', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    ('carl', ARRAY['analyst'], 4, 'g1', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 'NaN'),
    ('dup', ARRAY['analyst'], 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    ('dup', ARRAY['analyst'], 2, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    ('grid', ARRAY['analyst'], 1, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, '{{1,2},{3,4}}', NULL),
    ('badpw', ARRAY['analyst'], 1, NULL, 'plain', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    ('hostile', ARRAY['analyst'], 1, NULL, NULL, E'O\'Brien\\''; DROP TABLE x; --', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
    (NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
CREATE TABLE extra (login text, team int, region text);
INSERT INTO extra VALUES ('ann', 3, 'north'), ('carl', 5, NULL);
CREATE TABLE teams (id int, parent int, label text);
INSERT INTO teams VALUES (1, NULL, 'root'), (2, 1, 'a'), (3, 4, 'loop'), (4, 3, 'loop');
CREATE SEQUENCE counter;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgveil_svc;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO pgveil_svc;
GRANT CONNECT ON DATABASE %[2]s TO pgveil_svc;
`, testVerifier, identitiesDB))
	})
	if identitiesErr != nil {
		t.Fatal(identitiesErr)
	}
}

// identitiesPolicy is the policy the LoadIdentities tests load, with
// QUERY standing for the identity query.
const identitiesPolicy = `
identity "people" {
  query = "QUERY"
}
user "ann" {
  team       = 9
  attributes = { region = "hcl" }
}
role "analyst" {
  statements = ["select"]
}
`

// loadIdentities loads identitiesPolicy with query (and extra blocks) and
// runs LoadIdentities as the service account.
func loadIdentities(t *testing.T, query, extra string) (*Config, *Identities, hcl.Diagnostics) {
	t.Helper()
	setupIdentitiesDB(t)
	cfg := loadPolicy(t, strings.Replace(identitiesPolicy, "QUERY", query, 1)+extra)
	conn := connectAs(t, identitiesDB, "pgveil_svc", demoSvcPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
	if (ids == nil) != diags.HasErrors() {
		t.Fatalf("identities %v with errors %v", ids != nil, diags.HasErrors())
	}
	// NOTE: the connection must be usable afterwards, outside any
	// transaction.
	if got := queryOne(t, conn, "SELECT pg_catalog.current_setting('transaction_read_only')"); got[0] != "off" {
		t.Errorf("LoadIdentities left a read-only transaction open")
	}
	return cfg, ids, diags
}

// diagText renders diagnostics one per line: severity, summary, detail.
func diagText(diags hcl.Diagnostics) string {
	var lines []string
	for _, d := range diags {
		sev := "error"
		if d.Severity == hcl.DiagWarning {
			sev = "warning"
		}
		lines = append(lines, fmt.Sprintf("%s: %s: %s", sev, d.Summary, d.Detail))
	}
	return strings.Join(lines, "\n")
}

// TestUnknownIdentityRoleSuggestsTheRole: a role misspelt in the rows
// (a persona column kept by hand) was only said to be unknown; the
// warning now names the role block meant, as a user block's typo does.
func TestUnknownIdentityRoleSuggestsTheRole(t *testing.T) {
	_, _, diags := loadIdentities(t, "SELECT 'zed' AS login, ARRAY['analist', 'ghost'] AS roles", "")
	want := strings.Join([]string{
		`warning: Unknown role: Identity "people" gives role "analist" to 1 user (zed), but no role block defines it: they do not get it. Did you mean "analyst"?`,
		`warning: Unknown role: Identity "people" gives role "ghost" to 1 user (zed), but no role block defines it: they do not get it.`,
	}, "\n")
	if got := diagText(diags); got != want {
		t.Errorf("diagnostics:\n%s\nwant:\n%s", got, want)
	}
}

func TestLoadIdentities(t *testing.T) {
	cfg, ids, diags := loadIdentities(t, "SELECT * FROM public.people", "")
	t.Run("bad rows are warnings naming the login", func(t *testing.T) {
		want := strings.Join([]string{
			`warning: Invalid identity row: Identity "people": login "dup" has more than one row: it has no access until it has one.`,
			`warning: Invalid identity row: Identity "people": login "grid": column grid: multi-dimensional arrays are not supported; it has no access until the row is fixed.`,
			`warning: Invalid identity row: Identity "people": login "badpw": the password is not a SCRAM-SHA-256 verifier; it has no access until the row is fixed.`,
			`warning: Invalid identity row: Identity "people": row 9 has no login; it is ignored.`,
			`warning: Unknown role: Identity "people" gives role "ghost" to 1 user (ann), but no role block defines it: they do not get it.`,
		}, "\n")
		if got := diagText(diags); got != want {
			t.Errorf("diagnostics:\n%s\nwant:\n%s", got, want)
		}
		for _, d := range diags {
			if d.Subject == nil || d.Subject.Filename != cfg.Files[0] {
				t.Errorf("%s does not point at the identity block", d.Summary)
			}
		}
	})
	t.Run("bad rows leave their login without access", func(t *testing.T) {
		for _, login := range []string{"dup", "grid", "badpw"} {
			if _, err := cfg.Compile(login, ids); err == nil {
				t.Errorf("%s compiles", login)
			}
		}
	})
	t.Run("columns become the user's fields and attributes", func(t *testing.T) {
		ann, ok := ids.User("ann")
		if !ok {
			t.Fatal("ann cannot log in")
		}
		got := fmt.Sprintf("roles %q team %d groups %q attributes %s", ann.Roles, *ann.Team, ann.Groups, dumpAttributes(ann.Attributes))
		want := `roles ["analyst"] team 9 groups ["g1"] attributes {active = true, big = 12345678901, born = "2000-01-02", ` +
			`codes = [1, 2], level = 5, ratio = 1.50, region = "hcl", regions = ["n", "s"]}`
		if got != want {
			t.Errorf("\n got: %s\nwant: %s", got, want)
		}
	})
	t.Run("a user block wins field by field", func(t *testing.T) {
		ann, _ := ids.User("ann")
		if *ann.Team != 9 || ann.Attributes["region"].String() != `"hcl"` || !ann.HasPassword() {
			t.Errorf("ann: team %d, region %s, password %v", *ann.Team, ann.Attributes["region"], ann.HasPassword())
		}
	})
	t.Run("a login without password or role cannot authenticate", func(t *testing.T) {
		for _, login := range []string{"bob", "carl"} {
			if _, ok := ids.User(login); ok {
				t.Errorf("%s may authenticate", login)
			}
		}
		if _, err := cfg.Compile("carl", ids); err != nil {
			t.Errorf("carl has a role and no password: his policy still compiles: %v", err)
		}
	})
	t.Run("NaN is a string, not a number", func(t *testing.T) {
		carl, _ := ids.lookup("carl")
		if got := carl.Attributes["odd"].String(); got != `"NaN"` {
			t.Errorf("odd = %s", got)
		}
	})
	t.Run("groups gather the members of every source", func(t *testing.T) {
		if got := ids.members["g1"]; !slices.Equal(got, []string{"ann", "carl"}) {
			t.Errorf("g1: %q", got)
		}
	})
	t.Run("a hostile value binds as one literal", func(t *testing.T) {
		p, err := cfg.compile("hostile", ids)
		if err != nil {
			t.Fatal(err)
		}
		if got := literal(p.attr("region")).GetAConst().GetSval().GetSval(); got != hostileRegion {
			t.Errorf("region %q", got)
		}
	})
	t.Run("the version covers the identity rows", func(t *testing.T) {
		_, again, _ := loadIdentities(t, "SELECT * FROM public.people", "")
		if cfg.Version(again) != cfg.Version(ids) {
			t.Error("the same rows give another version")
		}
		if cfg.Version(ids) == cfg.Version(cfg.HCLIdentities()) {
			t.Error("the rows do not change the version")
		}
	})
}

func TestLoadIdentitiesMergesSources(t *testing.T) {
	cfg, ids, diags := loadIdentities(t, "SELECT login, team, region FROM public.people WHERE login IN ('ann', 'carl')", `
identity "extra" {
  query = "SELECT login, team, region FROM public.extra"
}`)
	if len(diags) > 0 {
		t.Fatal(diagText(diags))
	}
	if u, _ := ids.lookup("ann"); u == nil || u.Attributes["region"].String() != `"hcl"` {
		t.Errorf("ann, on whom the sources agree: %+v", u)
	}
	_, err := cfg.Compile("carl", ids)
	if want := `no access: login "carl": identity blocks "people" and "extra" give different team`; err == nil || err.Error() != want {
		t.Errorf("carl: %v, want %s", err, want)
	}
}

// TestLoadIdentitiesOfAnEmptyTable holds an identity query that returns
// no row (a table emptied by a job that loads it again) to loading no
// identity row, as the rows say, rather than to an error that its
// columns, which PostgreSQL describes all the same, lack login.
func TestLoadIdentitiesOfAnEmptyTable(t *testing.T) {
	_, ids, diags := loadIdentities(t, "SELECT login, team, region FROM public.people WHERE false", "")
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	if _, ok := ids.User("ann"); ok {
		t.Error("ann, whose row the query did not return, is a user")
	}
}

func TestLoadIdentitiesErrors(t *testing.T) {
	cases := []struct{ name, query, extra, want string }{
		{"a failing query is an error", "SELECT login FROM public.nowhere", "",
			`error: Identity query failed: The query of identity "people" failed upstream: ERROR: relation "public.nowhere" does not exist (SQLSTATE 42P01).`},
		{"a misspelt column of a failing query carries PostgreSQL's suggestion", "SELECT login, regoin FROM public.people", "",
			`error: Identity query failed: The query of identity "people" failed upstream: ERROR: column "regoin" does not exist (SQLSTATE 42703). PostgreSQL's hint: Perhaps you meant to reference the column "people.region".`},
		{"a query that writes fails in the read-only transaction", "SELECT login, nextval('public.counter') AS n FROM public.people", "",
			`error: Identity query failed: The query of identity "people" failed upstream: ERROR: cannot execute nextval() in a read-only transaction (SQLSTATE 25006).`},
		{"a query without login column is an error", "SELECT team FROM public.people", "",
			`error: Invalid identity column: Identity "people": the query returns no login column: select the user name AS login, e.g. "SELECT name AS login, … FROM …".`},
		{"a team that is not an integer is an error", "SELECT login, region AS team FROM public.people", "",
			`error: Invalid identity column: Identity "people": the team column must be an integer (a team id), not text.`},
		{"the columns of a query that returns no row are checked too", "SELECT login, region AS team FROM public.people WHERE false", "",
			`error: Invalid identity column: Identity "people": the team column must be an integer (a team id), not text.`},
		{"groups that are not text are an error", "SELECT login, codes AS groups FROM public.people", "",
			`error: Invalid identity column: Identity "people": the groups column must be text or text[] (one name, or an array of names), not int4[].`},
		{"two columns with one name are an error", "SELECT login, team, level AS team FROM public.people", "",
			`error: Invalid identity column: Identity "people": the query returns two columns named team; give them distinct names with AS.`},
		{"a teams table that cannot be read is an error, with PostgreSQL's suggestion for a misspelt column", "SELECT login FROM public.extra", `
teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}`, `error: Cannot read the teams table: Reading public.teams (id, parent_id) failed upstream: ERROR: column "parent_id" does not exist (SQLSTATE 42703). PostgreSQL's hint: Perhaps you meant to reference the column "teams.parent".`},
		{"a teams table column that is not an integer is an error", "SELECT login FROM public.extra", `
teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "label"
}`, `error: Invalid teams table: public.teams.label must be an integer column.`},
		{"a loop in the teams table is a warning", "SELECT login FROM public.extra", `
teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent"
}`, `warning: Teams table is not a tree: In public.teams, team 3 is below itself (its parents loop). team_subtree still terminates, but the loop's teams all see each other.`},
		{"a restrictive rule naming a login spelled otherwise is an error", "SELECT login FROM public.extra", `
table "public.t" {}
rule "ann_only" {
  tables = ["public.t"]
  users  = ["Ann"]
  kind   = "restrictive"
  where  = "false"
}`, `error: Unknown user: Rule "ann_only" names user "Ann", whom no user block or identity row defines: it applies to no one there yet. Logins are compared exactly: did you mean "ann"? A restrictive rule naming no one restricts no one.`},
		{"a rule naming an unknown login or group is a warning", "SELECT login FROM public.extra", `
table "public.t" { owner_column = "owner" }
rule "later" {
  tables = ["public.t"]
  users  = ["carla"]
  scope  = "groups"
  groups = ["nobody"]
}`, `warning: Unknown user: Rule "later" names user "carla", whom no user block or identity row defines: it applies to no one there yet. Did you mean "carl"?
warning: Empty group: No user is in group "nobody", so rule "later" grants no row through it.`},
		{"a misspelt attribute suggests the identity column", "SELECT login, region FROM public.extra", `
table "public.t" {}
rule "by_region" {
  tables = ["public.t"]
  users  = ["carl"]
  where  = "true = (me.regoin IS NOT NULL)"
}`, `warning: Unknown attribute: Rule by_region reads me.regoin, but no user has that attribute (in user blocks or identity columns groups, login, region, roles, team), so every user lacks it (a rule reading it grants no row, a mask reading it shows NULL). Did you mean me.region?`},
		{"roles lifting another role's ceiling are a warning", "SELECT 'bob' AS login, ARRAY['analyst', 'agent'] AS roles", `
role "agent" {
  statements = ["select"]
  scope      = "self"
}
table "public.t" { owner_column = "owner" }
rule "everything" {
  tables = ["public.t"]
  roles  = ["agent"]
  scope  = "all"
}`, `warning: Ceiling lifted: 1 user (bob) holds role "analyst", whose scope is "all", and role "agent", whose scope is "self": a role with scope "all" leaves out the ceilings of the others, so "agent" does not bound what its rules grant this user (rule everything). Give "analyst" a scope, or grant the rows of "agent" by rules of their own.`},
		{"an empty group of a restrictive rule lets no row pass", "SELECT login FROM public.extra", `
table "public.t" { owner_column = "owner" }
rule "fence" {
  tables = ["public.t"]
  users  = ["carl"]
  kind   = "restrictive"
  scope  = "groups"
  groups = ["nobody"]
}`, `warning: Empty group: No user is in group "nobody", so restrictive rule "fence" lets no row pass through it: only the rows of its other groups' members pass.`},
	}
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			_, _, diags := loadIdentities(t, tt.query, tt.extra)
			if got := diagText(diags); got != tt.want {
				t.Errorf("diagnostics:\n%s\nwant:\n%s", got, tt.want)
			}
		})
	}
}

func TestLoadIdentitiesReadsDatesInISO8601AndUTC(t *testing.T) {
	setupIdentitiesDB(t)
	cfg := loadPolicy(t, strings.Replace(identitiesPolicy, "QUERY",
		"SELECT 'ann' AS login, ARRAY['analyst'] AS roles, DATE '2025-03-02' AS since, "+
			"TIMESTAMPTZ '2025-03-02 10:00:00+00' AS at, INTERVAL '-1 day 02:00:00' AS span", 1))
	conn := connectAs(t, identitiesDB, "pgveil_svc", demoSvcPassword)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// NOTE: as a server or role default would.
	if _, err := conn.Exec(ctx, "SET DateStyle = 'German, DMY'; SET TimeZone = 'Asia/Tokyo'; SET IntervalStyle = 'sql_standard'").ReadAll(); err != nil {
		t.Fatal(err)
	}
	ids, diags := cfg.LoadIdentities(ctx, live.New(conn))
	if diags.HasErrors() {
		t.Fatal(diagText(diags))
	}
	u, why := ids.lookup("ann")
	if u == nil {
		t.Fatal(why)
	}
	for name, want := range map[string]string{"since": `"2025-03-02"`, "at": `"2025-03-02 10:00:00+00"`, "span": `"-1 days +02:00:00"`} {
		if got := u.Attributes[name].String(); got != want {
			t.Errorf("me.%s = %s, want %s", name, got, want)
		}
	}
	if got := queryOne(t, conn, "SELECT pg_catalog.current_setting('DateStyle')"); got[0] != "German, DMY" {
		t.Errorf("LoadIdentities changed the session's DateStyle to %s", got[0])
	}
}

func TestAnUnknownLoginsMockExchangeAsksForTheCommonIterationCount(t *testing.T) {
	verifier := func(n int) scram.Verifier {
		v, err := scram.NewVerifier("pw", n)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	tests := []struct {
		name  string
		users map[string]*User
		want  int
	}{
		{"without verifiers it is PostgreSQL's default", map[string]*User{"c": {Auth: AuthCert}}, scram.DefaultIterations},
		{"it is the count most verifiers ask for", map[string]*User{
			"a": {Verifier: verifier(10000)}, "b": {Verifier: verifier(10000)}, "c": {Verifier: verifier(4096)},
		}, 10000},
		{"of two as common it is the larger", map[string]*User{
			"a": {Verifier: verifier(4096)}, "b": {Verifier: verifier(20000)},
		}, 20000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &Config{Users: tt.users}
			if got := cfg.HCLIdentities().MockIterations(); got != tt.want {
				t.Fatalf("MockIterations() = %d, want %d", got, tt.want)
			}
		})
	}
}

// TestIdentityRefreshDecodes checks an identity block's refresh: a
// minute by default, like upstream.catalog_refresh, or what it says.
// (Bad values are in testdata/identity_query.hcl.)
func TestIdentityRefreshDecodes(t *testing.T) {
	cfg := loadPolicy(t, strings.Replace(identitiesPolicy, "QUERY", "SELECT login FROM people", 1)+`
identity "hr" {
  query   = "SELECT login FROM extra"
  refresh = "30s"
}
`)
	got := map[string]time.Duration{}
	for _, s := range cfg.IdentitySources {
		got[s.Name] = s.Refresh
	}
	if want := map[string]time.Duration{"people": time.Minute, "hr": 30 * time.Second}; !maps.Equal(got, want) {
		t.Errorf("refresh = %v, want %v", got, want)
	}
}
