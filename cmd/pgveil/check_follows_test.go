package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/pgtest"
)

func TestCheckUpstreamVerifiesFollows(t *testing.T) {
	pgtest.Require(t, cluster)
	setupCheckDB(t)
	ctx := context.Background()
	if err := cluster.Exec(ctx, checkDB, fmt.Sprintf(`
CREATE SCHEMA fol;
GRANT USAGE ON SCHEMA fol TO %[1]s;
CREATE TABLE fol.orders (id int PRIMARY KEY, team int, note text, total numeric);
CREATE TABLE fol.lines (order_id int REFERENCES fol.orders (id), label text, code text, amount float8);
CREATE TABLE fol.loose (order_id int, label text);
CREATE TABLE fol.porders (id int, at date, team int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at);
CREATE TABLE fol.porders_2026 PARTITION OF fol.porders FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
CREATE COLLATION fol.ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE fol.tickets (ref text COLLATE fol.ci, team int);
CREATE UNIQUE INDEX tickets_ref_c ON fol.tickets (ref COLLATE "C");
CREATE TABLE fol.links (ticket_ref text COLLATE fol.ci REFERENCES fol.tickets (ref), url text);
CREATE TABLE fol.plines (order_id int, at date, label text, FOREIGN KEY (order_id, at) REFERENCES fol.porders);
GRANT SELECT ON ALL TABLES IN SCHEMA fol TO %[1]s;
`, checkSvc)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cluster.Exec(ctx, checkDB, `DROP SCHEMA fol CASCADE`) })
	const parent = `table "fol.orders" {
  team_column = "team"
}
`
	for _, c := range []struct {
		name, child string
		code        int
		want        []string
		wantNot     []string
	}{
		{"a follow over a foreign key is valid",
			`follows = { table = "fol.orders", column = "order_id", key = "id" }`, 0,
			[]string{"2 tables governed (fol.lines follows fol.orders), 0 rules, 0 users, 0 warnings"}, []string{"Follows"}},
		{"a key the parent lacks is an error with a suggestion",
			`follows = { table = "fol.orders", column = "order_id", key = "idd" }`, 1,
			[]string{"PATH:5:13: error: Unknown follows key", `Table fol.orders has no column "idd"`, `Did you mean "id"?`}, nil},
		{"a column the child lacks is an error with a suggestion",
			`follows = { table = "fol.orders", column = "orderid", key = "id" }`, 1,
			[]string{"PATH:5:13: error: Unknown column", `Did you mean "order_id"?`}, nil},
		{"a column of another type than the key is an error",
			`follows = { table = "fol.orders", column = "code", key = "id" }`, 1,
			[]string{"PATH:5:13: error: Follows column of the wrong type", "PostgreSQL rejects code = fol.orders.id on fol.lines"}, nil},
		{"a column PostgreSQL compares with the key by a cast is an error",
			`follows = { table = "fol.orders", column = "amount", key = "total" }`, 1,
			[]string{"PATH:5:13: error: Follows column cast", "fol.lines.amount (double precision) and fol.orders.total (numeric)"}, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := checkConfig(t, checkSvc, parent+"table \"fol.lines\" {\n  "+c.child+"\n}\n")
			code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
			if code != c.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, c.code, out, errOut)
			}
			flat := strings.Join(strings.Fields(out+" "+errOut), " ")
			for _, w := range c.want {
				if w = strings.ReplaceAll(w, "PATH", path); !strings.Contains(flat, w) {
					t.Errorf("output lacks %q:\n%s%s", w, out, errOut)
				}
			}
			for _, w := range c.wantNot {
				if strings.Contains(errOut, w) {
					t.Errorf("stderr holds %q:\n%s", w, errOut)
				}
			}
		})
	}
	t.Run("the offline summary names each follower", func(t *testing.T) {
		path := checkConfig(t, checkSvc, parent+"table \"fol.lines\" {\n  follows = { table = \"fol.orders\", column = \"order_id\", key = \"id\" }\n}\n")
		code, out, errOut := runCLI("", "check", "--config", path)
		if code != 0 || !strings.Contains(out, ", fol.lines follows fol.orders") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
	t.Run("a follow without a foreign key is a warning", func(t *testing.T) {
		path := checkConfig(t, checkSvc, parent+"table \"fol.loose\" {\n  follows = { table = \"fol.orders\", column = \"order_id\", key = \"id\" }\n}\n")
		code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
		flat := strings.Join(strings.Fields(errOut), " ")
		if code != 0 || !strings.Contains(flat, path+":5:13: warning: Follows without foreign key") ||
			!strings.Contains(flat, "Add FOREIGN KEY (order_id) REFERENCES fol.orders (id)") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
	t.Run("a follow of a key no unique index holds alone is a warning naming the partition key", func(t *testing.T) {
		path := checkConfig(t, checkSvc, "table \"fol.porders\" {\n  team_column = \"team\"\n}\n"+
			"table \"fol.loose\" {\n  follows = { table = \"fol.porders\", column = \"order_id\", key = \"id\" }\n}\n")
		code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
		flat := strings.Join(strings.Fields(errOut), " ")
		for _, w := range []string{path + ":5:13: warning: Follows a key that is not unique",
			"No unique index of fol.porders holds id alone", "partitioned by RANGE (at)",
			"two rows of fol.porders with the same id (in two partitions, or in one) share their children"} {
			if code != 0 || !strings.Contains(flat, w) {
				t.Errorf("exit %d, output lacks %q\nstdout: %s\nstderr: %s", code, w, out, errOut)
			}
		}
		if strings.Contains(flat, "Add FOREIGN KEY") {
			t.Errorf("the warning advises a foreign key PostgreSQL refuses:\n%s", errOut)
		}
	})
	t.Run("a key unique only under another collation than the one compared is not unique, even under a foreign key", func(t *testing.T) {
		// fol.tickets may hold 'B-3' and 'b-3' (unique under "C"): a link
		// to the hidden B-3 matches the visible b-3 under fol.ci.
		path := checkConfig(t, checkSvc, "table \"fol.tickets\" {\n  team_column = \"team\"\n}\n"+
			"table \"fol.links\" {\n  follows = { table = \"fol.tickets\", column = \"ticket_ref\", key = \"ref\" }\n}\n")
		code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
		flat := strings.Join(strings.Fields(errOut), " ")
		for _, w := range []string{path + ":5:13: warning: Follows a key that is not unique",
			"No unique index of fol.tickets holds ref alone under its collation",
			"two rows of fol.tickets with the same ref"} {
			if code != 0 || !strings.Contains(flat, w) {
				t.Errorf("exit %d, output lacks %q\nstdout: %s\nstderr: %s", code, w, out, errOut)
			}
		}
	})
	t.Run("a follow whose foreign key holds the key with other columns is warned of as not unique", func(t *testing.T) {
		// fol.plines references fol.porders by (order_id, at): the key id
		// alone is no more unique for it, and parents sharing an id share
		// its rows.
		path := checkConfig(t, checkSvc, "table \"fol.porders\" {\n  team_column = \"team\"\n}\n"+
			"table \"fol.plines\" {\n  follows = { table = \"fol.porders\", column = \"order_id\", key = \"id\" }\n}\n")
		code, out, errOut := runCLI("", "check", "--config", path, "--upstream")
		flat := strings.Join(strings.Fields(errOut), " ")
		if code != 0 || !strings.Contains(flat, path+":5:13: warning: Follows a key that is not unique") ||
			!strings.Contains(flat, "A row of fol.plines is visible to whoever sees any row of fol.porders whose id equals its order_id") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
		}
	})
}
