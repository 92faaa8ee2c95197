package adversarial_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestGroupByPrimaryKeyAndMaskedDomains: two ordinary statements that
// PostgreSQL runs on the tables run through pgveil too. A GROUP BY on a
// governed table's primary key reads its other columns (the scoped
// subquery has no key: rewrite/grouping.go widens the GROUP BY), and a
// masked column of a NOT NULL domain reads as NULL of its base type
// rather than failing every row (rewrite.Column.MaskType). A pass-through
// user reads what the service account reads directly; a scoped and
// masked one, her rows with the masked values.
func TestGroupByPrimaryKeyAndMaskedDomains(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	su, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer su.Close(ctx)
	exec := func(sql string) {
		t.Helper()
		if _, err := su.Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	drop := `DROP TABLE IF EXISTS public.gb_events, public.gb_accounts; DROP DOMAIN IF EXISTS public.gb_owner`
	exec(drop)
	exec(`CREATE DOMAIN public.gb_owner AS varchar(2) NOT NULL CHECK (VALUE ~ '^[A-Z]{2}$')`)
	exec(`CREATE TABLE public.gb_accounts (id int PRIMARY KEY, country text, owner public.gb_owner, label text)`)
	exec(`CREATE TABLE public.gb_events (account_id int, n int)`)
	exec(`INSERT INTO public.gb_accounts VALUES (1, 'France', 'AB', 'a'), (2, 'France', 'CD', 'b'), (3, 'USA', 'EF', 'c');
		INSERT INTO public.gb_events VALUES (1, 1), (1, 2), (2, 5), (3, 7)`)
	exec(`GRANT SELECT ON public.gb_accounts, public.gb_events TO pgveil_svc`)
	t.Cleanup(func() { _, _ = su.Exec(context.Background(), drop).ReadAll() })

	raw, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.gb_accounts" {
  reference = true
  column "owner" { class = "pii" }
}
table "public.gb_events" {
  reference = true
}
rule "gb_all" {
  tables = ["public.gb_accounts", "public.gb_events"]
  roles  = ["survey_admin", "central_analyst"]
  scope  = "all"
}
rule "gb_events_all" {
  tables = ["public.gb_events"]
  roles  = ["country_analyst"]
  scope  = "all"
}
rule "gb_own_country" {
  tables = ["public.gb_accounts"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoWith(t, path, nil)

	accounts := `SELECT a.*, count(e.n), sum(e.n) FROM gb_accounts a LEFT JOIN gb_events e ON e.account_id = a.id GROUP BY a.id ORDER BY a.id`
	countries := `SELECT c.code, c.name, count(r.id) FROM countries c LEFT JOIN responses r ON r.country = c.name GROUP BY c.code ORDER BY c.code`
	t.Run("a pass-through user reads what PostgreSQL gives directly", func(t *testing.T) {
		admin, hq := p.Connect(t, "survey_admin"), p.Connect(t, "hq")
		if got, want := fmt.Sprint(proxytest.Through(t, admin, accounts)), fmt.Sprint(proxytest.Direct(t, accounts)); got != want {
			t.Errorf("survey_admin: %s\ndirectly:     %s", got, want)
		}
		if got, want := fmt.Sprint(proxytest.Through(t, hq, countries)), fmt.Sprint(proxytest.Direct(t, countries)); got != want {
			t.Errorf("hq: %s\ndirectly: %s", got, want)
		}
	})
	t.Run("a scoped user reads her rows, the masked domain column as NULL", func(t *testing.T) {
		marie := p.Connect(t, "marie")
		if got, want := fmt.Sprint(proxytest.Through(t, marie, `SELECT id, owner, pg_typeof(owner) FROM gb_accounts ORDER BY id`)), "[[1 NULL character varying] [2 NULL character varying]]"; got != want {
			t.Errorf("marie: %s, want %s", got, want)
		}
		// RowDescription gives a domain column's base type and typmod,
		// which the masked column's cast gives too.
		fields := func(c *pgconn.PgConn) string {
			res := c.ExecParams(ctx, `SELECT * FROM gb_accounts`, nil, nil, nil, nil).Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			var out []string
			for _, f := range res.FieldDescriptions {
				out = append(out, fmt.Sprintf("%s:%d:%d", f.Name, f.DataTypeOID, f.TypeModifier))
			}
			return fmt.Sprint(out)
		}
		if got, want := fields(marie.PgConn()), fields(su); got != want {
			t.Errorf("marie's columns %s, the table's %s", got, want)
		}
		if got, want := fmt.Sprint(proxytest.Through(t, marie, accounts)), "[[1 France NULL a 2 3] [2 France NULL b 1 5]]"; got != want {
			t.Errorf("marie: %s, want %s", got, want)
		}
		want := fmt.Sprint(proxytest.Direct(t, `SELECT c.code, c.name, count(r.id) FROM countries c LEFT JOIN responses r ON r.country = c.name
			WHERE c.name = 'France' GROUP BY c.code ORDER BY c.code`))
		if got := fmt.Sprint(proxytest.Through(t, marie, countries)); got != want {
			t.Errorf("marie: %s, want %s", got, want)
		}
	})
}
