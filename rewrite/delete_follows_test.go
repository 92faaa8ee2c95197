package rewrite_test

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// TestDeleteOfAFollowedParent holds when a DELETE of a parent may reach a
// child that follows it (Access.Follows) by a foreign key: only when
// every child row the key's check or cascade reaches is one the user
// sees.
func TestDeleteOfAFollowedParent(t *testing.T) {
	base := demoCatalog(t)
	parent := rewrite.QName{Schema: "public", Name: "responses"}
	childName := rewrite.QName{Schema: "public", Name: "response_comments"}
	follows := &rewrite.Follow{Parent: parent, Column: "response_id", Key: "id"}
	cases := []struct {
		name string
		// follows is the child's Access.Follows; child adjusts a copy of
		// the child's relation.
		follows *rewrite.Follow
		child   func(*rewrite.Relation)
		// masked masks the child's followed column.
		masked  bool
		refused bool
	}{
		{name: "a child following the parent on the foreign key is reached only where the user sees it", follows: follows},
		{name: "a child that does not follow in full (a restrictive rule of its own) is refused", refused: true},
		{name: "a child following another table is refused", follows: &rewrite.Follow{Parent: rewrite.QName{Schema: "public", Name: "surveys"}, Column: "response_id", Key: "id"}, refused: true},
		{name: "a child following the parent on another key is refused", follows: &rewrite.Follow{Parent: parent, Column: "response_id", Key: "survey_id"}, refused: true},
		{name: "a child whose foreign key sets NULL or a default on a delete is refused", follows: follows, refused: true,
			child: func(r *rewrite.Relation) { r.SettingReferences = map[string][]rewrite.QName{"response_id": {parent}} }},
		{name: "a child whose followed column is masked is refused: the check would tell which rows hold the deleted key", follows: follows, masked: true, refused: true},
		{name: "a child with a second foreign key to the parent, of another column, is refused", follows: follows, refused: true,
			child: func(r *rewrite.Relation) {
				r.References = map[string][]rewrite.QName{"response_id": {parent}, "id": {parent}}
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cat := *base
			cat.Relations = map[rewrite.QName]*rewrite.Relation{}
			for q, r := range base.Relations {
				cat.Relations[q] = r
			}
			child := *base.Relations[childName]
			if c.child != nil {
				c.child(&child)
			}
			cat.Relations[childName] = &child
			p := marie(t)
			p.kinds[rewrite.KindDelete] = true
			acc := rewrite.Access{Mode: rewrite.Governed, Filter: expr(t, "response_id = 2"), Follows: c.follows}
			if c.masked {
				acc.Masks = map[string]*pg_query.Node{"response_id": nil}
			}
			p.access["public.response_comments"] = acc
			_, err := rewrite.Rewrite("DELETE FROM responses WHERE id = 2", &cat, p)
			var r *rewrite.Refused
			switch {
			case c.refused && (!errors.As(err, &r) || r.Rule != "write_key"):
				t.Fatalf("want a refusal by rule write_key, got %v", err)
			case !c.refused && err != nil:
				t.Fatalf("refused: %v", err)
			}
		})
	}
}

// TestDeleteCascadesAreCheckedToTheEnd holds a DELETE to the keys of the
// relations a cascade reaches through a relation the user reads in full:
// countries (marie's, scoped) referenced by teams (open to her),
// referenced by team_surveys (denied): deleting France cascades into the
// teams of France, and the check or cascade of team_surveys' key would
// reach rows she may not see.
func TestDeleteCascadesAreCheckedToTheEnd(t *testing.T) {
	base := demoCatalog(t)
	cat := *base
	cat.Relations = map[rewrite.QName]*rewrite.Relation{}
	for q, r := range base.Relations {
		cat.Relations[q] = r
	}
	countries := rewrite.QName{Schema: "public", Name: "countries"}
	teams := rewrite.QName{Schema: "public", Name: "teams"}
	c := *base.Relations[countries]
	c.ReferencedBy = map[string][]rewrite.QName{"code": {teams}}
	cat.Relations[countries] = &c
	tm := *base.Relations[teams]
	tm.ReferencedBy = map[string][]rewrite.QName{"id": {{Schema: "public", Name: "team_surveys"}}}
	cat.Relations[teams] = &tm
	p := marie(t)
	p.kinds[rewrite.KindDelete] = true
	_, err := rewrite.Rewrite("DELETE FROM countries WHERE code = 'FR'", &cat, p)
	var r *rewrite.Refused
	if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.team_surveys") {
		t.Fatalf("want a refusal by rule write_key naming public.team_surveys, got %v", err)
	}
	t.Run("a relation read in full that nothing references is the end of the cascade", func(t *testing.T) {
		tm.ReferencedBy = nil
		if _, err := rewrite.Rewrite("DELETE FROM countries WHERE code = 'FR'", &cat, p); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// TestCatalogSettingReferences holds the snapshot's SettingReferences to
// the foreign keys a DELETE of the parent does not simply check or
// cascade: of several columns, setting NULL or a default, or not
// validated (a row may reference no parent yet).
func TestCatalogSettingReferences(t *testing.T) {
	_, cat := freshCatalog(t, "settingrefs", `CREATE TABLE parent (id int PRIMARY KEY, a int, b int, UNIQUE (a, b));
		CREATE TABLE cascades (p int REFERENCES parent ON DELETE CASCADE);
		CREATE TABLE restricts (p int REFERENCES parent);
		CREATE TABLE nulls (p int REFERENCES parent ON DELETE SET NULL);
		CREATE TABLE defaults (p int DEFAULT 0 REFERENCES parent ON DELETE SET DEFAULT);
		CREATE TABLE pairs (x int, y int, FOREIGN KEY (x, y) REFERENCES parent (a, b));
		CREATE TABLE unchecked (p int);
		INSERT INTO unchecked VALUES (42);
		ALTER TABLE unchecked ADD FOREIGN KEY (p) REFERENCES parent NOT VALID`)
	parent := rewrite.QName{Schema: "public", Name: "parent"}
	for _, tc := range []struct {
		table, column string
		setting       bool
	}{
		{"cascades", "p", false},
		{"restricts", "p", false},
		{"nulls", "p", true},
		{"defaults", "p", true},
		{"pairs", "x", true},
		{"pairs", "y", true},
		{"unchecked", "p", true},
	} {
		r := cat.Relations[rewrite.QName{Schema: "public", Name: tc.table}]
		if r == nil || !slices.Contains(r.References[tc.column], parent) {
			t.Fatalf("%s.%s: references %v, want public.parent", tc.table, tc.column, r.References)
		}
		if got := slices.Contains(r.SettingReferences[tc.column], parent); got != tc.setting {
			t.Errorf("%s.%s: in SettingReferences %v, want %v", tc.table, tc.column, got, tc.setting)
		}
	}
}

// TestDeleteReachesNoMaskedKey holds a DELETE to the masked columns of
// the rows it deletes, its own and a followed child's: a foreign key
// referencing one is checked, or cascades, by the deleted row's real
// value, and a cascade into a table the user reads (teams, open to
// marie) shows it in the rows gone.
func TestDeleteReachesNoMaskedKey(t *testing.T) {
	base := demoCatalog(t)
	teams := rewrite.QName{Schema: "public", Name: "teams"}
	for _, c := range []struct {
		name, table, column string
	}{
		{"the parent's masked column", "responses", "email"},
		{"a followed child's masked column", "response_comments", "author_email"},
	} {
		t.Run(c.name, func(t *testing.T) {
			cat := *base
			cat.Relations = map[rewrite.QName]*rewrite.Relation{}
			for q, r := range base.Relations {
				cat.Relations[q] = r
			}
			q := rewrite.QName{Schema: "public", Name: c.table}
			r := *base.Relations[q]
			r.ReferencedBy = map[string][]rewrite.QName{}
			for k, v := range base.Relations[q].ReferencedBy {
				r.ReferencedBy[k] = v
			}
			r.ReferencedBy[c.column] = []rewrite.QName{teams}
			cat.Relations[q] = &r
			// NOTE: teams, referenced by nothing, is the end of the
			// cascade.
			tm := *base.Relations[teams]
			tm.ReferencedBy = nil
			cat.Relations[teams] = &tm
			p := marie(t)
			p.kinds[rewrite.KindDelete] = true
			_, err := rewrite.Rewrite("DELETE FROM responses WHERE id = 2", &cat, p)
			var rf *rewrite.Refused
			if !errors.As(err, &rf) || rf.Rule != "write_key" || !strings.Contains(rf.Error(), c.column) {
				t.Fatalf("want a refusal by rule write_key naming %s, got %v", c.column, err)
			}
		})
	}
}

// TestDeleteReachesAnInheritanceChildsKeys holds a DELETE of a parent to
// the foreign keys referencing a column of its inheritance child's own
// (not the parent's): DELETE FROM p deletes c's rows, and z's key
// cascades by c.extra into rows of a table the user may not read.
func TestDeleteReachesAnInheritanceChildsKeys(t *testing.T) {
	_, cat := freshCatalog(t, "deleteinherits", `CREATE TABLE p (id int PRIMARY KEY, tenant text);
		CREATE TABLE c (extra int UNIQUE) INHERITS (p);
		CREATE TABLE z (e int REFERENCES c (extra) ON DELETE CASCADE, secret text)`)
	p := &fakePolicy{access: map[string]rewrite.Access{
		"public.p": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
		"public.c": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindDelete: true}}
	_, err := rewrite.Rewrite("DELETE FROM p WHERE id = 1", cat, p)
	var r *rewrite.Refused
	if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.z") {
		t.Fatalf("want a refusal by rule write_key naming public.z, got %v", err)
	}
	t.Run("the child's own DELETE is refused as well", func(t *testing.T) {
		if _, err := rewrite.Rewrite("DELETE FROM c WHERE id = 1", cat, p); !errors.As(err, &r) || r.Rule != "write_key" {
			t.Fatalf("want a refusal by rule write_key, got %v", err)
		}
	})
}

// TestUpdateCascadesAreCheckedToTheEnd holds an UPDATE of a key to the
// relations its ON UPDATE cascade reaches through a relation the user
// reads in full, as a DELETE's is (TestDeleteCascadesAreCheckedToTheEnd):
// p and a are open, a.pid references p and is referenced by g, which the
// user may not read; a new p.id cascades into a.pid, then into g.
func TestUpdateCascadesAreCheckedToTheEnd(t *testing.T) {
	_, cat := freshCatalog(t, "updatecascades", `CREATE TABLE p (id int PRIMARY KEY, name text UNIQUE);
		CREATE TABLE a (id int PRIMARY KEY, pid int UNIQUE REFERENCES p ON UPDATE CASCADE);
		CREATE TABLE g (e int REFERENCES a (pid) ON UPDATE CASCADE, secret text)`)
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.p": {Mode: rewrite.Open},
		"public.a": {Mode: rewrite.Open},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true, rewrite.KindInsert: true}}
	for _, sql := range []string{
		"UPDATE p SET id = 5 WHERE id = 1",
		"INSERT INTO p VALUES (1, 'x') ON CONFLICT (name) DO UPDATE SET id = 5",
	} {
		_, err := rewrite.Rewrite(sql, cat, pol)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.g") {
			t.Errorf("%s: want a refusal by rule write_key naming public.g, got %v", sql, err)
		}
	}
	t.Run("a column no cascade reaches passes", func(t *testing.T) {
		if _, err := rewrite.Rewrite("UPDATE p SET name = 'y' WHERE id = 1", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	t.Run("a new row reaches no cascade", func(t *testing.T) {
		if _, err := rewrite.Rewrite("INSERT INTO p VALUES (9, 'z')", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// TestInsertOfADefaultKeyReachesNoOrphan holds an INSERT (or a COPY)
// that leaves a referenced key to its default (a sequence's next value)
// to the foreign keys that may hold rows referencing no row yet (NOT
// VALID): c's orphan references p.id 5, and the fifth new row of p would
// show it through a follow.
func TestInsertOfADefaultKeyReachesNoOrphan(t *testing.T) {
	_, cat := freshCatalog(t, "insertorphans", `CREATE TABLE p (id serial PRIMARY KEY, tenant text);
		CREATE TABLE c (pid int, secret text);
		INSERT INTO c VALUES (5, 'orphan');
		ALTER TABLE c ADD FOREIGN KEY (pid) REFERENCES p NOT VALID;
		CREATE TABLE q (id serial PRIMARY KEY, tenant text);
		CREATE TABLE d (qid int REFERENCES q, secret text)`)
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.p": {Mode: rewrite.Governed},
		"public.c": {Mode: rewrite.Governed, Filter: expr(t, "pid IN (SELECT id FROM public.p)")},
		"public.q": {Mode: rewrite.Governed},
		"public.d": {Mode: rewrite.Governed, Filter: expr(t, "qid IN (SELECT id FROM public.q)")},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindInsert: true}}
	for _, sql := range []string{"INSERT INTO p (tenant) VALUES ('A')", "COPY p (tenant) FROM STDIN"} {
		_, err := rewrite.Rewrite(sql, cat, pol)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.c") {
			t.Errorf("%s: want a refusal by rule write_key naming public.c, got %v", sql, err)
		}
	}
	t.Run("a validated key holds no orphan a new row reaches", func(t *testing.T) {
		if _, err := rewrite.Rewrite("INSERT INTO q (tenant) VALUES ('A')", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// TestCascadeWritesAreCheckedByTheColumnsOtherKeys holds the writes a
// cascade makes into a relation the user reads in full to the foreign
// keys of the columns it writes: a value set by ON UPDATE CASCADE (or a
// default set by ON DELETE SET DEFAULT) is checked against every
// relation the column references, and whether the check fails tells
// whether a row the user may not see holds it.
//
//   - p and a are open; a.pid references p (ON UPDATE CASCADE) and q,
//     scoped: UPDATE p SET id = 5 cascades 5 into a.pid, whose check
//     against q answers whether q's hidden row 5 exists.
//   - s is scoped, b open; b.sid DEFAULT 0 references s ON DELETE SET
//     DEFAULT: a DELETE of a visible row of s sets 0, whose check tells
//     whether s's row 0 (hidden) exists.
func TestCascadeWritesAreCheckedByTheColumnsOtherKeys(t *testing.T) {
	_, cat := freshCatalog(t, "cascadewrites", `CREATE TABLE p (id int PRIMARY KEY, name text UNIQUE);
		CREATE TABLE q (id int PRIMARY KEY, tenant text);
		CREATE TABLE a (pid int REFERENCES p ON UPDATE CASCADE REFERENCES q);
		CREATE TABLE s (id int PRIMARY KEY, tenant text);
		CREATE TABLE b (sid int DEFAULT 0 REFERENCES s ON DELETE SET DEFAULT);
		CREATE TABLE n (id int PRIMARY KEY, tenant text);
		CREATE TABLE m (nid int REFERENCES n ON DELETE SET NULL)`)
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.p": {Mode: rewrite.Open},
		"public.a": {Mode: rewrite.Open},
		"public.q": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
		"public.s": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
		"public.b": {Mode: rewrite.Open},
		"public.n": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
		"public.m": {Mode: rewrite.Open},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true, rewrite.KindInsert: true, rewrite.KindDelete: true}}
	s := rewrite.QName{Schema: "public", Name: "s"}
	if b := cat.Relations[rewrite.QName{Schema: "public", Name: "b"}]; !slices.Contains(b.DefaultReferences["sid"], s) {
		t.Fatalf("b.DefaultReferences = %v, want sid referencing %s", b.DefaultReferences, s)
	}
	if m := cat.Relations[rewrite.QName{Schema: "public", Name: "m"}]; len(m.DefaultReferences) > 0 {
		t.Fatalf("m.DefaultReferences = %v, want none (SET NULL)", m.DefaultReferences)
	}
	for _, c := range []struct{ sql, names string }{
		{"UPDATE p SET id = 5 WHERE id = 1", "public.q"},
		{"INSERT INTO p VALUES (1, 'x') ON CONFLICT (name) DO UPDATE SET id = 5", "public.q"},
		{"DELETE FROM s WHERE id = 1", "public.s"},
	} {
		_, err := rewrite.Rewrite(c.sql, cat, pol)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), c.names) {
			t.Errorf("%s: want a refusal by rule write_key naming %s, got %v", c.sql, c.names, err)
		}
	}
	t.Run("a cascade that sets NULL checks nothing", func(t *testing.T) {
		if _, err := rewrite.Rewrite("DELETE FROM n WHERE id = 1", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// TestUpdateCascadesThroughALattice holds an UPDATE's cascade walk to
// every column it changes, not every relation once: p's key cascades
// into a and b, and from each into its own column of c (x from a, y
// from b); g, which the user may not read, references c.y. Reached from
// a first, c's walk from b (its column y) must not be skipped.
func TestUpdateCascadesThroughALattice(t *testing.T) {
	_, cat := freshCatalog(t, "updatelattice", `CREATE TABLE p (id int PRIMARY KEY);
		CREATE TABLE a (pid int UNIQUE REFERENCES p ON UPDATE CASCADE);
		CREATE TABLE b (pid int UNIQUE REFERENCES p ON UPDATE CASCADE);
		CREATE TABLE c (x int REFERENCES a (pid) ON UPDATE CASCADE, y int UNIQUE REFERENCES b (pid) ON UPDATE CASCADE);
		CREATE TABLE g (e int REFERENCES c (y) ON UPDATE CASCADE, secret text)`)
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.p": {Mode: rewrite.Open},
		"public.a": {Mode: rewrite.Open},
		"public.b": {Mode: rewrite.Open},
		"public.c": {Mode: rewrite.Open},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true}}
	_, err := rewrite.Rewrite("UPDATE p SET id = 5 WHERE id = 1", cat, pol)
	var r *rewrite.Refused
	if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.g") {
		t.Fatalf("want a refusal by rule write_key naming public.g, got %v", err)
	}
	t.Run("a self reference's column is walked, though its relation is the one written", func(t *testing.T) {
		_, cat := freshCatalog(t, "updateselfcascade", `CREATE TABLE s (id int PRIMARY KEY, up int UNIQUE REFERENCES s (id) ON UPDATE CASCADE);
			CREATE TABLE h (e int REFERENCES s (up) ON UPDATE CASCADE, secret text)`)
		pol := &fakePolicy{access: map[string]rewrite.Access{"public.s": {Mode: rewrite.Open}},
			kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true}}
		_, err := rewrite.Rewrite("UPDATE s SET id = 5 WHERE id = 1", cat, pol)
		if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.h") {
			t.Fatalf("want a refusal by rule write_key naming public.h, got %v", err)
		}
	})
}

// TestCascadeWritesThroughPartitions holds the checks of
// TestCascadeWritesAreCheckedByTheColumnsOtherKeys where the relations
// are partitioned: a key's constraint is cloned for each partition, and
// a DELETE or an UPDATE of a partition meets its clones.
func TestCascadeWritesThroughPartitions(t *testing.T) {
	_, cat := freshCatalog(t, "cascadepartitions", `CREATE TABLE s (id int PRIMARY KEY, tenant text) PARTITION BY RANGE (id);
		CREATE TABLE s1 PARTITION OF s FOR VALUES FROM (0) TO (100);
		CREATE TABLE b (sid int DEFAULT 0 REFERENCES s ON DELETE SET DEFAULT, k int) PARTITION BY LIST (k);
		CREATE TABLE b1 PARTITION OF b DEFAULT;
		CREATE TABLE p (id int PRIMARY KEY) PARTITION BY RANGE (id);
		CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
		CREATE TABLE q (id int PRIMARY KEY, tenant text);
		CREATE TABLE a (pid int REFERENCES p ON UPDATE CASCADE REFERENCES q, k int) PARTITION BY LIST (k);
		CREATE TABLE a1 PARTITION OF a DEFAULT`)
	open := rewrite.Access{Mode: rewrite.Open}
	scoped := rewrite.Access{Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")}
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.s": scoped, "public.s1": scoped, "public.b": open, "public.b1": open,
		"public.p": open, "public.p1": open, "public.q": scoped, "public.a": open, "public.a1": open,
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true, rewrite.KindDelete: true}}
	for _, sql := range []string{
		"DELETE FROM s WHERE id = 1",
		"DELETE FROM s1 WHERE id = 1",
		"UPDATE p SET id = 5 WHERE id = 1",
		"UPDATE p1 SET id = 5 WHERE id = 1",
	} {
		_, err := rewrite.Rewrite(sql, cat, pol)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "write_key" {
			t.Errorf("%s: want a refusal by rule write_key, got %v", sql, err)
		}
	}
}

// TestSetNullCascadesOnAsAnUpdate holds a DELETE whose referencing
// relation sets its column NULL (ON DELETE SET NULL) to the checks of an
// UPDATE of that column: the rows referencing it meet their ON UPDATE
// action, and SET DEFAULT there writes a default that the column's other
// foreign keys check. p, c and g are open; c.pid references p ON DELETE
// SET NULL; g.x DEFAULT 3 references c (pid) ON UPDATE SET DEFAULT and
// h, scoped: DELETE FROM p WHERE id = 1 succeeds or fails (23503) by
// whether h's hidden row 3 exists.
func TestSetNullCascadesOnAsAnUpdate(t *testing.T) {
	conn, cat := freshCatalog(t, "setnullcascades", `CREATE TABLE p (id int PRIMARY KEY);
		CREATE TABLE c (pid int UNIQUE REFERENCES p ON DELETE SET NULL);
		CREATE TABLE h (id int PRIMARY KEY, tenant text);
		CREATE TABLE g (x int DEFAULT 3 REFERENCES c (pid) ON UPDATE SET DEFAULT REFERENCES h);
		INSERT INTO p VALUES (1), (2), (3); INSERT INTO c VALUES (1), (2), (3);
		INSERT INTO h VALUES (1, 'A'), (2, 'A'); INSERT INTO g VALUES (1), (2)`)
	// The oracle, upstream: without h's row 3 the DELETE fails.
	ctx := context.Background()
	if err := conn.Exec(ctx, "DELETE FROM p WHERE id = 1").Close(); err == nil || !strings.Contains(err.Error(), "23503") {
		t.Fatalf("DELETE without h's row 3: want 23503, got %v", err)
	}
	if err := conn.Exec(ctx, "INSERT INTO h VALUES (3, 'B'); DELETE FROM p WHERE id = 1").Close(); err != nil {
		t.Fatalf("DELETE with h's row 3: %v", err)
	}
	open := rewrite.Access{Mode: rewrite.Open}
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.p": open, "public.c": open, "public.g": open,
		"public.h": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindDelete: true}}
	_, err := rewrite.Rewrite("DELETE FROM p WHERE id = 2", cat, pol)
	var r *rewrite.Refused
	if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.h") {
		t.Fatalf("want a refusal by rule write_key naming public.h, got %v", err)
	}
	t.Run("read in full, h refuses nothing", func(t *testing.T) {
		pol.access["public.h"] = open
		if _, err := rewrite.Rewrite("DELETE FROM p WHERE id = 2", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
	t.Run("partitioned, each partition's clone of the keys cascades on", func(t *testing.T) {
		_, cat := freshCatalog(t, "setnullpartitions", `CREATE TABLE p (id int PRIMARY KEY) PARTITION BY RANGE (id);
			CREATE TABLE p1 PARTITION OF p FOR VALUES FROM (0) TO (100);
			CREATE TABLE c (pid int, k int, UNIQUE (pid, k), FOREIGN KEY (pid) REFERENCES p ON DELETE SET NULL) PARTITION BY LIST (k);
			CREATE TABLE c1 PARTITION OF c DEFAULT;
			CREATE TABLE h (id int PRIMARY KEY, tenant text);
			CREATE TABLE g (x int DEFAULT 3, k int, FOREIGN KEY (x, k) REFERENCES c (pid, k) ON UPDATE SET DEFAULT, FOREIGN KEY (x) REFERENCES h)`)
		pol := &fakePolicy{access: map[string]rewrite.Access{
			"public.p": open, "public.p1": open, "public.c": open, "public.c1": open, "public.g": open,
			"public.h": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
		}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindDelete: true}}
		for _, sql := range []string{"DELETE FROM p WHERE id = 2", "DELETE FROM p1 WHERE id = 2"} {
			_, err := rewrite.Rewrite(sql, cat, pol)
			if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.h") {
				t.Errorf("%s: want a refusal by rule write_key naming public.h, got %v", sql, err)
			}
		}
	})
}

// TestInsertLeavingAMaskedKeyToItsDefault refuses an INSERT or a COPY
// that leaves to its default a column a unique key holds with a column
// masked for the user: the default (a constant, a sequence's next value,
// a domain's, or a NULL an index compares) meets the real masked values
// of every row, and a duplicate key (23505) tells whether one holds it.
func TestInsertLeavingAMaskedKeyToItsDefault(t *testing.T) {
	conn, cat := freshCatalog(t, "maskeddefaults", `CREATE DOMAIN mail AS text DEFAULT 'none';
		CREATE TABLE u (id serial PRIMARY KEY, email text UNIQUE DEFAULT 'none', name text);
		CREATE TABLE v (id serial PRIMARY KEY, email mail UNIQUE, name text);
		CREATE TABLE w (id serial PRIMARY KEY, name text);
		CREATE TABLE y (id serial PRIMARY KEY, email text UNIQUE NULLS NOT DISTINCT, name text);
		CREATE TABLE z (id serial PRIMARY KEY, code text DEFAULT 'x', email text, name text);
		CREATE UNIQUE INDEX ON z ((coalesce(email, code)));
		CREATE TABLE x (id serial PRIMARY KEY, email text UNIQUE, name text);
		INSERT INTO u (email, name) VALUES ('none', 'a')`)
	// The oracle, upstream: u's hidden row holds the default.
	if err := conn.Exec(context.Background(), "INSERT INTO u (name) VALUES ('b')").Close(); err == nil || !strings.Contains(err.Error(), "23505") {
		t.Fatalf("INSERT leaving u.email to its default: want 23505, got %v", err)
	}
	masked := func(cols ...string) rewrite.Access {
		m := map[string]*pg_query.Node{}
		for _, c := range cols {
			m[c] = nil
		}
		return rewrite.Access{Mode: rewrite.Governed, Masks: m}
	}
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.u": masked("email"), "public.v": masked("email"), "public.w": masked("id"),
		"public.y": masked("email"), "public.z": masked("email"), "public.x": masked("email"),
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindInsert: true}}
	for _, c := range []struct{ sql, column string }{
		{"INSERT INTO u (name) VALUES ('b')", "email"},
		{"COPY u (name) FROM STDIN", "email"},
		{"INSERT INTO v (name) VALUES ('b')", "email"},
		{"INSERT INTO w (name) VALUES ('b')", "id"},
		{"INSERT INTO y (name) VALUES ('b')", "email"},
		{"INSERT INTO z (name) VALUES ('b')", "code"},
	} {
		_, err := rewrite.Rewrite(c.sql, cat, pol)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "column "+c.column+" ") {
			t.Errorf("%s: want a refusal by rule write_key naming the column %s, got %v", c.sql, c.column, err)
		}
	}
	t.Run("a NULL no key compares, and an unmasked key's default, pass", func(t *testing.T) {
		if _, err := rewrite.Rewrite("INSERT INTO x (name) VALUES ('b')", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// TestInsertLeavingAReferencingColumnToItsDefault refuses an INSERT or a
// COPY that leaves to its default a column whose foreign key references
// a relation the user may not read in full: the default is checked as a
// value written is, and whether the INSERT fails (23503) tells whether
// the hidden row exists, as a SET DEFAULT cascade's default does.
func TestInsertLeavingAReferencingColumnToItsDefault(t *testing.T) {
	conn, cat := freshCatalog(t, "referencingdefaults", `CREATE TABLE s (id int PRIMARY KEY, tenant text);
		CREATE TABLE pins (slip_id int DEFAULT 3 REFERENCES s, label text);
		CREATE TABLE notes (slip_id int REFERENCES s, label text);
		INSERT INTO s VALUES (1, 'A'), (3, 'B')`)
	// The oracle, upstream: s's hidden row 3 lets the INSERT through.
	ctx := context.Background()
	if err := conn.Exec(ctx, "INSERT INTO pins (label) VALUES ('x')").Close(); err != nil {
		t.Fatalf("INSERT with s's row 3: %v", err)
	}
	if err := conn.Exec(ctx, "DELETE FROM pins; DELETE FROM s WHERE id = 3; INSERT INTO pins (label) VALUES ('x')").Close(); err == nil || !strings.Contains(err.Error(), "23503") {
		t.Fatalf("INSERT without s's row 3: want 23503, got %v", err)
	}
	open := rewrite.Access{Mode: rewrite.Open}
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.pins": open, "public.notes": open,
		"public.s": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindInsert: true}}
	for _, sql := range []string{"INSERT INTO pins (label) VALUES ('x')", "COPY pins (label) FROM STDIN"} {
		_, err := rewrite.Rewrite(sql, cat, pol)
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.s") {
			t.Errorf("%s: want a refusal by rule write_key naming public.s, got %v", sql, err)
		}
	}
	t.Run("a column left NULL checks nothing", func(t *testing.T) {
		if _, err := rewrite.Rewrite("INSERT INTO notes (label) VALUES ('x')", cat, pol); err != nil {
			t.Fatalf("refused: %v", err)
		}
	})
}

// TestSetNullReachesAGeneratedColumnsKey holds a DELETE under an ON
// DELETE SET NULL key to the foreign keys of the generated columns
// computed from the column set NULL: the NULL passes the column's own
// keys, but a generated column computed from it (coalesce(pid, 3)) takes
// a value its foreign key checks. p and c are open, c.pid references p
// ON DELETE SET NULL, c.g = coalesce(pid, 3) references h (scoped):
// DELETE FROM p failed (23503) exactly when h's hidden row 3 does not
// exist.
func TestSetNullReachesAGeneratedColumnsKey(t *testing.T) {
	conn, cat := freshCatalog(t, "setnullgenerated", `CREATE TABLE h (id int PRIMARY KEY, tenant text);
		CREATE TABLE p (id int PRIMARY KEY);
		CREATE TABLE c (pid int REFERENCES p ON DELETE SET NULL, g int GENERATED ALWAYS AS (coalesce(pid, 3)) STORED REFERENCES h);
		INSERT INTO h VALUES (1, 'A');
		INSERT INTO p VALUES (1);
		INSERT INTO c (pid) VALUES (1)`)
	ctx := context.Background()
	// Upstream, the outcome is the hidden row's: without h's row 3 the
	// DELETE fails, with it (tenant B, out of the user's scope) it passes.
	if _, err := conn.Exec(ctx, "BEGIN; DELETE FROM p; ROLLBACK").ReadAll(); err == nil {
		t.Fatal("DELETE FROM p passed upstream without h's row 3")
	}
	_ = conn.Exec(ctx, "ROLLBACK").Close()
	if _, err := conn.Exec(ctx, "BEGIN; INSERT INTO h VALUES (3, 'B'); DELETE FROM p; ROLLBACK").ReadAll(); err != nil {
		t.Fatalf("DELETE FROM p failed upstream with h's row 3: %v", err)
	}
	pol := &fakePolicy{access: map[string]rewrite.Access{
		"public.h": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")},
		"public.p": {Mode: rewrite.Open},
		"public.c": {Mode: rewrite.Open},
	}, kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindDelete: true}}
	_, err := rewrite.Rewrite("DELETE FROM p", cat, pol)
	var r *rewrite.Refused
	if !errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.h") {
		t.Fatalf("want a refusal by rule write_key naming public.h, got %v", err)
	}
}

// TestUpdateOfAKeyMeetsOnlyTheKeysThatCarryIt holds an UPDATE of a
// referenced key to the ON UPDATE actions of the keys referencing it: a
// NO ACTION or RESTRICT key does not change its column, so the column's
// other keys check nothing new, and only its own rows (read in full)
// answer its check; a CASCADE, SET NULL or SET DEFAULT key changes it,
// and the column's key referencing q (scoped) checks the new value.
func TestUpdateOfAKeyMeetsOnlyTheKeysThatCarryIt(t *testing.T) {
	conn, cat := freshCatalog(t, "updateactions", `CREATE TABLE q (id int PRIMARY KEY, tenant text);
		INSERT INTO q VALUES (0, 'A');
		CREATE TABLE p (id int PRIMARY KEY);
		CREATE TABLE noaction (pid int REFERENCES p REFERENCES q);
		CREATE TABLE restricts (pid int REFERENCES p ON UPDATE RESTRICT REFERENCES q);
		CREATE TABLE cascades (pid int REFERENCES p ON UPDATE CASCADE REFERENCES q);
		CREATE TABLE nulls (pid int REFERENCES p ON UPDATE SET NULL REFERENCES q, g int GENERATED ALWAYS AS (coalesce(pid, 3)) STORED REFERENCES q);
		CREATE TABLE defaults (pid int DEFAULT 0 REFERENCES p ON UPDATE SET DEFAULT REFERENCES q)`)
	acc := map[string]rewrite.Access{"public.q": {Mode: rewrite.Governed, Filter: expr(t, "tenant = 'A'")}}
	for _, n := range []string{"p", "noaction", "restricts", "cascades", "nulls", "defaults"} {
		acc["public."+n] = rewrite.Access{Mode: rewrite.Open}
	}
	kinds := map[rewrite.StatementKind]bool{rewrite.KindSelect: true, rewrite.KindUpdate: true}
	p := rewrite.QName{Schema: "public", Name: "p"}
	for _, c := range []struct {
		child   string
		carries bool
	}{{"noaction", false}, {"restricts", false}, {"cascades", true}, {"nulls", true}, {"defaults", true}} {
		t.Run(c.child, func(t *testing.T) {
			child := cat.Relations[rewrite.QName{Schema: "public", Name: c.child}]
			if got := slices.Contains(child.UpdateReferences["pid"], p); got != c.carries {
				t.Fatalf("%s.UpdateReferences = %v, want pid referencing p: %v", c.child, child.UpdateReferences, c.carries)
			}
			// Only p and this child: the others' keys are not met.
			cat2 := *cat
			cat2.Relations = map[rewrite.QName]*rewrite.Relation{}
			for q, rel := range cat.Relations {
				cat2.Relations[q] = rel
			}
			pr := *cat.Relations[p]
			pr.ReferencedBy = map[string][]rewrite.QName{"id": {child.QName}}
			cat2.Relations[p] = &pr
			_, err := rewrite.Rewrite("UPDATE p SET id = 5 WHERE id = 1", &cat2, &fakePolicy{access: acc, kinds: kinds})
			var r *rewrite.Refused
			switch {
			case c.carries && (!errors.As(err, &r) || r.Rule != "write_key" || !strings.Contains(r.Error(), "public.q")):
				t.Fatalf("want a refusal by rule write_key naming public.q, got %v", err)
			case !c.carries && err != nil:
				t.Fatalf("refused: %v", err)
			}
		})
	}
	t.Run("the digest tells the actions apart", func(t *testing.T) {
		ctx := context.Background()
		if err := conn.Exec(ctx, `ALTER TABLE noaction DROP CONSTRAINT noaction_pid_fkey, ADD CONSTRAINT noaction_pid_fkey FOREIGN KEY (pid) REFERENCES p ON UPDATE CASCADE`).Close(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = conn.Exec(ctx, `ALTER TABLE noaction DROP CONSTRAINT noaction_pid_fkey, ADD CONSTRAINT noaction_pid_fkey FOREIGN KEY (pid) REFERENCES p`).Close()
		})
		again, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
		if err != nil {
			t.Fatal(err)
		}
		if again.Digest == cat.Digest {
			t.Fatal("the digest did not change with the key's ON UPDATE action")
		}
	})
}
