package proxy_test

import (
	"context"
	"errors"
	"strconv"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
)

// TestAdversarialStaleScopeColumn renames the column marie's row scope
// reads (responses.country) upstream, behind pgveil's back: its catalog
// snapshot, read at start and not again for an hour, still has the
// column. The scoped subquery must then fail, never let the name resolve
// to a column of that name of marie's own outer query, which let every
// country's responses through (a red team read 3004 rows instead of
// France's 1171, and another country's row by id).
func TestAdversarialStaleScopeColumn(t *testing.T) {
	proxytest.SetupDemo(t)
	const db = "feedback_stale"
	ctx := context.Background()
	// A database of its own: the rename must not reach other tests.
	if err := proxytest.Cluster.LoadDemo(ctx, "../testdata/demo", db, "demo-service-account"); err != nil {
		t.Fatalf("loading the demo database %s: %v", db, err)
	}
	t.Cleanup(func() {
		// After the proxy's shutdown (cleanups run last in, first out).
		_ = proxytest.Cluster.Exec(context.Background(), "postgres", "DROP DATABASE IF EXISTS "+db+" WITH (FORCE)")
	})
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(cfg *policy.Config) {
		cfg.Upstream.Database, cfg.Listen.Database = db, db
		cfg.Upstream.CatalogRefresh = time.Hour
	})
	superuser := func(sql string) [][]string {
		t.Helper()
		c, err := proxytest.Cluster.Connect(ctx, db)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		return proxytest.TextRows(t, sql, c.ExecParams(ctx, sql, nil, nil, nil, nil).Read())
	}
	france := superuser("SELECT count(*) FROM responses WHERE country = 'France'")[0][0]
	all := superuser("SELECT count(*) FROM responses")[0][0]
	other := superuser("SELECT min(id) FROM responses WHERE country <> 'France'")[0][0]
	if france == all || france == "0" {
		t.Fatalf("France has %s of %s responses: the test proves nothing", france, all)
	}

	c := p.Connect(t, "marie")
	count := "SELECT (SELECT count(*) FROM responses) FROM (SELECT 'France'::text AS country) x"
	byID := "SELECT r.id, r.country FROM (SELECT 'France'::text AS country) x CROSS JOIN LATERAL (SELECT * FROM responses) r WHERE r.id = " + other
	// Before the rename: the scope holds.
	if got := proxytest.Through(t, c, count)[0][0]; got != france {
		t.Fatalf("before the rename, marie counts %s responses, want %s", got, france)
	}
	if got := proxytest.Through(t, c, byID); len(got) != 0 {
		t.Fatalf("before the rename, marie reads response %s of another country: %v", other, got)
	}

	superuser("ALTER TABLE responses RENAME COLUMN country TO country_name")

	// leaked runs sql as marie and reports the rows it gave, or that it
	// failed as it should: upstream (42703, a column that does not
	// exist) or refused by pgveil, which may have read the catalog again
	// after the first failure.
	run := func(name, sql string, simple bool) (rows [][]string, failed bool) {
		t.Helper()
		var res []*pgconn.Result
		var err error
		if simple {
			res, err = c.PgConn().Exec(ctx, sql).ReadAll()
		} else {
			r := c.PgConn().ExecParams(ctx, sql, nil, nil, nil, nil).Read()
			res, err = []*pgconn.Result{r}, r.Err
		}
		if err != nil {
			var pe *pgconn.PgError
			if !errors.As(err, &pe) {
				t.Fatalf("%s: %v", name, err)
			}
			t.Logf("%s: %s %s", name, pe.Code, pe.Message)
			return nil, true
		}
		for _, r := range res {
			for _, row := range r.Rows {
				var s []string
				for _, v := range row {
					s = append(s, string(v))
				}
				rows = append(rows, s)
			}
		}
		return rows, false
	}
	for _, simple := range []bool{false, true, true} {
		proto := "extended"
		if simple {
			proto = "simple"
		}
		t.Run("count/"+proto, func(t *testing.T) {
			rows, failed := run("count", count, simple)
			if failed {
				return
			}
			if n, _ := strconv.Atoi(rows[0][0]); n > 0 {
				t.Errorf("with the scope's column renamed, marie counts %s responses (France has %s, all %s)", rows[0][0], france, all)
			}
		})
		t.Run("by id/"+proto, func(t *testing.T) {
			if rows, failed := run("by id", byID, simple); !failed && len(rows) > 0 {
				t.Errorf("with the scope's column renamed, marie reads response %s of another country: %v", other, rows)
			}
		})
		t.Run("outer FROM item named like the table/"+proto, func(t *testing.T) {
			sql := "SELECT (SELECT count(*) FROM responses) FROM (SELECT 'France'::text AS country) responses"
			rows, failed := run("outer named responses", sql, simple)
			if failed {
				return
			}
			if n, _ := strconv.Atoi(rows[0][0]); n > 0 {
				t.Errorf("with the scope's column renamed, marie counts %s responses", rows[0][0])
			}
		})
	}
}
