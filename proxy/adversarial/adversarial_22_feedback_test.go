package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/ldaptest"
)

// Red team 22 attacked a new DBA's customer-feedback policy (LDAP logins,
// a BI service acting for people, transaction pooling). Nothing it tried
// leaked; this file keeps those angles, on the DBA's own schema and a
// policy cut to what the statements read (user blocks with marie's
// password stand in for the directory logins).

// feedback22Schema is the DBA's schema.sql, less the database and role
// creation the test cluster does itself.
const feedback22Schema = `
CREATE EXTENSION ltree;
CREATE SCHEMA org; CREATE SCHEMA fb;
CREATE TABLE org.teams(id int PRIMARY KEY, parent_id int REFERENCES org.teams, name text NOT NULL, path ltree);
INSERT INTO org.teams VALUES
 (1,NULL,'Central','central'),
 (2,1,'Europe','central.europe'),(3,1,'Americas','central.americas'),
 (4,2,'France','central.europe.france'),(5,2,'Germany','central.europe.germany'),
 (6,4,'Paris support','central.europe.france.paris'),(7,4,'Lyon support','central.europe.france.lyon'),
 (8,3,'US','central.americas.us'),(9,8,'NYC support','central.americas.us.nyc');
CREATE TABLE org.staff(id int PRIMARY KEY, login text UNIQUE NOT NULL, team_id int REFERENCES org.teams, manager_id int REFERENCES org.staff, email text);
INSERT INTO org.staff VALUES
 (1,'cora',1,NULL,'cora@fb.example'),    -- central team (sees all, pii)
 (2,'erik',2,1,'erik@fb.example'),       -- manager Europe (subtree 2,4,5,6,7)
 (3,'fanny',4,2,'fanny@fb.example'),     -- manager France (4,6,7)
 (4,'paul',6,3,'paul@fb.example'),       -- agent Paris
 (5,'lea',7,3,'lea@fb.example'),         -- agent Lyon
 (6,'nick',9,1,'nick@fb.example'),       -- agent NYC
 (7,'anna',1,1,'anna@fb.example'),       -- country analyst FR,DE
 (8,'bob',1,1,'bob@fb.example');         -- country analyst US
CREATE TABLE fb.responses(id bigserial PRIMARY KEY, team_id int NOT NULL REFERENCES org.teams, agent_id int REFERENCES org.staff,
 country char(2) NOT NULL, nps smallint CHECK (nps BETWEEN 0 AND 10), verbatim text, contact_email text, phone text,
 internal_score numeric(5,2), submitted_at timestamptz NOT NULL);
INSERT INTO fb.responses(team_id,agent_id,country,nps,verbatim,contact_email,phone,internal_score,submitted_at)
SELECT t.team, t.agent, t.country, (g*7)%11, 'response '||g||CASE WHEN g%5=0 THEN ' contact me at client'||g||'@mail.example please' ELSE ' great service' END,
 'client'||g||'@mail.example', '+33 6 '||lpad(g::text,8,'0'), (g%100)/3.0, timestamptz '2026-01-01' + g*interval '7 hours'
FROM generate_series(1,600) g,
 LATERAL (SELECT (ARRAY[6,7,9,5,4,8])[1+g%6] AS team, (ARRAY[4,5,6,NULL,3,NULL])[1+g%6] AS agent, (ARRAY['FR','FR','US','DE','FR','US'])[1+g%6] AS country) t;
CREATE TABLE fb.tags(response_id bigint REFERENCES fb.responses, tag text, PRIMARY KEY(response_id, tag));
INSERT INTO fb.tags SELECT id, (ARRAY['price','delay','staff','app'])[1+id%4] FROM fb.responses;
INSERT INTO fb.tags SELECT id, 'urgent' FROM fb.responses WHERE nps < 3;
CREATE MATERIALIZED VIEW fb.nps_monthly AS
 SELECT team_id, date_trunc('month', submitted_at) AS month,
   round(100.0*(count(*) FILTER (WHERE nps>=9) - count(*) FILTER (WHERE nps<=6))/count(*),1) AS nps, count(*) AS n
 FROM fb.responses GROUP BY 1,2;
GRANT USAGE ON SCHEMA org, fb TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA org, fb TO pgveil_svc;
REVOKE CREATE ON SCHEMA public FROM PUBLIC;
-- analysts' countries (the directory has no usable attribute pgveil could read)
CREATE TABLE org.analyst_countries(login text REFERENCES org.staff(login), country char(2), PRIMARY KEY(login,country));
INSERT INTO org.analyst_countries VALUES ('anna','FR'),('anna','DE'),('bob','US');
GRANT SELECT ON org.analyst_countries TO pgveil_svc;
REVOKE TEMP ON DATABASE fb22 FROM PUBLIC;
`

// feedback22Policy is the DBA's policy.hcl without the ldap block, in a
// transaction pool of two backends so that sessions share them.
const feedback22Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "fb22"
}
upstream {
  address     = env("PGVEIL_DEMO_UPSTREAM")
  database    = "fb22"
  user        = "pgveil_svc"
  password    = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
  search_path = "fb, org, public"
  pool {
    mode = "transaction"
    size = 2
  }
}
identity "staff" {
  query = <<-SQL
    SELECT s.login, s.team_id AS team, s.id AS staff_id,
           ARRAY(SELECT ac.country::text FROM org.analyst_countries ac WHERE ac.login = s.login ORDER BY 1) AS countries,
           ARRAY(WITH RECURSIVE sub(id) AS (SELECT s.team_id UNION SELECT t.id FROM org.teams t JOIN sub ON t.parent_id = sub.id) SELECT id FROM sub ORDER BY 1) AS subtree
    FROM org.staff s
  SQL
}
teams {
  table         = "org.teams"
  id_column     = "id"
  parent_column = "parent_id"
}
role "central" {
  statements = ["select", "copy_out"]
  columns    = ["internal", "verbatim_raw"]
}
role "manager" {
  statements = ["select"]
  scope      = "team_subtree"
}
role "agent" { statements = ["select"] }
role "analyst" {
  statements = ["select", "copy_out"]
  columns    = ["internal"]
}
role "bi_service" {
  statements = ["select"]
  scope      = "none"
}
schema "fb"     { default = "deny" }
schema "org"    { default = "deny" }
schema "public" { default = "deny" }
table "org.teams" { reference = true }
table "org.staff" {
  reference = true
  column "email" {
    class = "pii"
    mask  = "null"
  }
}
table "fb.responses" {
  team_column = "team_id"
  pushdown    = false
  column "contact_email" {
    class  = "pii"
    mask   = "hash"
    secret = "hash-secret-0123456789abcdef"
  }
  column "phone" { class = "pii" }
  column "internal_score" { class = "internal" }
  column "verbatim" {
    class      = "verbatim_raw"
    mask       = "expression"
    expression = "regexp_replace(verbatim, '[[:alnum:]._%+-]+@[[:alnum:].-]+', '[email]', 'g')"
  }
}
table "fb.tags" { reference = true }
table "fb.nps_monthly" { team_column = "team_id" }
rule "everyone_reads_org" {
  tables = ["org.teams", "org.staff"]
  roles  = ["central", "manager", "agent", "analyst"]
  scope  = "all"
}
rule "manager_subtree" {
  tables = ["fb.responses", "fb.nps_monthly"]
  roles  = ["manager"]
  scope  = "team_subtree"
}
rule "manager_subtree_tags" {
  tables = ["fb.tags"]
  roles  = ["manager"]
  where  = "response_id IN (SELECT r.id FROM fb.responses r WHERE r.team_id = ANY(me.subtree))"
}
rule "agent_own" {
  tables = ["fb.responses"]
  roles  = ["agent"]
  where  = "agent_id = me.staff_id"
}
rule "agent_own_tags" {
  tables = ["fb.tags"]
  roles  = ["agent"]
  where  = "response_id IN (SELECT r.id FROM fb.responses r WHERE r.agent_id = me.staff_id)"
}
user "superset" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles    = ["bi_service"]
  act_for  = ["role:manager", "role:agent"]
}
user "fanny" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles    = ["manager"]
}
user "paul" {
  password = "SCRAM-SHA-256$4096:UhSmBtEvd3peBj1P+aiWVQ==$m1CEsm/JM1LTWyYa7PjZhlruMkwsJtDCrvwQ1+Do+8Q=:sJ1/SRpjmzujYW5rhvGW9Ht0EBUXt1WgDUar42e3Idw="
  roles    = ["agent"]
}
`

// feedback22 serves the DBA's database and policy.
var feedback22 = proxytest.PolicyDB{DB: "fb22", What: "feedback22", Schema: feedback22Schema, Policy: feedback22Policy, MaskKeys: true}

// feedback22Conn connects to p as user, whose password is marie's.
func feedback22Conn(t *testing.T, p *proxytest.Proxy, user string) *pgconn.PgConn {
	t.Helper()
	c, err := pgconn.Connect(context.Background(), p.URL(user, "demo-marie", nil))
	if err != nil {
		t.Fatalf("connecting as %s: %v", user, err)
	}
	t.Cleanup(func() { _ = c.Close(context.Background()) })
	return c
}

// feedback22Step is a statement and its answer through pgveil, as
// proxytest.Answer writes it: rows, or "error <SQLSTATE>" (a prefix).
type feedback22Step struct{ sql, want string }

// feedback22Run runs steps in order on one connection.
func feedback22Run(t *testing.T, c *pgconn.PgConn, steps []feedback22Step) {
	t.Helper()
	for _, s := range steps {
		got := proxytest.Answer(context.Background(), c, s.sql)
		if got != s.want && !(strings.HasPrefix(s.want, "error") && strings.HasPrefix(got, s.want)) {
			t.Errorf("%s\n got %q\nwant %q", s.sql, got, s.want)
		}
	}
}

// TestAdversarial22FeedbackMasksHeld: the manager's and the agent's
// own sessions, each answer compared with the truth read directly
// (fanny: teams 4, 6, 7 = 300 responses, 381 tags; paul: agent 4 = 100
// responses, 127 tags): the hash, NULL and verbatim masks hold in
// predicates, whole rows, casts and aggregates.
func TestAdversarial22FeedbackMasksHeld(t *testing.T) {
	p := feedback22.Start(t)
	for _, c := range []struct{ name, user, sql, want string }{
		{"the manager reads her subtree", "fanny", "SELECT count(*) FROM fb.responses", "[\"300\"]\n"},
		{"the manager's matview rows are her subtree's", "fanny", "SELECT sum(n) FROM fb.nps_monthly", "[\"300\"]\n"},
		{"the manager's tags are her subtree's", "fanny", "SELECT count(*) FROM fb.tags", "[\"381\"]\n"},
		{"the manager's tags name no response she cannot read", "fanny",
			"SELECT count(*) FROM fb.tags t WHERE NOT EXISTS (SELECT 1 FROM fb.responses r WHERE r.id = t.response_id)", "[\"0\"]\n"},
		{"the agent reads his own", "paul", "SELECT count(*) FROM fb.responses", "[\"100\"]\n"},
		{"the agent's tags are his own's", "paul", "SELECT count(*) FROM fb.tags", "[\"127\"]\n"},
		{"a whole row carries the masked e-mail and phone", "fanny",
			"SELECT count(*) FROM fb.responses r WHERE r::text LIKE '%@mail%' OR to_jsonb(r)::text LIKE '%+33%'", "[\"0\"]\n"},
		{"the verbatim mask leaves no at sign for LIKE", "fanny",
			"SELECT count(*) FROM fb.responses WHERE verbatim LIKE '%@%' OR verbatim ~ 'client[0-9]+@'", "[\"0\"]\n"},
		{"the verbatim mask's text is what to_tsvector reads", "fanny",
			"SELECT to_tsvector('simple', verbatim)::text FROM fb.responses WHERE id = 10",
			"[\"'10':2 'at':5 'contact':3 'email':6 'me':4 'please':7 'response':1\"]\n"},
		{"the hash pseudonym is not a plain digest of the e-mail", "fanny",
			"SELECT count(*) FROM fb.responses WHERE contact_email IN (md5('client4@mail.example'), encode(sha256('client4@mail.example'::bytea), 'hex'))", "[\"0\"]\n"},
		{"the hash pseudonym never equals the staff's NULL-masked e-mails", "fanny",
			"SELECT count(*) FROM fb.responses r JOIN org.staff s ON s.email = r.contact_email OR s.email IS NOT NULL", "[\"0\"]\n"},
		{"phone and internal score are NULL to predicates and windows", "fanny",
			"SELECT count(*) FILTER (WHERE phone IS NOT NULL OR internal_score IS NOT NULL), max(internal_score) OVER () FROM fb.responses GROUP BY internal_score", "[\"0\" \"\"]\n"},
		{"a cast error over the hash quotes no value", "fanny",
			"SELECT contact_email::int FROM fb.responses LIMIT 1", "error 22P02"},
		{"ltree operators on the reference tree are the tree's", "fanny",
			"SELECT count(*) FROM org.teams WHERE path <@ 'central.europe.france' AND path ~ '*.france.*'", "[\"3\"]\n"},
		{"the manager may not export", "fanny",
			"COPY (SELECT phone FROM fb.responses) TO STDOUT", "error 42501"},
	} {
		t.Run(c.name, func(t *testing.T) {
			feedback22Run(t, feedback22Conn(t, p, c.user), []feedback22Step{{c.sql, c.want}})
		})
	}
}

// TestAdversarial22FeedbackActForHeld: the BI service acting for the
// manager and the agent in the transaction pool answers as their own
// sessions do (300 and 100 responses, itself 0), across cursors,
// prepared statements, RESET and DISCARD, rollbacks and savepoints.
func TestAdversarial22FeedbackActForHeld(t *testing.T) {
	p := feedback22.Start(t)
	const count = "SELECT count(*), count(phone) FROM fb.responses"
	for _, c := range []struct {
		name  string
		steps []feedback22Step
	}{
		{"a WITH HOLD cursor made for the manager is refused to the agent", []feedback22Step{
			{"SET ROLE fanny", ""},
			{"BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT id FROM fb.responses ORDER BY id; COMMIT", ""},
			{"SET ROLE paul", ""},
			{"FETCH 2 FROM c", "error 42501"},
			{count, "[\"100\" \"0\"]\n"},
		}},
		{"SQL PREPARE is refused in the transaction pool", []feedback22Step{
			{"SET ROLE fanny", ""},
			{"PREPARE p AS " + count, "error 0A000"},
		}},
		{"a switch rolled back leaves the previous viewer", []feedback22Step{
			{"SET ROLE fanny", ""},
			{"BEGIN", ""}, {"SET ROLE paul", ""}, {count, "[\"100\" \"0\"]\n"}, {"ROLLBACK", ""},
			{count, "[\"300\" \"0\"]\n"},
		}},
		{"a switch after an error in a transaction changes nothing", []feedback22Step{
			{"SET ROLE fanny", ""},
			{"BEGIN", ""}, {"SELECT 1/0", "error 22012"}, {"SET ROLE paul", "error 25P02"}, {"COMMIT", ""},
			{count, "[\"300\" \"0\"]\n"},
		}},
		{"RESET ALL and DISCARD ALL act as the service again", []feedback22Step{
			{"SET ROLE fanny", ""}, {"RESET ALL", ""}, {count, "[\"0\" \"0\"]\n"},
			{"SET ROLE fanny", ""}, {"DISCARD ALL", ""}, {count, "[\"0\" \"0\"]\n"},
			{"SET ROLE fanny", ""}, {"BEGIN", ""}, {"RESET ALL", ""}, {"ROLLBACK", ""}, {count, "[\"300\" \"0\"]\n"},
		}},
		{"a ROLLBACK TO SAVEPOINT after a switch leaves the viewer unknown", []feedback22Step{
			{"SET ROLE fanny", ""},
			{"BEGIN", ""}, {"SAVEPOINT a", ""}, {"SET ROLE paul", ""}, {"ROLLBACK TO a", ""},
			{count, "error 42501"}, {"ROLLBACK", ""},
		}},
		{"a switch in a text with a query is refused", []feedback22Step{
			{"SET ROLE paul; " + count, "error 42501"},
		}},
		{"the service cannot act for a login outside its list", []feedback22Step{
			{"SET ROLE cora", "error 42501"}, {"SET pgveil.act_for = 'fanny '", "error 42501"},
			{"SET ROLE \"Fanny\"", "error 42501"}, {count, "[\"0\" \"0\"]\n"},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			feedback22Run(t, feedback22Conn(t, p, "superset"), c.steps)
		})
	}
}

// TestAdversarial22FeedbackLDAPHeld: the DBA's directory logins
// (search+bind as a service DN, cleartext allowed) admit only the
// directory's own spelling of a person with a group, and a manager whose
// role comes from her group alone reads her live subtree (erik: teams
// 2, 4, 5, 6, 7 = 400 responses).
func TestAdversarial22FeedbackLDAPHeld(t *testing.T) {
	feedback22.Start(t) // creates the database
	dir := ldaptest.Start(t,
		map[string]string{"fanny": "pw-fanny", "erik": "pw-erik", "dora": "pw-dora"},
		map[string][]string{"managers": {"fanny", "erik"}})
	withLDAP := &proxytest.PolicyDB{DB: "fb22", What: "feedback22 with LDAP", Policy: feedback22Policy + `
ldap {
  url             = "` + dir.URL + `"
  base_dn         = "` + ldaptest.PeopleDN + `"
  bind_dn         = "` + ldaptest.ReaderDN + `"
  bind_password   = "` + ldaptest.ReaderPassword + `"
  group_base_dn   = "` + ldaptest.GroupsDN + `"
  allow_cleartext = true
  group "` + ldaptest.GroupDN("managers") + `" { roles = ["manager"] }
}
`, Loaded: true} // feedback22 created the database
	p := withLDAP.Start(t)
	ctx := context.Background()
	for _, c := range []struct{ name, user, password, want string }{
		{"a manager by her group reads her live subtree", "erik", "pw-erik", "[\"400\"]\n"},
		{"a user block's own password still serves its login", "fanny", "demo-marie", "[\"300\"]\n"},
		{"another case is refused", "Erik", "pw-erik", "refused"},
		{"a trailing space is refused", "erik ", "pw-erik", "refused"},
		{"full-width letters are refused", "\uff45\uff52\uff49\uff4b", "pw-erik", "refused"},
		{"a wildcard is refused", "*", "pw-erik", "refused"},
		{"a wildcard suffix is refused", "eri*", "pw-erik", "refused"},
		{"a filter injection is refused", "erik)(uid=*", "pw-erik", "refused"},
		{"an escaped wildcard is refused", "eri\\2a", "pw-erik", "refused"},
		{"an empty password (an unauthenticated bind) is refused", "erik", "", "refused"},
		{"a person in no group is refused", "dora", "pw-dora", "refused"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conn, err := pgconn.Connect(ctx, p.URL(c.user, c.password, nil))
			if err != nil {
				if c.want != "refused" {
					t.Fatalf("%q: %v", c.user, err)
				}
				return
			}
			defer func() { _ = conn.Close(ctx) }()
			if c.want == "refused" {
				t.Fatalf("%q logged in", c.user)
			}
			if got := proxytest.Answer(ctx, conn, "SELECT count(*) FROM fb.responses"); got != c.want {
				t.Errorf("%q reads %q, want %q", c.user, got, c.want)
			}
		})
	}
}
