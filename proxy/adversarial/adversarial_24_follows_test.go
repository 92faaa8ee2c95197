package adversarial_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
)

// follows24DB is the database of TestAdversarial24Follows: parents whose
// DELETE reaches children that follow them in full (a grandchild too),
// and the keys around them a cascade may reach.
const follows24DB = "follows24"

// follows24Schema builds follows24DB. Tenant A's rows are fanny's to
// write; tenant B's are hidden, and every value of a hidden row holds
// HIDDEN. The pii columns (badge, email) are masked for everyone.
//
//   - tickets ← comments (follow, CASCADE) ← reactions (follow of a
//     follow, CASCADE): the DELETE the loosening lets through.
//   - boards ← posts (follow, CASCADE) whose masked email is referenced
//     by o.mail, open to all (CASCADE).
//   - shelves, whose masked code is referenced by o.codes (CASCADE).
//   - boxes ← items (follow, NO ACTION, DEFERRABLE INITIALLY DEFERRED).
//   - desks ← memos (follow, CASCADE) ← replies (self reference of memos
//     from another desk's memo): a cascade into another desk's rows.
//   - racks ← bins (follow, CASCADE) ← tags (denied, CASCADE).
//   - lockers ← lkeys (follow, SET NULL); vaults ← coins (follow by
//     vault_id, a foreign key by vault_code); crates ← lids (follow,
//     NOT VALID, with an orphan); bays ← bolts (follow, NOT VALID,
//     an orphan of bay 2), bays' id a serial: agnes reads every bay.
//   - o.plates ← o.links (ON UPDATE CASCADE), whose pid references
//     t.docks too; t.slips ← o.pins (ON DELETE SET DEFAULT, DEFAULT 3):
//     a cascade writes a value a key checks against hidden rows.
//   - o.quays ← o.moors (ON DELETE SET NULL) ← o.ropes (ON UPDATE SET
//     DEFAULT, DEFAULT 3), whose x references t.berths too: a NULL's
//     change writes a default a key checks against hidden rows.
//   - o.pegs, whose slip_id DEFAULT 3 references t.slips: an INSERT
//     leaving it out checks the default against hidden rows.
//   - o.cards, whose masked email is UNIQUE DEFAULT 'none@x.io', which
//     a row holds: an INSERT leaving it out meets that row.
const follows24Schema = `
CREATE SCHEMA t;
CREATE SCHEMA o;
CREATE TABLE t.tickets(id int PRIMARY KEY, tenant text NOT NULL, owner text, body text);
CREATE TABLE t.comments(id int PRIMARY KEY, ticket_id int NOT NULL REFERENCES t.tickets ON DELETE CASCADE, body text, email text);
CREATE TABLE t.reactions(id int PRIMARY KEY, comment_id int REFERENCES t.comments ON DELETE CASCADE, emoji text);
INSERT INTO t.tickets VALUES (1,'A','fanny','t1'),(2,'A','fanny','t2'),(3,'B','carl','HIDDEN t3');
INSERT INTO t.comments VALUES (10,1,'c10','a10@x.io'),(11,2,'c11','a11@x.io'),(30,3,'HIDDEN c30','HIDDEN30@x.io');
INSERT INTO t.reactions VALUES (100,10,'+1'),(101,11,'+1'),(300,30,'HIDDEN');

CREATE TABLE t.boards(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE t.posts(id int PRIMARY KEY, board_id int NOT NULL REFERENCES t.boards ON DELETE CASCADE, email text UNIQUE);
CREATE TABLE o.mail(email text REFERENCES t.posts(email) ON DELETE CASCADE);
INSERT INTO t.boards VALUES (1,'A'),(3,'B');
INSERT INTO t.posts VALUES (10,1,'masked-post-email@x.io'),(30,3,'HIDDEN@x.io');
INSERT INTO t.posts VALUES (11,1,'decoy@x.io');
INSERT INTO o.mail VALUES ('masked-post-email@x.io'),('decoy@x.io');

CREATE TABLE t.shelves(id int PRIMARY KEY, tenant text NOT NULL, code text UNIQUE);
CREATE TABLE o.codes(code text REFERENCES t.shelves(code) ON DELETE CASCADE);
INSERT INTO t.shelves VALUES (1,'A','masked-shelf-code'),(2,'A','other-code'),(3,'B','HIDDEN-code');
INSERT INTO o.codes VALUES ('masked-shelf-code'),('other-code');

CREATE TABLE t.boxes(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE t.items(id int PRIMARY KEY, box_id int REFERENCES t.boxes DEFERRABLE INITIALLY DEFERRED, what text);
INSERT INTO t.boxes VALUES (1,'A'),(2,'A'),(3,'B');
INSERT INTO t.items VALUES (10,1,'i10'),(30,3,'HIDDEN i30');

CREATE TABLE t.desks(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE t.memos(id int PRIMARY KEY, desk_id int NOT NULL REFERENCES t.desks ON DELETE CASCADE, reply_to int REFERENCES t.memos ON DELETE CASCADE, txt text);
INSERT INTO t.desks VALUES (1,'A'),(3,'B');
INSERT INTO t.memos VALUES (10,1,NULL,'m10'),(30,3,10,'HIDDEN m30');

CREATE TABLE t.racks(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE t.bins(id int PRIMARY KEY, rack_id int NOT NULL REFERENCES t.racks ON DELETE CASCADE);
CREATE TABLE t.tags(id int, bin_id int REFERENCES t.bins ON DELETE CASCADE, label text);
INSERT INTO t.racks VALUES (1,'A'),(3,'B');
INSERT INTO t.bins VALUES (10,1),(30,3);
INSERT INTO t.tags VALUES (1,10,'HIDDEN tag of a visible bin');

CREATE TABLE t.lockers(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE t.lkeys(id int, locker_id int REFERENCES t.lockers ON DELETE SET NULL);
INSERT INTO t.lockers VALUES (1,'A'),(3,'B');
INSERT INTO t.lkeys VALUES (10,1),(30,3);

CREATE TABLE t.vaults(id int PRIMARY KEY, code text UNIQUE, tenant text NOT NULL);
CREATE TABLE t.coins(id int, vault_id int, vault_code text REFERENCES t.vaults (code) ON DELETE CASCADE, what text);
INSERT INTO t.vaults VALUES (1,'v1','A'),(3,'v3','B');
INSERT INTO t.coins VALUES (10,1,'v1','c10'),(30,3,'v1','HIDDEN coin of vault 3, keyed to v1');

CREATE TABLE t.crates(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE t.lids(id int, crate_id int);
INSERT INTO t.crates VALUES (1,'A'),(3,'B');
INSERT INTO t.lids VALUES (10,1),(99,99);
ALTER TABLE t.lids ADD FOREIGN KEY (crate_id) REFERENCES t.crates ON DELETE CASCADE NOT VALID;

CREATE TABLE t.bays(id serial PRIMARY KEY, label text);
CREATE TABLE t.bolts(id int, bay_id int, what text);
INSERT INTO t.bays (label) VALUES ('b1');
INSERT INTO t.bolts VALUES (1,1,'bolt1'),(2,2,'HIDDEN orphan of bay 2');
ALTER TABLE t.bolts ADD FOREIGN KEY (bay_id) REFERENCES t.bays NOT VALID;

CREATE TABLE t.docks(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE o.plates(id int PRIMARY KEY);
CREATE TABLE o.links(pid int REFERENCES o.plates ON UPDATE CASCADE REFERENCES t.docks);
INSERT INTO t.docks VALUES (1,'A'),(3,'B');
INSERT INTO o.plates VALUES (1);
INSERT INTO o.links VALUES (1);
CREATE TABLE t.slips(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE o.pins(slip_id int DEFAULT 3 REFERENCES t.slips ON DELETE SET DEFAULT);
INSERT INTO t.slips VALUES (1,'A'),(3,'B');
INSERT INTO o.pins VALUES (1);
CREATE TABLE t.berths(id int PRIMARY KEY, tenant text NOT NULL);
CREATE TABLE o.quays(id int PRIMARY KEY);
CREATE TABLE o.moors(qid int UNIQUE REFERENCES o.quays ON DELETE SET NULL);
CREATE TABLE o.ropes(x int DEFAULT 3 REFERENCES o.moors (qid) ON UPDATE SET DEFAULT REFERENCES t.berths);
INSERT INTO t.berths VALUES (1,'A'),(3,'B');
INSERT INTO o.quays VALUES (1),(3);
INSERT INTO o.moors VALUES (1),(3);
INSERT INTO o.ropes VALUES (1);
CREATE TABLE o.pegs(slip_id int DEFAULT 3 REFERENCES t.slips, label text);
CREATE TABLE o.cards(id serial PRIMARY KEY, email text UNIQUE DEFAULT 'none@x.io', label text);
INSERT INTO o.cards (email, label) VALUES ('none@x.io', 'HIDDEN holder of the default');

CREATE TABLE t.staff(login text PRIMARY KEY, roles text[], region text, pw text);
INSERT INTO t.staff VALUES
 ('agnes','{bay_admin}','A','SCRAM-SHA-256$4096:UTz+fJGquq4PRUEKYDIJMw==$LOf73GGZR6jhuM1YWNfyE7uPU2Wy/Dr10VX4R88j+YM=:7lP36jAWJurSwNdEZjTKgW0KZzZume1P55x/oTZ/cA0='),
 ('fanny','{tenant_writer}','A','SCRAM-SHA-256$4096:8/CW685b3GgOaP2BZ1RMZQ==$hAPOssKbHH31ZRJDhKjkRRj8TZdx72ytoTx1aoiuJH0=:LkGWKQyc9KKcbNhhH/f3c4zo8c5KqtHrUQKs439Kx+8=');
GRANT USAGE ON SCHEMA t, o TO pgveil_svc;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA t, o TO pgveil_svc;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA t, o TO pgveil_svc;
REVOKE TEMP ON DATABASE follows24 FROM PUBLIC;
`

// follows24Policy is the DBA's policy: fanny writes tenant A's rows; the
// children follow their parents; o is open.
const follows24Policy = `
listen {
  address  = "127.0.0.1:6432"
  database = "follows24"
}
upstream {
  address  = env("PGVEIL_DEMO_UPSTREAM")
  database = "follows24"
  user     = "pgveil_svc"
  password = env("PGVEIL_DEMO_UPSTREAM_PASSWORD")
}
identity "staff" {
  query = "SELECT login, roles, region, pw AS password FROM t.staff"
}
role "tenant_writer" {
  statements = ["select", "insert", "update", "delete"]
}
role "bay_admin" {
  statements = ["select", "insert"]
}
schema "t" { default = "deny" }
schema "o" { default = "allow" }
table "t.tickets" {}
table "t.comments" {
  follows = { table = "t.tickets", column = "ticket_id", key = "id" }
  column "email" { class = "pii" }
}
table "t.reactions" {
  follows = { table = "t.comments", column = "comment_id", key = "id" }
}
table "t.boards" {}
table "t.posts" {
  follows = { table = "t.boards", column = "board_id", key = "id" }
  column "email" { class = "pii" }
}
table "t.shelves" {
  column "code" { class = "pii" }
}
table "t.boxes" {}
table "t.items" {
  follows = { table = "t.boxes", column = "box_id", key = "id" }
}
table "t.desks" {}
table "t.memos" {
  follows = { table = "t.desks", column = "desk_id", key = "id" }
}
table "t.racks" {}
table "t.bins" {
  follows = { table = "t.racks", column = "rack_id", key = "id" }
}
table "t.lockers" {}
table "t.lkeys" {
  follows = { table = "t.lockers", column = "locker_id", key = "id" }
}
table "t.vaults" {}
table "t.coins" {
  follows = { table = "t.vaults", column = "vault_id", key = "id" }
}
table "t.crates" {}
table "t.lids" {
  follows = { table = "t.crates", column = "crate_id", key = "id" }
}
table "t.docks" {}
table "t.slips" {}
table "t.berths" {}
table "o.cards" {
  column "email" { class = "pii" }
}
rule "cards" {
  tables = ["o.cards"]
  roles  = ["tenant_writer"]
  scope  = "all"
}
table "t.bays" {}
table "t.bolts" {
  follows = { table = "t.bays", column = "bay_id", key = "id" }
}
rule "bays" {
  tables = ["t.bays"]
  roles  = ["bay_admin"]
  scope  = "all"
}
rule "tenant" {
  tables = ["t.tickets", "t.boards", "t.shelves", "t.boxes", "t.desks", "t.racks", "t.lockers", "t.vaults", "t.crates", "t.docks", "t.slips", "t.berths"]
  roles  = ["tenant_writer"]
  where  = "tenant = me.region"
}
`

// follows24Data is the database and policy TestAdversarial24Follows serves.
var follows24Data = &proxytest.PolicyDB{DB: follows24DB, What: "follows24", Schema: follows24Schema, Policy: follows24Policy}

// TestAdversarial24Follows holds the twenty-fourth red team's angles on a
// DELETE (and the writes around it) of a parent whose children follow it
// in full, as fanny through pgveil: every statement runs in a
// transaction rolled back, and either is refused (42501) or reaches only
// rows she sees, and tells nothing of a masked value.
func TestAdversarial24Follows(t *testing.T) {
	p := follows24Data.Start(t)
	ctx := context.Background()
	fanny := p.Connect(t, "fanny")
	// truth reads sql directly, as the owner.
	truth := func(t *testing.T, sql string) string {
		t.Helper()
		c, err := proxytest.Cluster.Connect(ctx, follows24DB)
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
	// run runs the statements as fanny in a transaction, then reads
	// after (as fanny, in it), rolls back, and returns what after read,
	// or "ERROR <sqlstate>" for the first statement that failed (the
	// COMMIT too when commit is set).
	run := func(t *testing.T, stmts []string, after string, commit bool) string {
		t.Helper()
		tx, err := fanny.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for _, s := range stmts {
			if _, err := tx.Exec(ctx, s); err != nil {
				if pe := err.Error(); strings.Contains(pe, "HIDDEN") || strings.Contains(pe, "masked-") {
					t.Errorf("%s: the error tells a hidden or masked value: %s", s, pe)
				}
				return "ERROR " + proxytest.SQLState(err)
			}
		}
		var b strings.Builder
		if after != "" {
			rows, err := tx.Query(ctx, after, pgx.QueryExecModeSimpleProtocol)
			if err != nil {
				return "ERROR " + proxytest.SQLState(err)
			}
			for rows.Next() {
				v, _ := rows.Values()
				fmt.Fprintf(&b, "%v", v)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return "ERROR " + proxytest.SQLState(err)
			}
		}
		if commit {
			if err := tx.Commit(ctx); err != nil {
				if pe := err.Error(); strings.Contains(pe, "HIDDEN") {
					t.Errorf("COMMIT: the error tells a hidden value: %s", pe)
				}
				return "ERROR " + proxytest.SQLState(err)
			}
		}
		return b.String()
	}

	for _, c := range []struct {
		name  string
		stmts []string
		after string
		// commit commits the transaction (a deferred key's check).
		commit bool
		want   string
	}{
		{name: "a DELETE of a visible parent cascades into its followed child and grandchild",
			stmts: []string{`DELETE FROM t.tickets WHERE id = 1`},
			after: `SELECT (SELECT string_agg(id::text, ',' ORDER BY id) FROM t.comments), (SELECT string_agg(id::text, ',' ORDER BY id) FROM t.reactions)`,
			want:  "[11 101]"},
		{name: "a DELETE of every parent row deletes the visible ones only",
			stmts: []string{`DELETE FROM t.tickets`},
			after: `SELECT count(*) FROM t.tickets`, want: "[0]"},
		{name: "a DELETE in WITH is refused",
			stmts: []string{`WITH d AS (DELETE FROM t.tickets WHERE id = 2 RETURNING id) SELECT count(*) FROM d`}, want: "ERROR 42501"},
		{name: "a DELETE under a reading WITH, RETURNING the key, cascades the same",
			stmts: []string{`WITH k AS (SELECT id FROM t.tickets WHERE body = 't2') DELETE FROM t.tickets WHERE id IN (SELECT id FROM k) RETURNING id`},
			after: `SELECT string_agg(id::text, ',') FROM t.comments`, want: "[10]"},
		{name: "a DELETE of a hidden parent deletes nothing",
			stmts: []string{`DELETE FROM t.tickets WHERE id = 3 OR tenant = 'B'`},
			after: `SELECT count(*) FROM t.tickets`, want: "[2]"},
		{name: "a DELETE of the followed child's own rows, the grandchild following, passes",
			stmts: []string{`DELETE FROM t.comments WHERE ticket_id IN (1, 3)`},
			after: `SELECT string_agg(id::text, ',') FROM t.reactions`, want: "[101]"},
		{name: "INSERT of a parent under a row scope is refused",
			stmts: []string{`INSERT INTO t.tickets VALUES (4, 'A', 'fanny', 'x')`}, want: "ERROR 42501"},
		{name: "INSERT … SELECT into a parent under a row scope is refused",
			stmts: []string{`INSERT INTO t.tickets SELECT 5, 'A', 'fanny', 'x'`}, want: "ERROR 42501"},
		{name: "UPDATE of the followed key is refused",
			stmts: []string{`UPDATE t.tickets SET id = 3 WHERE id = 1`}, want: "ERROR 42501"},
		{name: "UPDATE of a followed child's column is refused",
			stmts: []string{`UPDATE t.comments SET ticket_id = 3 WHERE id = 10`}, want: "ERROR 42501"},
		{name: "INSERT … ON CONFLICT of a parent is refused",
			stmts: []string{`INSERT INTO t.tickets VALUES (1, 'A', 'fanny', 'x') ON CONFLICT (id) DO UPDATE SET body = 'y'`}, want: "ERROR 42501"},
		{name: "a deferred key's check at COMMIT sees the visible children only",
			stmts: []string{`DELETE FROM t.boxes WHERE id = 1`}, commit: true, want: "ERROR 23503"},
		{name: "a deferred key's parent without children commits",
			stmts: []string{`SAVEPOINT s`, `DELETE FROM t.boxes WHERE id = 1`, `ROLLBACK TO SAVEPOINT s`, `DELETE FROM t.boxes WHERE id = 2`},
			after: `SELECT string_agg(id::text, ',') FROM t.boxes`, want: "[1]"},
		{name: "a cascade into a child referenced by another parent's child (a self reference) is refused",
			stmts: []string{`DELETE FROM t.desks WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a cascade into a followed child referenced by a denied table is refused",
			stmts: []string{`DELETE FROM t.racks WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a child whose key sets NULL on a DELETE is refused",
			stmts: []string{`DELETE FROM t.lockers WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a child following on another column than its foreign key's is refused",
			// NOTE: coin 30 follows vault 3 (hidden) and references v1.
			stmts: []string{`DELETE FROM t.vaults WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a child whose foreign key is not validated is refused",
			stmts: []string{`DELETE FROM t.crates WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a cascade into a followed child whose masked column an open table references is refused",
			// NOTE: served, o.mail lost masked-post-email@x.io: the
			// masked email of post 10.
			stmts: []string{`DELETE FROM t.boards WHERE id = 1`},
			after: `SELECT string_agg(email, ',' ORDER BY email) FROM o.mail`, want: "ERROR 42501"},
		{name: "a DELETE of a parent whose masked column an open table references is refused",
			// NOTE: served, o.codes lost masked-shelf-code: the masked
			// code of shelf 1.
			stmts: []string{`DELETE FROM t.shelves WHERE id = 1`},
			after: `SELECT string_agg(code, ',' ORDER BY code) FROM o.codes`, want: "ERROR 42501"},
		{name: "an UPDATE of an open key whose cascade writes a column a key checks against a scoped table is refused",
			// NOTE: served, the cascade set o.links.pid to 3, which
			// t.docks' key found: dock 3, hidden, exists (7 fails).
			stmts: []string{`UPDATE o.plates SET id = 3 WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a DELETE whose child sets its key's default, checked against hidden rows, is refused",
			// NOTE: served, o.pins.slip_id took its default 3, which
			// the key found: slip 3, hidden, exists.
			stmts: []string{`DELETE FROM t.slips WHERE id = 1`}, want: "ERROR 42501"},
		{name: "a DELETE whose child sets NULL, which its own child meets by setting a default checked against hidden rows, is refused",
			// NOTE: served, o.ropes.x took its default 3, which
			// t.berths' key found: berth 3, hidden, exists.
			stmts: []string{`DELETE FROM o.quays WHERE id = 1`}, want: "ERROR 42501"},
		{name: "an INSERT leaving a column to a default its key checks against hidden rows is refused",
			// NOTE: served, the INSERT passed: slip 3, hidden, exists.
			stmts: []string{`INSERT INTO o.pegs (label) VALUES ('new')`}, want: "ERROR 42501"},
		{name: "an INSERT leaving a masked unique column to its default is refused",
			// NOTE: served, 23505: a row's masked email is none@x.io.
			stmts: []string{`INSERT INTO o.cards (label) VALUES ('new')`}, want: "ERROR 42501"},
		{name: "an INSERT naming the masked unique column is refused",
			stmts: []string{`INSERT INTO o.cards (email, label) VALUES ('none@x.io', 'new')`}, want: "ERROR 42501"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if got := run(t, c.stmts, c.after, c.commit); got != c.want {
				t.Errorf("%v: got %s, want %s", c.stmts, got, c.want)
			}
		})
	}
	t.Run("an INSERT whose serial key would reach an unvalidated key's orphan is refused", func(t *testing.T) {
		// NOTE: served, agnes's second new bay took id 2 and showed her
		// bolt 2, an orphan.
		agnes := p.Connect(t, "agnes")
		tx, err := agnes.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer tx.Rollback(ctx)
		for range 2 {
			if _, err := tx.Exec(ctx, `INSERT INTO t.bays (label) VALUES ('new')`); err != nil {
				if proxytest.SQLState(err) != "42501" || !strings.Contains(err.Error(), "write_key") {
					t.Fatalf("INSERT: %v, want a refusal by write_key", err)
				}
				return
			}
		}
		var what string
		if err := tx.QueryRow(ctx, `SELECT string_agg(what, ',' ORDER BY id) FROM t.bolts`).Scan(&what); err != nil {
			t.Fatal(err)
		}
		t.Errorf("two new bays passed; agnes reads the bolts %s", what)
	})
	t.Run("the hidden rows are all still there", func(t *testing.T) {
		if got := truth(t, `SELECT (SELECT count(*) FROM t.tickets), (SELECT count(*) FROM t.comments), (SELECT count(*) FROM t.reactions), (SELECT count(*) FROM o.mail), (SELECT count(*) FROM o.codes)`); got != "[3 3 3 2 2]" {
			t.Errorf("rows left: %s, want [3 3 3 2 2]", got)
		}
	})
}
