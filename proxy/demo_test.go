package proxy_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

const demoDB = "feedback"

var (
	demoOnce sync.Once
	demoErr  error
)

// setupDemo loads testdata/demo into the database feedback once.
func setupDemo(t testing.TB) {
	t.Helper()
	setupUpstream(t)
	demoOnce.Do(func() {
		demoErr = cluster.LoadDemo(context.Background(), "../testdata/demo", demoDB, "demo-service-account")
	})
	if demoErr != nil {
		t.Fatalf("loading the demo database: %v", demoErr)
	}
}

// startDemo runs pgveil with configs/demo.hcl, policies enforced, in
// front of the demo database; opts adjust its options.
func startDemo(t *testing.T, opts ...func(*proxy.Options)) *testProxy {
	t.Helper()
	p, _ := startDemoFrom(t, "../configs/demo.hcl", opts...)
	return p
}

// startDemoFrom is startDemo with the configuration at path; it also
// returns the policies in force, which a Reloader may replace.
func startDemoFrom(t *testing.T, path string, opts ...func(*proxy.Options)) (*testProxy, *server.Policies) {
	t.Helper()
	return startDemoWith(t, path, nil, opts...)
}

// startDemoWith is startDemoFrom with the configuration changed by
// change, when not nil, before the server starts.
func startDemoWith(t *testing.T, path string, change func(*policy.Config), opts ...func(*proxy.Options)) (*testProxy, *server.Policies) {
	t.Helper()
	cfg := demoConfig(t, path, change)
	enf, _, err := server.LoadEnforcement(context.Background(), cfg)
	if err != nil {
		t.Fatalf("loading enforcement: %v", err)
	}
	pols := server.NewPolicies(enf)
	po := proxy.Options{Logger: zaptest.NewLogger(t, zaptest.Level(zap.ErrorLevel))}
	pols.Apply(&po)
	for _, o := range opts {
		o(&po)
	}
	return serve(t, cfg, po), pols
}

// demoConfig loads the configuration at path against the demo database,
// and applies change (when not nil) to it.
func demoConfig(t *testing.T, path string, change func(*policy.Config)) *policy.Config {
	t.Helper()
	setupDemo(t)
	t.Setenv("PGVEIL_DEMO_UPSTREAM", cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	t.Setenv("PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		t.Fatalf("loading %s:\n%s", path, b.String())
	}
	if change != nil {
		change(cfg)
	}
	return cfg
}

// direct runs sql as the superuser on the demo database and returns the
// rows as strings.
func direct(t *testing.T, sql string) [][]string {
	t.Helper()
	ctx := context.Background()
	c, err := cluster.Connect(ctx, demoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	return textRows(t, sql, c.ExecParams(ctx, sql, nil, nil, nil, nil).Read())
}

// textRows returns a result's rows as strings, NULL for null.
func textRows(t *testing.T, sql string, res *pgconn.Result) [][]string {
	t.Helper()
	if res.Err != nil {
		t.Fatalf("%s: %v", sql, res.Err)
	}
	out := make([][]string, 0, len(res.Rows))
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out = append(out, row)
	}
	return out
}

// through runs sql as user through the proxy (simple protocol, text
// results) and returns the rows as strings.
func through(t *testing.T, c *pgx.Conn, sql string) [][]string {
	t.Helper()
	return textRows(t, sql, c.PgConn().ExecParams(context.Background(), sql, nil, nil, nil, nil).Read())
}

// scopes are the predicates each demo user's policy amounts to, written
// directly against the demo tables.
var scopes = map[string]string{
	"marie":        "country = 'France'",
	"hq":           "true",
	"survey_admin": "true",
	"paul": `team_id IN (WITH RECURSIVE sub AS (SELECT id FROM teams WHERE id = (SELECT team_id FROM employees WHERE login = 'paul')
	         UNION SELECT t.id FROM teams t JOIN sub ON t.parent_id = sub.id) SELECT id FROM sub)`,
	"tom": "agent_login = 'tom'",
	"lea": `((team_id = (SELECT team_id FROM employees WHERE login = 'lea') OR nps <= 3)
	        AND survey_id IN (SELECT survey_id FROM team_surveys WHERE team_id = (SELECT team_id FROM employees WHERE login = 'lea'))
	        AND team_id = (SELECT team_id FROM employees WHERE login = 'lea'))
	        OR agent_login = 'lea'`,
	"bpo_a":    "agent_login IN (SELECT login FROM employees WHERE group_name = (SELECT group_name FROM employees WHERE login = 'bpo_a'))",
	"ops":      "agent_login IN (SELECT login FROM employees WHERE group_name IN ('vendor_a', 'vendor_b')) OR agent_login = 'ops'",
	"bank_app": "'Banking App' = ANY(tags) AND sentiment IN ('neutral', 'negative')",
}

func TestDemoUsers(t *testing.T) {
	p := startDemo(t)
	ids := func(t *testing.T, user string) {
		t.Helper()
		c := p.connect(t, user)
		got := through(t, c, "SELECT id FROM responses ORDER BY id")
		want := direct(t, "SELECT id FROM responses WHERE "+scopes[user]+" ORDER BY id")
		if len(want) == 0 {
			t.Fatalf("the expected scope of %s is empty: the test proves nothing", user)
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("%s sees %d rows, want %d", user, len(got), len(want))
		}
	}
	column := func(t *testing.T, c *pgx.Conn, sql string) []string {
		t.Helper()
		var out []string
		for _, r := range through(t, c, sql) {
			out = append(out, r[0])
		}
		return out
	}

	t.Run("marie sees French responses only, without personal data or score", func(t *testing.T) {
		ids(t, "marie")
		c := p.connect(t, "marie")
		if got := column(t, c, "SELECT DISTINCT country FROM responses"); !reflect.DeepEqual(got, []string{"France"}) {
			t.Errorf("countries in responses: %v", got)
		}
		if got := column(t, c, "SELECT name FROM countries"); !reflect.DeepEqual(got, []string{"France"}) {
			t.Errorf("countries: %v", got)
		}
		if got := column(t, c, "SELECT count(*) FROM responses WHERE contact IS NOT NULL OR email IS NOT NULL OR score IS NOT NULL"); got[0] != "0" {
			t.Errorf("%s rows show contact, email or score", got[0])
		}
	})
	t.Run("hq sees every country and the score, no personal data", func(t *testing.T) {
		ids(t, "hq")
		c := p.connect(t, "hq")
		if got := column(t, c, "SELECT count(DISTINCT country) FROM responses"); got[0] != "6" {
			t.Errorf("%s countries", got[0])
		}
		if got := column(t, c, "SELECT count(score) FROM responses"); got[0] == "0" {
			t.Error("score hidden from hq")
		}
		if got := column(t, c, "SELECT count(*) FROM responses WHERE contact IS NOT NULL OR email IS NOT NULL"); got[0] != "0" {
			t.Errorf("%s rows show personal data", got[0])
		}
	})
	t.Run("survey_admin sees contacts and emails of every response", func(t *testing.T) {
		ids(t, "survey_admin")
		c := p.connect(t, "survey_admin")
		got := through(t, c, "SELECT contact, email FROM responses WHERE id = 1")
		want := direct(t, "SELECT contact, email FROM responses WHERE id = 1")
		if !reflect.DeepEqual(got, want) || want[0][0] == "NULL" {
			t.Errorf("got %v, want %v", got, want)
		}
	})
	t.Run("paul sees Frozen Food and every team below it", func(t *testing.T) {
		ids(t, "paul")
	})
	t.Run("a new sub-team under Pizza is covered without editing paul's policy", func(t *testing.T) {
		ctx := context.Background()
		setup := `INSERT INTO teams (id, name, parent_id) SELECT 900, 'Deep Dish', id FROM teams WHERE name = 'Pizza';
		          INSERT INTO responses (survey_id, country, nps, agent_login, team_id, sentiment, submitted_at)
		          SELECT 1, 'Italy', 9, 'tom', 900, 'positive', now()`
		if err := cluster.Exec(ctx, demoDB, setup); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = cluster.Exec(ctx, demoDB, "DELETE FROM responses WHERE team_id = 900; DELETE FROM teams WHERE id = 900")
		}()
		c := p.connect(t, "paul")
		if got := column(t, c, "SELECT count(*) FROM responses WHERE team_id = 900"); got[0] != "1" {
			t.Errorf("paul sees %s responses of the new team", got[0])
		}
		ids(t, "paul")
	})
	t.Run("tom sees only the responses he handled", func(t *testing.T) {
		ids(t, "tom")
		c := p.connect(t, "tom")
		if got := column(t, c, "SELECT DISTINCT agent_login FROM responses"); !reflect.DeepEqual(got, []string{"tom"}) {
			t.Errorf("agents: %v", got)
		}
	})
	t.Run("lea sees her team within its surveys, never beyond her ceiling, and her own rows", func(t *testing.T) {
		ids(t, "lea")
	})
	t.Run("bpo_a sees the responses of her vendor's agents", func(t *testing.T) {
		ids(t, "bpo_a")
	})
	t.Run("ops sees both vendors and the rows about himself", func(t *testing.T) {
		ids(t, "ops")
		c := p.connect(t, "ops")
		if got := column(t, c, "SELECT count(*) FROM responses WHERE agent_login = 'ops'"); got[0] == "0" {
			t.Error("ops does not see his own rows")
		}
	})
	t.Run("bank_app sees Banking App feedback that needs action", func(t *testing.T) {
		ids(t, "bank_app")
	})
	t.Run("the same dashboard query answers differently for marie, hq and paul", func(t *testing.T) {
		const q = "SELECT country, count(*), round(avg(nps), 2) FROM responses GROUP BY country ORDER BY country"
		seen := map[string]bool{}
		for _, u := range []string{"marie", "hq", "paul"} {
			got := through(t, p.connect(t, u), q)
			want := direct(t, "SELECT country, count(*), round(avg(nps), 2) FROM responses WHERE "+scopes[u]+" GROUP BY country ORDER BY country")
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %v, want %v", u, got, want)
			}
			seen[fmt.Sprint(got)] = true
		}
		if len(seen) != 3 {
			t.Error("the three answers are not all different")
		}
	})
	t.Run("pg_class hides the row estimates of governed tables", func(t *testing.T) {
		if err := cluster.Exec(context.Background(), demoDB, "ANALYZE responses"); err != nil {
			t.Fatal(err)
		}
		c := p.connect(t, "marie")
		got := through(t, c, "SELECT reltuples::text, relpages::text FROM pg_catalog.pg_class WHERE relname = 'responses'")
		if !reflect.DeepEqual(got, [][]string{{"-1", "0"}}) {
			t.Fatalf("row estimates visible: %v", got)
		}
	})
	t.Run("psql describes a governed table through the proxy", func(t *testing.T) {
		out, err := psql(t, p.url("marie", "demo-marie", nil), "-c", `\d responses`, "-c", `\dt`)
		if err != nil || !strings.Contains(out, "email") || !strings.Contains(out, "countries") {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("a user without access to a table gets a clear refusal", func(t *testing.T) {
		c := p.connect(t, "marie")
		_, err := c.Exec(context.Background(), "SELECT * FROM employees")
		if err == nil || !strings.Contains(err.Error(), "firewall rule ungoverned_table") || !strings.Contains(err.Error(), "42501") {
			t.Fatalf("got %v", err)
		}
	})
}
