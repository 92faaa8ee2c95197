package rewrite_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestTemplates runs, for each family of statements of one literal shape,
// two statements through an engine (the second makes the shape's
// template) and then a third, and requires the third to be exactly what a
// cold engine sends for it: a template reproduces the direct rewrite byte
// for byte, or is not used.
func TestTemplates(t *testing.T) {
	env := demoEnvironment(t)
	marie := env.policy(t, "marie")
	policy := func(string) (rewrite.Policy, error) { return marie, nil }
	ctx := context.Background()
	cases := []struct {
		name string
		// texts are three statements of one shape: the third is checked.
		texts [3]string
		// templated: the third statement is served from the template.
		templated bool
	}{
		{"an integer compared with a governed column is spliced, also where the scope copies it",
			[3]string{"SELECT nps FROM responses WHERE id = 1", "SELECT nps FROM responses WHERE id = 2", "SELECT nps FROM responses WHERE id = 123456"}, true},
		{"an integer with leading zeros is written as the deparser writes it",
			[3]string{"SELECT nps FROM responses WHERE id = 1", "SELECT nps FROM responses WHERE id = 2", "SELECT nps FROM responses WHERE id = 007"}, true},
		{"strings keep their doubled quotes",
			[3]string{"SELECT id FROM responses WHERE country = 'a'", "SELECT id FROM responses WHERE country = 'b'", "SELECT id FROM responses WHERE country = 'it''s'"}, true},
		{"a string holding a backslash becomes an E'' string, as the deparser writes it",
			[3]string{"SELECT id FROM responses WHERE country = 'a'", "SELECT id FROM responses WHERE country = 'b'", `SELECT id FROM responses WHERE country = 'a\b''\'`}, true},
		{"numerics keep their token",
			[3]string{"SELECT id FROM responses WHERE nps > 1.5", "SELECT id FROM responses WHERE nps > 2.5", "SELECT id FROM responses WHERE nps > 1e3"}, true},
		{"an integer too large for int4 is a bigint, pushed into the scope like an int4",
			[3]string{"SELECT nps FROM responses WHERE id = 99999999991", "SELECT nps FROM responses WHERE id = 99999999992", "SELECT nps FROM responses WHERE id = 3000000000"}, true},
		{"a decimal is not pushed, and a bigint of the same place is another shape",
			[3]string{"SELECT nps FROM responses WHERE id = 1.5", "SELECT nps FROM responses WHERE id = 2.5", "SELECT nps FROM responses WHERE id = 99999999999"}, false},
		{"LIMIT and OFFSET take the client's numbers",
			[3]string{"SELECT id FROM responses ORDER BY id LIMIT 5 OFFSET 10", "SELECT id FROM responses ORDER BY id LIMIT 6 OFFSET 11", "SELECT id FROM responses ORDER BY id LIMIT 100 OFFSET 0"}, true},
		{"ORDER BY and GROUP BY ordinals are not templated: they name columns, and pg_query leaves them in its normalisation",
			[3]string{"SELECT country, count(*) FROM responses GROUP BY 1 ORDER BY 2", "SELECT country, count(*) FROM responses GROUP BY 1 ORDER BY 1", "SELECT country, count(*) FROM responses GROUP BY 2 ORDER BY 2"}, false},
		{"typed literals are spliced into their cast",
			[3]string{"SELECT id FROM responses WHERE submitted_at > date '2024-01-01'", "SELECT id FROM responses WHERE submitted_at > date '2024-02-01'", "SELECT id FROM responses WHERE submitted_at > date '1999-12-31'"}, true},
		{"a negative number is spliced after its sign, which the parser folds into the constant",
			[3]string{"SELECT id FROM responses WHERE nps > -1", "SELECT id FROM responses WHERE nps > -2", "SELECT id FROM responses WHERE nps > -37"}, true},
		{"but -0 is not, which the deparser writes 0",
			[3]string{"SELECT id FROM responses WHERE nps > -1", "SELECT id FROM responses WHERE nps > -2", "SELECT id FROM responses WHERE nps > -0"}, false},
		{"nor the smallest int8, a numeric alone, which the parser folds into an int8 with its sign",
			[3]string{"SELECT id FROM responses WHERE id > -1e3", "SELECT id FROM responses WHERE id > -2e3", "SELECT id FROM responses WHERE id > -9223372036854775808"}, false},
		{"nor the smallest int4, a bigint alone, which the parser folds into an int4 with its sign",
			[3]string{"SELECT id FROM responses WHERE nps > -3000000000", "SELECT id FROM responses WHERE nps > -3000000001", "SELECT id FROM responses WHERE nps > -2147483648"}, false},
		{"a number after a plus sign keeps its operator",
			[3]string{"SELECT id + 1 FROM responses WHERE nps > +1", "SELECT id + 2 FROM responses WHERE nps > +2", "SELECT id + 0 FROM responses WHERE nps > +0"}, true},
		{"IN lists and several tables",
			[3]string{"SELECT r.id FROM responses r JOIN countries c ON c.name = r.country WHERE r.id IN (1, 2) AND c.code = 'FR'",
				"SELECT r.id FROM responses r JOIN countries c ON c.name = r.country WHERE r.id IN (3, 4) AND c.code = 'DE'",
				"SELECT r.id FROM responses r JOIN countries c ON c.name = r.country WHERE r.id IN (5, 600) AND c.code = 'x''y'"}, true},
		{"a statement whose checks read a constant is not templated: set_config's setting name decides",
			[3]string{"SELECT set_config('work_mem', '1MB', false), nps FROM responses WHERE id = 1",
				"SELECT set_config('work_mem', '2MB', false), nps FROM responses WHERE id = 2",
				"SELECT set_config('work_mem', '4MB', false), nps FROM responses WHERE id = 3"}, false},
		{"statements other than reads, UPDATE and DELETE are not templated",
			[3]string{"COPY (SELECT id FROM responses WHERE id = 1) TO STDOUT", "COPY (SELECT id FROM responses WHERE id = 2) TO STDOUT", "COPY (SELECT id FROM responses WHERE id = 3) TO STDOUT"}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			warm := rewrite.NewEngine(env.cat, policy, nil, 100)
			for _, text := range c.texts[:2] {
				if _, err := warm.Rewrite(ctx, "marie", 'Q', text); err != nil {
					t.Fatalf("%s: %v", text, err)
				}
			}
			hits, _ := warm.CacheStats()
			got, err := warm.Rewrite(ctx, "marie", 'Q', c.texts[2])
			if err != nil {
				t.Fatal(err)
			}
			after, _ := warm.CacheStats()
			want, err := rewrite.Rewrite(c.texts[2], env.cat, marie)
			if err != nil {
				t.Fatal(err)
			}
			// A template gives the deparse-based rewrite byte for byte;
			// a statement served otherwise is spliced, the same
			// statement in meaning.
			if c.templated && got.SQL != want.SQL {
				t.Fatalf("the template gives\n%s\nthe direct rewrite\n%s", got.SQL, want.SQL)
			}
			if same, err := rewrite.SameStatements(got.SQL, want.SQL); err != nil || !same {
				t.Fatalf("the engine gives\n%s\nthe direct rewrite\n%s", got.SQL, want.SQL)
			}
			if !want.Rewritten || !strings.Contains(want.SQL, "OFFSET 0") {
				t.Fatalf("not a rewrite: %s", want.SQL)
			}
			if templated := after > hits; templated != c.templated {
				t.Errorf("served from a template: %v, want %v", templated, c.templated)
			}
		})
	}
}

// TestTemplateTriedOnce: a shape whose template cannot be made is
// rewritten each time, without trying again.
func TestTemplateTriedOnce(t *testing.T) {
	env := demoEnvironment(t)
	marie := env.policy(t, "marie")
	e := rewrite.NewEngine(env.cat, func(string) (rewrite.Policy, error) { return marie, nil }, nil, 100)
	ctx := context.Background()
	for i := 1; i <= 6; i++ {
		res, err := e.Rewrite(ctx, "marie", 'Q', fmt.Sprintf("SELECT id FROM responses WHERE nps > -%d", i))
		if err != nil || !res.Rewritten {
			t.Fatalf("%d: %v %+v", i, err, res)
		}
	}
	if n := rewrite.TemplateTries(e); n != 1 {
		t.Fatalf("%d tries to make the template, want 1", n)
	}
}

// TestTemplatePolicyConstantEqualToASentinel: a constant the policy
// writes into every rewrite (a row rule's `team_id = 1000000000`, a user
// attribute) that equals a template's sentinel must stay fixed text,
// never become a slot that a later statement's literal fills.
func TestTemplatePolicyConstantEqualToASentinel(t *testing.T) {
	rewrite.PinSentinels(t)
	// With the draw pinned, probe 0's int4 sentinels are 1000000000,
	// 1000000001…, probe 1's 1500000000…; bigints start at 10000000000.
	cat := demoCatalog(t)
	ctx := context.Background()
	for _, c := range []struct {
		name, filter string
		texts        []string
	}{
		{"the first probe's, through a relation's template (statements seen once)", "team_id = 1000000000", []string{
			"SELECT id, team_id FROM responses WHERE team_id = 1000000000",
			"SELECT id, team_id FROM responses WHERE team_id = 7",
		}},
		{"the second probe's, through a relation's template", "team_id = 1500000000", []string{
			"SELECT id, team_id FROM responses WHERE team_id = 1500000000",
			"SELECT id, team_id FROM responses WHERE team_id = 7",
		}},
		{"a bigint, through a relation's template", "id < 10000000000", []string{
			"SELECT id FROM responses WHERE id = 10000000000",
			"SELECT id FROM responses WHERE id = 20000000000",
		}},
		{"the second literal's, through a statement's template", "team_id = 1000000001", []string{
			"SELECT id, team_id FROM responses WHERE survey_id <> 3 AND nps <> 5",
			"SELECT id, team_id FROM responses WHERE survey_id <> 3 AND nps <> 1000000001",
			"SELECT id, team_id FROM responses WHERE survey_id <> 3 AND nps <> 7",
			"SELECT id, team_id FROM responses WHERE survey_id <> 4 AND nps <> 8",
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			p := &fakePolicy{
				access: map[string]rewrite.Access{
					"public.responses": {Mode: rewrite.Governed, Filter: expr(t, c.filter), Rules: []string{"r"}},
				},
				kinds: map[rewrite.StatementKind]bool{rewrite.KindSelect: true},
			}
			e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
			for _, text := range c.texts {
				got, err := e.Rewrite(ctx, "u", 'Q', text)
				if err != nil {
					t.Fatalf("%s: %v", text, err)
				}
				// What an engine that saw no other statement sends.
				cold := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
				want, err := cold.Rewrite(ctx, "u", 'Q', text)
				if err != nil {
					t.Fatal(err)
				}
				if got.SQL != want.SQL {
					t.Fatalf("%s: the engine sends\n%s\nfor it alone it sends\n%s", text, got.SQL, want.SQL)
				}
			}
		})
	}
}
