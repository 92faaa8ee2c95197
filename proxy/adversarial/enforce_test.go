package adversarial_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/server"
	"github.com/pgveil/pgveil/rewrite"
)

// TestEnforcementRefusesAPolicyTheDatabaseContradicts: a policy naming a
// column or a table otherwise than the database does would be served
// open, so pgveil refuses to serve it, as `pgveil check --upstream`
// reports it.
func TestEnforcementRefusesAPolicyTheDatabaseContradicts(t *testing.T) {
	proxytest.SetupDemo(t)
	const head = `
listen {
  address  = "127.0.0.1:6432"
  database = "feedback"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "feedback"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
role "analyst" { statements = ["select"] }
user "marie" {
  password   = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles      = ["analyst"]
  attributes = { country = "FR" }
}
`
	t.Setenv("PGVEIL_DEMO_UPSTREAM", proxytest.Cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	ctx := context.Background()
	for _, c := range []struct {
		name, body, want string
	}{
		{"a mask of a column spelled otherwise", `
table "public.responses" {
  column "Email" { class = "pii" }
}
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}`, "Unknown column"},
		{"a restrictive rule on a table spelled otherwise", `
table "public.*" {}
rule "all" {
  tables = ["public.responses"]
  roles  = ["analyst"]
  scope  = "all"
}
rule "france" {
  tables = ["public.Responses"]
  roles  = ["analyst"]
  kind   = "restrictive"
  where  = "country = me.country"
}`, "Rule names no table"},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "pgveil.hcl")
			if err := os.WriteFile(path, []byte(head+c.body), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg, diags := policy.NewLoader().Load(path)
			if diags.HasErrors() {
				t.Fatal(diags)
			}
			_, diags, err := server.LoadEnforcement(ctx, cfg)
			if err == nil {
				t.Fatal("enforcement loaded")
			}
			if !strings.Contains(diags.Error(), c.want) {
				t.Fatalf("diagnostics %q, want %q", diags.Error(), c.want)
			}
		})
	}
}

// TestPartitionGovernedOtherwise: a partitioned table whose partition is
// governed more strictly is denied, while each partition is read under
// its own policy. A scan of the parent read the partition's rows under
// the parent's policy: the partition's secret in clear.
func TestPartitionGovernedOtherwise(t *testing.T) {
	proxytest.SetupDemo(t)
	for _, sql := range []string{
		"CREATE SCHEMA IF NOT EXISTS part_scratch",
		"DROP TABLE IF EXISTS part_scratch.events",
		"CREATE TABLE part_scratch.events (id int, y int, secret text) PARTITION BY RANGE (y)",
		"CREATE TABLE part_scratch.events_2023 PARTITION OF part_scratch.events FOR VALUES FROM (2023) TO (2024)",
		"CREATE TABLE part_scratch.events_2024 PARTITION OF part_scratch.events FOR VALUES FROM (2024) TO (2025)",
		"INSERT INTO part_scratch.events VALUES (1, 2023, 'old'), (2, 2024, 's2')",
		"GRANT USAGE ON SCHEMA part_scratch TO pgveil_svc",
		"GRANT SELECT ON ALL TABLES IN SCHEMA part_scratch TO pgveil_svc",
	} {
		proxytest.Direct(t, sql)
	}
	src, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, append(src, `
table "part_scratch.events" {}
table "part_scratch.events_2024" {
  column "secret" { class = "pii" }
}
rule "events_all" {
  tables = ["part_scratch.events", "part_scratch.events_2024"]
  roles  = ["country_analyst"]
  scope  = "all"
}
`...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	c := p.Connect(t, "marie")
	ctx := context.Background()
	t.Run("the parent is refused, naming the partition", func(t *testing.T) {
		var s string
		err := c.QueryRow(ctx, "SELECT secret FROM part_scratch.events WHERE y = 2024").Scan(&s)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message+pgErr.Detail+pgErr.Hint, "events_2024") {
			t.Fatalf("got %q, %v", s, err)
		}
	})
	t.Run("each partition is read under its own policy", func(t *testing.T) {
		for sql, want := range map[string]string{
			"SELECT coalesce(secret, 'masked') FROM part_scratch.events_2024": "masked",
			"SELECT secret FROM part_scratch.events_2023":                     "old",
		} {
			var s string
			if err := c.QueryRow(ctx, sql).Scan(&s); err != nil || s != want {
				t.Fatalf("%s: %q, %v, want %q", sql, s, err, want)
			}
		}
	})
}

// TestViewOverAGovernedTable: a view of a schema that allows ungoverned
// tables runs with the service account's rights, so one reading a
// governed table is denied to those who may not read that table as it
// is; other views of the schema are open.
func TestViewOverAGovernedTable(t *testing.T) {
	proxytest.SetupDemo(t)
	for _, sql := range []string{
		"CREATE SCHEMA IF NOT EXISTS view_scratch",
		"CREATE OR REPLACE VIEW view_scratch.all_responses AS SELECT id, email FROM public.responses",
		"CREATE OR REPLACE VIEW view_scratch.through AS SELECT * FROM view_scratch.all_responses",
		"CREATE OR REPLACE VIEW view_scratch.plain AS SELECT 'open'::text AS x",
		"CREATE TABLE IF NOT EXISTS view_scratch.lookup (k text, n int)",
		"CREATE OR REPLACE VIEW view_scratch.summary AS SELECT lower(k) AS k, count(*) AS n, sum(n) AS total FROM view_scratch.lookup WHERE n > 0 GROUP BY 1",
		"CREATE OR REPLACE FUNCTION view_scratch.emails() RETURNS SETOF text LANGUAGE sql AS 'SELECT email FROM public.responses'",
		"CREATE OR REPLACE VIEW view_scratch.via_function AS SELECT e AS email FROM view_scratch.emails() e",
		"GRANT USAGE ON SCHEMA view_scratch TO pgveil_svc",
		"GRANT SELECT ON ALL TABLES IN SCHEMA view_scratch TO pgveil_svc",
		"GRANT EXECUTE ON FUNCTION view_scratch.emails() TO pgveil_svc",
	} {
		proxytest.Direct(t, sql)
	}
	src, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "pgveil.hcl")
	if err := os.WriteFile(path, append(src, "\nschema \"view_scratch\" { default = \"allow\" }\n"...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	c := p.Connect(t, "marie")
	ctx := context.Background()
	for _, view := range []string{"all_responses", "through", "via_function"} {
		t.Run("a view reading responses is refused: "+view, func(t *testing.T) {
			var n int
			err := c.QueryRow(ctx, "SELECT count(email) FROM view_scratch."+view).Scan(&n)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
				t.Fatalf("got %d, %v", n, err)
			}
		})
	}
	t.Run("a view reading no governed table is open", func(t *testing.T) {
		var s string
		if err := c.QueryRow(ctx, "SELECT x FROM view_scratch.plain").Scan(&s); err != nil || s != "open" {
			t.Fatalf("%q, %v", s, err)
		}
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM view_scratch.summary").Scan(&n); err != nil {
			t.Fatalf("a view calling pg_catalog's functions and operators: %v", err)
		}
	})
}

// TestPolicyInputsAreReadOnly: a manager whose role may update cannot
// rewrite the teams tree her scope walks (she would see every team).
func TestPolicyInputsAreReadOnly(t *testing.T) {
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) {
		c.Roles["manager"].Statements = append(c.Roles["manager"].Statements, rewrite.KindUpdate)
	})
	c := p.Connect(t, "paul")
	ctx := context.Background()
	for _, sql := range []string{
		"UPDATE teams SET parent_id = 9 WHERE id = 2",
		"UPDATE teams SET parent_id = 9 WHERE id = 1",
	} {
		_, err := c.Exec(ctx, sql)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "policy_input") {
			t.Errorf("%s: %v", sql, err)
		}
	}
	// The role's update still applies elsewhere.
	if _, err := c.Exec(ctx, "UPDATE responses SET comment = comment WHERE id = -1"); err != nil {
		t.Errorf("an update of responses: %v", err)
	}
}

// TestEnforcementDoesNotWaitOnALockedTable: a DDL holding a governed
// table's lock makes loading the policies fail after the service
// connections' lock_timeout, saying why, instead of hanging a start or a
// reload (which the signal loop waits for).
func TestEnforcementDoesNotWaitOnALockedTable(t *testing.T) {
	proxytest.SetupDemo(t)
	t.Setenv("PGVEIL_DEMO_UPSTREAM", proxytest.Cluster.Addr())
	t.Setenv("PGVEIL_DEMO_UPSTREAM_PASSWORD", "demo-service-account")
	t.Setenv("PGVEIL_DEMO_LISTEN", "127.0.0.1:6432")
	cfg, diags := policy.NewLoader().Load(proxytest.DemoHCL)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ctx := context.Background()
	c, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(ctx)
	if err := c.Exec(ctx, "BEGIN; LOCK TABLE responses IN ACCESS EXCLUSIVE MODE").Close(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = c.Exec(ctx, "ROLLBACK").Close() }()
	lctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	_, _, err = server.LoadEnforcement(lctx, cfg)
	if err == nil || lctx.Err() != nil || !strings.Contains(err.Error(), "failed") {
		t.Fatalf("got %v (context: %v)", err, lctx.Err())
	}
}
