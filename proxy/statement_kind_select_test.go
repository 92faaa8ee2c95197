package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestReadingGovernedTablesNeedsSelect holds the role's statements to
// what the docs say they are: the statement kinds a role may run on
// governed tables (every table with a block, reference tables too),
// reads included. A role listing only writes — an ingestion service,
// given a rule of every row so that it may INSERT — reads no governed
// table.
func TestReadingGovernedTablesNeedsSelect(t *testing.T) {
	p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = []rewrite.StatementKind{rewrite.KindInsert}
		c.Roles["central_analyst"].Statements = []rewrite.StatementKind{rewrite.KindCopyOut}
	})
	ctx := context.Background()

	t.Run("a role without select is refused a read of a governed table", func(t *testing.T) {
		c := p.connect(t, "marie")
		for _, sql := range []string{
			"SELECT count(*) FROM responses",
			"SELECT count(*) FROM countries",
			"SELECT 1 WHERE EXISTS (SELECT FROM responses)",
			"WITH r AS (SELECT * FROM responses) SELECT count(*) FROM r",
			"TABLE responses",
		} {
			_, err := c.Exec(ctx, sql)
			refusedBy(t, err, "statement_kind")
			if !strings.Contains(err.Error(), `lists "select"`) {
				t.Errorf("%s: the refusal does not say what to list: %v", sql, err)
			}
		}
	})

	t.Run("a role without select still reads the catalog", func(t *testing.T) {
		c := p.connect(t, "marie")
		for _, sql := range []string{
			"SELECT count(*) FROM pg_catalog.pg_class WHERE relname = 'responses'",
			"SELECT count(*) FROM pg_catalog.pg_attribute WHERE attrelid = 'responses'::regclass",
			"SELECT count(*) FROM information_schema.columns WHERE table_name = 'responses'",
		} {
			if _, err := c.Exec(ctx, sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})

	t.Run("a role with copy_out alone copies a governed table out but does not select it", func(t *testing.T) {
		c := p.connect(t, "hq")
		for _, sql := range []string{
			"COPY responses (id) TO STDOUT",
			"COPY (SELECT id FROM responses) TO STDOUT",
		} {
			if _, err := c.PgConn().CopyTo(ctx, &strings.Builder{}, sql); err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
		_, err := c.Exec(ctx, "SELECT count(*) FROM responses")
		refusedBy(t, err, "statement_kind")
	})

	t.Run("a role with select reads as before", func(t *testing.T) {
		c := p.connect(t, "paul")
		if _, err := c.Exec(ctx, "SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
	})
}
