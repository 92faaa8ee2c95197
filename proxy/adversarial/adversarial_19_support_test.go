package adversarial_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
)

// support19DB is the database of TestAdversarial19Support: a small copy
// of the support-ticket schema a new DBA wrote a policy for from the
// docs alone (mixed-case and reserved-word columns, an enum, jsonb, a
// team tree, an identity table, a view and a partitioned table).
const support19DB = "support19"

// support19Schema builds support19DB. Every staff row's password is
// "demo-<login>".
const support19Schema = `
CREATE TYPE ticket_status AS ENUM ('open','pending','solved','closed');
CREATE TABLE teams(id int PRIMARY KEY, parent_id int REFERENCES teams(id), name text);
CREATE TABLE customers(id int PRIMARY KEY, name text, email text);
CREATE TABLE tickets(id int PRIMARY KEY, "Region" text NOT NULL, team_id int REFERENCES teams(id),
  agent_id text, customer_id int REFERENCES customers(id), customer_email text,
  sentiment_score numeric(4,2), status ticket_status NOT NULL, metadata jsonb, "order" int);
CREATE VIEW ticket_stats AS SELECT "Region", count(*) n, avg(sentiment_score) avg_sent FROM tickets GROUP BY 1;
CREATE TABLE events(id int, ticket_id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE events_2026_11 PARTITION OF events FOR VALUES FROM ('2026-11-01') TO ('2026-12-01');
CREATE TABLE staff(login text PRIMARY KEY, roles text[], team int, region text, pw text);
-- 1 Global > 2 EMEA > 3 France > 5 Paris; 2 > 4 Germany; 1 > 6 US
INSERT INTO teams VALUES (1,NULL,'Global'),(2,1,'EMEA'),(3,2,'France'),(4,2,'Germany'),(5,3,'Paris'),(6,1,'US');
INSERT INTO customers VALUES (1,'c1','HIDDENMIDDLE1@x.io'),(2,'c2','HIDDENMIDDLE2@x.io');
INSERT INTO tickets VALUES
 (1,'EU',5,'agnes',1,'alHIDDEN1@example.com',0.5,'open','{"vip":true}',1),
 (2,'EU',4,'bob',2,'boHIDDEN2@example.com',-0.5,'pending','{"vip":false}',2),
 (3,'US',6,'carl',2,'caHIDDEN3@example.com',0.25,'solved','{"vip":true}',3),
 (4,'EU',3,'agnes ',1,'short',0.1,'closed',NULL,4),
 (5,'EU',3,NULL,1,NULL,0.2,'open','{}',5);
INSERT INTO events SELECT id, id, '2026-11-15' FROM tickets;
INSERT INTO staff VALUES
 ('eva','{regional_analyst}',NULL,'EU','SCRAM-SHA-256$4096:hDGDWtUAmfFOLIIXusBBwg==$verRyKLc7Z8qot+SyFjh0FBzYgHq9PD4iQK1QJAmqmk=:Q4/NNHcH1o2GV489CQbUFJVR76/Yog5E7awHAazM9qk='),
 ('fanny','{manager}',3,'EU','SCRAM-SHA-256$4096:8/CW685b3GgOaP2BZ1RMZQ==$hAPOssKbHH31ZRJDhKjkRRj8TZdx72ytoTx1aoiuJH0=:LkGWKQyc9KKcbNhhH/f3c4zo8c5KqtHrUQKs439Kx+8='),
 ('agnes','{agent}',5,'EU','SCRAM-SHA-256$4096:UTz+fJGquq4PRUEKYDIJMw==$LOf73GGZR6jhuM1YWNfyE7uPU2Wy/Dr10VX4R88j+YM=:7lP36jAWJurSwNdEZjTKgW0KZzZume1P55x/oTZ/cA0=');
GRANT SELECT ON ALL TABLES IN SCHEMA public TO pgveil_svc;
GRANT UPDATE ON tickets TO pgveil_svc;
`

// support19Policy is the DBA's policy, cut to what the test reads.
const support19Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "support19"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "support19"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
identity "staff" {
  query = "SELECT login, roles, team, region, pw AS password FROM public.staff"
}
teams {
  table         = "public.teams"
  id_column     = "id"
  parent_column = "parent_id"
}
user "central" {
  password   = "SCRAM-SHA-256$4096:m29y3iJe+ymC0F6H1Flzlw==$N2mTfdK7MOKEQjLu9cuyQR9p3Hgh2Yec7ruYSvxPNm8=:vilxTj6KWSya+RCJx9LQ+DC/oyTXg78tzWdIb6M5kys="
  roles      = ["central_analyst"]
}
user "looker" {
  password = "SCRAM-SHA-256$4096:eHPx1kIT+uRwffsYMfROcw==$Eb8jJcR7Y4OkQj4jHrDpdZ37sjJAoge/LcI0CpCSe48=:ljhlZOzmFJMCehOuJ0nEvSmY5mU0ytsRSKi46LtRlcM="
  roles    = ["bi_service"]
  act_for  = ["central", "role:regional_analyst"]
}
role "regional_analyst" {
  statements = ["select"]
  columns    = ["analytics"]
}
role "central_analyst" {
  statements = ["select", "copy_out"]
  columns    = ["analytics"]
}
role "manager" {
  statements = ["select"]
  scope      = "team_subtree"
}
role "agent" {
  statements = ["select", "update"]
  scope      = "self"
  own_rows   = true
}
role "bi_service" { statements = ["select"] }
schema "public" { default = "deny" }
table "public.tickets" {
  owner_column = "agent_id"
  team_column  = "team_id"
  column "customer_email" {
    class      = "pii"
    mask       = "partial"
    keep_start = 2
    keep_end   = 4
  }
  column "sentiment_score" { class = "analytics" }
}
table "public.customers" {
  column "email" { class = "pii" }
}
table "public.teams" { reference = true }
table "public.events" {}
table "public.ticket_stats" {}
rule "regional" {
  tables = ["public.tickets"]
  roles  = ["regional_analyst"]
  where  = "\"Region\" = me.region"
}
rule "central_all" {
  tables = ["public.*"]
  roles  = ["central_analyst"]
  scope  = "all"
}
rule "my_teams" {
  tables = ["public.tickets"]
  roles  = ["manager"]
  scope  = "team_subtree"
}
rule "my_tickets" {
  tables = ["public.tickets"]
  roles  = ["agent"]
  scope  = "self"
}
rule "teams_visible" {
  tables = ["public.teams"]
  roles  = ["regional_analyst", "central_analyst", "manager", "agent", "bi_service"]
  scope  = "all"
}
`

// support19Data is the database and policy startSupport19 serves.
var support19Data = &proxytest.PolicyDB{DB: support19DB, What: "support", Schema: support19Schema, Policy: support19Policy}

// startSupport19 loads support19DB once and serves support19Policy in front of it.
func startSupport19(t *testing.T) *proxytest.Proxy {
	t.Helper()
	return support19Data.Start(t)
}

// TestAdversarial19Support holds the nineteenth red team's angles on a
// policy that is not the demo's: a partial mask (two characters kept at
// the start, four at the end), a region rule on a mixed-case column, a
// team_subtree manager, self agents with own_rows, an identity table, a
// governed view and partitioned table, and a BI login acting for users.
// Each answer, on both protocols, is what the user may see: nothing
// reached a masked value's hidden middle, another scope's row or the
// identity table.
func TestAdversarial19Support(t *testing.T) {
	p := startSupport19(t)
	ctx := context.Background()

	// answer runs sql as conn on both protocols and returns the rows as
	// text, or "ERROR <sqlstate>", the same on both or the test fails.
	answer := func(t *testing.T, conn *pgx.Conn, sql string) string {
		t.Helper()
		var got [2]string
		for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			rs, err := conn.Query(ctx, sql, mode)
			var b strings.Builder
			if err == nil {
				for rs.Next() {
					v, _ := rs.Values()
					fmt.Fprintf(&b, "%v\n", v)
				}
				rs.Close()
				err = rs.Err()
			}
			if err != nil {
				b.Reset()
				fmt.Fprintf(&b, "ERROR %s", proxytest.SQLState(err))
			}
			got[i] = b.String()
		}
		if got[0] != got[1] {
			t.Fatalf("%s: the protocols disagree:\nsimple: %s\nextended: %s", sql, got[0], got[1])
		}
		if strings.Contains(got[0], "HIDDEN") {
			t.Errorf("%s: the answer holds a masked value's hidden part:\n%s", sql, got[0])
		}
		return got[0]
	}

	cases := []struct {
		name, user, sql, want string
	}{
		// The partial mask.
		{"a partial mask shows two characters, stars and four", "fanny",
			`SELECT customer_email FROM tickets WHERE id = 5 OR customer_email IS NOT NULL ORDER BY id`,
			"[al***************.com]\n[*****]\n[<nil>]\n"},
		{"LIKE on the partial mask's hidden part matches nothing", "eva",
			`SELECT count(*) FROM tickets WHERE customer_email LIKE '%HIDDEN%' OR customer_email ~ 'HID'`, "[0]\n"},
		{"equality, = ANY and IN with the real value match nothing", "eva",
			`SELECT count(*) FROM tickets WHERE customer_email = 'alHIDDEN1@example.com' OR customer_email = ANY('{boHIDDEN2@example.com}') OR customer_email IN (SELECT 'alHIDDEN1@example.com')`, "[0]\n"},
		{"md5 hashes the mask", "eva",
			`SELECT md5(customer_email) = md5('al***************.com') FROM tickets WHERE id = 1`, "[true]\n"},
		{"row_to_json and jsonb_populate_record show the mask", "eva",
			`SELECT row_to_json(t)->>'customer_email', (jsonb_populate_record(NULL::tickets, to_jsonb(t))).customer_email FROM tickets t WHERE id = 1`,
			"[al***************.com al***************.com]\n"},
		{"a failing cast quotes no part of the value", "eva",
			`SELECT customer_email::int FROM tickets WHERE id = 1`, "ERROR 22P02"},
		{"a join with the real value on another table matches nothing", "central",
			`SELECT count(*) FROM tickets t JOIN customers c ON c.name || 'x' = t.customer_email OR t.customer_email LIKE 'alH%'`, "[0]\n"},
		{"GROUP BY and DISTINCT group the masked values", "eva",
			`SELECT count(DISTINCT customer_email), count(DISTINCT length(customer_email)) FROM tickets`, "[3 2]\n"},
		// Mixed case, reserved words, whole rows.
		{"a region analyst reads her region's rows only, quoted or qualified", "eva",
			`SELECT tickets."Region", t2."order" FROM tickets JOIN tickets AS t2 USING (id) WHERE t2."Region" <> 'EU' OR tickets."order" >= 0 ORDER BY 2`,
			"[EU 1]\n[EU 2]\n[EU 4]\n[EU 5]\n"},
		{"a NATURAL join with teams reads the scoped rows", "eva",
			`SELECT count(*) FROM tickets NATURAL JOIN teams`, "[4]\n"},
		// The team tree.
		{"a manager reads her team and the teams below it", "fanny",
			`SELECT array_agg(id ORDER BY id), array_agg(DISTINCT team_id) FROM tickets`, "[[1 4 5] [3 5]]\n"},
		{"a manager's team compared as text reaches no other team", "fanny",
			`SELECT count(*) FROM tickets WHERE team_id::text IN ('4', '6') OR team_id IS NULL`, "[0]\n"},
		{"a manager reads no sentiment", "fanny",
			`SELECT count(sentiment_score) FROM tickets`, "[0]\n"},
		// Agents.
		{"an agent reads her tickets only, not a login with a trailing space", "agnes",
			`SELECT array_agg(id) FROM tickets WHERE agent_id LIKE 'agnes%' OR agent_id IS NULL OR true`, "[[1]]\n"},
		{"an agent's update of another agent's ticket changes nothing", "agnes",
			`UPDATE tickets SET "order" = "order" WHERE id IN (2, 3, 4, 5) RETURNING id`, ""},
		{"the events of a table without owner column are hidden from an agent", "agnes",
			`SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM events_2026_11)`, "[0]\n"},
		// The identity table, the view and the partitions.
		{"nobody reads the identity table", "central",
			`SELECT pw FROM staff`, "ERROR 42501"},
		{"nobody writes the identity table", "central",
			`UPDATE staff SET roles = '{central_analyst}' WHERE login = 'agnes'`, "ERROR 42501"},
		{"nobody writes the team tree", "fanny",
			`UPDATE teams SET parent_id = 3 WHERE id = 6`, "ERROR 42501"},
		{"the view gives a region analyst no row", "eva",
			`SELECT count(*) FROM ticket_stats`, "[0]\n"},
		{"a partition read directly keeps the parent's policy", "eva",
			`SELECT count(*) FROM events_2026_11`, "[0]\n"},
		{"central reads every ticket through the partition", "central",
			`SELECT count(*) FROM events_2026_11`, "[5]\n"},
		// Foreign keys.
		{"an agent cannot test a hidden customer's existence", "agnes",
			`UPDATE tickets SET customer_id = 2 WHERE id = 1`, "ERROR 42501"},
	}
	conns := map[string]*pgx.Conn{}
	for _, c := range cases {
		if conns[c.user] == nil {
			conns[c.user] = p.Connect(t, c.user)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			conn := conns[c.user]
			if got := answer(t, conn, c.sql); got != c.want {
				t.Errorf("%s as %s:\n got %q\nwant %q", c.sql, c.user, got, c.want)
			}
		})
	}

	t.Run("a BI login acts for no one its list lacks and keeps nothing across a switch", func(t *testing.T) {
		conn := p.Connect(t, "looker")
		steps := []struct{ sql, want string }{
			{`SET ROLE agnes`, "ERROR 42501"},
			{`SELECT set_config('role', 'agnes', false)`, "ERROR 42501"},
			{`SET SESSION AUTHORIZATION agnes`, "ERROR 42501"},
			{`SET ROLE central`, ""},
			{`PREPARE every AS SELECT count(*) FROM tickets`, ""},
			{`BEGIN`, ""},
			{`DECLARE held CURSOR WITH HOLD FOR SELECT id FROM tickets ORDER BY id`, ""},
			{`COMMIT`, ""},
			{`SET ROLE eva`, ""},
			{`EXECUTE every`, "ERROR 42501"},
			{`FETCH ALL FROM held`, "ERROR 42501"},
			{`SELECT count(*) FROM tickets`, "[4]\n"},
			{`BEGIN`, ""},
			{`RESET ROLE`, ""},
			{`ROLLBACK`, ""},
			{`SELECT count(*) FROM tickets`, "[4]\n"},
		}
		for _, s := range steps {
			var got string
			if _, err := conn.Exec(ctx, s.sql, pgx.QueryExecModeSimpleProtocol); err != nil {
				got = "ERROR " + proxytest.SQLState(err)
			} else if strings.HasPrefix(s.sql, "SELECT") {
				got = answer(t, conn, s.sql)
			}
			if got != s.want {
				t.Fatalf("%s: got %q, want %q", s.sql, got, s.want)
			}
		}
	})
}
