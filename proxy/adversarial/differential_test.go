package adversarial_test

import (
	"context"
	"fmt"
	"reflect"
	"sort"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// The differential test compares what pgveil answers a demo user with
// what PostgreSQL answers for the same SQL over hand-written security
// barrier views that apply the user's policy natively: one schema
// native_<user> holding views named like the governed tables, put first
// on the search path.

// diffUsers are the demo users compared, with what their roles unmask.
var diffUsers = []struct {
	login string
	// score and pii report whether the user's roles list the classes
	// technical (score) and pii (contact, email, and the notes'
	// author_email).
	score, pii bool
	// countries is the row scope of public.countries, reference that of
	// public.teams and public.surveys ("" for all rows).
	countries, reference string
}{
	{login: "marie", countries: "name = 'France'"},
	{login: "hq", score: true},
	// The roles of paul (manager), tom (agent) and lea (team_lead) have
	// a ceiling (team_subtree, self, own_team) that bounds their
	// responses; countries, teams and surveys are reference tables
	// (reference = true), which ceilings do not bound.
	{login: "paul"},
	{login: "tom"},
	{login: "lea"},
	{login: "ops"},
	{login: "bank_app"},
}

// diffQueries are the BI queries run both ways. ordered queries are
// compared row by row (their ORDER BY is total); the others as sorted
// rows.
var diffQueries = []struct {
	name    string
	sql     string
	ordered bool
}{
	{"nps by country", `SELECT country, count(*) AS responses, round(avg(nps), 2) AS avg_nps,
		round(100.0 * (count(*) FILTER (WHERE nps >= 9) - count(*) FILTER (WHERE nps <= 6)) / count(*), 1) AS nps
		FROM responses GROUP BY country ORDER BY country`, true},
	{"nps by branch", `SELECT branch, count(*), round(avg(nps), 2),
		round(100.0 * (count(*) FILTER (WHERE nps >= 9) - count(*) FILTER (WHERE nps <= 6)) / count(*), 1) AS nps
		FROM responses GROUP BY branch ORDER BY branch NULLS LAST`, true},
	{"sentiment breakdown", `SELECT sentiment, count(*), round(avg(nps), 2), min(nps), max(nps)
		FROM responses GROUP BY sentiment ORDER BY sentiment NULLS LAST`, true},
	{"monthly trend", `SELECT date_trunc('month', submitted_at) AS month, count(*), round(avg(nps), 2)
		FROM responses GROUP BY 1 ORDER BY 1`, true},
	{"responses per country code", `SELECT c.code, c.name, count(r.id) AS n, round(avg(r.nps), 2)
		FROM countries c LEFT JOIN responses r ON r.country = c.name GROUP BY c.code, c.name ORDER BY c.code`, true},
	{"nps by team", `SELECT t.name AS team, count(*), round(avg(r.nps), 2)
		FROM responses r JOIN teams t ON t.id = r.team_id GROUP BY t.name ORDER BY t.name`, true},
	{"responses per survey", `SELECT s.name, s.project, count(r.id), round(avg(r.nps), 2)
		FROM surveys s LEFT JOIN responses r ON r.survey_id = s.id GROUP BY s.name, s.project ORDER BY s.name`, true},
	{"country, team and project", `SELECT c.code, t.name AS team, s.project, count(*), round(avg(r.nps), 2)
		FROM responses r
		JOIN countries c ON c.name = r.country
		JOIN teams t ON t.id = r.team_id
		JOIN surveys s ON s.id = r.survey_id
		GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`, true},
	{"worst three per branch", `SELECT branch, id, nps, rn FROM (
		SELECT id, branch, nps, row_number() OVER (PARTITION BY branch ORDER BY nps, id) AS rn FROM responses) x
		WHERE rn <= 3 ORDER BY branch NULLS LAST, rn`, true},
	{"running total by month", `SELECT month, n, sum(n) OVER (ORDER BY month) AS running,
		round(avg(a) OVER (ORDER BY month ROWS BETWEEN 2 PRECEDING AND CURRENT ROW), 2) AS moving_avg
		FROM (SELECT date_trunc('month', submitted_at) AS month, count(*) AS n, avg(nps) AS a FROM responses GROUP BY 1) m
		ORDER BY month`, true},
	{"agents and teams", `SELECT DISTINCT agent_login, team_id FROM responses`, false},
	{"above-average responses", `SELECT count(*), min(nps) FROM responses WHERE nps > (SELECT avg(nps) FROM responses)`, false},
	{"busy agents", `WITH by_agent AS (SELECT agent_login, count(*) AS n, avg(nps) AS a FROM responses GROUP BY agent_login)
		SELECT agent_login, n, round(a, 2) FROM by_agent WHERE n >= 5 ORDER BY n DESC, agent_login`, true},
	{"tags", `SELECT tag, count(*), round(avg(nps), 2) FROM responses, unnest(tags) AS tag
		GROUP BY tag ORDER BY count(*) DESC, tag`, true},
	{"sentiment per branch", `SELECT branch,
		count(*) FILTER (WHERE sentiment = 'positive') AS positive,
		count(*) FILTER (WHERE sentiment = 'neutral') AS neutral,
		count(*) FILTER (WHERE sentiment = 'negative') AS negative,
		count(*) FILTER (WHERE sentiment IS NULL) AS unknown
		FROM responses GROUP BY branch`, false},
	{"latest comments", `SELECT id, submitted_at, country, nps, comment FROM responses
		ORDER BY submitted_at DESC, id DESC LIMIT 20`, true},
	{"score by country", `SELECT country, round(avg(score), 2), max(score), count(score) FROM responses GROUP BY country`, false},
	{"personal data present", `SELECT count(contact), count(email), count(*) FROM responses`, false},
	{"surveys with detractors", `SELECT s.name FROM surveys s
		WHERE EXISTS (SELECT 1 FROM responses r WHERE r.survey_id = s.id AND r.nps <= 3)`, false},
	{"median nps", `SELECT country, percentile_cont(0.5) WITHIN GROUP (ORDER BY nps),
		percentile_disc(0.9) WITHIN GROUP (ORDER BY nps) FROM responses GROUP BY country`, false},
	{"delivery or price", `SELECT count(*), count(DISTINCT agent_login) FROM responses WHERE tags && ARRAY['Delivery', 'Price']`, false},
	{"team tree", `SELECT p.name AS parent, t.name, count(r.id) FROM teams t
		LEFT JOIN teams p ON p.id = t.parent_id LEFT JOIN responses r ON r.team_id = t.id
		GROUP BY p.name, t.name`, false},
	{"promoters and detractors", `SELECT 'promoter' AS kind, count(*) FROM responses WHERE nps >= 9
		UNION ALL SELECT 'detractor', count(*) FROM responses WHERE nps <= 6`, false},
	{"two worst per country", `SELECT c.name, l.id, l.nps FROM countries c
		CROSS JOIN LATERAL (SELECT id, nps FROM responses r WHERE r.country = c.name ORDER BY nps, id LIMIT 2) l`, false},
	{"grouping sets", `SELECT country, sentiment, count(*) FROM responses GROUP BY GROUPING SETS ((country), (sentiment), ())`, false},
	{"first rows as JSON", `SELECT to_jsonb(r) FROM responses r ORDER BY id LIMIT 5`, true},
	{"notes per response", `SELECT r.id, r.country, count(c.id) AS notes, count(c.author_email), max(c.created_at)
		FROM responses r LEFT JOIN response_comments c ON c.response_id = r.id
		GROUP BY r.id, r.country HAVING count(c.id) > 0`, false},
	{"notes by author", `SELECT author, count(*), count(DISTINCT response_id), min(body) FROM response_comments
		GROUP BY author ORDER BY author`, true},
	{"notes without the responses", `SELECT count(*) FROM response_comments c
		WHERE NOT EXISTS (SELECT FROM responses r WHERE r.id = c.response_id)`, false},
	{"one country's rows", `SELECT id, branch, nps, contact, email, score FROM responses
		WHERE country = 'France' AND nps <= 2 ORDER BY id LIMIT 10`, true},
}

// nativeViews returns the SQL creating native_<login>'s views.
func nativeViews(login string, score, pii bool, countries, reference string) string {
	s := "native_" + login
	mask := func(col, typ string, visible bool) string {
		if visible {
			return col
		}
		return "NULL::" + typ + " AS " + col
	}
	where := func(pred string) string {
		if pred == "" {
			return ""
		}
		return " WHERE " + pred
	}
	return fmt.Sprintf(`
DROP SCHEMA IF EXISTS %[1]s CASCADE;
CREATE SCHEMA %[1]s;
CREATE VIEW %[1]s.responses WITH (security_barrier) AS
SELECT id, survey_id, %[2]s, %[3]s, country, branch, nps, %[4]s, agent_login, team_id, tags, sentiment, comment, submitted_at
FROM public.responses WHERE %[5]s;
CREATE VIEW %[1]s.response_comments WITH (security_barrier) AS
SELECT id, response_id, author, %[8]s, body, created_at
FROM public.response_comments WHERE response_id IN (SELECT id FROM %[1]s.responses);
CREATE VIEW %[1]s.countries WITH (security_barrier) AS SELECT code, name FROM public.countries%[6]s;
CREATE VIEW %[1]s.teams WITH (security_barrier) AS SELECT id, name, parent_id FROM public.teams%[7]s;
CREATE VIEW %[1]s.surveys WITH (security_barrier) AS SELECT id, name, project FROM public.surveys%[7]s;`,
		s, mask("contact", "text", pii), mask("email", "text", pii), mask("score", "numeric(5,2)", score),
		proxytest.Scopes[login], where(countries), where(reference), mask("author_email", "text", pii))
}

// diffResult is a result as text: column names and rows.
type diffResult struct {
	cols []string
	rows [][]string
}

func readDiff(rr *pgconn.ResultReader) (diffResult, error) {
	res := rr.Read()
	var out diffResult
	for _, fd := range res.FieldDescriptions {
		out.cols = append(out.cols, fd.Name)
	}
	for _, r := range res.Rows {
		row := make([]string, len(r))
		for i, v := range r {
			if v == nil {
				row[i] = "NULL"
			} else {
				row[i] = string(v)
			}
		}
		out.rows = append(out.rows, row)
	}
	return out, res.Err
}

func sortedRows(rows [][]string) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = strings.Join(r, "\x1f")
	}
	sort.Strings(out)
	return out
}

func TestDifferential(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()

	for _, u := range diffUsers {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, nativeViews(u.login, u.score, u.pii, u.countries, u.reference)); err != nil {
			t.Fatalf("creating native_%s: %v", u.login, err)
		}
	}
	t.Cleanup(func() {
		var drop []string
		for _, u := range diffUsers {
			drop = append(drop, "DROP SCHEMA IF EXISTS native_"+u.login+" CASCADE")
		}
		if err := proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, strings.Join(drop, "; ")); err != nil {
			t.Errorf("dropping the native schemas: %v", err)
		}
	})

	for _, u := range diffUsers {
		through := p.Connect(t, u.login)
		native, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { native.Close(context.Background()) })
		if _, err := native.Exec(ctx, "SET search_path = native_"+u.login+", public").ReadAll(); err != nil {
			t.Fatal(err)
		}
		// The comparison proves nothing if the user sees no row.
		if n, err := readDiff(native.ExecParams(ctx, "SELECT count(*) FROM responses", nil, nil, nil, nil)); err != nil || n.rows[0][0] == "0" {
			t.Fatalf("native_%s.responses is empty (%v): the comparison proves nothing", u.login, err)
		}

		for i, q := range diffQueries {
			t.Run(fmt.Sprintf("%s's query %d (%s) matches the native views", u.login, i+1, q.name), func(t *testing.T) {
				got, gerr := readDiff(through.PgConn().ExecParams(ctx, q.sql, nil, nil, nil, nil))
				want, werr := readDiff(native.ExecParams(ctx, q.sql, nil, nil, nil, nil))
				if werr != nil {
					t.Fatalf("natively: %v", werr)
				}
				if gerr != nil {
					t.Fatalf("through pgveil: %v", gerr)
				}
				if !reflect.DeepEqual(got.cols, want.cols) {
					t.Errorf("columns: got %v, want %v", got.cols, want.cols)
				}
				g, w := got.rows, want.rows
				same := reflect.DeepEqual(g, w)
				if !q.ordered {
					same = reflect.DeepEqual(sortedRows(g), sortedRows(w))
				}
				if !same {
					t.Errorf("%d rows through pgveil, %d natively\n%s", len(g), len(w), diffRows(g, w))
				}
			})
		}
	}
}

// diffRows describes the first differences between got and want.
func diffRows(got, want [][]string) string {
	gs, ws := map[string]int{}, map[string]int{}
	for _, r := range sortedRows(got) {
		gs[r]++
	}
	for _, r := range sortedRows(want) {
		ws[r]++
	}
	var b strings.Builder
	n := 0
	for r, c := range gs {
		if ws[r] < c && n < 10 {
			fmt.Fprintf(&b, "  only through pgveil: %q\n", strings.ReplaceAll(r, "\x1f", " | "))
			n++
		}
	}
	for r, c := range ws {
		if gs[r] < c && n < 20 {
			fmt.Fprintf(&b, "  only natively:       %q\n", strings.ReplaceAll(r, "\x1f", " | "))
			n++
		}
	}
	if n == 0 {
		b.WriteString("  same rows, different order\n")
	}
	return b.String()
}
