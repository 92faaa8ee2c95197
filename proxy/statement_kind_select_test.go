package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

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
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = []rewrite.StatementKind{rewrite.KindInsert}
		c.Roles["central_analyst"].Statements = []rewrite.StatementKind{rewrite.KindCopyOut}
	})
	ctx := context.Background()

	t.Run("a role without select is refused a read of a governed table", func(t *testing.T) {
		c := p.Connect(t, "marie")
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
		c := p.Connect(t, "marie")
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

	t.Run("a role without select still describes governed tables in psql", func(t *testing.T) {
		for _, cmd := range []string{`\d responses`, `\d+ responses`, `\dt`, `\dv`} {
			out, err := psql(t, p.URL("marie", "demo-marie", nil), "-c", cmd)
			if err != nil {
				t.Errorf("%s: %v: %s", cmd, err, out)
			}
		}
	})

	t.Run("a role with copy_out alone copies a governed table out but does not select it", func(t *testing.T) {
		c := p.Connect(t, "hq")
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
		c := p.Connect(t, "paul")
		if _, err := c.Exec(ctx, "SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
	})
}

// TestWritesReadingGovernedTablesNeedSelect holds writes to PostgreSQL's
// own rule: an UPDATE or DELETE needs SELECT on the columns its WHERE, SET
// values and RETURNING read. A role listing update or delete but not
// select otherwise reads every row its rules grant: RETURNING * hands the
// rows back, and the row count of DELETE … WHERE email LIKE 'a%' (or of an
// UPDATE rolled back) answers any question about them.
func TestWritesReadingGovernedTablesNeedSelect(t *testing.T) {
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Roles["central_analyst"].Statements = []rewrite.StatementKind{
			rewrite.KindInsert, rewrite.KindUpdate, rewrite.KindDelete}
	})
	ctx := context.Background()
	c := p.Connect(t, "hq")

	t.Run("a write that reads the table is refused a role without select", func(t *testing.T) {
		for _, sql := range []string{
			"DELETE FROM responses WHERE score > 3",
			"DELETE FROM responses WHERE id = 1",
			"DELETE FROM responses RETURNING *",
			"DELETE FROM responses r WHERE EXISTS (SELECT WHERE r.score > 3)",
			"UPDATE responses SET score = 1 WHERE score > 3",
			"UPDATE responses SET score = score + 1",
			"UPDATE responses SET score = CASE WHEN score > 3 THEN 1/0 ELSE 1 END",
			"UPDATE responses SET score = 1 RETURNING id, score",
			"UPDATE responses SET score = 1 RETURNING 1",
			"INSERT INTO responses (score) VALUES (1) RETURNING id",
		} {
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			_, err := c.Exec(ctx, sql)
			if _, rerr := c.Exec(ctx, "ROLLBACK"); rerr != nil {
				t.Fatal(rerr)
			}
			if err == nil {
				t.Fatalf("%s: not refused", sql)
			}
			refusedBy(t, err, "statement_kind")
			if !strings.Contains(err.Error(), `lists "select"`) {
				t.Errorf("%s: the refusal does not say what to list: %v", sql, err)
			}
		}
	})

	t.Run("a write that reads nothing of the table runs without select", func(t *testing.T) {
		for _, sql := range []string{
			"UPDATE responses SET score = 1",
			"DELETE FROM responses",
		} {
			if _, err := c.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			_, err := c.Exec(ctx, sql)
			if _, rerr := c.Exec(ctx, "ROLLBACK"); rerr != nil {
				t.Fatal(rerr)
			}
			if err != nil {
				t.Errorf("%s: %v", sql, err)
			}
		}
	})
}

// TestSelectKindHeldOnEveryReadPath: the select statement kind holds on
// the other ways a statement reads a governed table — writes' queries,
// cursors, prepared statements, the extended protocol, a whole-row
// reference, LATERAL — and behind the caches: a literal shape rewritten
// for a login with select is never served to one without (the cache is
// keyed by the compiled policy), nor to a BI service acting for one.
func TestSelectKindHeldOnEveryReadPath(t *testing.T) {
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = []rewrite.StatementKind{rewrite.KindInsert, rewrite.KindUpdate}
	})
	ctx := context.Background()

	t.Run("every read path of a governed table is refused a role without select", func(t *testing.T) {
		c := p.Connect(t, "marie")
		for _, sql := range []string{
			"INSERT INTO responses (score) SELECT score FROM responses",
			"UPDATE responses SET score = 1 WHERE 1 IN (SELECT 1 FROM responses)",
			"UPDATE responses SET score = 1 WHERE EXISTS (SELECT FROM countries)",
			"SELECT r FROM responses r",
			"SELECT * FROM countries c, LATERAL (SELECT score FROM responses WHERE country = c.code) x",
			"EXPLAIN SELECT * FROM responses",
			"DECLARE c CURSOR WITH HOLD FOR SELECT * FROM responses",
			"PREPARE p AS SELECT count(*) FROM responses",
		} {
			_, err := c.PgConn().Exec(ctx, sql).ReadAll()
			if err == nil {
				t.Fatalf("%s: not refused", sql)
			}
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Errorf("%s: want a 42501 refusal, got %v", sql, err)
			}
		}
		if err := c.PgConn().ExecParams(ctx, "SELECT count(*) FROM responses WHERE score > $1", [][]byte{[]byte("1")}, nil, nil, nil).Read().Err; err == nil {
			t.Error("the extended protocol read responses")
		}
	})

	t.Run("a shape rewritten for a login with select is refused a login without", func(t *testing.T) {
		paul, marie := p.Connect(t, "paul"), p.Connect(t, "marie")
		for _, v := range []string{"1", "2", "3"} {
			if _, err := paul.Exec(ctx, "SELECT count(*) FROM responses WHERE score > "+v); err != nil {
				t.Fatal(err)
			}
			if _, err := paul.Exec(ctx, "SELECT count(*) FROM responses WHERE score > $1", v); err != nil {
				t.Fatal(err)
			}
		}
		_, err := marie.Exec(ctx, "SELECT count(*) FROM responses WHERE score > 4")
		refusedBy(t, err, "statement_kind")
		_, err = marie.Exec(ctx, "SELECT count(*) FROM responses WHERE score > $1", 4)
		refusedBy(t, err, "statement_kind")
	})

	t.Run("a BI service acting for a user without select reads as that user", func(t *testing.T) {
		a := actConn{c: p.Connect(t, "metabase")}
		must(t, a.exec("SET ROLE hq"))
		a.responses(t)
		must(t, a.exec("SET ROLE marie"))
		if err := a.exec("SELECT count(*) FROM responses"); err == nil {
			t.Error("acting for marie, the service read responses (simple protocol)")
		}
		if err := a.execExtended("SELECT count(*) FROM responses"); err == nil {
			t.Error("acting for marie, the service read responses (extended protocol)")
		}
	})
}

// TestSelectKindHeldInPooledSessions: sessions sharing pooled upstream
// connections are checked each for its own login.
func TestSelectKindHeldInPooledSessions(t *testing.T) {
	p, _ := proxytest.StartDemoWith(t, proxytest.PooledDemo(t, 1), func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = []rewrite.StatementKind{rewrite.KindInsert}
	})
	ctx := context.Background()
	paul, marie := p.Connect(t, "paul"), p.Connect(t, "marie")
	for i := 0; i < 2; i++ {
		if _, err := paul.Exec(ctx, "SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
		_, err := marie.Exec(ctx, "SELECT count(*) FROM responses")
		refusedBy(t, err, "statement_kind")
	}
}
