package proxy_test

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

func TestDemoUsers(t *testing.T) {
	p := proxytest.StartDemo(t)
	ids := func(t *testing.T, user string) {
		t.Helper()
		c := p.Connect(t, user)
		got := proxytest.Through(t, c, "SELECT id FROM responses ORDER BY id")
		want := proxytest.Direct(t, "SELECT id FROM responses WHERE "+proxytest.Scopes[user]+" ORDER BY id")
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
		for _, r := range proxytest.Through(t, c, sql) {
			out = append(out, r[0])
		}
		return out
	}

	t.Run("marie sees French responses only, without personal data or score", func(t *testing.T) {
		ids(t, "marie")
		c := p.Connect(t, "marie")
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
		c := p.Connect(t, "hq")
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
		c := p.Connect(t, "survey_admin")
		got := proxytest.Through(t, c, "SELECT contact, email FROM responses WHERE id = 1")
		want := proxytest.Direct(t, "SELECT contact, email FROM responses WHERE id = 1")
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
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, setup); err != nil {
			t.Fatal(err)
		}
		defer func() {
			_ = proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "DELETE FROM responses WHERE team_id = 900; DELETE FROM teams WHERE id = 900")
		}()
		c := p.Connect(t, "paul")
		if got := column(t, c, "SELECT count(*) FROM responses WHERE team_id = 900"); got[0] != "1" {
			t.Errorf("paul sees %s responses of the new team", got[0])
		}
		ids(t, "paul")
	})
	t.Run("tom sees only the responses he handled", func(t *testing.T) {
		ids(t, "tom")
		c := p.Connect(t, "tom")
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
		c := p.Connect(t, "ops")
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
			got := proxytest.Through(t, p.Connect(t, u), q)
			want := proxytest.Direct(t, "SELECT country, count(*), round(avg(nps), 2) FROM responses WHERE "+proxytest.Scopes[u]+" GROUP BY country ORDER BY country")
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
		if err := proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, "ANALYZE responses"); err != nil {
			t.Fatal(err)
		}
		c := p.Connect(t, "marie")
		got := proxytest.Through(t, c, "SELECT reltuples::text, relpages::text FROM pg_catalog.pg_class WHERE relname = 'responses'")
		if !reflect.DeepEqual(got, [][]string{{"-1", "0"}}) {
			t.Fatalf("row estimates visible: %v", got)
		}
	})
	t.Run("psql describes a governed table through the proxy", func(t *testing.T) {
		out, err := psql(t, p.URL("marie", "demo-marie", nil), "-c", `\d responses`, "-c", `\dt`)
		if err != nil || !strings.Contains(out, "email") || !strings.Contains(out, "countries") {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("a user without access to a table gets a clear refusal", func(t *testing.T) {
		c := p.Connect(t, "marie")
		_, err := c.Exec(context.Background(), "SELECT * FROM employees")
		if err == nil || !strings.Contains(err.Error(), "firewall rule ungoverned_table") || !strings.Contains(err.Error(), "42501") {
			t.Fatalf("got %v", err)
		}
	})
}
