package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestRev21gOperatorClassesThroughPgveil: a DBA's default btree and hash
// operator classes over a DBA's enum type run their support functions
// when a statement sorts, groups or de-duplicates a column of the type,
// with no operator in the statement; through pgveil such a statement is
// refused unless the role may call them.
func TestRev21gOperatorClassesThroughPgveil(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	drop := `DROP SCHEMA IF EXISTS rev21g CASCADE`
	for _, sql := range []string{drop,
		`CREATE SCHEMA rev21g`,
		`CREATE TYPE rev21g.mood AS ENUM ('calm', 'cross')`,
		`CREATE FUNCTION rev21g.cmp(rev21g.mood, rev21g.mood) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
		  $$BEGIN RAISE EXCEPTION 'MARKER %', (SELECT string_agg(email, ',') FROM public.responses); END$$`,
		`CREATE FUNCTION rev21g.hash(rev21g.mood) RETURNS int LANGUAGE plpgsql IMMUTABLE AS
		  $$BEGIN RAISE EXCEPTION 'MARKER %', (SELECT string_agg(email, ',') FROM public.responses); END$$`,
		`CREATE FUNCTION rev21g.eq(rev21g.mood, rev21g.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1::text = $2::text'`,
		`CREATE FUNCTION rev21g.lt(rev21g.mood, rev21g.mood) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT $1::text < $2::text'`,
		`CREATE OPERATOR rev21g.=~ (leftarg = rev21g.mood, rightarg = rev21g.mood, function = rev21g.eq)`,
		`CREATE OPERATOR rev21g.<~ (leftarg = rev21g.mood, rightarg = rev21g.mood, function = rev21g.lt)`,
		`CREATE OPERATOR CLASS rev21g.btree_ops DEFAULT FOR TYPE rev21g.mood USING btree AS
		  OPERATOR 1 rev21g.<~, OPERATOR 3 rev21g.=~, FUNCTION 1 rev21g.cmp(rev21g.mood, rev21g.mood)`,
		`CREATE OPERATOR CLASS rev21g.hash_ops DEFAULT FOR TYPE rev21g.mood USING hash AS
		  OPERATOR 1 rev21g.=~, FUNCTION 1 rev21g.hash(rev21g.mood)`,
		`CREATE TABLE rev21g.moods (id int, m rev21g.mood)`,
		`INSERT INTO rev21g.moods VALUES (1, 'calm'), (2, 'cross')`,
		`GRANT USAGE ON SCHEMA rev21g TO pgveil_svc`,
		`GRANT SELECT ON rev21g.moods TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	schema := func(cfg *policy.Config) {
		cfg.Schemas["rev21g"] = &policy.Schema{Name: "rev21g", Allow: true}
	}
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, schema)
	conn := p.Connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"ORDER BY the column is refused", `SELECT m FROM rev21g.moods ORDER BY m`},
		{"DISTINCT on the column is refused", `SELECT DISTINCT m FROM rev21g.moods`},
		{"GROUP BY the column is refused", `SELECT m, count(*) FROM rev21g.moods GROUP BY m`},
		{"a window partitioned by the column is refused", `SELECT count(*) OVER (PARTITION BY m) FROM rev21g.moods`},
		{"a VALUES list of the type sorted is refused", `SELECT x FROM (VALUES ('calm'::rev21g.mood), ('cross')) v (x) ORDER BY x`},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := proxytest.Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %.160s\nwant a refusal (42501): the class's function reads every row as the service account", c.sql, got)
			}
		})
	}
}
