package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestTransactionPoolDeallocateAll: DEALLOCATE ALL, in a Query and as the
// unnamed statement of the extended protocol (psycopg 3 sends it so after
// a rollback), drops the session's statements, and the backend's: a
// statement of another session on that backend is prepared there again
// when used. Skipped after an error, it drops none. With one backend,
// both sessions take the same one.
func TestTransactionPoolDeallocateAll(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolDeallocateAll)
}

func testTransactionPoolDeallocateAll(t *testing.T, relay string) {
	p := startPooled(t, relay, 1, 5*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	a, b := p.SimpleConn(t, "hq").PgConn(), p.SimpleConn(t, "marie").PgConn()
	const q = "SELECT count(*) FROM responses"
	var pe *pgconn.PgError
	exec := func(c *pgconn.PgConn, sql string) error { _, err := c.Exec(ctx, sql).ReadAll(); return err }
	extended := func(c *pgconn.PgConn, sql string) error { return c.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err }
	prepare := func(t *testing.T, c *pgconn.PgConn, name string) {
		t.Helper()
		if _, err := c.Prepare(ctx, name, q, nil); err != nil {
			t.Fatalf("preparing %s: %v", name, err)
		}
	}
	run := func(c *pgconn.PgConn, name string) error {
		return c.ExecPrepared(ctx, name, nil, nil, nil).Read().Err
	}
	works := func(t *testing.T, c *pgconn.PgConn, name, when string) {
		t.Helper()
		if err := run(c, name); err != nil {
			t.Fatalf("%s: %s: %v", when, name, err)
		}
	}
	gone := func(t *testing.T, c *pgconn.PgConn, name, when string) {
		t.Helper()
		err := run(c, name)
		if !errors.As(err, &pe) || pe.Code != "26000" || pe.Message != `prepared statement "`+name+`" does not exist` {
			t.Fatalf("%s: %s: want 26000 naming it, got %v", when, name, err)
		}
	}
	prepare(t, b, "other")
	works(t, b, "other", "before")
	for _, way := range []struct {
		name string
		send func() error
	}{
		{"a Query", func() error { return exec(a, "DEALLOCATE ALL") }},
		{"a Query with transaction control", func() error { return exec(a, "BEGIN; DEALLOCATE PREPARE ALL; COMMIT") }},
		{"the extended protocol", func() error { return extended(a, "DEALLOCATE ALL") }},
		{"the extended protocol after a ROLLBACK, as psycopg 3", func() error {
			must(t, extended(a, "BEGIN"))
			works(t, a, "s1", "in the block")
			must(t, extended(a, "ROLLBACK"))
			return extended(a, "DEALLOCATE ALL")
		}},
	} {
		prepare(t, a, "s1")
		prepare(t, a, "s2")
		works(t, a, "s1", way.name)
		works(t, b, "other", way.name)
		if err := way.send(); err != nil {
			t.Fatalf("DEALLOCATE ALL in %s: %v", way.name, err)
		}
		gone(t, a, "s1", "after DEALLOCATE ALL in "+way.name)
		gone(t, a, "s2", "after DEALLOCATE ALL in "+way.name)
		// Prepared again on the backend, where the name is free again.
		works(t, b, "other", "another session's, after DEALLOCATE ALL in "+way.name)
		prepare(t, a, "s1")
		works(t, a, "s1", "prepared again after DEALLOCATE ALL in "+way.name)
		works(t, b, "other", "again")
		must(t, exec(a, "DEALLOCATE s1"))
	}

	prepare(t, a, "s1")
	works(t, a, "s1", "kept")
	t.Run("skipped after an error, it drops nothing", func(t *testing.T) {
		must(t, exec(a, "BEGIN"))
		if err := exec(a, "ROLLBACK TO SAVEPOINT nope; DEALLOCATE ALL"); !errors.As(err, &pe) || pe.Code != "3B001" {
			t.Fatalf("want 3B001, got %v", err)
		}
		must(t, exec(a, "ROLLBACK"))
		works(t, a, "s1", "after a DEALLOCATE ALL skipped")
		works(t, b, "other", "after a DEALLOCATE ALL skipped")
		// Again, the statements prepared on the backend first.
		works(t, b, "other", "b first")
		must(t, exec(a, "BEGIN"))
		if err := exec(a, "ROLLBACK TO SAVEPOINT nope; DEALLOCATE ALL"); !errors.As(err, &pe) || pe.Code != "3B001" {
			t.Fatalf("want 3B001, got %v", err)
		}
		must(t, exec(a, "ROLLBACK"))
		works(t, b, "other", "after a DEALLOCATE ALL skipped, b first")
		works(t, a, "s1", "after a DEALLOCATE ALL skipped, b first")
	})
	t.Run("refused but alone, outside a failed block, with nothing in flight", func(t *testing.T) {
		refused := func(what string, err error) {
			t.Helper()
			if !errors.As(err, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "transaction_pooling") {
				t.Fatalf("%s: want a transaction_pooling refusal, got %v", what, err)
			}
		}
		_, err := a.Prepare(ctx, "named", "DEALLOCATE ALL", nil)
		refused("a named statement", err)
		refused("with another DEALLOCATE", exec(a, "DEALLOCATE ALL; DEALLOCATE s1"))
		refused("with another statement", exec(a, "DEALLOCATE ALL; SELECT 1"))
		must(t, exec(a, "BEGIN"))
		if err := exec(a, "SELECT 1/0"); !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatal(err)
		}
		// In an aborted block the refusal's marker fails as any
		// statement does there (25P02).
		for _, err := range []error{exec(a, "DEALLOCATE ALL"), extended(a, "DEALLOCATE ALL")} {
			if !errors.As(err, &pe) || pe.Code != "25P02" && pe.Code != "0A000" {
				t.Fatalf("in a failed block: want 25P02 (or a refusal), got %v", err)
			}
		}
		must(t, exec(a, "ROLLBACK"))
		works(t, a, "s1", "after the refusals")
		works(t, b, "other", "after the refusals")
	})
	t.Run("a Parse pipelined after it prepares a new statement", func(t *testing.T) {
		pipe := a.StartPipeline(ctx)
		pipe.SendQueryParams("DEALLOCATE ALL", nil, nil, nil, nil)
		pipe.SendPrepare("s1", q, nil)
		pipe.SendQueryPrepared("s1", nil, nil, nil)
		if err := pipe.Sync(); err != nil {
			t.Fatal(err)
		}
		for {
			res, err := pipe.GetResults()
			if err != nil {
				t.Fatal(err)
			}
			if rr, ok := res.(*pgconn.ResultReader); ok {
				if _, err := rr.Close(); err != nil {
					t.Fatal(err)
				}
			}
			if _, ok := res.(*pgconn.PipelineSync); ok {
				break
			}
		}
		if err := pipe.Close(); err != nil {
			t.Fatal(err)
		}
		works(t, a, "s1", "prepared after DEALLOCATE ALL in its pipeline")
		works(t, b, "other", "after the pipeline")
	})
	t.Run("after a ROLLBACK in its batch, as psycopg 3's pipeline mode", func(t *testing.T) {
		// pipeline sends each statement as the unnamed statement, with
		// one Sync, and returns the first error.
		pipeline := func(sqls ...string) error {
			pipe := a.StartPipeline(ctx)
			for _, sql := range sqls {
				pipe.SendQueryParams(sql, nil, nil, nil, nil)
			}
			if err := pipe.Sync(); err != nil {
				t.Fatal(err)
			}
			var first error
			for {
				res, err := pipe.GetResults()
				if err != nil && first == nil {
					first = err
				}
				if rr, ok := res.(*pgconn.ResultReader); ok {
					if _, err := rr.Close(); err != nil && first == nil {
						first = err
					}
				}
				if _, ok := res.(*pgconn.PipelineSync); ok || err != nil && res == nil {
					break
				}
			}
			if err := pipe.Close(); err != nil && first == nil {
				first = err
			}
			return first
		}
		must(t, exec(a, "DEALLOCATE s1"))
		prepare(t, a, "s1")
		must(t, exec(a, "BEGIN"))
		works(t, a, "s1", "in the block")
		works(t, a, "s1", "in the block")
		must(t, pipeline("ROLLBACK", "DEALLOCATE ALL"))
		gone(t, a, "s1", "after ROLLBACK and DEALLOCATE ALL in one batch")
		works(t, b, "other", "another session's, after ROLLBACK and DEALLOCATE ALL in one batch")
		prepare(t, a, "s1")
		works(t, a, "s1", "prepared again")

		// In a failed block, after the ROLLBACK that ends it.
		must(t, exec(a, "BEGIN"))
		works(t, a, "s1", "in the block")
		if err := exec(a, "SELECT 1/0"); !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatal(err)
		}
		must(t, pipeline("ROLLBACK", "DEALLOCATE ALL"))
		gone(t, a, "s1", "after ROLLBACK and DEALLOCATE ALL in one batch, in a failed block")
		works(t, b, "other", "another session's, after ROLLBACK and DEALLOCATE ALL in a failed block")
		prepare(t, a, "s1")
		// In a failed block, after a statement that does not end it:
		// the server fails it, and nothing is dropped.
		must(t, exec(a, "BEGIN"))
		works(t, a, "s1", "in the block")
		if err := exec(a, "SELECT 1/0"); !errors.As(err, &pe) || pe.Code != "22012" {
			t.Fatal(err)
		}
		if err := pipeline("SELECT 1", "DEALLOCATE ALL"); !errors.As(err, &pe) || pe.Code != "25P02" {
			t.Fatalf("want 25P02, got %v", err)
		}
		must(t, exec(a, "ROLLBACK"))
		works(t, a, "s1", "after a DEALLOCATE ALL failed in a failed block")
		works(t, b, "other", "after a DEALLOCATE ALL failed in a failed block")

		// Skipped after an error ahead of it in its batch: nothing dropped.
		must(t, exec(a, "BEGIN"))
		works(t, a, "s1", "in the block")
		if err := pipeline("ROLLBACK TO SAVEPOINT nope", "DEALLOCATE ALL"); !errors.As(err, &pe) || pe.Code != "3B001" {
			t.Fatalf("want 3B001, got %v", err)
		}
		must(t, exec(a, "ROLLBACK"))
		works(t, a, "s1", "after a DEALLOCATE ALL skipped in a pipeline")
		works(t, b, "other", "after a DEALLOCATE ALL skipped in a pipeline")

		// A named statement prepared ahead of it in its batch: refused.
		pipe := a.StartPipeline(ctx)
		pipe.SendPrepare("s3", q, nil)
		pipe.SendQueryParams("DEALLOCATE ALL", nil, nil, nil, nil)
		if err := pipe.Sync(); err != nil {
			t.Fatal(err)
		}
		var refusal error
		for {
			res, err := pipe.GetResults()
			if err != nil && refusal == nil {
				refusal = err
			}
			if rr, ok := res.(*pgconn.ResultReader); ok {
				if _, err := rr.Close(); err != nil && refusal == nil {
					refusal = err
				}
			}
			if _, ok := res.(*pgconn.PipelineSync); ok {
				break
			}
		}
		if err := pipe.Close(); err != nil && refusal == nil {
			refusal = err
		}
		if !errors.As(refusal, &pe) || pe.Code != "0A000" || !strings.Contains(pe.Message, "transaction_pooling") {
			t.Fatalf("after a Parse of a named statement in its batch: want a transaction_pooling refusal, got %v", refusal)
		}
		works(t, a, "s1", "after the refusal")
		works(t, a, "s3", "prepared ahead of the refusal")
		works(t, b, "other", "after the refusal")
	})
}
