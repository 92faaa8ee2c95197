package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/server"
)

// follows23DB is the database of TestAdversarial23Follows: tickets of two
// tenants, and children that follow them (comments with a foreign key,
// attachments without one and with a bigint key, reactions following
// comments, a partitioned event log, links keyed by the ticket's varchar
// code from a text column, notes with a nullable key and replies
// following notes on a key that is not unique; cilinks, keyed by the
// code from a case-insensitive column).
const follows23DB = "follows23"

// follows23Schema builds follows23DB. Tenant A's tickets are 1 (agnes),
// 2 (bob), 5 and 6 (agnes, 6's code b-3); tenant B's, 3 (code B-3) and 4
// (carl). Every value of a
// hidden row holds HIDDEN. Staff passwords are "demo-<login>".
const follows23Schema = `
CREATE SCHEMA t;
CREATE TABLE t.tickets(id int PRIMARY KEY, tenant text NOT NULL, owner text, secret_note text, code varchar(10) UNIQUE);
CREATE TABLE t.comments(id int PRIMARY KEY, ticket_id int REFERENCES t.tickets(id), body text, author_email text);
CREATE TABLE t.attachments(id int, ticket_id bigint, name text, size int);
CREATE TABLE t.reactions(id int, comment_id int, emoji text);
CREATE TABLE t.events(id int, ticket_id int, at date NOT NULL) PARTITION BY RANGE (at);
CREATE TABLE t.events_2026 PARTITION OF t.events FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE TABLE t.links(id int, ticket_code text, url text);
CREATE TABLE t.notes(id int, ticket_id int NULL, n int);
CREATE COLLATION t.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE t.cilinks(id int, ticket_code text COLLATE t.ci, url text);
CREATE DOMAIN t.ticket_ref AS int CHECK (VALUE > 0);
CREATE TABLE t.dlinks(id int, ticket_id t.ticket_ref, url text);
CREATE TABLE t.nlinks(id int, ticket_id numeric, url text);
INSERT INTO t.dlinks VALUES (1,1,'d1'),(3,3,'HIDDEN d3');
INSERT INTO t.nlinks VALUES (1,1,'n1'),(3,3,'HIDDEN n3');
CREATE TABLE t.tk2(id int, tenant text);
CREATE VIEW t.v_tk2 AS SELECT id, tenant FROM t.tk2;
CREATE TABLE t.kids(tk int, x text);
INSERT INTO t.tk2 VALUES (1,'A'),(3,'B');
INSERT INTO t.kids VALUES (1,'k1'),(3,'HIDDEN k3');
CREATE TABLE t.replies(id int, note_id int, txt text);
CREATE TABLE t.staff(login text PRIMARY KEY, roles text[], region text, pw text);
INSERT INTO t.tickets VALUES
 (1,'A','agnes','note one','A-1'),(2,'A','bob','note two','A-2'),
 (3,'B','carl','HIDDEN three','B-3'),(4,'B','carl','HIDDEN four','B-4'),(5,'A','agnes','note five','A-5'),(6,'A','agnes','note six','b-3');
INSERT INTO t.cilinks VALUES (3,'B-3','HIDDEN ci'),(6,'b-3','ci six');
INSERT INTO t.replies VALUES (1,1,'r1'),(3,3,'HIDDEN r3');
INSERT INTO t.comments VALUES
 (10,1,'c10','a10@x.io'),(11,1,'c11','a11@x.io'),(20,2,'c20','a20@x.io'),
 (30,3,'HIDDEN c30','HIDDEN30@x.io'),(31,3,'HIDDEN c31','HIDDEN31@x.io'),(40,4,'HIDDEN c40','HIDDEN40@x.io'),
 (50,5,'c50','a50@x.io'),(90,NULL,'HIDDEN orphan','HIDDEN90@x.io');
INSERT INTO t.attachments VALUES (1,1,'a1',10),(3,3,'HIDDEN a3',0),(4,4,'HIDDEN a4',0),(99,99,'HIDDEN orphan',0);
INSERT INTO t.reactions VALUES (1,10,'+1'),(2,30,'HIDDEN'),(3,40,'HIDDEN'),(4,90,'HIDDEN');
INSERT INTO t.events VALUES (1,1,'2026-05-01'),(3,3,'2026-05-03'),(4,4,'2026-05-04');
INSERT INTO t.links VALUES (1,'A-1','u1'),(3,'B-3','HIDDEN u3'),(33,'b-3','u6, whose code is b-3');
INSERT INTO t.notes VALUES (1,1,1),(2,NULL,0),(3,3,0),(4,4,0);
INSERT INTO t.staff VALUES
 ('eva','{tenant_reader}','A','SCRAM-SHA-256$4096:hDGDWtUAmfFOLIIXusBBwg==$verRyKLc7Z8qot+SyFjh0FBzYgHq9PD4iQK1QJAmqmk=:Q4/NNHcH1o2GV489CQbUFJVR76/Yog5E7awHAazM9qk='),
 ('fanny','{tenant_writer}','A','SCRAM-SHA-256$4096:8/CW685b3GgOaP2BZ1RMZQ==$hAPOssKbHH31ZRJDhKjkRRj8TZdx72ytoTx1aoiuJH0=:LkGWKQyc9KKcbNhhH/f3c4zo8c5KqtHrUQKs439Kx+8='),
 ('agnes','{agent}','A','SCRAM-SHA-256$4096:UTz+fJGquq4PRUEKYDIJMw==$LOf73GGZR6jhuM1YWNfyE7uPU2Wy/Dr10VX4R88j+YM=:7lP36jAWJurSwNdEZjTKgW0KZzZume1P55x/oTZ/cA0=');
CREATE VIEW t.comment_view AS SELECT * FROM t.comments;
CREATE FUNCTION t.all_comments() RETURNS SETOF t.comments LANGUAGE sql STABLE AS 'SELECT * FROM t.comments';
GRANT USAGE ON SCHEMA t TO pgveil_svc;
GRANT SELECT ON ALL TABLES IN SCHEMA t TO pgveil_svc;
GRANT INSERT, UPDATE, DELETE ON t.comments, t.attachments, t.reactions, t.notes, t.links, t.events TO pgveil_svc;
GRANT UPDATE ON t.tickets, t.tk2 TO pgveil_svc;
REVOKE TEMP ON DATABASE follows23 FROM PUBLIC;
GRANT INSERT, UPDATE, DELETE ON t.cilinks, t.replies TO pgveil_svc;
`

// follows23Policy is the DBA's policy: a tenant reader, a tenant writer,
// a self agent with own rows; the parent's note and the child's author
// masked; in a transaction pool of two backends, so that sessions share
// them (the follow is the rewriter's; session mode answered the same).
// t.cilinks has no block: its case-insensitive column is the load-time
// case (TestAdversarial23Follows).
const follows23Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "follows23"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "follows23"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
  pool {
    mode = "transaction"
    size = 2
  }
}
identity "staff" {
  query = "SELECT login, roles, region, pw AS password FROM t.staff"
}
user "looker" {
  password = "SCRAM-SHA-256$4096:eHPx1kIT+uRwffsYMfROcw==$Eb8jJcR7Y4OkQj4jHrDpdZ37sjJAoge/LcI0CpCSe48=:ljhlZOzmFJMCehOuJ0nEvSmY5mU0ytsRSKi46LtRlcM="
  roles    = ["bi_service"]
  act_for  = ["eva", "agnes"]
}
role "bi_service" { statements = ["select"] }
role "tenant_reader" {
  statements = ["select"]
}
role "tenant_writer" {
  statements = ["select", "insert", "update", "delete", "copy_out"]
}
role "agent" {
  statements = ["select", "insert", "update", "delete"]
  scope      = "self"
  own_rows   = true
}
schema "t" { default = "deny" }
table "t.tickets" {
  owner_column = "owner"
  column "secret_note" { class = "pii" }
}
table "t.comments" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
  column "author_email" { class = "pii" }
}
table "t.attachments" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
}
table "t.reactions" {
  follows = { table = "t.comments", column = "comment_id", key = "id" }
}
table "t.events" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
}
table "t.links" {
  follows = { table = "t.tickets", column = "ticket_code", key = "code" }
}
table "t.dlinks" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
}
table "t.replies" {
  follows = { table = "t.notes", column = "note_id", key = "id" }
}
table "t.notes" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
}
rule "tenant" {
  tables = ["t.tickets"]
  roles  = ["tenant_reader", "tenant_writer"]
  where  = "tenant = me.region"
}
rule "mine" {
  tables = ["t.tickets"]
  roles  = ["agent"]
  scope  = "self"
}
`

// follows23Data is the database and policy TestAdversarial23Follows serves.
var follows23Data = &proxytest.PolicyDB{DB: follows23DB, What: "follows", Schema: follows23Schema, Policy: follows23Policy}

// TestAdversarial23Follows holds the twenty-third red team's angles on
// child tables that follow their parent's scope, as users through pgveil:
// each answer, on both protocols, is the rows the truth read directly
// gives (the children of the tickets the user sees), or a refusal.
func TestAdversarial23Follows(t *testing.T) {
	p := follows23Data.Start(t)
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
					for i := range v {
						if v[i] == nil {
							v[i] = "NULL"
						}
					}
					fmt.Fprintf(&b, "%v", v)
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
			t.Errorf("%s: the answer holds a hidden row's value:\n%s", sql, got[0])
		}
		return got[0]
	}
	// truth reads sql directly, as the owner: the rows a user should see.
	truth := func(t *testing.T, sql string) string {
		t.Helper()
		c, err := proxytest.Cluster.Connect(ctx, follows23DB)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		var b strings.Builder
		for _, r := range proxytest.TextRows(t, sql, c.ExecParams(ctx, sql, nil, nil, nil, nil).Read()) {
			fmt.Fprintf(&b, "%v", r)
		}
		return b.String()
	}
	exec := func(t *testing.T, sql string) {
		t.Helper()
		if err := proxytest.Cluster.Exec(ctx, follows23DB, sql); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("a child whose column compares under a collation its key lacks is refused at load", func(t *testing.T) {
		diags, err := loadVariant23(t, `
table "t.cilinks" {
  follows = { table = "t.tickets", column = "ticket_code", key = "code" }
}
`)
		if err == nil || !strings.Contains(diags, "Follows column collation") {
			t.Errorf("t.cilinks (its B-3 link would show through the visible b-3) loaded: %v\n%s", err, diags)
		}
	})

	t.Run("a child following a view is refused at load", func(t *testing.T) {
		// NOTE: served, fanny's UPDATE t.tk2 SET id = 3 WHERE id = 1 (tk2.id
		// is no key of the view's guarded) showed eva t.kids' HIDDEN k3.
		diags, err := loadVariant23(t, `
table "t.tk2" {}
table "t.v_tk2" {}
table "t.kids" {
  follows = { table = "t.v_tk2", column = "tk", key = "id" }
}
rule "tenant_tk2" {
  tables = ["t.tk2", "t.v_tk2"]
  roles  = ["tenant_reader", "tenant_writer"]
  where  = "tenant = me.region"
}
`)
		if err == nil || !strings.Contains(diags, "Follows a view") {
			t.Errorf("t.kids following the view t.v_tk2 loaded: %v\n%s", err, diags)
		}
	})
	t.Run("policy mistakes are pointed at, at load or by the upstream check", func(t *testing.T) {
		for _, c := range []struct{ name, block, want string }{
			{"a loop of follows", `table "t.nlinks" {
  follows = { table = "t.nlinks", column = "ticket_id", key = "id" }
}`, "Follows loop"},
			{"a parent no table block governs", `table "t.nlinks" {
  follows = { table = "t.staff", column = "url", key = "login" }
}`, "Unknown follows table"},
			{"a pattern for a parent", `table "t.nlinks" {
  follows = { table = "t.*", column = "ticket_id", key = "id" }
}`, "Invalid follows"},
			{"a masked key", `table "t.nlinks" {
  follows = { table = "t.tickets", column = "url", key = "secret_note" }
}`, "Masked follows key"},
			{"a column that does not exist", `table "t.nlinks" {
  follows = { table = "t.tickets", column = "nope", key = "id" }
}`, "Unknown column"},
			{"a key that does not exist", `table "t.nlinks" {
  follows = { table = "t.tickets", column = "ticket_id", key = "nope" }
}`, "Unknown follows key"},
			{"a numeric column against an int key, compared by a cast", `table "t.nlinks" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
}`, "Follows column cast"},
			{"an int column against a varchar key", `table "t.nlinks" {
  follows = { table = "t.tickets", column = "id", key = "code" }
}`, "Follows column of the wrong type"},
		} {
			t.Run(c.name, func(t *testing.T) {
				diags, err := loadVariant23(t, "\n"+c.block+"\n")
				if err == nil || !strings.Contains(diags, c.want) {
					t.Errorf("loaded (%v), want %q:\n%s", err, c.want, diags)
				}
				if !strings.Contains(diags, "variant.hcl:") {
					t.Errorf("no file:line:col: %v\n%s", err, diags)
				}
			})
		}
	})

	const (
		tenantA = `ticket_id IN (SELECT id FROM t.tickets WHERE tenant = 'A')`
		agnes   = `ticket_id IN (SELECT id FROM t.tickets WHERE owner = 'agnes')`
	)
	// NOTE: the reads come first, the key moved upstream last; the
	// writes refused change nothing.
	cases := []struct {
		name, user, sql string
		// truth is what a direct read answers: the rows the user may see.
		truth string
	}{
		{"a tenant reader reads the comments of her tenant's tickets, the author masked", "eva",
			`SELECT id, ticket_id, body, author_email FROM t.comments ORDER BY id`,
			`SELECT id, ticket_id, body, NULL FROM t.comments WHERE ` + tenantA + ` ORDER BY id`},
		{"an agent reads the comments of her own tickets", "agnes",
			`SELECT id, body FROM t.comments ORDER BY id`, `SELECT id, body FROM t.comments WHERE ` + agnes + ` ORDER BY id`},
		{"a bigint column follows an int key", "eva",
			`SELECT id, name FROM t.attachments ORDER BY id`, `SELECT id, name FROM t.attachments WHERE ` + tenantA + ` ORDER BY id`},
		{"a text column follows a varchar key; b-3 is not B-3", "eva",
			`SELECT id, url FROM t.links ORDER BY id`, `SELECT id, url FROM t.links WHERE ticket_code IN (SELECT code FROM t.tickets WHERE tenant = 'A') ORDER BY id`},
		{"a column of a domain over int follows an int key", "eva",
			`SELECT id, url FROM t.dlinks ORDER BY id`, `SELECT id, url FROM t.dlinks WHERE ` + tenantA + ` ORDER BY id`},
		{"reactions follow comments to the ticket", "eva",
			`SELECT id, emoji FROM t.reactions ORDER BY id`, `SELECT id, emoji FROM t.reactions WHERE comment_id IN (SELECT id FROM t.comments WHERE ` + tenantA + `) ORDER BY id`},
		{"replies follow notes on a key that is not unique", "agnes",
			`SELECT id, txt FROM t.replies ORDER BY id`, `SELECT id, txt FROM t.replies WHERE note_id IN (SELECT id FROM t.notes WHERE ` + agnes + `) ORDER BY id`},
		{"a partition read directly follows as its root", "eva",
			`SELECT (SELECT count(*) FROM t.events), (SELECT count(*) FROM t.events_2026), (SELECT count(*) FROM ONLY t.events)`,
			`SELECT count(*), count(*), 0 FROM t.events WHERE ` + tenantA},
		{"a NULL key and an orphan show to no one", "eva",
			`SELECT count(*) FROM t.notes WHERE ticket_id IS NULL OR ticket_id NOT IN (1, 2, 5, 6)`, `SELECT 0`},
		{"NOT EXISTS finds no child without a visible parent", "eva",
			`SELECT count(*) FROM t.comments c WHERE NOT EXISTS (SELECT FROM t.tickets k WHERE k.id = c.ticket_id)`, `SELECT 0`},
		{"a join child to parent pairs the visible rows, the parent's note masked", "eva",
			`SELECT c.id, k.id, k.secret_note FROM t.comments c JOIN t.tickets k ON k.id = c.ticket_id ORDER BY 1`,
			`SELECT id, ticket_id, NULL FROM t.comments WHERE ` + tenantA + ` ORDER BY 1`},
		{"a join child to child pairs the visible rows", "eva",
			`SELECT a.id, c.id FROM t.attachments a JOIN t.comments c USING (ticket_id) ORDER BY 1, 2`,
			`SELECT a.id, c.id FROM t.attachments a JOIN t.comments c USING (ticket_id) WHERE c.` + tenantA + ` ORDER BY 1, 2`},
		{"LATERAL over the grandchild sees the visible reactions", "eva",
			`SELECT c.id, r.id FROM t.comments c, LATERAL (SELECT id FROM t.reactions r WHERE r.comment_id = c.id) r ORDER BY 1`,
			`SELECT comment_id, id FROM t.reactions WHERE comment_id IN (SELECT id FROM t.comments WHERE ` + tenantA + `) ORDER BY 1`},
		{"counting children per ticket counts the visible tickets' only", "eva",
			`SELECT k.id, (SELECT count(*) FROM t.comments c WHERE c.ticket_id = k.id) FROM t.tickets k ORDER BY 1`,
			`SELECT k.id, (SELECT count(*) FROM t.comments c WHERE c.ticket_id = k.id) FROM t.tickets k WHERE tenant = 'A' ORDER BY 1`},
		{"GROUP BY the key groups the visible children", "eva",
			`SELECT ticket_id, count(*) FROM t.comments GROUP BY 1 ORDER BY 1`,
			`SELECT ticket_id, count(*) FROM t.comments WHERE ` + tenantA + ` GROUP BY 1 ORDER BY 1`},
		{"a window and DISTINCT ON count the visible children", "eva",
			`SELECT DISTINCT ON (ticket_id) ticket_id, count(*) OVER () FROM t.comments ORDER BY ticket_id DESC LIMIT 2`,
			`SELECT DISTINCT ON (ticket_id) ticket_id, count(*) OVER () FROM t.comments WHERE ` + tenantA + ` ORDER BY ticket_id DESC LIMIT 2`},
		{"a division by zero only a hidden parent's key would cause raises nothing", "eva",
			`SELECT count(*) FROM t.comments WHERE 1 / (ticket_id - 3) = 0 OR 1 / (ticket_id - 4) = 0`,
			`SELECT count(*) FROM t.comments WHERE ` + tenantA}, // 1/(1-3), 1/(2-4), 1/(5-3) are 0
		{"a division by zero on a hidden parent's key in a join raises nothing", "eva",
			`SELECT c.id FROM t.comments c JOIN t.tickets k ON k.id = c.ticket_id WHERE 1 / (k.id - 3) <> 0 ORDER BY 1`,
			`SELECT id FROM t.comments WHERE ticket_id = 2`},
		{"a comparison with hidden keys matches nothing", "eva",
			`SELECT count(*) FROM t.comments WHERE ticket_id = ANY('{3,4}') OR body LIKE 'HIDDEN%'`, `SELECT 0`},
		{"a recursive CTE over child and grandchild reaches the visible rows", "eva",
			`WITH RECURSIVE x(id) AS (SELECT id FROM t.comments UNION SELECT r.id FROM t.reactions r JOIN x ON r.comment_id = x.id) SELECT count(*) FROM x`,
			`SELECT count(*) FROM (SELECT id FROM t.comments WHERE ` + tenantA + ` UNION SELECT 1) x`},
		{"an ungoverned view over the child is refused", "eva", `SELECT * FROM t.comment_view`, "ERROR 42501"},
		{"a set-returning function over the child is refused", "eva", `SELECT * FROM t.all_comments()`, "ERROR 42501"},
		{"EXPLAIN of the child is refused", "eva", `EXPLAIN SELECT * FROM t.comments`, "ERROR 42501"},
		// Writes.
		{"INSERT of a child, under any parent, is refused", "fanny",
			`INSERT INTO t.comments (id, ticket_id) VALUES (100, 3)`, "ERROR 42501"},
		{"INSERT into a child without foreign key is refused", "fanny",
			`INSERT INTO t.attachments (id, ticket_id) VALUES (100, 3)`, "ERROR 42501"},
		{"INSERT … ON CONFLICT is refused", "fanny",
			`INSERT INTO t.comments (id, ticket_id) VALUES (10, 1) ON CONFLICT (id) DO NOTHING`, "ERROR 42501"},
		{"UPDATE of the child's column is refused", "fanny",
			`UPDATE t.comments SET (ticket_id, body) = (SELECT 3, 'x') WHERE id = 10`, "ERROR 42501"},
		{"UPDATE of a followed key that is not unique is refused", "agnes",
			`UPDATE t.notes SET id = 3 WHERE id = 1`, "ERROR 42501"},
		{"UPDATE of the parent's key and code is refused", "fanny",
			`UPDATE t.tickets SET code = 'B-3' WHERE id = 1`, "ERROR 42501"},
		{"UPDATE of the owner a child follows through is refused", "agnes",
			`UPDATE t.tickets SET owner = 'agnes' WHERE id = 2`, "ERROR 42501"},
		{"DELETE … USING is refused", "fanny",
			`DELETE FROM t.notes n USING t.comments c WHERE n.ticket_id = c.ticket_id AND c.id = 30`, "ERROR 42501"},
		{"RETURNING of the child's masked column is refused", "fanny",
			`UPDATE t.comments SET body = body WHERE id = 10 RETURNING author_email`, "ERROR 42501"},
		{"MERGE is refused", "fanny",
			`MERGE INTO t.attachments a USING (VALUES (3)) v(x) ON a.ticket_id = v.x WHEN MATCHED THEN DELETE`, "ERROR 42501"},
		{"a DELETE of a hidden parent's children deletes none", "fanny",
			`DELETE FROM t.attachments WHERE ticket_id IN (3, 4) RETURNING id`, `SELECT 1 WHERE false`},
		{"an UPDATE of a hidden parent's children updates none", "fanny",
			`UPDATE t.events SET at = '2026-06-01' WHERE ticket_id = 3 RETURNING id`, `SELECT 1 WHERE false`},
	}
	conns := map[string]*pgx.Conn{}
	for _, c := range cases {
		if conns[c.user] == nil {
			conns[c.user] = p.Connect(t, c.user)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			want := c.truth
			if !strings.HasPrefix(want, "ERROR") {
				want = truth(t, c.truth)
			}
			if got := answer(t, conns[c.user], c.sql); got != want {
				t.Errorf("%s: got\n%s\nwant\n%s", c.sql, got, want)
			}
		})
	}
	t.Run("the hidden children are all still there", func(t *testing.T) {
		if got := truth(t, `SELECT count(*) FROM t.attachments WHERE ticket_id IN (3, 4)`); got != "[2]" {
			t.Errorf("%s hidden attachments left, want 2", got)
		}
	})
	t.Run("a BI service acting for eva, agnes and itself reads each one's children", func(t *testing.T) {
		c := p.Connect(t, "looker")
		const q = `SELECT id FROM t.comments ORDER BY id`
		for _, step := range []struct{ switchTo, truth string }{
			{"SET ROLE agnes", `SELECT id FROM t.comments WHERE ` + agnes + ` ORDER BY id`},
			{"SET ROLE eva", `SELECT id FROM t.comments WHERE ` + tenantA + ` ORDER BY id`},
			{"SET ROLE agnes", `SELECT id FROM t.comments WHERE ` + agnes + ` ORDER BY id`},
			{"RESET ROLE", `SELECT 1 WHERE false`},
		} {
			if _, err := c.Exec(ctx, step.switchTo); err != nil {
				t.Fatalf("%s: %v", step.switchTo, err)
			}
			if got, want := answer(t, c, q), truth(t, step.truth); got != want {
				t.Errorf("after %s: %s, want %s", step.switchTo, got, want)
			}
		}
	})
	t.Run("COPY TO writes the visible children, masked", func(t *testing.T) {
		var b strings.Builder
		if _, err := conns["fanny"].PgConn().CopyTo(ctx, &b, `COPY t.comments TO STDOUT`); err != nil {
			t.Fatal(err)
		}
		want := strings.ReplaceAll(truth(t, `SELECT string_agg(concat_ws(E'\t', id, ticket_id, body, '\N'), E'\n' ORDER BY id) || E'\n' FROM t.comments WHERE `+tenantA), "[", "")
		if got := b.String(); got != strings.TrimSuffix(want, "]") {
			t.Errorf("COPY wrote\n%s\nwant\n%s", got, want)
		}
	})
	t.Run("COPY FROM into the child is refused", func(t *testing.T) {
		_, err := conns["fanny"].PgConn().CopyFrom(ctx, strings.NewReader("100\t3\tx\ty\n"), `COPY t.comments FROM STDIN`)
		if proxytest.SQLState(err) != "42501" {
			t.Errorf("COPY FROM: %v, want 42501", err)
		}
	})
	t.Run("a cursor and a prepared statement follow a key moved upstream mid-session", func(t *testing.T) {
		c := p.Connect(t, "eva")
		const q = `SELECT string_agg(id::text, ',' ORDER BY id) FROM t.comments WHERE ticket_id = ANY($1::int[])`
		if _, err := c.Prepare(ctx, "by_ticket", q); err != nil {
			t.Fatal(err)
		}
		read := func() string {
			t.Helper()
			var s *string
			if err := c.QueryRow(ctx, "by_ticket", []int{1, 2, 3}).Scan(&s); err != nil {
				t.Fatal(err)
			}
			if s == nil {
				return ""
			}
			return *s
		}
		if got := read(); got != "10,11,20" {
			t.Fatalf("before the move: %q", got)
		}
		exec(t, `UPDATE t.comments SET ticket_id = 3 WHERE id = 11; UPDATE t.comments SET ticket_id = 1 WHERE id = 30`)
		t.Cleanup(func() {
			exec(t, `UPDATE t.comments SET ticket_id = 1 WHERE id = 11; UPDATE t.comments SET ticket_id = 3 WHERE id = 30`)
		})
		if got := read(); got != "10,20,30" {
			t.Errorf("after 11 moved to a hidden ticket and 30 to a visible one: %q, want 10,20,30", got)
		}
		exec(t, `UPDATE t.tickets SET tenant = 'B' WHERE id = 2`)
		t.Cleanup(func() { exec(t, `UPDATE t.tickets SET tenant = 'A' WHERE id = 2`) })
		if got := read(); got != "10,30" {
			t.Errorf("after ticket 2 moved to tenant B: %q, want 10,30", got)
		}
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		if _, err := tx.Exec(ctx, `DECLARE cur CURSOR FOR SELECT id FROM t.comments ORDER BY id`); err != nil {
			t.Fatal(err)
		}
		var ids []int32
		rows, _ := tx.Query(ctx, `FETCH ALL FROM cur`)
		for rows.Next() {
			var id int32
			_ = rows.Scan(&id)
			ids = append(ids, id)
		}
		if err := rows.Err(); err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(ids) != "[10 30 50]" {
			t.Errorf("the cursor fetched %v, want [10 30 50]", ids)
		}
	})
}

// loadVariant23 loads follows23Policy with extra appended, against
// follows23DB (loaded by follows23Data.start), and returns the
// diagnostics and the enforcement's error.
func loadVariant23(t *testing.T, extra string) (string, error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "variant.hcl")
	if err := os.WriteFile(path, []byte(follows23Policy+extra), 0o600); err != nil {
		t.Fatal(err)
	}
	l := policy.NewLoader()
	cfg, diags := l.Load(path)
	var b strings.Builder
	_ = policy.WriteDiagnostics(&b, l.Files(), diags)
	if diags.HasErrors() {
		return b.String(), errors.New("the policy does not load")
	}
	_, warns, err := server.LoadEnforcement(context.Background(), cfg)
	_ = policy.WriteDiagnostics(&b, l.Files(), warns)
	return b.String(), err
}
