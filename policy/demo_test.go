package policy

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy/live"

	"github.com/pgveil/pgveil/rewrite"
)

// demoConfig is the demo configuration, relative to this package.
const demoConfig = "../configs/demo.hcl"

// demoLogins are the users of configs/demo.hcl.
var demoLogins = []string{"marie", "hq", "survey_admin", "paul", "tom", "lea", "bpo_a", "ops", "bank_app"}

// loadDemoConfig loads configs/demo.hcl with its environment set.
func loadDemoConfig(t *testing.T) *Config {
	t.Helper()
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo")
	l := NewLoader()
	cfg, diags := l.Load(demoConfig)
	if len(diags) > 0 {
		var out bytes.Buffer
		_ = WriteDiagnostics(&out, l.Files(), diags)
		t.Fatalf("configs/demo.hcl:\n%s", out.String())
	}
	return cfg
}

func TestDemoPolicyCompilesEveryUser(t *testing.T) {
	cfg := loadDemoConfig(t)
	ids := cfg.HCLIdentities()
	rel := relation("public", "responses", []string{
		"id", "survey_id", "contact", "email", "country", "branch", "nps", "score",
		"agent_login", "team_id", "tags", "sentiment", "comment", "submitted_at"})
	masked := map[string][]string{
		"marie":        {"contact", "email", "score"},
		"hq":           {"contact", "email"},
		"survey_admin": {"score"},
	}
	for _, login := range demoLogins {
		t.Run(login+" compiles, may select and may log in", func(t *testing.T) {
			p, err := cfg.Compile(login, ids)
			if err != nil {
				t.Fatal(err)
			}
			if ok, reason := p.AllowStatement(rewrite.KindSelect); !ok {
				t.Error(reason)
			}
			if _, ok := ids.User(login); !ok {
				t.Error("cannot log in")
			}
			acc := p.Relation(rel)
			if acc.Mode != rewrite.Governed {
				t.Fatalf("responses: %v %s", acc.Mode, acc.Reason)
			}
			var got []string
			for c := range acc.Masks {
				got = append(got, c)
			}
			sort.Strings(got)
			want := masked[login]
			if want == nil {
				want = []string{"contact", "email", "score"}
			}
			if !slices.Equal(got, want) {
				t.Errorf("masked columns %q, want %q", got, want)
			}
			for _, denied := range []string{"employees", "team_surveys"} {
				if acc := p.Relation(relation("public", denied, []string{"x"})); acc.Mode != rewrite.Denied {
					t.Errorf("%s: %v, want denied", denied, acc.Mode)
				}
			}
		})
	}
	t.Run("an employee without a user block cannot log in without identity rows", func(t *testing.T) {
		if _, err := cfg.Compile("chloe", ids); err == nil {
			t.Error("chloe compiles")
		}
	})
}

// demoDB is the database the demo data is loaded into, once.
const demoDB = "policy_demo"

// demoSvcPassword is the service account's password in demoDB.
const demoSvcPassword = "svc-demo-password"

// loadDemoDatabase creates demoDB from testdata/demo/*.sql, as the demo
// runner does, once per test binary.
func loadDemoDatabase(t *testing.T) {
	t.Helper()
	pgtest.Require(t, cluster)
	demoOnce.Do(func() { demoErr = createDemoDatabase() })
	if demoErr != nil {
		t.Fatal(demoErr)
	}
}

var (
	// demoOnce guards loading demoDB; demoErr is its outcome.
	demoOnce sync.Once
	demoErr  error
)

// createDemoDatabase loads the demo files in name order.
func createDemoDatabase() error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	return cluster.LoadDemo(ctx, "../testdata/demo", demoDB, demoSvcPassword)
}

// connectAs connects to database as user.
func connectAs(t *testing.T, database, user, password string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgconn.Connect(ctx, fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable", user, password, cluster.Addr(), database))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// queryOne runs sql and returns the first column of every row, NULL as
// "NULL".
func queryOne(t *testing.T, conn *pgconn.PgConn, sql string) []string {
	t.Helper()
	res := conn.ExecParams(context.Background(), sql, nil, nil, nil, nil).Read()
	if res.Err != nil {
		t.Fatalf("%v\n%s", res.Err, sql)
	}
	var out []string
	for _, r := range res.Rows {
		if r[0] == nil {
			out = append(out, "NULL")
		} else {
			out = append(out, string(r[0]))
		}
	}
	return out
}

// catalogRelation reads the columns of schema.name from the catalog.
func catalogRelation(t *testing.T, conn *pgconn.PgConn, schema, name string) *rewrite.Relation {
	t.Helper()
	cols := queryOne(t, conn, fmt.Sprintf(`SELECT attname FROM pg_attribute
		WHERE attrelid = '%s.%s'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum`, schema, name))
	return relation(schema, name, cols)
}

func TestDemoPolicyOnTheDemoData(t *testing.T) {
	loadDemoDatabase(t)
	cfg := loadDemoConfig(t)
	svc := connectAs(t, demoDB, "pgveil_svc", demoSvcPassword)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	ids, diags := cfg.LoadIdentities(ctx, live.New(svc))
	if diags.HasErrors() || ids == nil {
		t.Fatalf("LoadIdentities: %v", diags)
	}
	for _, d := range diags {
		t.Logf("warning: %s: %s", d.Summary, d.Detail)
	}
	superuser, password := cluster.SuperUser()
	truth := connectAs(t, demoDB, superuser, password)
	responses := catalogRelation(t, svc, "public", "responses")
	countries := catalogRelation(t, svc, "public", "countries")

	// governed returns the subquery the rewriter would put in place of
	// rel for login, as SQL.
	governed := func(t *testing.T, login string, rel *rewrite.Relation) string {
		t.Helper()
		p, err := cfg.Compile(login, ids)
		if err != nil {
			t.Fatal(err)
		}
		acc := p.Relation(rel)
		if acc.Mode != rewrite.Governed {
			t.Fatalf("%s: %v %s", rel.QName, acc.Mode, acc.Reason)
		}
		return "(" + accessSQL(t, rel, acc) + ")"
	}
	// through runs "SELECT <what> FROM <login's view of rel> r <rest>"
	// as the service account.
	through := func(t *testing.T, login string, rel *rewrite.Relation, what, rest string) []string {
		t.Helper()
		return queryOne(t, svc, "SELECT "+what+" FROM "+governed(t, login, rel)+" r "+rest)
	}
	// count is the number of responses matching where, read directly.
	count := func(t *testing.T, where string) string {
		t.Helper()
		return queryOne(t, truth, "SELECT count(*) FROM public.responses WHERE "+where)[0]
	}
	sameRows := func(t *testing.T, login, where string) {
		t.Helper()
		got := through(t, login, responses, "count(*)", "")[0]
		if want := count(t, where); got != want {
			t.Errorf("%s sees %s responses, want %s (%s)", login, got, want, where)
		}
		if got == "0" {
			t.Errorf("%s sees no response: the check proves nothing", login)
		}
	}
	expect := func(t *testing.T, got []string, want ...string) {
		t.Helper()
		if !slices.Equal(got, want) {
			t.Errorf("got %q, want %q", got, want)
		}
	}
	personal := "count(*) FILTER (WHERE contact IS NOT NULL OR email IS NOT NULL)"
	scored := "count(*) FILTER (WHERE score IS NOT NULL)"

	t.Run("identities come from public.employees and the user blocks", func(t *testing.T) {
		paul, ok := ids.User("paul")
		if !ok || paul.Team == nil || *paul.Team != 7 || !slices.Equal(paul.Groups, []string{"manager"}) || !slices.Equal(paul.Roles, []string{"manager"}) {
			t.Errorf("paul: %+v", paul)
		}
		if _, ok := ids.User("chloe"); ok {
			t.Error("chloe, an employee without password or role, may log in")
		}
		if got := len(ids.Logins()); got != 34 {
			t.Errorf("%d logins, want the 33 employees and the metabase service", got)
		}
	})
	t.Run("marie sees French responses without personal data or score", func(t *testing.T) {
		expect(t, through(t, "marie", responses, "DISTINCT country", ""), "France")
		sameRows(t, "marie", "country = 'France'")
		expect(t, through(t, "marie", responses, personal+" + "+scored, ""), "0")
		expect(t, through(t, "marie", countries, "name", "ORDER BY 1"), "France")
	})
	t.Run("hq sees every country and the score, no personal data", func(t *testing.T) {
		expect(t, through(t, "hq", responses, "count(DISTINCT country)", ""), "6")
		sameRows(t, "hq", "true")
		expect(t, through(t, "hq", responses, personal, ""), "0")
		expect(t, through(t, "hq", responses, scored, ""), count(t, "score IS NOT NULL"))
		expect(t, through(t, "hq", countries, "count(*)", ""), "6")
	})
	t.Run("survey_admin sees contact and email on every row", func(t *testing.T) {
		sameRows(t, "survey_admin", "true")
		expect(t, through(t, "survey_admin", responses, personal, ""), count(t, "contact IS NOT NULL OR email IS NOT NULL"))
		expect(t, through(t, "survey_admin", responses, scored, ""), "0")
	})
	t.Run("paul sees Frozen Food and every team below it", func(t *testing.T) {
		sameRows(t, "paul", "team_id IN (7, 8, 9, 10, 11)")
		// NOTE: Frozen Food (7) and Pizza (8) have no agent of their own.
		expect(t, through(t, "paul", responses, "array_agg(DISTINCT team_id)", ""), "{9,10,11}")
	})
	t.Run("tom sees the responses he handled", func(t *testing.T) {
		expect(t, through(t, "tom", responses, "DISTINCT agent_login", ""), "tom")
		sameRows(t, "tom", "agent_login = 'tom'")
	})
	t.Run("lea sees her team's responses to her team's surveys, and her own", func(t *testing.T) {
		sameRows(t, "lea", "(team_id = 11 AND survey_id IN (SELECT survey_id FROM public.team_surveys WHERE team_id = 11)) OR agent_login = 'lea'")
	})
	t.Run("lea's ceiling keeps the escalations rule within her team", func(t *testing.T) {
		// Without the own_team ceiling, the escalations rule (nps <= 3, any
		// team) would show her these rows of other teams.
		if n := count(t, "nps <= 3 AND team_id <> 11 AND survey_id IN (1, 5)"); n == "0" {
			t.Fatal("no escalation outside Desserts: the check proves nothing")
		}
		expect(t, through(t, "lea", responses, "count(*)", "WHERE team_id <> 11 AND agent_login <> 'lea'"), "0")
	})
	t.Run("bpo_a sees the responses of the agents of vendor_a", func(t *testing.T) {
		sameRows(t, "bpo_a", "agent_login IN ('bpo_a', 'bpo_a2', 'bpo_a3')")
	})
	t.Run("ops sees the vendors' responses and his own", func(t *testing.T) {
		sameRows(t, "ops", "agent_login IN ('bpo_a', 'bpo_a2', 'bpo_a3', 'bpo_b', 'bpo_b2', 'bpo_b3', 'ops')")
		if n := through(t, "ops", responses, "count(*)", "WHERE agent_login = 'ops'")[0]; n == "0" {
			t.Error("ops does not see his own rows")
		}
	})
	t.Run("bank_app sees Banking App feedback that needs action", func(t *testing.T) {
		sameRows(t, "bank_app", "'Banking App' = ANY(tags) AND sentiment IN ('neutral', 'negative')")
	})
}

func TestHashMaskIsHMACSHA256(t *testing.T) {
	pgtest.Require(t, cluster)
	const policyText = users + `
table "public.people" {
  column "short" {
    class  = "pii"
    mask   = "hash"
    secret = "key"
  }
  column "long" {
    class  = "pii"
    mask   = "hash"
    secret = "` + "KEY" + `"
  }
}
rule "all" {
  tables = ["public.people"]
  roles  = ["analyst"]
  scope  = "all"
}`
	long := strings.Repeat("k", 100)
	cfg := loadPolicy(t, strings.Replace(policyText, `"KEY"`, `"`+long+`"`, 1))
	ctx := context.Background()
	user, password := cluster.SuperUser()
	admin := connectAs(t, "postgres", user, password)
	const svc, svcPassword = "pgveil_mask_svc", "mask-svc-pw"
	if err := admin.Exec(ctx, `DROP SCHEMA IF EXISTS pgveil CASCADE; DROP ROLE IF EXISTS `+svc+`;
		CREATE ROLE `+svc+` LOGIN PASSWORD '`+svcPassword+`'`).Close(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = admin.Exec(context.Background(), `DROP SCHEMA IF EXISTS pgveil CASCADE; DROP ROLE IF EXISTS `+svc).Close()
	})
	cfg.Upstream.User = svc
	if !cfg.HasHashMasks() {
		t.Fatal("no hash mask seen")
	}
	service := connectAs(t, "postgres", svc, svcPassword)

	t.Run("before the keys are installed, the check fails at the first hash mask, naming the configuration", func(t *testing.T) {
		d := cfg.CheckMaskKeys(ctx, live.New(service))
		if !d.HasErrors() {
			t.Fatal("no error")
		}
		wantKeyDiagnostic(t, d[0], "Hash mask keys are not installed", `schema "pgveil" does not exist`,
			"pgveil mask-keys --config "+cfg.Files[0], 47)
	})
	if err := pgtest.RunScript(ctx, admin, cfg.MaskKeysSQL()); err != nil {
		t.Fatalf("installing the keys: %v\n%s", err, cfg.MaskKeysSQL())
	}
	p, err := cfg.compile("marie", cfg.HCLIdentities())
	if err != nil {
		t.Fatal(err)
	}
	rel := relation("public", "people", []string{"short", "long"})
	sql := accessSQL(t, rel, p.Relation(rel))

	t.Run("the statement names the keys but holds no secret", func(t *testing.T) {
		for _, key := range []string{"key", long} {
			ipad, opad := hmacPads([]byte(key))
			for _, secret := range [][]byte{ipad, opad} {
				if strings.Contains(sql, hex.EncodeToString(secret)) {
					t.Errorf("a padded key is in the statement: %s", sql)
				}
			}
		}
		if !strings.Contains(sql, "pgveil.mask_hash(") {
			t.Errorf("no call of pgveil.mask_hash: %s", sql)
		}
	})
	t.Run("the service account hashes with the installed keys", func(t *testing.T) {
		value := "marie@example.fr ☃"
		res := service.ExecParams(ctx, "WITH people(short, long) AS (VALUES ($1::text, $1::text)) "+
			strings.Replace(sql, "FROM public.people", "FROM people", 1), [][]byte{[]byte(value)}, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, sql)
		}
		for i, key := range []string{"key", long} {
			if got, want := string(res.Rows[0][i]), hmacHex(key, value); got != want {
				t.Errorf("key of %d bytes: %s, want %s", len(key), got, want)
			}
		}
	})
	t.Run("integer and uuid columns get pseudonyms of the same HMAC, exactly", func(t *testing.T) {
		typed := &rewrite.Relation{QName: rel.QName, Columns: []rewrite.Column{{Name: "short", Type: "integer"}, {Name: "long", Type: "uuid"}}}
		acc := p.Relation(typed)
		if got := fmt.Sprint(typeNameString(acc.MaskTypes["short"]), " ", typeNameString(acc.MaskTypes["long"])); got != "pg_catalog.int8 pg_catalog.uuid" {
			t.Errorf("served types %s, want pg_catalog.int8 pg_catalog.uuid", got)
		}
		typedSQL := accessSQL(t, typed, acc)
		// NOTE: -20…20 covers digests whose first bit is set (the sign
		// bit, cleared) and ones whose first bit is not.
		res := service.ExecParams(ctx, "WITH people(short, long, v, u) AS (SELECT g::int4, u, g, u FROM pg_catalog.generate_series(-20, 20) g, "+
			"LATERAL (SELECT ('00000000-0000-0000-0000-' || pg_catalog.lpad(pg_catalog.abs(g)::text, 12, '0'))::uuid AS u) x) "+
			strings.Replace(strings.Replace(typedSQL, "FROM public.people", "FROM people", 1), "SELECT ", "SELECT v, u, ", 1)+
			" ORDER BY v", nil, nil, nil, nil).Read()
		if res.Err != nil {
			t.Fatalf("%v\n%s", res.Err, typedSQL)
		}
		if len(res.Rows) != 41 {
			t.Fatalf("%d rows, want 41", len(res.Rows))
		}
		cleared := 0
		for _, row := range res.Rows {
			v, u := string(row[0]), string(row[1])
			digest := hmacHex("key", v)
			n, err := strconv.ParseUint(digest[:16], 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			if n>>63 == 1 {
				cleared++
			}
			if got, want := string(row[2]), strconv.FormatUint(n&(1<<63-1), 10); got != want {
				t.Errorf("pseudonym of %s: %s, want %s (digest %s)", v, got, want, digest)
			}
			d := hmacHex(long, u)
			if got, want := string(row[3]), d[:8]+"-"+d[8:12]+"-"+d[12:16]+"-"+d[16:20]+"-"+d[20:32]; got != want {
				t.Errorf("pseudonym of %s: %s, want %s", u, got, want)
			}
		}
		if cleared == 0 || cleared == len(res.Rows) {
			t.Errorf("%d of %d digests have their first bit set: the sign bit is not exercised", cleared, len(res.Rows))
		}
	})
	t.Run("the service account cannot read the keys", func(t *testing.T) {
		if err := service.Exec(ctx, "SELECT * FROM pgveil.mask_keys").Close(); err == nil {
			t.Fatal("the keys' table is readable by the service account")
		}
		if d := cfg.CheckMaskKeys(ctx, live.New(service)); d.HasErrors() {
			t.Fatalf("the check fails on installed keys: %v", d)
		}
	})
	t.Run("a key that differs from the configured secret fails the check at its column's secret", func(t *testing.T) {
		other := loadPolicy(t, strings.Replace(policyText, `"KEY"`, `"another secret"`, 1))
		other.Upstream.User = svc
		d := other.CheckMaskKeys(ctx, live.New(service))
		if len(d) != 1 {
			t.Fatalf("%d diagnostics, want 1: %v", len(d), d)
		}
		wantKeyDiagnostic(t, d[0], "Hash mask key is not installed", "pgveil.mask_keys has no key of its id", "pgveil mask-keys --config", 52)
	})
	t.Run("a service account reading the keys through a role membership is told which to revoke", func(t *testing.T) {
		if err := admin.Exec(ctx, "GRANT pg_read_all_data TO "+svc).Close(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = admin.Exec(context.Background(), "REVOKE pg_read_all_data FROM "+svc).Close() })
		d := cfg.CheckMaskKeys(ctx, live.New(service))
		if len(d) != 1 || d[0].Summary != "Service account can read the hash mask keys" {
			t.Fatalf("diagnostics: %v", d)
		}
		if want := `REVOKE "pg_read_all_data" FROM "` + svc + `"`; !strings.Contains(d[0].Detail, want) ||
			strings.Contains(d[0].Detail, "REVOKE ALL ON") {
			t.Fatalf("detail %q: want %q and no REVOKE ALL ON", d[0].Detail, want)
		}
		if err := admin.Exec(ctx, "REVOKE pg_read_all_data FROM "+svc).Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a service account granted the keys' columns fails the check", func(t *testing.T) {
		// A review: has_table_privilege sees table grants only; a grant
		// of the columns lets the service account read the pads too.
		if err := admin.Exec(ctx, "GRANT SELECT (id, ipad, opad) ON pgveil.mask_keys TO "+svc).Close(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = admin.Exec(context.Background(), "REVOKE SELECT (id, ipad, opad) ON pgveil.mask_keys FROM "+svc).Close()
		})
		if err := service.Exec(ctx, "SELECT ipad, opad FROM pgveil.mask_keys").Close(); err != nil {
			t.Fatalf("the column grant did not let the service account read the pads: %v", err)
		}
		d := cfg.CheckMaskKeys(ctx, live.New(service))
		if len(d) != 1 || d[0].Summary != "Service account can read the hash mask keys" {
			t.Fatalf("the service account reads the pads, and the check says: %v", d)
		}
		// The hint takes the column grant too.
		hint := `REVOKE ALL ON pgveil.mask_keys FROM "` + svc + `"`
		if !strings.Contains(d[0].Detail, hint) {
			t.Fatalf("detail %q: want %q", d[0].Detail, hint)
		}
		if err := admin.Exec(ctx, hint).Close(); err != nil {
			t.Fatal(err)
		}
		if d := cfg.CheckMaskKeys(ctx, live.New(service)); len(d) != 0 {
			t.Fatalf("after %s: %v", hint, d)
		}
	})
	t.Run("a service account that can read the keys fails the check", func(t *testing.T) {
		if err := admin.Exec(ctx, "GRANT SELECT ON pgveil.mask_keys TO "+svc).Close(); err != nil {
			t.Fatal(err)
		}
		d := cfg.CheckMaskKeys(ctx, live.New(service))
		if len(d) != 1 || !strings.Contains(d[0].Detail, `REVOKE ALL ON pgveil.mask_keys FROM "`+svc+`".`) {
			t.Fatalf("diagnostics: %v", d)
		}
	})
}

// wantKeyDiagnostic fails t unless d is an error with summary whose
// detail holds each of want and no Go nil, at line of the policy file.
func wantKeyDiagnostic(t *testing.T, d *hcl.Diagnostic, summary, want1, want2 string, line int) {
	t.Helper()
	if d.Severity != hcl.DiagError || d.Summary != summary {
		t.Errorf("diagnostic %q (%v), want the error %q", d.Summary, d.Severity, summary)
	}
	for _, w := range []string{want1, want2} {
		if !strings.Contains(d.Detail, w) {
			t.Errorf("detail %q lacks %q", d.Detail, w)
		}
	}
	if strings.Contains(d.Detail, "nil") {
		t.Errorf("detail %q holds a Go nil", d.Detail)
	}
	if d.Subject == nil || d.Subject.Start.Line != line {
		t.Errorf("diagnostic at %v, want line %d", d.Subject, line)
	}
}

// hmacHex is the reference HMAC-SHA256 of value under key, in hex.
func hmacHex(key, value string) string {
	mac := hmac.New(sha256.New, []byte(key))
	mac.Write([]byte(value))
	return hex.EncodeToString(mac.Sum(nil))
}

// typeNameString renders a type name's qualified name, "" for nil.
func typeNameString(tn *pg_query.TypeName) string {
	var parts []string
	for _, n := range tn.GetNames() {
		parts = append(parts, n.GetString_().GetSval())
	}
	return strings.Join(parts, ".")
}
