package rewrite_test

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestGrammarVersionServedFromCache: a number only PostgreSQL 16 and
// later read (0X0, 1_000) is refused for an older upstream
// (grammar_version) by an engine that forwarded a statement of the same
// normalisation unchanged before, as by a cold one: pg_query normalises
// both numbers alike, and the upstream would read the client's text
// otherwise (PostgreSQL 13 and 14: 0 AS X0).
func TestGrammarVersionServedFromCache(t *testing.T) {
	env := demoEnvironment(t)
	p := env.policy(t, "marie")
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	for _, tc := range []struct{ before, text string }{
		{"SELECT 0", "SELECT 0X0"},
		{"SELECT 1", "SELECT 0x1F"},
		{"SELECT 7", "SELECT 1_000"},
		{"SELECT name FROM countries WHERE code = 'FR' LIMIT 5", "SELECT name FROM countries WHERE code = 'FR' LIMIT 0b101"},
		{"SELECT name FROM countries LIMIT 5", "SELECT name FROM countries LIMIT 0o17"},
	} {
		t.Run(tc.text+" after "+tc.before, func(t *testing.T) {
			ctx := context.Background()
			if _, err := rewrite.NewEngine(env.cat, policy, nil, 100).Rewrite(ctx, "marie", 'Q', tc.text); !isGrammarVersion(err) {
				t.Fatalf("a cold engine answers %v, want a grammar_version refusal", err)
			}
			warm := rewrite.NewEngine(env.cat, policy, nil, 100)
			for _, src := range []byte{'Q', 'P'} {
				if _, err := warm.Rewrite(ctx, "marie", src, tc.before); err != nil {
					t.Fatalf("%q: %v", tc.before, err)
				}
				if _, err := warm.Rewrite(ctx, "marie", src, tc.text); !isGrammarVersion(err) {
					t.Fatalf("after %q, the engine answers %q with %v, want a grammar_version refusal", tc.before, tc.text, err)
				}
			}
		})
	}
}

func isGrammarVersion(err error) bool {
	var r *rewrite.Refused
	return errors.As(err, &r) && r.Rule == "grammar_version"
}

// TestGrammarWordServedFromCache: a word the upstream's grammar reads
// otherwise (JSON, for PostgreSQL 15) is refused (grammar_version) by an
// engine that forwarded a statement of the same normalisation unchanged
// before, as by a cold one: where SET takes a value, pg_query's
// normalisation replaces the word, as it replaces any constant, so that
// SET datestyle = json normalises as SET datestyle = E'ISO' does.
func TestGrammarWordServedFromCache(t *testing.T) {
	env := demoEnvironment(t)
	if env.cat.Grammar == nil || !slices.Contains(env.cat.Grammar.Words(), "json") {
		t.Skip("the upstream reads JSON as pgveil's parser does")
	}
	p := env.policy(t, "marie")
	policy := func(string) (rewrite.Policy, error) { return p, nil }
	for _, tc := range []struct{ before, text string }{
		{"SET datestyle = E'ISO'", "SET datestyle = json"},
		{"SET xmloption = content", "SET xmloption = json"},
		{"SET LOCAL timezone = E'UTC'", "SET LOCAL timezone = json"},
		{"SET datestyle = E'ISO', E'DMY'", "SET datestyle = iso, json"},
	} {
		t.Run(tc.text+" after "+tc.before, func(t *testing.T) {
			ctx := context.Background()
			if _, err := rewrite.NewEngine(env.cat, policy, nil, 100).Rewrite(ctx, "marie", 'Q', tc.text); !isGrammarVersion(err) {
				t.Fatalf("a cold engine answers %v, want a grammar_version refusal", err)
			}
			warm := rewrite.NewEngine(env.cat, policy, nil, 100)
			for _, src := range []byte{'Q', 'P'} {
				if _, err := warm.Rewrite(ctx, "marie", src, tc.before); err != nil {
					t.Fatalf("%q: %v", tc.before, err)
				}
				if _, err := warm.Rewrite(ctx, "marie", src, tc.text); !isGrammarVersion(err) {
					t.Fatalf("after %q, the engine answers %q with %v, want a grammar_version refusal", tc.before, tc.text, err)
				}
			}
		})
	}
}
