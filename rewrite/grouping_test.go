package rewrite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// groupingDDL is the schema of TestGroupByPrimaryKey and
// TestMaskedDomainColumns.
const groupingDDL = `
CREATE TABLE orders (id int PRIMARY KEY, region text, note text, doc json);
INSERT INTO orders VALUES (1, 'eu', 'a', '{}'), (2, 'eu', 'b', '{}'), (3, 'us', 'c', '{}');
CREATE TABLE lines (order_id int, qty int);
INSERT INTO lines VALUES (1, 2), (1, 3), (2, 1), (3, 9);
CREATE TABLE pairs (a int, b int, label text, PRIMARY KEY (a, b));
INSERT INTO pairs VALUES (1, 1, 'x'), (1, 2, 'y');
CREATE TABLE uniq (id int NOT NULL UNIQUE, label text);
INSERT INTO uniq VALUES (1, 'u');
CREATE TABLE parted (id int, region text, label text, PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE parted_eu PARTITION OF parted FOR VALUES IN ('eu');
CREATE TABLE parted_us PARTITION OF parted FOR VALUES IN ('us');
INSERT INTO parted VALUES (1, 'eu', 'p1'), (1, 'us', 'p2'), (3, 'us', 'p3');
CREATE TABLE base (id int PRIMARY KEY, label text);
CREATE TABLE child () INHERITS (base);
INSERT INTO base VALUES (1, 'base'); INSERT INTO child VALUES (1, 'child');
CREATE DOMAIN code_nn AS text NOT NULL;
CREATE DOMAIN code_chk AS code_nn CHECK (VALUE ~ '^[A-Z]+$');
CREATE DOMAIN short AS varchar(3) CHECK (length(VALUE) = 3);
CREATE DOMAIN nums AS code_chk[] NOT NULL;
CREATE TABLE people (id int PRIMARY KEY, ssn code_nn, tag code_chk, tags code_chk[], short short, list nums);
INSERT INTO people VALUES (1, 'S1', 'AB', '{CD}', 'abc', '{EF}'), (2, 'S2', 'GH', '{IJ}', 'def', '{KL}');
CREATE DOMAIN jdoc AS json;
CREATE DOMAIN jdoc2 AS jdoc;
CREATE TYPE pair_j AS (k int, v json);
CREATE TYPE pair_t AS (k int, v text);
CREATE TABLE shapes (id int PRIMARY KEY, label text, doc json, pos point, body jdoc2, docs json[], x xml,
  pj pair_j, pt pair_t, pts pair_t[], tags text[], v varchar(5), c cidr, dom code_chk);
INSERT INTO shapes VALUES (1, 's1', '{"a":1}', '(1,2)', '{}', '{"{}"}', '<a/>', ROW(1, '{}'), ROW(1, 't'), '{"(1,t)"}', '{a}', 'v', '10.0.0.0/8', 'AB'),
  (2, 's2', '{"a":2}', '(3,4)', '[]', '{"[]"}', '<b/>', ROW(2, '[]'), ROW(2, 'u'), '{"(2,u)"}', '{b}', 'w', '10.1.0.0/16', 'CD');
`

// groupingRun rewrites sql for p and runs it on conn; it returns the rows
// (cells joined by |, rows by ;) or "ERROR <sqlstate>".
func groupingRun(t *testing.T, conn *pgconn.PgConn, cat *rewrite.Catalog, p rewrite.Policy, sql string) (string, string) {
	t.Helper()
	out := sql
	if p != nil {
		res, err := rewrite.Rewrite(sql, cat, p)
		if err != nil {
			t.Fatalf("rewrite %s: %v", sql, err)
		}
		out = res.SQL
	}
	rr, err := conn.Exec(context.Background(), out).ReadAll()
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) {
			return "ERROR " + pe.Code, out
		}
		t.Fatalf("%s: %v", out, err)
	}
	var rows []string
	for _, row := range rr[len(rr)-1].Rows {
		var cells []string
		for _, v := range row {
			if v == nil {
				cells = append(cells, "NULL")
			} else {
				cells = append(cells, string(v))
			}
		}
		rows = append(rows, strings.Join(cells, "|"))
	}
	return strings.Join(rows, ";"), out
}

// TestGroupByPrimaryKey: a GROUP BY holding a governed table's primary key
// reads its other columns through pgveil as PostgreSQL does on the table
// (widenGroupings), or fails as it does where pgveil cannot say the key
// holds.
func TestGroupByPrimaryKey(t *testing.T) {
	conn, cat := freshCatalog(t, "groupbykey", groupingDDL)
	all := func(masks map[string]*pg_query.Node) rewrite.Access {
		return rewrite.Access{Mode: rewrite.Governed, Masks: masks, Rules: []string{"all"}}
	}
	open := &fakePolicy{
		access: map[string]rewrite.Access{
			"public.orders": all(nil), "public.lines": all(nil), "public.pairs": all(nil),
			"public.uniq": all(nil), "public.parted": all(nil), "public.parted_us": all(nil), "public.base": all(nil),
			"public.shapes": all(nil),
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
	}

	t.Run("a pass-through user reads what the table gives", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT o.id, o.region, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id ORDER BY o.id",
			"SELECT o.id, o.region, o.note, count(l.qty) FROM orders o LEFT JOIN lines l ON l.order_id = o.id GROUP BY o.id HAVING o.note <> 'b' ORDER BY o.region, o.id",
			"SELECT o.id, o.region FROM orders o, lines l WHERE l.order_id = o.id GROUP BY 1 ORDER BY 1",
			"SELECT id, region, count(*) FROM orders GROUP BY id HAVING count(*) > 0 ORDER BY region, id",
			"SELECT (SELECT o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id ORDER BY o.id LIMIT 1)",
			"WITH w AS (SELECT o.id, o.note, count(*) AS n FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id) SELECT * FROM w ORDER BY id",
			"SELECT o.id, (SELECT count(*) FROM lines l WHERE l.order_id = o.id AND o.region = 'eu') FROM orders o JOIN lines x ON x.order_id = o.id GROUP BY o.id ORDER BY 1",
			"SELECT p.a, p.b, p.label, count(*) FROM pairs p JOIN lines l ON l.order_id = p.a GROUP BY p.b, p.a ORDER BY 1, 2",
			"SELECT p.id, p.region, p.label, count(*) FROM parted p JOIN lines l ON l.order_id = p.id GROUP BY p.id, p.region ORDER BY 1, 2",
			"SELECT p.id, p.label, count(*) FROM parted_us p JOIN lines l ON l.order_id = p.id GROUP BY p.id, p.region ORDER BY 1",
			"SELECT o.id, o.region, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id, ROLLUP (l.qty) ORDER BY 1, 3",
			"SELECT o.id, o.region, count(*) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY GROUPING SETS ((o.id), (o.id, l.qty)) ORDER BY 1, 3",
			"SELECT o.id, o.region, grouping(l.qty), count(*) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY GROUPING SETS (o.id, (l.qty, o.id)), CUBE (l.qty) ORDER BY 1, 3, 4",
			// PostgreSQL's own 42803, which pgveil keeps.
			"SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY GROUPING SETS ((o.id), (l.qty))",
			"SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY CUBE (o.id)",
			"SELECT p.a, p.label FROM pairs p JOIN lines l ON l.order_id = p.a GROUP BY p.a",
			"SELECT u.id, u.label FROM uniq u JOIN lines l ON l.order_id = u.id GROUP BY u.id",
			"SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY ROLLUP (o.id)",
			// A column of a type without an equality operator read in an
			// aggregate only: the others are added, it is not.
			"SELECT s.id, s.label, json_agg(s.doc), count(s.pos), json_agg(s.body), count(s.x), count(s.docs), count(s.pj) FROM shapes s JOIN lines l ON l.order_id = s.id GROUP BY s.id ORDER BY 1",
			"SELECT s.id, s.v, s.c, s.dom, s.pt, s.pts, s.tags, count(s.doc) FROM shapes s JOIN lines l ON l.order_id = s.id GROUP BY s.id ORDER BY 1",
		} {
			t.Run(sql, func(t *testing.T) {
				want, _ := groupingRun(t, conn, cat, nil, sql)
				got, out := groupingRun(t, conn, cat, open, sql)
				if got != want {
					t.Errorf("through pgveil %q, directly %q\nrewritten: %s", got, want, out)
				}
			})
		}
	})

	t.Run("where the key may not hold it fails as PostgreSQL would without the key", func(t *testing.T) {
		for _, sql := range []string{
			// base's key is its own rows' only: child repeats id 1.
			"SELECT b.id, b.label FROM base b JOIN lines l ON l.order_id = b.id GROUP BY b.id",
			// Renamed columns.
			"SELECT o.k, o.r FROM orders o (k, r) JOIN lines l ON l.order_id = o.k GROUP BY o.k",
		} {
			t.Run(sql, func(t *testing.T) {
				if got, out := groupingRun(t, conn, cat, open, sql); got != "ERROR 42803" {
					t.Errorf("got %q, want ERROR 42803\nrewritten: %s", got, out)
				}
			})
		}
	})

	t.Run("a masked column is grouped by its masked value", func(t *testing.T) {
		p := &fakePolicy{
			access: map[string]rewrite.Access{
				"public.orders": {Mode: rewrite.Governed, Filter: expr(t, "region = 'eu'"), Rules: []string{"eu"},
					Masks: map[string]*pg_query.Node{"note": nil, "region": expr(t, "left(region, 1)")}},
				"public.lines": all(nil),
			},
			kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
		}
		got, out := groupingRun(t, conn, cat, p, "SELECT o.*, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id ORDER BY o.id")
		// doc is json, which has no equality operator: it is not added,
		// and PostgreSQL asks for it in the GROUP BY (fails closed).
		if got != "ERROR 42803" {
			t.Errorf("o.* with a json column: %q, want ERROR 42803\nrewritten: %s", got, out)
		}
		got, out = groupingRun(t, conn, cat, p, "SELECT o.id, o.region, o.note, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id ORDER BY o.id")
		if want := "1|e|NULL|5;2|e|NULL|1"; got != want {
			t.Errorf("got %q, want %q\nrewritten: %s", got, want, out)
		}
	})

	t.Run("a column of a type that cannot be grouped is not added", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT s.id, s.doc FROM shapes s JOIN lines l ON l.order_id = s.id GROUP BY s.id",
			"SELECT s.id, s.label, s.body FROM shapes s JOIN lines l ON l.order_id = s.id GROUP BY s.id",
			"SELECT s.id, s.pj FROM shapes s JOIN lines l ON l.order_id = s.id GROUP BY s.id",
			"SELECT s.* FROM shapes s JOIN lines l ON l.order_id = s.id GROUP BY s.id",
		} {
			t.Run(sql, func(t *testing.T) {
				if got, out := groupingRun(t, conn, cat, open, sql); got != "ERROR 42803" {
					t.Errorf("got %q, want ERROR 42803\nrewritten: %s", got, out)
				}
			})
		}
	})

	t.Run("the catalog says which column types can be grouped", func(t *testing.T) {
		want := map[string]bool{"id": false, "label": false, "doc": true, "pos": true, "body": true, "docs": true, "x": true,
			"pj": true, "pt": false, "pts": false, "tags": false, "v": false, "c": false, "dom": false}
		for _, c := range cat.Relations[rewrite.QName{Schema: "public", Name: "shapes"}].Columns {
			if c.Ungroupable != want[c.Name] {
				t.Errorf("%s (%s): Ungroupable %v, want %v", c.Name, c.Type, c.Ungroupable, want[c.Name])
			}
		}
	})

	t.Run("a masked key column widens nothing", func(t *testing.T) {
		p := &fakePolicy{
			access: map[string]rewrite.Access{
				"public.orders": {Mode: rewrite.Governed, Rules: []string{"all"},
					Masks: map[string]*pg_query.Node{"id": expr(t, "id % 2")}},
				"public.lines": all(nil),
			},
			kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
		}
		got, out := groupingRun(t, conn, cat, p, "SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY o.id")
		if got != "ERROR 42803" || strings.Contains(out, "GROUP BY o.id, o.region") {
			t.Errorf("got %q, want ERROR 42803 and the GROUP BY as the client wrote it\nrewritten: %s", got, out)
		}
	})
}

// TestMaskedDomainColumns: a masked column of a domain reads as the
// domain's base type, so that the domain's NOT NULL and CHECK constraints
// do not fail on the masked value (Column.MaskType).
func TestMaskedDomainColumns(t *testing.T) {
	conn, cat := freshCatalog(t, "maskeddomains", groupingDDL)
	p := &fakePolicy{
		access: map[string]rewrite.Access{
			"public.people": {Mode: rewrite.Governed, Filter: expr(t, "id = 1"), Rules: []string{"one"},
				Masks: map[string]*pg_query.Node{
					"ssn": nil, "tag": expr(t, "md5(tag)"), "tags": nil, "short": expr(t, "left(short, 1)"), "list": nil,
				}},
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
	}
	for _, tc := range []struct{ sql, want string }{
		{"SELECT * FROM people", "1|NULL|" + "b86fc6b051f63d73de262d4c34e3a0a9" + "|NULL|a|NULL"},
		{"SELECT pg_typeof(ssn), pg_typeof(tag), pg_typeof(tags), pg_typeof(short), pg_typeof(list) FROM people",
			"text|text|text[]|character varying|text[]"},
		{"SELECT count(*) FROM people WHERE ssn IS NULL", "1"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			if got, out := groupingRun(t, conn, cat, p, tc.sql); got != tc.want {
				t.Errorf("got %q, want %q\nrewritten: %s", got, tc.want, out)
			}
		})
	}
	t.Run("an unmasked domain column keeps its domain", func(t *testing.T) {
		open := &fakePolicy{
			access: map[string]rewrite.Access{"public.people": {Mode: rewrite.Governed, Rules: []string{"all"}}},
			kinds:  map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
		}
		sql := "SELECT pg_typeof(ssn), pg_typeof(tags), pg_typeof(list) FROM people WHERE id = 1"
		if got, out := groupingRun(t, conn, cat, open, sql); got != "code_nn|code_chk[]|nums" {
			t.Errorf("got %q\nrewritten: %s", got, out)
		}
	})
}

// TestGroupByPrimaryKeyThroughTheEngine: a widened GROUP BY is deparsed,
// never spliced from the client's text, and a shape seen again (templates,
// shape.go) gives the same rewrite as a cold one; a position (GROUP BY 1)
// decides for its text only.
func TestGroupByPrimaryKeyThroughTheEngine(t *testing.T) {
	conn, cat := freshCatalog(t, "groupbyengine", groupingDDL)
	p := &fakePolicy{
		access: map[string]rewrite.Access{
			"public.orders": {Mode: rewrite.Governed, Filter: expr(t, "region = 'eu'"), Rules: []string{"eu"},
				Masks: map[string]*pg_query.Node{"note": nil}},
			"public.lines": {Mode: rewrite.Governed, Rules: []string{"all"}},
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
	}
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	ctx := context.Background()
	for _, tc := range []struct{ sql, want string }{
		{"SELECT o.id, o.note, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id WHERE l.qty > 0 GROUP BY o.id ORDER BY o.id", "1|NULL|5;2|NULL|1"},
		{"SELECT o.id, o.note, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id WHERE l.qty > 2 GROUP BY o.id ORDER BY o.id", "1|NULL|3"},
		{"SELECT o.id, o.note, sum(l.qty) FROM orders o JOIN lines l ON l.order_id = o.id WHERE l.qty > 1 GROUP BY o.id ORDER BY o.id", "1|NULL|5"},
		{"SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 1 ORDER BY 1", "1|eu;2|eu"},
		{"SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 2 ORDER BY 1", "ERROR 42803"},
		{"SELECT o.id, o.region FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 1 ORDER BY 1", "1|eu;2|eu"},
	} {
		t.Run(tc.sql, func(t *testing.T) {
			res, err := e.Rewrite(ctx, "u", 'Q', tc.sql)
			if err != nil {
				t.Fatal(err)
			}
			got, out := groupingRun(t, conn, cat, nil, res.SQL)
			if got != tc.want {
				t.Errorf("got %q, want %q\nrewritten: %s", got, tc.want, out)
			}
		})
	}
}

// TestGroupByPositionAfterStar: a GROUP BY position counts the targets a
// star expands to, as PostgreSQL does; the one after a * is not the raw
// target at that index, and pgveil does not read it as that target: the
// statement gives what PostgreSQL gives on the tables, or 42803.
func TestGroupByPositionAfterStar(t *testing.T) {
	conn, cat := freshCatalog(t, "groupbystar", groupingDDL)
	open := &fakePolicy{
		access: map[string]rewrite.Access{
			"public.orders": {Mode: rewrite.Governed, Rules: []string{"all"}},
			"public.lines":  {Mode: rewrite.Governed, Rules: []string{"all"}},
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
	}
	for _, sql := range []string{
		"SELECT l.*, o.id, o.region, count(*) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 2, GROUPING SETS ((o.id, l.order_id), ()) ORDER BY 1, 2, 3, 4",
		"SELECT (l).*, o.id, o.region, count(*) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 2, GROUPING SETS ((o.id, l.order_id), ()) ORDER BY 1, 2, 3, 4",
		"SELECT l.*, o.id, o.region, count(*) FROM orders o JOIN lines l ON l.order_id = o.id GROUP BY 3, 1, 2 ORDER BY 1, 2, 3",
	} {
		t.Run(sql, func(t *testing.T) {
			want, _ := groupingRun(t, conn, cat, nil, sql)
			got, out := groupingRun(t, conn, cat, open, sql)
			if got != want && got != "ERROR 42803" {
				t.Errorf("through pgveil %q, directly %q (or ERROR 42803)\nrewritten: %s", got, want, out)
			}
		})
	}
}

// TestMaskTypes: a mask whose value has a type of its own (a hash
// mask's bigint pseudonym of an integer column, Access.MaskTypes) is
// served as that type, not cast back to the column's, which would fail
// on a value the column's type cannot hold.
func TestMaskTypes(t *testing.T) {
	conn, cat := freshCatalog(t, "masktypes", groupingDDL)
	p := &fakePolicy{
		access: map[string]rewrite.Access{
			"public.lines": {Mode: rewrite.Governed, Rules: []string{"all"},
				Masks:     map[string]*pg_query.Node{"order_id": expr(t, "order_id::int8 * 10000000000"), "qty": expr(t, "qty + 1")},
				MaskTypes: map[string]*pg_query.TypeName{"order_id": {Names: []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("int8")}, Typemod: -1}}},
		},
		kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
	}
	for _, tc := range []struct{ name, sql, want string }{
		{"the masked column reads as the mask's type", "SELECT pg_typeof(order_id), pg_typeof(qty) FROM lines LIMIT 1", "bigint|integer"},
		{"a value its column's type cannot hold is served whole", "SELECT max(order_id) FROM lines", "30000000000"},
		{"a join on it compares the served values", "SELECT count(*) FROM lines a JOIN lines b ON a.order_id = b.order_id", "6"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, out := groupingRun(t, conn, cat, p, tc.sql); got != tc.want {
				t.Errorf("got %q, want %q\nrewritten: %s", got, tc.want, out)
			}
		})
	}
}
