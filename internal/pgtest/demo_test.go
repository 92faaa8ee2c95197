package pgtest_test

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// demoDir holds the demo database's SQL files, run in file-name order.
const demoDir = "../../testdata/demo"

// loadDemo creates database and runs the demo SQL files into it as the demo
// runner does, then sets pgveil_svc's password.
func loadDemo(t *testing.T, ctx context.Context, database, svcPassword string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(demoDir, "*.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no SQL file in %s", demoDir)
	}
	sort.Strings(files)
	if err := cluster.CreateDatabase(ctx, database); err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		sql, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		begin := time.Now()
		if err := cluster.Exec(ctx, database, string(sql)); err != nil {
			t.Fatalf("%s: %v", filepath.Base(f), err)
		}
		t.Logf("%s loaded in %v", filepath.Base(f), time.Since(begin).Round(time.Millisecond))
	}
	if err := cluster.Exec(ctx, database, fmt.Sprintf("ALTER ROLE pgveil_svc PASSWORD '%s'", svcPassword)); err != nil {
		t.Fatal(err)
	}
}

func TestDemoDatabase(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := testContext(t)
	loadDemo(t, ctx, "feedback", "svc-secret")

	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)

	// Each query returns one value, compared with want.
	checks := []struct {
		name, sql, want string
	}{
		{"countries", "SELECT count(*) FROM countries", "6"},
		{"teams", "SELECT count(*) FROM teams", "14"},
		{"one root", "SELECT string_agg(name, ',') FROM teams WHERE parent_id IS NULL", "HQ"},
		{"thick crust path", `
			WITH RECURSIVE up AS (
				SELECT id, name, parent_id, 1 AS depth FROM teams WHERE name = 'Thick Crust'
				UNION ALL
				SELECT t.id, t.name, t.parent_id, up.depth + 1 FROM teams t JOIN up ON t.id = up.parent_id)
			SELECT string_agg(name, ' > ' ORDER BY depth DESC) FROM up`,
			"HQ > Frozen Food > Pizza > Thick Crust"},
		{"paris path", `SELECT p.name || ' > ' || t.name FROM teams t JOIN teams p ON p.id = t.parent_id WHERE t.name = 'Paris'`, "France > Paris"},
		{"named employees", `SELECT count(*) FROM employees WHERE login IN
			('marie','hq','survey_admin','paul','tom','lea','bpo_a','bpo_b','bpo_a2','ops','bank_app')`, "11"},
		{"employees", "SELECT count(*) >= 30 FROM employees", "t"},
		{"employee teams", `SELECT string_agg(e.login || '=' || coalesce(t.name, '-') || '/' || coalesce(e.group_name, '-'), ',' ORDER BY e.login)
			FROM employees e LEFT JOIN teams t ON t.id = e.team_id
			WHERE login IN ('marie','hq','paul','tom','lea','bpo_a','bpo_b','bpo_a2','ops')`,
			"bpo_a=Paris/vendor_a,bpo_a2=Lyon/vendor_a,bpo_b=New York/vendor_b,hq=HQ/analyst,lea=Desserts/team_lead,marie=France/country_manager,ops=HQ/-,paul=Frozen Food/manager,tom=Thick Crust/agent"},
		{"surveys", "SELECT count(*) FROM surveys", "6"},
		{"desserts surveys", `SELECT string_agg(s.name, ',' ORDER BY s.id) FROM team_surveys ts
			JOIN surveys s ON s.id = ts.survey_id JOIN teams t ON t.id = ts.team_id WHERE t.name = 'Desserts'`,
			"Store Visit,Dessert Tasting"},
		{"every team sees a survey", "SELECT count(*) FROM teams t WHERE NOT EXISTS (SELECT FROM team_surveys ts WHERE ts.team_id = t.id)", "0"},
		{"responses", "SELECT count(*) FROM responses", "3004"},
		{"ids", "SELECT min(id) || '-' || max(id) FROM responses", "1-3004"},
		{"brief rows", `SELECT string_agg(id || ':' || contact || '/' || email || '/' || country || '/' || branch, ', ' ORDER BY id)
			FROM responses WHERE id <= 4`,
			"1:Camille Martin/camille.martin@example.fr/France/Paris, 2:Louis Bernard/louis.bernard@example.fr/France/Lyon, " +
				"3:Emily Johnson/emily.johnson@example.com/USA/New York, 4:Michael Smith/michael.smith@example.com/USA/New York"},
		{"sequence continues", "SELECT nextval(pg_get_serial_sequence('responses', 'id'))", "3005"},
		{"all countries used", "SELECT count(DISTINCT country) FROM responses", "6"},
		{"countries are names", "SELECT count(*) FROM responses WHERE country NOT IN (SELECT name FROM countries)", "0"},
		{"team of agent", "SELECT count(*) FROM responses r JOIN employees e ON e.login = r.agent_login WHERE r.team_id IS DISTINCT FROM e.team_id", "0"},
		{"agent set", "SELECT count(*) FROM responses WHERE agent_login IS NULL OR team_id IS NULL", "0"},
		{"visible survey", "SELECT count(*) FROM responses r WHERE NOT EXISTS (SELECT FROM team_surveys ts WHERE ts.team_id = r.team_id AND ts.survey_id = r.survey_id)", "0"},
		{"french agents", "SELECT count(*) FROM responses WHERE team_id IN (2, 3, 4) AND (country <> 'France' OR branch NOT IN ('Paris', 'Lyon'))", "0"},
		{"american agents", "SELECT count(*) FROM responses WHERE team_id IN (5, 6) AND (country <> 'USA' OR branch <> 'New York')", "0"},
		{"tom", "SELECT count(*) BETWEEN 100 AND 250 FROM responses WHERE agent_login = 'tom'", "t"},
		{"ops", "SELECT count(*) BETWEEN 30 AND 110 FROM responses WHERE agent_login = 'ops'", "t"},
		{"vendors", "SELECT count(DISTINCT e.group_name) FROM responses r JOIN employees e ON e.login = r.agent_login WHERE e.group_name LIKE 'vendor_%'", "2"},
		{"tags vocabulary", `SELECT count(*) FROM responses, unnest(tags) tag
			WHERE tag NOT IN ('Banking App', 'Delivery', 'Price', 'Staff', 'Quality')`, "0"},
		{"banking app tag", "SELECT count(*) > 100 FROM responses WHERE tags @> ARRAY['Banking App']", "t"},
		{"sentiments", "SELECT string_agg(DISTINCT sentiment, ',') FROM responses", "negative,neutral,positive"},
		{"nps range", "SELECT min(nps) || '-' || max(nps) FROM responses", "0-10"},
		{"score range", "SELECT min(score) >= 0 AND max(score) <= 100 FROM responses", "t"},
		{"period", "SELECT min(submitted_at) >= '2025-01-01Z' AND max(submitted_at) < '2027-01-01Z' AND count(DISTINCT extract(year FROM submitted_at AT TIME ZONE 'UTC')) = 2 FROM responses", "t"},
		{"some emails missing", "SELECT count(*) FILTER (WHERE email IS NULL) BETWEEN 200 AND 400 FROM responses", "t"},
		{"indexes", `SELECT string_agg(indexdef, ' | ' ORDER BY indexname) FROM pg_indexes
			WHERE tablename = 'responses' AND indexname <> 'responses_pkey'`,
			"CREATE INDEX responses_agent_login_idx ON public.responses USING btree (agent_login) | " +
				"CREATE INDEX responses_country_idx ON public.responses USING btree (country) | " +
				"CREATE INDEX responses_survey_id_idx ON public.responses USING btree (survey_id) | " +
				"CREATE INDEX responses_tags_idx ON public.responses USING gin (tags) | " +
				"CREATE INDEX responses_team_id_idx ON public.responses USING btree (team_id)"},
		{"comments", "SELECT count(*) BETWEEN 300 AND 600 FROM response_comments", "t"},
		{"comments per response", "SELECT max(n) || '-' || count(*) FROM (SELECT count(*) AS n FROM response_comments GROUP BY response_id) x", "3-228"},
		{"comments have responses", "SELECT count(*) FROM response_comments c WHERE NOT EXISTS (SELECT FROM responses r WHERE r.id = c.response_id)", "0"},
		{"comment emails", "SELECT count(*) FROM response_comments c JOIN employees e ON e.login = c.author WHERE c.author_email IS DISTINCT FROM e.email", "0"},
		{"french comments", "SELECT count(*) FROM response_comments c JOIN responses r ON r.id = c.response_id WHERE r.country = 'France'", "177"},
		{"owners", "SELECT string_agg(DISTINCT tableowner, ',') FROM pg_tables WHERE schemaname = 'public'", "postgres"},
		{"svc role", `SELECT rolcanlogin AND NOT rolsuper AND NOT rolcreatedb AND NOT rolcreaterole
			AND NOT rolreplication AND NOT rolbypassrls FROM pg_roles WHERE rolname = 'pgveil_svc'`, "t"},
		{"svc grants", `SELECT bool_and(has_table_privilege('pgveil_svc', c.oid, 'SELECT, INSERT, UPDATE, DELETE'))
			AND NOT bool_or(has_table_privilege('pgveil_svc', c.oid, 'TRUNCATE'))
			FROM pg_class c WHERE c.relnamespace = 'public'::regnamespace AND c.relkind = 'r'`, "t"},
		{"svc sequence", "SELECT has_sequence_privilege('pgveil_svc', 'responses_id_seq', 'USAGE')", "t"},
		{"public has no temp", "SELECT has_database_privilege('pgveil_svc', 'feedback', 'TEMP')", "f"},
	}
	for _, c := range checks {
		if got := queryOne(t, ctx, conn, c.sql); got != c.want {
			t.Errorf("%s: got %q, want %q", c.name, got, c.want)
		}
	}

	t.Run("deterministic", func(t *testing.T) {
		loadDemo(t, ctx, "feedback_again", "svc-secret")
		defer cluster.Exec(context.Background(), "postgres", "DROP DATABASE feedback_again")
		const digest = "SELECT (SELECT md5(string_agg(r::text, E'\\n' ORDER BY id)) FROM responses r) || (SELECT md5(string_agg(c::text, E'\\n' ORDER BY id)) FROM response_comments c)"
		again, err := cluster.Connect(ctx, "feedback_again")
		if err != nil {
			t.Fatal(err)
		}
		defer again.Close(ctx)
		if a, b := queryOne(t, ctx, conn, digest), queryOne(t, ctx, again, digest); a != b {
			t.Errorf("two loads differ: %s vs %s", a, b)
		}
	})

	t.Run("service account", func(t *testing.T) {
		u := url.URL{
			Scheme:   "postgres",
			User:     url.UserPassword("pgveil_svc", "svc-secret"),
			Host:     cluster.Addr(),
			Path:     "/feedback",
			RawQuery: "sslmode=disable",
		}
		svc, err := pgconn.Connect(ctx, u.String())
		if err != nil {
			t.Fatal(err)
		}
		defer svc.Close(ctx)
		if got := queryOne(t, ctx, svc, "SELECT count(*) FROM responses WHERE country = 'France'"); got == "0" {
			t.Errorf("pgveil_svc reads no French response")
		}
		if _, err := svc.Exec(ctx, `BEGIN;
			INSERT INTO responses (survey_id, country, submitted_at) VALUES (1, 'France', now());
			UPDATE responses SET nps = 5 WHERE id = 1;
			DELETE FROM responses WHERE id = 2;
			ROLLBACK`).ReadAll(); err != nil {
			t.Errorf("pgveil_svc cannot write: %v", err)
		}
		for _, sql := range []string{
			"CREATE TABLE svc_owned (x int)",
			"CREATE TEMP TABLE svc_temp (x int)",
			"TRUNCATE responses",
			"DROP TABLE countries",
		} {
			_, err := svc.Exec(ctx, sql).ReadAll()
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || (pgErr.Code != "42501") {
				t.Errorf("%s as pgveil_svc: %v, want insufficient_privilege (42501)", sql, err)
			}
		}
	})
}
