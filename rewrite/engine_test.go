package rewrite_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

func TestEngine(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	ctx := context.Background()

	t.Run("a repeated statement is served from the cache", func(t *testing.T) {
		for i := 0; i < 3; i++ {
			if _, err := e.Rewrite(ctx, "marie", 'Q', "SELECT name FROM countries"); err != nil {
				t.Fatal(err)
			}
		}
		if hits, _ := e.CacheStats(); hits < 2 {
			t.Fatalf("%d hits", hits)
		}
	})
	t.Run("an unchanged statement's constants may vary without a parse, once per kind of literal", func(t *testing.T) {
		h0, m0 := e.CacheStats()
		for i, v := range []string{"1", "2", "'x'", "3.5", "'y'", "7.25", "8"} {
			got, err := e.Rewrite(ctx, "marie", 'Q', "SELECT nspname FROM pg_catalog.pg_namespace WHERE oid > "+v)
			if err != nil || !strings.Contains(got.SQL, v) {
				t.Fatalf("%d: %+v %v", i, got, err)
			}
		}
		h1, m1 := e.CacheStats()
		if m1-m0 != 3 || h1-h0 != 4 {
			t.Fatalf("misses %d, hits %d: want 3 and 4", m1-m0, h1-h0)
		}
	})
	t.Run("a rewritten statement is never shared across constants", func(t *testing.T) {
		a, err := e.Rewrite(ctx, "marie", 'Q', "SELECT nps FROM responses WHERE id = 1")
		if err != nil {
			t.Fatal(err)
		}
		b, err := e.Rewrite(ctx, "marie", 'Q', "SELECT nps FROM responses WHERE id = 2")
		if err != nil || a.SQL == b.SQL || !strings.Contains(b.SQL, "id = 2") {
			t.Fatalf("%q / %q %v", a.SQL, b.SQL, err)
		}
	})
	t.Run("the audit metadata names the tables, rules, and read and masked columns", func(t *testing.T) {
		res, err := e.Rewrite(ctx, "marie", 'Q', "SELECT r.country, count(*) FROM responses r WHERE nps > 8 GROUP BY 1")
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(res.Tables, []string{"public.responses"}) ||
			!reflect.DeepEqual(res.Columns, []string{"public.responses.country", "public.responses.nps"}) ||
			!slices.Contains(res.Masked, "public.responses.email") || len(res.Rules) == 0 {
			t.Fatalf("%+v", res)
		}
	})
	t.Run("a star or a whole-row reference could read every visible column", func(t *testing.T) {
		for _, sql := range []string{"SELECT * FROM responses", "SELECT row_to_json(x) FROM responses x"} {
			res, err := e.Rewrite(ctx, "marie", 'Q', sql)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Contains(res.Columns, "public.responses.comment") || slices.Contains(res.Columns, "public.responses.email") {
				t.Fatalf("%s: %v", sql, res.Columns)
			}
		}
	})
	t.Run("a decision that reads a constant is not shared with the same shape", func(t *testing.T) {
		// set_config's first argument names the setting: the same shape
		// may be allowed for one setting and refused for another.
		for _, allowed := range []string{
			"SELECT set_config('work_mem', '1MB', false)",
			"SELECT pg_catalog.set_config('work_mem', '1MB', false)",
		} {
			if _, err := e.Rewrite(ctx, "marie", 'Q', allowed); err != nil {
				t.Fatalf("%s: %v", allowed, err)
			}
		}
		for _, sql := range []string{
			"SELECT set_config('search_path', 'evil', false)",
			"SELECT pg_catalog.set_config('search_path', 'evil', false)",
			"select SET_CONFIG('role', 'postgres', false)",
		} {
			_, err := e.Rewrite(ctx, "marie", 'Q', sql)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "pinned_settings" {
				t.Fatalf("%s: want a pinned_settings refusal, got %v", sql, err)
			}
		}
	})
	t.Run("a change of the acting user is never shared with the same shape", func(t *testing.T) {
		// The login is a constant: SET ROLE marie and SET ROLE hq share
		// a shape, never an Act.
		for i := 0; i < 3; i++ {
			for _, login := range []string{"marie", "hq", "tom"} {
				for _, sql := range []string{"SET ROLE " + login, "SET pgveil.act_for = '" + login + "'", "SET ROLE '" + login + "'",
					// psqlODBC's, with autocommit off and statement-level
					// rollback.
					"BEGIN;SET ROLE " + login, "RELEASE _EXEC_SVP_1;SAVEPOINT _EXEC_SVP_1;SET ROLE " + login} {
					res, err := e.Rewrite(ctx, "marie", 'Q', sql)
					if err != nil || res.Act == nil || res.Act.Login != login || !strings.Contains(res.SQL, login) {
						t.Fatalf("%s (round %d): %+v %v", sql, i, res, err)
					}
				}
			}
		}
	})
	t.Run("every way back to the login is a change to nobody, a SET staying a SET and a RESET a RESET", func(t *testing.T) {
		for sql, want := range map[string]string{
			"RESET ROLE":                    `RESET "pgveil.act_for"`,
			"RESET pgveil.act_for":          `RESET "pgveil.act_for"`,
			"reset PGVEIL.ACT_FOR":          `RESET "pgveil.act_for"`,
			"SET ROLE NONE":                 `SET "pgveil.act_for" TO DEFAULT`,
			"SET ROLE 'none'":               `SET "pgveil.act_for" TO DEFAULT`,
			"SET ROLE TO DEFAULT":           `SET "pgveil.act_for" TO DEFAULT`,
			"SET pgveil.act_for TO DEFAULT": `SET "pgveil.act_for" TO DEFAULT`,
		} {
			res, err := e.Rewrite(ctx, "marie", 'Q', sql)
			if err != nil || res.Act == nil || res.Act.Login != "" || res.SQL != want {
				t.Fatalf("%s: %+v %v; want %s", sql, res, err, want)
			}
		}
	})
	t.Run("a literal that is not UTF-8 is refused, though its shape is known", func(t *testing.T) {
		for _, table := range []string{"pg_catalog.pg_namespace", "countries"} {
			col := map[string]string{"pg_catalog.pg_namespace": "nspname", "countries": "name"}[table]
			for _, v := range []string{"'a'", "'b'"} {
				if _, err := e.Rewrite(ctx, "marie", 'Q', "SELECT "+col+" FROM "+table+" WHERE "+col+" = "+v); err != nil {
					t.Fatal(err)
				}
			}
			_, err := e.Rewrite(ctx, "marie", 'Q', "SELECT "+col+" FROM "+table+" WHERE "+col+" = '\xe9'")
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Code != rewrite.CodeSyntaxError {
				t.Fatalf("%s: want a syntax error, got %v", table, err)
			}
		}
	})
	t.Run("a refusal is not shared with an allowed statement of the same shape", func(t *testing.T) {
		_, err := e.Rewrite(ctx, "marie", 'Q', "SELECT * FROM employees WHERE login = 'a'")
		var r *rewrite.Refused
		if !errors.As(err, &r) {
			t.Fatalf("want refusal, got %v", err)
		}
		_, err = e.Rewrite(ctx, "marie", 'Q', "SELECT * FROM employees WHERE login = 'b'")
		if !errors.As(err, &r) {
			t.Fatalf("want refusal, got %v", err)
		}
	})
}

func TestEngineLiteralShapes(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	ctx := context.Background()
	// Each probe has the warm-up's shape for a scanner that would miss
	// E'' strings, comments or dollar quotes, while PostgreSQL reads a
	// query of the employees table in it: the warm-up's cached decision
	// must not carry over.
	for _, tc := range []struct{ name, warm, probe string }{
		{"an E'' string hides a quote",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = E'a' OR nspname = 'b'",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = E'\\' OR nspname = ' UNION SELECT login FROM employees --'"},
		{"a comment hides the rest of a line",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = --'x'\n'y'",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = --'\n(SELECT login FROM employees LIMIT 1) OR nspname = --'\n'y'"},
		{"a dollar quote hides a statement",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = $q$'a'$q$",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = $q$'$q$; SELECT login FROM employees; SELECT $q$'$q$"},
		// The decision reads the value: the pinned one passes, no other.
		{"a pinned setting set to its pinned value",
			"SET search_path = 'public'", "SET search_path = 'evil'"},
		{"a pinned encoding set to itself",
			"SET client_encoding = 'UTF8'", "SET client_encoding = 'SJIS'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			warm := rewrite.NewEngine(cat, policy, nil, 100)
			if res, err := warm.Rewrite(ctx, "marie", 'Q', tc.warm); err != nil || res.Rewritten {
				t.Fatalf("the warm-up must be forwarded unchanged: %+v %v", res, err)
			}
			_, got := warm.Rewrite(ctx, "marie", 'Q', tc.probe)
			_, want := rewrite.NewEngine(cat, policy, nil, 100).Rewrite(ctx, "marie", 'Q', tc.probe)
			if got == nil || want == nil {
				t.Fatalf("after the warm-up: %v; cold: %v (want a refusal from both)", got, want)
			}
		})
	}
	for _, tc := range []struct{ name, format string }{
		{"a text of a known shape is served without a parse",
			"SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname = '%d' LIMIT %d"},
		// pgbench's own UPDATE adds a delta of either sign so.
		{"so is one whose numbers the parser negates",
			"SELECT oid + -%d FROM pg_catalog.pg_namespace WHERE oid > - %d"},
		// BI tools put a comment naming the query before each.
		{"so is one with comments",
			"-- BI tool, query 'x'\nSELECT oid /* a /* nested */ one */ FROM pg_catalog.pg_namespace WHERE oid > %d LIMIT %d"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := rewrite.NewEngine(cat, policy, nil, 100)
			for i := 0; i < 50; i++ {
				sql := fmt.Sprintf(tc.format, i, i+1)
				got, err := e.Rewrite(ctx, "marie", 'Q', sql)
				if err != nil || got.SQL != sql {
					t.Fatalf("%s: %+v %v", sql, got, err)
				}
			}
			if hits, misses := e.CacheStats(); hits != 49 || misses != 1 {
				t.Fatalf("hits %d, misses %d", hits, misses)
			}
		})
	}
}

func TestEngineDoesNotCacheHugeTexts(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	huge := "SELECT '" + strings.Repeat("x", 100<<10) + "'"
	for i := 0; i < 2; i++ {
		if _, err := e.Rewrite(context.Background(), "marie", 'Q', huge); err != nil {
			t.Fatal(err)
		}
	}
	if hits, misses := e.CacheStats(); hits != 0 || misses != 2 {
		t.Fatalf("hits %d, misses %d: a 100 KiB text was cached", hits, misses)
	}
}

func TestEngineRewriteCached(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	ctx := context.Background()
	governed := func(i int) string {
		return fmt.Sprintf("SELECT id FROM responses WHERE nps > %d", i)
	}
	t.Run("a statement never seen is left for Rewrite, untouched", func(t *testing.T) {
		e := rewrite.NewEngine(cat, policy, nil, 100)
		if res, ok, err := e.RewriteCached("marie", 'Q', governed(1)); ok || res != nil || err != nil {
			t.Fatalf("got %+v %v %v, want a miss", res, ok, err)
		}
		if hits, misses := e.CacheStats(); hits != 0 || misses != 0 {
			t.Fatalf("hits %d, misses %d: the miss was counted or rewritten", hits, misses)
		}
	})
	t.Run("a template hit gives the rewrite Rewrite gives", func(t *testing.T) {
		warm := func() *rewrite.Engine {
			e := rewrite.NewEngine(cat, policy, nil, 100)
			for i := 0; i < 2; i++ {
				if _, err := e.Rewrite(ctx, "marie", 'Q', governed(i)); err != nil {
					t.Fatal(err)
				}
			}
			return e
		}
		got, ok, err := warm().RewriteCached("marie", 'Q', governed(7))
		if !ok || err != nil {
			t.Fatalf("a statement of a templated shape missed: %v %v", ok, err)
		}
		want, err := warm().Rewrite(ctx, "marie", 'Q', governed(7))
		if err != nil || got.SQL != want.SQL {
			t.Fatalf("cached %q, direct %q (%v)", got.SQL, want.SQL, err)
		}
	})
	t.Run("so does one of a governed UPDATE with negative numbers", func(t *testing.T) {
		env := demoEnvironment(t)
		var lea rewrite.Policy = &grantPolicy{Policy: env.policy(t, "lea"), kinds: map[rewrite.StatementKind]bool{rewrite.KindUpdate: true}}
		policy := func(string) (rewrite.Policy, error) { return lea, nil }
		update := func(i int) string {
			return fmt.Sprintf("UPDATE responses SET comment = 'c%d' WHERE id = -%d", i, i)
		}
		warm := rewrite.NewEngine(env.cat, policy, nil, 100)
		for i := 1; i <= 2; i++ {
			if _, err := warm.Rewrite(ctx, "lea", 'Q', update(i)); err != nil {
				t.Fatal(err)
			}
		}
		for _, i := range []int{7, 0} {
			got, ok, err := warm.RewriteCached("lea", 'Q', update(i))
			want, werr := rewrite.NewEngine(env.cat, policy, nil, 100).Rewrite(ctx, "lea", 'Q', update(i))
			switch {
			case err != nil || werr != nil:
				t.Fatalf("%v %v", err, werr)
			case i == 0 && ok:
				t.Fatalf("-0 was spliced: %s", got.SQL)
			case i != 0 && !ok:
				t.Fatalf("%s: not served from the template", update(i))
			case i != 0 && got.SQL != want.SQL:
				t.Fatalf("%s: cached %q, direct %q", update(i), got.SQL, want.SQL)
			}
		}
	})
	t.Run("a cached refusal is answered from the cache", func(t *testing.T) {
		e := rewrite.NewEngine(cat, policy, nil, 100)
		const sql = "DROP TABLE responses"
		_, want := e.Rewrite(ctx, "marie", 'Q', sql)
		_, ok, got := e.RewriteCached("marie", 'Q', sql)
		if want == nil || !ok || got == nil || got.Error() != want.Error() {
			t.Fatalf("cached %v (%v), direct %v", got, ok, want)
		}
	})
}

func TestEngineBoundsParsing(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	release := rewrite.FillParseSlots(e)
	t.Run("a statement waits for a parse slot, and gives up with its session", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		if _, err := e.Rewrite(ctx, "marie", 'Q', "SELECT name FROM countries"); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("got %v, want the wait to end with the context", err)
		}
	})
	t.Run("a statement the caches answer needs no slot", func(t *testing.T) {
		release()
		if _, err := e.Rewrite(context.Background(), "marie", 'Q', "SELECT name FROM countries"); err != nil {
			t.Fatal(err)
		}
		release = rewrite.FillParseSlots(e)
		defer release()
		if _, err := e.Rewrite(context.Background(), "marie", 'Q', "SELECT name FROM countries"); err != nil {
			t.Fatalf("a cached statement waited for a slot: %v", err)
		}
	})
}

// TestEngineFingerprints: with fingerprints on, statements served from a
// literal shape bring pg_query's fingerprint of their own text, computed
// once for the shape; off, none.
func TestEngineFingerprints(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	ctx := context.Background()
	for _, format := range []string{
		"SELECT nspname FROM pg_catalog.pg_namespace WHERE oid = %d",
		"SELECT nps FROM responses WHERE id = %d",
	} {
		t.Run(format, func(t *testing.T) {
			e := rewrite.NewEngine(cat, policy, nil, 100)
			e.SetFingerprints(true)
			var got []string
			for i := 1; i <= 4; i++ {
				sql := fmt.Sprintf(format, i)
				res, err := e.Rewrite(ctx, "marie", 'Q', sql)
				if err != nil {
					t.Fatal(err)
				}
				if res.Fingerprint != "" {
					want, _ := pg_query.Fingerprint(sql)
					if res.Fingerprint != want {
						t.Fatalf("%s: fingerprint %s, pg_query gives %s", sql, res.Fingerprint, want)
					}
				}
				got = append(got, res.Fingerprint)
			}
			if got[3] == "" {
				t.Errorf("the fourth statement of a shape has no fingerprint: %q", got)
			}
			off := rewrite.NewEngine(cat, policy, nil, 100)
			for i := 1; i <= 4; i++ {
				if res, _ := off.Rewrite(ctx, "marie", 'Q', fmt.Sprintf(format, i)); res.Fingerprint != "" {
					t.Fatalf("fingerprints off: %s", res.Fingerprint)
				}
			}
		})
	}
}

// TestEngineParseShare: a login whose statements hold its share of the
// parse slots waits for its own, while another login's new statement is
// parsed at once.
func TestEngineParseShare(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	release := rewrite.HoldParseSlots(e, "attacker")
	defer release()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := e.Rewrite(ctx, "attacker", 'Q', "SELECT name FROM countries WHERE code = 'a'"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want the attacker's statement to wait for its own", err)
	}
	if _, err := e.Rewrite(context.Background(), "analyst", 'Q', "SELECT name FROM countries WHERE code = 'b'"); err != nil {
		t.Fatal(err)
	}
}

// keyedPolicy is a policy under a key of its own.
type keyedPolicy struct {
	*fakePolicy
	key string
}

func (k keyedPolicy) Key() string { return k.key }

// TestEngineRemembersLongRefusals: the refusal of a text too long for the
// cache is kept under a digest of the text and the policy's key, so that
// the same text sent again is refused without a parse slot; under
// another policy, or passing, it is parsed again.
func TestEngineRemembersLongRefusals(t *testing.T) {
	cat := demoCatalog(t)
	open := marie(t)
	open.access["public.employees"] = rewrite.Access{Mode: rewrite.Open}
	policies := map[string]rewrite.Policy{"marie": marie(t), "open": keyedPolicy{open, "open"}}
	e := rewrite.NewEngine(cat, func(login string) (rewrite.Policy, error) { return policies[login], nil }, nil, 100)
	pad := " -- " + strings.Repeat("x", 70<<10) + "\n"
	refused := "SELECT 1 FROM employees" + pad
	tooComplex := "SELECT 1" + strings.Repeat("+1", 20000) + pad
	passes := "SELECT name FROM countries" + pad
	ctx := context.Background()
	_, ungoverned := e.Rewrite(ctx, "marie", 'Q', refused)
	_, complexity := e.Rewrite(ctx, "marie", 'Q', tooComplex)
	if ungoverned == nil || complexity == nil {
		t.Fatalf("refusals: %v, %v", ungoverned, complexity)
	}
	if _, err := e.Rewrite(ctx, "marie", 'Q', passes); err != nil {
		t.Fatal(err)
	}
	release := rewrite.FillParseSlots(e)
	defer release()
	short := func() context.Context {
		c, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		t.Cleanup(cancel)
		return c
	}
	for _, c := range []struct {
		name, login, sql string
		source           byte
		want             error
	}{
		{"a refusal again, without a slot", "marie", refused, 'Q', ungoverned},
		{"the guard's too", "marie", tooComplex, 'Q', complexity},
		{"not under another policy", "open", refused, 'Q', context.DeadlineExceeded},
		{"nor for a Parse of the same text", "marie", refused, 'P', context.DeadlineExceeded},
		{"nor a text that passed", "marie", passes, 'Q', context.DeadlineExceeded},
		{"nor another text", "marie", refused + " ", 'Q', context.DeadlineExceeded},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := e.Rewrite(short(), c.login, c.source, c.sql)
			if errors.Is(c.want, context.DeadlineExceeded) {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("got %v, want a parse", err)
				}
				return
			}
			if err == nil || err.Error() != c.want.Error() {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	release()
	release = func() {}
	if _, err := e.Rewrite(ctx, "open", 'Q', refused); err != nil {
		t.Fatalf("another policy's refusal was shared: %v", err)
	}
}

// TestEngineRefusesOversizedInline: a text longer than the guard takes
// is refused from RewriteCached, which the proxy's event loop calls
// inline, without a worker or a parse slot.
func TestEngineRefusesOversizedInline(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	release := rewrite.FillParseSlots(e)
	defer release()
	sql := "SELECT 1 FROM " + strings.Repeat("responses, ", 100000) + "employees"
	res, ok, err := e.RewriteCached("marie", 'Q', sql)
	if !ok || res != nil {
		t.Fatalf("answered %v, result %v", ok, res)
	}
	assertComplexity(t, "RewriteCached", err, "longer than")
}

// TestEngineRefusalFingerprints: with fingerprints on, a refusal brings
// pg_query's fingerprint of the refused text, computed once and served
// from the cache with the refusal (the audit writer parsed a long
// refused text a client repeated once per record); off, none. A text
// the guard refuses unparsed has none.
func TestEngineRefusalFingerprints(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	ctx := context.Background()
	long := "SELECT " + strings.TrimSuffix(strings.Repeat("1,", 10000), ",") + " FROM pg_catalog.pg_authid"
	want, err := pg_query.Fingerprint(long)
	if err != nil {
		t.Fatal(err)
	}
	e := rewrite.NewEngine(cat, policy, nil, 100)
	e.SetFingerprints(true)
	for i := range 3 {
		_, err := e.Rewrite(ctx, "marie", 'Q', long)
		var r *rewrite.Refused
		if !errors.As(err, &r) {
			t.Fatalf("%d: %v, want a refusal", i, err)
		}
		if r.Fingerprint != want {
			t.Fatalf("%d: fingerprint %q, want %q", i, r.Fingerprint, want)
		}
	}
	if hits, misses := e.CacheStats(); hits != 2 || misses != 1 {
		t.Errorf("%d hits, %d misses: the refusal was not served from the cache", hits, misses)
	}
	if _, ok, err := e.RewriteCached("marie", 'Q', long); !ok || err == nil || err.(*rewrite.Refused).Fingerprint != want {
		t.Errorf("RewriteCached: %v, %v", ok, err)
	}
	off := rewrite.NewEngine(cat, policy, nil, 100)
	var r *rewrite.Refused
	if _, err := off.Rewrite(ctx, "marie", 'Q', long); !errors.As(err, &r) || r.Fingerprint != "" {
		t.Errorf("fingerprints off: %v, %q", err, r.Fingerprint)
	}
	deep := "SELECT " + strings.Repeat("(", 5000) + "1" + strings.Repeat(")", 5000)
	if _, err := e.Rewrite(ctx, "marie", 'Q', deep); !errors.As(err, &r) || r.Fingerprint != "" {
		t.Errorf("guard: %v, %q", err, r.Fingerprint)
	}
}

// swappingPolicy is marie's policy that, while a statement is being
// rewritten, has the engine take another catalog snapshot (a DBA's DDL
// met by a refresh), once.
type swappingPolicy struct {
	*fakePolicy
	swap func()
}

func (s *swappingPolicy) Relation(r *rewrite.Relation) rewrite.Access {
	if s.swap != nil {
		swap := s.swap
		s.swap = nil
		swap()
	}
	return s.fakePolicy.Relation(r)
}

// TestEngineKeepsNothingOfASnapshotReplacedMidRewrite: a statement
// rewritten on a catalog snapshot that is replaced before the rewrite
// ends is answered, but neither its rewrite nor its relations' subquery
// templates stay in the caches, which the new snapshot emptied: the next
// statement is rewritten on the new one.
func TestEngineKeepsNothingOfASnapshotReplacedMidRewrite(t *testing.T) {
	cat := demoCatalog(t)
	var e *rewrite.Engine
	p := &swappingPolicy{fakePolicy: marie(t)}
	p.swap = func() { e.SetCatalog(cat) }
	e = rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	ctx := context.Background()
	const sql = "SELECT nps FROM responses WHERE id = 7"
	if _, err := e.Rewrite(ctx, "marie", 'Q', sql); err != nil {
		t.Fatal(err)
	}
	_, missesBefore := e.CacheStats()
	if _, err := e.Rewrite(ctx, "marie", 'Q', sql); err != nil {
		t.Fatal(err)
	}
	if _, misses := e.CacheStats(); misses != missesBefore+1 {
		t.Fatalf("the rewrite made on the replaced snapshot was served from the cache (%d misses, want %d)", misses, missesBefore+1)
	}
	_, missesBefore = e.CacheStats()
	if _, err := e.Rewrite(ctx, "marie", 'Q', sql); err != nil {
		t.Fatal(err)
	}
	if _, misses := e.CacheStats(); misses != missesBefore {
		t.Fatalf("the rewrite made on the snapshot in force was not kept (%d misses, want %d)", misses, missesBefore)
	}
}

// TestEngineNewNumberSpelling: the normalised-text cache shares one
// decision among texts that differ in their constants only, but the
// upstream's grammar check (newNumbers) reads a number's spelling, which
// normalisation drops: a warm engine refuses 0X0 and 1_000 as a cold one
// does, after SELECT 0 was forwarded (PostgreSQL 15 upstream).
func TestEngineNewNumberSpelling(t *testing.T) {
	ctx := context.Background()
	env := demoEnvironment(t)
	p := env.policy(t, "marie")
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	for _, c := range []string{"SELECT 0X0", "SELECT 1_000", "SELECT 0 , 0b1"} {
		t.Run(c+" is refused after its normalisation was forwarded", func(t *testing.T) {
			warm := rewrite.NewEngine(env.cat, policy, nil, 100)
			for _, s := range []string{"SELECT 0", "SELECT 1", "SELECT 0 , 1", "SELECT 2 , 3"} {
				if _, err := warm.Rewrite(ctx, "marie", 'Q', s); err != nil {
					t.Fatalf("%s: %v", s, err)
				}
			}
			_, err := warm.Rewrite(ctx, "marie", 'Q', c)
			var r *rewrite.Refused
			if !errors.As(err, &r) || r.Rule != "grammar_version" {
				t.Fatalf("warm engine: %v, want the grammar_version refusal", err)
			}
		})
	}
}
