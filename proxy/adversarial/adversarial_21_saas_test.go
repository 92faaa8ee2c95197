package adversarial_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// saas21Policy is configs/demo.hcl with a small multi-tenant events
// table: sam21 (support) sees the last 2160 hours of events, their
// payload without its card_last4 key; ana21 (tenant analyst) the rows of
// tenant 1. Both have marie's password (demo-marie).
const saas21Policy = `
user "sam21" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles    = ["saas21_support"]
}
user "ana21" {
  password   = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles      = ["saas21_tenant"]
  attributes = { tenants = [1] }
}
role "saas21_support" {
  statements = ["select"]
}
role "saas21_tenant" {
  statements = ["select"]
  columns    = ["payload"]
}
schema "saas21" { default = "deny" }
table "saas21.events" {
  column "payload" {
    class      = "payload"
    mask       = "expression"
    expression = "CASE WHEN 'saas21_support' = ANY(me.roles) THEN payload - 'card_last4' END"
  }
}
rule "saas21_recent" {
  tables = ["saas21.events"]
  roles  = ["saas21_support"]
  where  = "occurred_at > now() - interval '2160 hours'"
}
rule "saas21_own" {
  tables = ["saas21.events"]
  roles  = ["saas21_tenant"]
  where  = "tenant_id = ANY(me.tenants)"
}
`

// saas21Setup creates the saas21 schema on the demo database (a table
// partitioned by occurred_at, a partition a year old and one current)
// and starts pgveil with saas21Policy.
func saas21Setup(t *testing.T) *proxytest.Proxy {
	t.Helper()
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP SCHEMA IF EXISTS saas21 CASCADE`
	for _, sql := range []string{drop,
		`CREATE SCHEMA saas21`,
		`CREATE TABLE saas21.events(id int, tenant_id int NOT NULL, occurred_at timestamptz NOT NULL, payload jsonb)
		   PARTITION BY RANGE (occurred_at)`,
		`CREATE TABLE saas21.events_old PARTITION OF saas21.events FOR VALUES FROM ('2000-01-01') TO ('2026-01-01')`,
		`CREATE TABLE saas21.events_new PARTITION OF saas21.events FOR VALUES FROM ('2026-01-01') TO ('2100-01-01')`,
		`INSERT INTO saas21.events VALUES
		   (1, 1, '2020-01-01 00:00+00', '{"page": "/a", "card_last4": "1111"}'),
		   (2, 2, '2020-01-02 00:00+00', '{"page": "/b", "card_last4": "2222"}'),
		   (3, 1, now(), '{"page": "/c", "card_last4": "3333", "nested": {"card_last4": "x"}}'),
		   (4, 2, now(), '{"page": "/d", "card_last4": "4444"}')`,
		`GRANT USAGE ON SCHEMA saas21 TO pgveil_svc`,
		`GRANT SELECT ON ALL TABLES IN SCHEMA saas21 TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	src, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "saas21.hcl")
	if err := os.WriteFile(path, append(src, saas21Policy...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoFrom(t, path)
	return p
}

// saas21Conn connects to p as user, whose password is marie's.
func saas21Conn(t *testing.T, p *proxytest.Proxy, user string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), p.URL(user, "demo-marie", nil))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// TestAdversarial21WindowTransactionStart: a rule's now() is the start of
// the transaction, so a support user who keeps a transaction open (a
// statement every few minutes keeps idle_transaction_timeout away) would
// read, statement after statement, rows that left the 2160-hour window
// after the transaction began: a row whose time passed the window's edge
// before the statement must stay hidden, as it is read directly.
func TestAdversarial21WindowTransactionStart(t *testing.T) {
	ctx := context.Background()
	p := saas21Setup(t)
	c := saas21Conn(t, p, "sam21")
	if got := proxytest.Answer(ctx, c, "BEGIN"); got != "" {
		t.Fatalf("BEGIN: %s", got)
	}
	// A row just older than the window as of now, but younger than it as
	// of the transaction's start.
	if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, `INSERT INTO saas21.events VALUES
		(5, 2, clock_timestamp() - interval '2160 hours', '{"page": "/late"}')`); err != nil {
		t.Fatal(err)
	}
	t.Run("a row that left the window before the statement is hidden inside an older transaction", func(t *testing.T) {
		got := proxytest.Answer(ctx, c, "SELECT id FROM saas21.events WHERE id = 5")
		truth := proxytest.Direct(t, "SELECT id FROM saas21.events WHERE id = 5 AND occurred_at > statement_timestamp() - interval '2160 hours'")
		if got != "" || len(truth) != 0 {
			t.Errorf("sam21 reads %q through pgveil, %v directly", got, truth)
		}
	})
	_ = proxytest.Answer(ctx, c, "ROLLBACK")
}

// TestAdversarial21SaaSHeld records the angles tried against the new
// DBA's multi-tenant policy that held: each statement's answer through
// pgveil is compared with the truth.
func TestAdversarial21SaaSHeld(t *testing.T) {
	ctx := context.Background()
	p := saas21Setup(t)
	for _, c := range []struct{ name, user, sql, want string }{
		{"a tenant analyst reads only her tenant through a partition named directly", "ana21",
			"SELECT DISTINCT tenant_id FROM saas21.events_old", "[\"1\"]\n"},
		{"a tenant analyst reads no other tenant through ONLY on the partitioned table", "ana21",
			"SELECT count(*) FROM ONLY saas21.events", "[\"0\"]\n"},
		{"a tenant analyst's array of other tenants finds nothing", "ana21",
			"SELECT count(*) FROM saas21.events WHERE tenant_id = ANY('{2,3}'::int[])", "[\"0\"]\n"},
		{"a tenant analyst comparing the tenant as text finds nothing", "ana21",
			"SELECT count(*) FROM saas21.events WHERE tenant_id::text = '2'", "[\"0\"]\n"},
		{"a recursive CTE counting each tenant finds only the own tenant's rows", "ana21",
			"WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 2) SELECT n, (SELECT count(*) FROM saas21.events e WHERE e.tenant_id = r.n) FROM r ORDER BY n",
			"[\"1\" \"2\"]\n[\"2\" \"0\"]\n"},
		{"support reads no row older than the window through the old partition by name", "sam21",
			"SELECT count(*) FROM saas21.events_old", "[\"0\"]\n"},
		{"support reads no row older than the window through ONLY", "sam21",
			"SELECT count(*) FROM ONLY saas21.events_old", "[\"0\"]\n"},
		{"a TimeZone change does not move the window", "sam21",
			"SET TimeZone = 'Pacific/Kiritimati'; SET IntervalStyle = 'sql_standard'; SELECT count(*) FROM saas21.events", "[\"2\"]\n"},
		{"support cannot read tableoid", "sam21",
			"SELECT tableoid FROM saas21.events", "error 42703"},
		{"support's payload has no card_last4 key", "sam21",
			"SELECT count(*) FROM saas21.events WHERE payload ? 'card_last4' OR payload::text LIKE '%3333%'", "[\"0\"]\n"},
		{"support's jsonpath over every level finds no top-level card_last4", "sam21",
			"SELECT count(*) FROM saas21.events, jsonb_path_query(payload, 'strict $.**') v WHERE v::text IN ('\"3333\"', '\"4444\"')", "[\"0\"]\n"},
		{"support's jsonb_each sees no card_last4 key", "sam21",
			"SELECT count(*) FROM saas21.events, jsonb_each(payload) k WHERE k.key = 'card_last4'", "[\"0\"]\n"},
		{"support's whole-row value carries the masked payload", "sam21",
			"SELECT count(*) FROM saas21.events e WHERE to_jsonb(e)::text LIKE '%3333%' OR e::text LIKE '%3333%'", "[\"0\"]\n"},
		{"a cast error over payload sees only the masked value", "sam21",
			"SELECT count(*) FROM saas21.events WHERE (payload->>'card_last4')::int > 0", "[\"0\"]\n"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn := saas21Conn(t, p, c.user)
			got := proxytest.Answer(ctx, conn, c.sql)
			if got != c.want && !(strings.HasPrefix(c.want, "error") && strings.HasPrefix(got, c.want)) {
				t.Errorf("%s: %s\n got %q\nwant %q", c.user, c.sql, got, c.want)
			}
		})
	}
}
