package proxytest

import (
	"context"
	"os"
	"path/filepath"
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

const DemoDB = "feedback"

var (
	demoOnce sync.Once
	demoErr  error
)

// SetupDemo loads testdata/demo into the database feedback once.
func SetupDemo(t testing.TB) {
	t.Helper()
	SetupUpstream(t)
	demoOnce.Do(func() {
		demoErr = Cluster.LoadDemo(context.Background(), Path("testdata/demo"), DemoDB, "demo-service-account")
	})
	if demoErr != nil {
		t.Fatalf("loading the demo database: %v", demoErr)
	}
}

// StartDemo runs pgveil with configs/demo.hcl, policies enforced, in
// front of the demo database; opts adjust its options.
func StartDemo(t *testing.T, opts ...func(*proxy.Options)) *Proxy {
	t.Helper()
	p, _ := StartDemoFrom(t, DemoHCL, opts...)
	return p
}

// StartDemoFrom is StartDemo with the configuration at path; it also
// returns the policies in force, which a Reloader may replace.
func StartDemoFrom(t *testing.T, path string, opts ...func(*proxy.Options)) (*Proxy, *server.Policies) {
	t.Helper()
	return StartDemoWith(t, path, nil, opts...)
}

// StartDemoWith is StartDemoFrom with the configuration changed by
// change, when not nil, before the server starts.
func StartDemoWith(t *testing.T, path string, change func(*policy.Config), opts ...func(*proxy.Options)) (*Proxy, *server.Policies) {
	t.Helper()
	cfg := DemoConfig(t, path, change)
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
	return Serve(t, cfg, po), pols
}

// DemoConfig loads the configuration at path against the demo database,
// and applies change (when not nil) to it.
func DemoConfig(t *testing.T, path string, change func(*policy.Config)) *policy.Config {
	t.Helper()
	SetupDemo(t)
	t.Setenv("PGVEIL_DEMO_UPSTREAM", Cluster.Addr())
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

// Direct runs sql as the superuser on the demo database and returns the
// rows as strings.
func Direct(t *testing.T, sql string) [][]string {
	t.Helper()
	ctx := context.Background()
	c, err := Cluster.Connect(ctx, DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	return TextRows(t, sql, c.ExecParams(ctx, sql, nil, nil, nil, nil).Read())
}

// TextRows returns a result's rows as strings, NULL for null.
func TextRows(t *testing.T, sql string, res *pgconn.Result) [][]string {
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

// Through runs sql as user through the proxy (simple protocol, text
// results) and returns the rows as strings.
func Through(t *testing.T, c *pgx.Conn, sql string) [][]string {
	t.Helper()
	return TextRows(t, sql, c.PgConn().ExecParams(context.Background(), sql, nil, nil, nil, nil).Read())
}

// Scopes are the predicates each demo user's policy amounts to, written
// directly against the demo tables.
var Scopes = map[string]string{
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

// Count runs a count(*) query through c.
func Count(t *testing.T, c *pgx.Conn, sql string) int {
	t.Helper()
	var n int
	if err := c.QueryRow(context.Background(), sql).Scan(&n); err != nil {
		t.Fatalf("%s: %v", sql, err)
	}
	return n
}

// DemoWith writes the demo configuration with each of the replacements
// (old, new, old, new…) made once, and returns its path.
func DemoWith(t *testing.T, replacements ...string) string {
	t.Helper()
	raw, err := os.ReadFile(DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	cfg := string(raw)
	for i := 0; i < len(replacements); i += 2 {
		if !strings.Contains(cfg, replacements[i]) {
			t.Fatalf("no %s in the demo configuration", replacements[i])
		}
		cfg = strings.Replace(cfg, replacements[i], replacements[i+1], 1)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}
