package rewrite_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/rewrite"
)

// adjusted is a Policy whose relations' Access adjust changes; suffix
// keeps its cache keys apart from the Policy's.
type adjusted struct {
	rewrite.Policy
	suffix string
	adjust func(*rewrite.Access)
}

func (p adjusted) Key() string { return p.Policy.Key() + p.suffix }

func (p adjusted) Relation(r *rewrite.Relation) rewrite.Access {
	acc := p.Policy.Relation(r)
	p.adjust(&acc)
	return acc
}

// RelationIn adjusts p's access in the snapshot (rewrite.AccessIn), so
// that a table that follows another stays scoped by it.
func (p adjusted) RelationIn(cat *rewrite.Catalog, r *rewrite.Relation) rewrite.Access {
	acc := rewrite.AccessIn(p.Policy, cat, r)
	p.adjust(&acc)
	return acc
}

// subqueryOnly is p with relations that never take pushed comparisons,
// so the rewriter always reads them through the fenced subquery: the
// reference the direct read (rewrite/flatten.go) is held to.
func subqueryOnly(p rewrite.Policy) rewrite.Policy {
	return adjusted{p, "/subquery-only", func(a *rewrite.Access) { a.NoPushdown = true }}
}

// unmasked is p without its masks.
func unmasked(p rewrite.Policy) rewrite.Policy {
	return adjusted{p, "/unmasked", func(a *rewrite.Access) { a.Masks = nil }}
}

// TestDirectReadGivesTheSubquerysRows runs statements that read a
// governed relation directly, and the same statements through the fenced
// subquery, on the demo data, and wants the same rows in the same order.
func TestDirectReadGivesTheSubquerysRows(t *testing.T) {
	env := demoEnvironment(t)
	up := newUpstream(t)
	ops := []string{"=", "<>", "<", "<=", ">", ">="}
	var cases []struct{ user, sql string }
	add := func(user, sql string) { cases = append(cases, struct{ user, sql string }{user, sql}) }
	for _, op := range ops {
		for _, v := range []string{"'FR'", "'DE'", "'XX'", "''"} {
			add("marie", fmt.Sprintf("SELECT code, name FROM countries WHERE code %s %s ORDER BY code", op, v))
			add("hq", fmt.Sprintf("SELECT code, lower(name) FROM countries c WHERE c.code %s %s AND name >= 'A' ORDER BY 1", op, v))
		}
		for _, v := range []string{"1", "2", "3", "5000000000", "'2'"} {
			add("paul", fmt.Sprintf("SELECT id, name FROM surveys WHERE id %s %s ORDER BY id", op, v))
			add("paul", fmt.Sprintf("SELECT project, count(*) FROM surveys s WHERE %s %s s.id GROUP BY project ORDER BY 1", v, op))
		}
	}
	for _, list := range []string{"'FR'", "'FR', 'DE', 'XX'", "'France', ''"} {
		add("marie", "SELECT code, name FROM countries WHERE code IN ("+list+") ORDER BY 1")
		add("hq", "SELECT code FROM countries WHERE name IN ("+list+") AND code BETWEEN 'A' AND 'M' ORDER BY 1")
	}
	for _, r := range [][2]string{{"1", "2"}, {"2", "1"}, {"0", "5000000000"}, {"'1'", "3"}} {
		add("paul", "SELECT id FROM surveys WHERE id BETWEEN "+r[0]+" AND "+r[1]+" ORDER BY id")
		add("paul", "SELECT id FROM surveys WHERE id IN ("+r[0]+", "+r[1]+") ORDER BY id")
	}
	for _, v := range []string{"'FR'::text", "CAST('FR' AS varchar)", "'FR'::varchar(1)", "text 'DE'"} {
		add("marie", "SELECT code FROM countries WHERE code <= "+v+" ORDER BY 1")
	}
	for _, v := range []string{"'2'::int4", "'2'::integer", "CAST('2' AS int8)", "'2'::smallint", "'2'::numeric"} {
		add("paul", "SELECT id FROM surveys WHERE id >= "+v+" ORDER BY 1")
	}
	add("marie", "SELECT count(*) FROM countries")
	add("marie", "SELECT name, count(*) FROM countries GROUP BY name ORDER BY 2 DESC, 1")
	add("hq", "SELECT DISTINCT project FROM surveys ORDER BY project LIMIT 2 OFFSET 1")
	add("tom", "SELECT name FROM teams ORDER BY name")
	direct := 0
	for _, c := range cases {
		t.Run(c.user+": "+c.sql, func(t *testing.T) {
			pol := env.policy(t, c.user)
			got, err := rewrite.Rewrite(c.sql, env.cat, pol)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rewrite.Rewrite(c.sql, env.cat, subqueryOnly(pol))
			if err != nil {
				t.Fatal(err)
			}
			if strings.Contains(want.SQL, "FROM public.") && !strings.Contains(want.SQL, "OFFSET 0") {
				t.Fatalf("the reference rewrite reads directly: %s", want.SQL)
			}
			if !strings.Contains(got.SQL, "OFFSET 0") {
				direct++
			}
			if g, w := up.rows(t, got.SQL), up.rows(t, want.SQL); g != w {
				t.Errorf("direct read:\n%s\ngave\n%s\nthe subquery:\n%s\ngave\n%s", got.SQL, g, want.SQL, w)
			}
		})
	}
	if direct < len(cases)/2 {
		t.Errorf("only %d of %d statements read directly", direct, len(cases))
	}
}

// TestDirectWriteChangesTheSubquerysRows runs UPDATEs and DELETEs that
// find their rows directly, and the same statements through the
// row-identity subquery, on the demo data (each rolled back), and wants
// the same rows changed: their RETURNING lists, in any order.
func TestDirectWriteChangesTheSubquerysRows(t *testing.T) {
	env := demoEnvironment(t)
	up := newUpstream(t)
	var cases []struct{ user, sql string }
	add := func(user, sql string) { cases = append(cases, struct{ user, sql string }{user, sql}) }
	for _, op := range []string{"=", "<>", "<", "<=", ">", ">="} {
		for _, v := range []string{"'FR'", "'DE'", "'XX'", "''"} {
			add("marie", fmt.Sprintf("DELETE FROM countries WHERE code %s %s RETURNING code, name", op, v))
			add("hq", fmt.Sprintf("DELETE FROM countries c WHERE %s %s c.code AND name >= 'F' RETURNING c.code, c.name", v, op))
		}
		for _, v := range []string{"1", "2", "3", "5000000000", "'2'"} {
			add("paul", fmt.Sprintf("UPDATE surveys s SET name = s.name || '!' WHERE s.id %s %s RETURNING id, name", op, v))
			// Under a row scope, of a column no key reads (marie+ is
			// marie without masks: a masked target reads through the
			// subquery).
			add("marie+", fmt.Sprintf("UPDATE responses SET comment = comment || '!' WHERE id %s %s RETURNING id, comment", op, v))
		}
	}
	for _, list := range []string{"'FR'", "'FR', 'DE', 'XX'", "'France', ''"} {
		add("marie", "DELETE FROM countries WHERE code IN ("+list+") RETURNING code")
		add("hq", "UPDATE countries SET code = code WHERE name IN ("+list+") AND code BETWEEN 'A' AND 'M' RETURNING name")
	}
	add("marie", "DELETE FROM countries RETURNING code, name")
	add("marie+", "UPDATE responses SET nps = 10 - nps RETURNING id, nps")
	add("paul", "UPDATE surveys SET name = upper(name) WHERE id BETWEEN 2 AND 3 RETURNING id, name")
	grant := map[rewrite.StatementKind]bool{rewrite.KindUpdate: true, rewrite.KindDelete: true}
	direct, changed := 0, 0
	for _, c := range cases {
		t.Run(c.user+": "+c.sql, func(t *testing.T) {
			var base rewrite.Policy
			if login, ok := strings.CutSuffix(c.user, "+"); ok {
				base = unmasked(env.policy(t, login))
			} else {
				base = env.policy(t, c.user)
			}
			pol := &grantPolicy{Policy: base, kinds: grant}
			got, err := rewrite.Rewrite(c.sql, env.cat, pol)
			if err != nil {
				t.Fatal(err)
			}
			want, err := rewrite.Rewrite(c.sql, env.cat, subqueryOnly(pol))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(want.SQL, "pgveil_ctid") {
				t.Fatalf("the reference rewrite finds its rows directly: %s", want.SQL)
			}
			if !strings.Contains(got.SQL, "pgveil_ctid") {
				direct++
			}
			g, w := up.written(t, got.SQL), up.written(t, want.SQL)
			if g != w {
				t.Errorf("direct write:\n%s\ngave\n%s\nthe subquery:\n%s\ngave\n%s", got.SQL, g, want.SQL, w)
			}
			if g != "" && !strings.HasPrefix(g, "ERROR") {
				changed++
			}
		})
	}
	if direct != len(cases) {
		t.Errorf("only %d of %d statements found their rows directly", direct, len(cases))
	}
	if changed < len(cases)/2 {
		t.Errorf("only %d of %d statements changed rows", changed, len(cases))
	}
}

// rows runs sql as the service account with the pinned search_path in a
// read-only transaction and returns its rows, one per line, or its error.
func (u *upstream) rows(t *testing.T, sql string) string {
	t.Helper()
	return u.query(t, "BEGIN READ ONLY", sql)
}

// written runs the write sql as rows does, in a transaction it rolls
// back, and returns the rows it returns, sorted.
func (u *upstream) written(t *testing.T, sql string) string {
	t.Helper()
	lines := strings.SplitAfter(u.query(t, "BEGIN", sql), "\n")
	sort.Strings(lines)
	return strings.Join(lines, "")
}

// query runs sql as the service account with the pinned search_path in
// the transaction begin starts, rolls it back, and returns its rows, one
// per line, or its error.
func (u *upstream) query(t *testing.T, begin, sql string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := u.conn.Exec(ctx, begin+"; SET LOCAL ROLE pgveil_svc; SET LOCAL search_path = public").ReadAll(); err != nil {
		t.Fatalf("upstream setup: %v", err)
	}
	defer func() {
		if _, err := u.conn.Exec(context.Background(), "ROLLBACK").ReadAll(); err != nil {
			t.Fatalf("upstream rollback: %v", err)
		}
	}()
	res, err := u.conn.Exec(ctx, sql).ReadAll()
	if err != nil {
		return "ERROR " + err.Error()
	}
	var b strings.Builder
	for _, r := range res {
		if r.Err != nil {
			return "ERROR " + r.Err.Error()
		}
		for _, row := range r.Rows {
			for i, v := range row {
				if i > 0 {
					b.WriteByte('|')
				}
				if v == nil {
					b.WriteString("NULL")
				} else {
					b.Write(v)
				}
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
}

// TestEngineReadsDirectlyThroughTemplates checks where the engine reads a
// governed relation directly, or finds a write's rows directly: not on
// its cold path, which splices the fenced subquery (a direct read would
// be deparsed, several times the cost of the splice), but through the
// template of a shape it has seen twice.
func TestEngineReadsDirectlyThroughTemplates(t *testing.T) {
	env := demoEnvironment(t)
	writes := map[rewrite.StatementKind]bool{rewrite.KindUpdate: true, rewrite.KindDelete: true}
	for _, tc := range []struct {
		name, format string
		// fence is in the statement's text until it reads directly;
		// table once it does.
		fence, table string
	}{
		{"a read", "SELECT name FROM countries WHERE code = '%s'", "OFFSET 0", "public.countries "},
		{"an UPDATE", "UPDATE responses SET comment = comment WHERE country = 'France' AND branch = '%s'", "pgveil_ctid", "public.responses "},
		{"a DELETE", "DELETE FROM countries c WHERE c.code = '%s' RETURNING c.name", "pgveil_ctid", "public.countries "},
	} {
		t.Run(tc.name+" does", func(t *testing.T) {
			var pol rewrite.Policy = &grantPolicy{Policy: unmasked(env.policy(t, "marie")), kinds: writes}
			e := rewrite.NewEngine(env.cat, func(string) (rewrite.Policy, error) { return pol, nil }, nil, 100)
			ctx := context.Background()
			for i, code := range []string{"FR", "DE", "IT", "ES"} {
				sql := fmt.Sprintf(tc.format, code)
				res, err := e.Rewrite(ctx, "marie", 'Q', sql)
				if err != nil {
					t.Fatal(err)
				}
				fenced := strings.Contains(res.SQL, tc.fence)
				switch {
				case i < 2 && !fenced:
					t.Errorf("statement %d, before the shape has a template, is direct: %s", i+1, res.SQL)
				case i >= 2 && fenced:
					t.Errorf("statement %d, served by the shape's template, keeps the subquery: %s", i+1, res.SQL)
				}
				if i >= 2 {
					want, err := rewrite.Rewrite(sql, env.cat, pol)
					if err != nil || want.SQL != res.SQL {
						t.Errorf("statement %d: the template gives\n%s\nRewrite gives\n%s (%v)", i+1, res.SQL, want.SQL, err)
					}
				}
				// What pgveil explain shows for it (Engine.Warm).
				if warm, err := e.Warm("marie", 'Q', sql); err != nil || warm == nil || !strings.Contains(warm.SQL, tc.table) || strings.Contains(warm.SQL, tc.fence) {
					t.Errorf("statement %d: Warm gives %+v (%v)", i+1, warm, err)
				} else if i >= 2 && warm.SQL != res.SQL {
					t.Errorf("statement %d: Warm gives\n%s\nthe template\n%s", i+1, warm.SQL, res.SQL)
				}
			}
		})
	}
}
