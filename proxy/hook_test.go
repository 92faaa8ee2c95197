package proxy_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// wordRewriter refuses statements containing "forbidden" and replaces
// the text "SELECT 'before'" with "SELECT 'after'".
type wordRewriter struct {
	mu   sync.Mutex
	seen []proxy.Statement
}

func (w *wordRewriter) Rewrite(_ context.Context, s *proxy.SessionInfo, st *proxy.Statement) (*rewrite.Result, error) {
	w.mu.Lock()
	w.seen = append(w.seen, *st)
	w.mu.Unlock()
	if strings.Contains(st.Text, "forbidden") {
		return nil, &proxy.Refusal{Message: "refused by test rule", Hint: "do not say forbidden"}
	}
	if strings.Contains(st.Text, "broken") {
		return nil, errors.New("internal failure that must not reach the client")
	}
	out := strings.ReplaceAll(st.Text, "SELECT 'before'", "SELECT 'after'")
	return &rewrite.Result{SQL: out, Rewritten: out != st.Text}, nil
}

func TestStatementHook(t *testing.T) {
	rw := &wordRewriter{}
	p := proxytest.StartProxy(t, proxytest.WithRewriter(rw))
	ctx := context.Background()
	c := p.Connect(t, "alice")
	refused := func(t *testing.T, err error, code string) {
		t.Helper()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != code {
			t.Fatalf("want %s, got %v", code, err)
		}
		if strings.Contains(pgErr.Message, "pgveil_refused") || strings.Contains(pgErr.Message, "does not exist") {
			t.Fatalf("marker leaked: %q", pgErr.Message)
		}
	}

	t.Run("a rewritten simple query returns the rewritten result", func(t *testing.T) {
		var s string
		if err := c.QueryRow(ctx, "SELECT 'before'", pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil || s != "after" {
			t.Fatalf("%q %v", s, err)
		}
	})
	t.Run("a rewritten extended query returns the rewritten result", func(t *testing.T) {
		var s string
		if err := c.QueryRow(ctx, "SELECT 'before' WHERE $1::int = 1", 1).Scan(&s); err != nil || s != "after" {
			t.Fatalf("%q %v", s, err)
		}
	})
	t.Run("a refused simple query gets the refusal and the session stays usable", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELECT 'forbidden'", pgx.QueryExecModeSimpleProtocol)
		refused(t, err, "42501")
		var pgErr *pgconn.PgError
		errors.As(err, &pgErr)
		if pgErr.Message != "refused by test rule" || pgErr.Hint != "do not say forbidden" {
			t.Fatalf("refusal fields: %+v", pgErr)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a refused Parse gets the refusal", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELECT $1::text || 'forbidden'", "x")
		refused(t, err, "42501")
		if err := c.Ping(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an unexpected hook error is refused without detail", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELECT 'broken'")
		refused(t, err, "42501")
		if strings.Contains(err.Error(), "internal failure") {
			t.Fatalf("hook error leaked: %v", err)
		}
	})
	t.Run("a refusal aborts the transaction like any error", func(t *testing.T) {
		tx, err := c.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		_, err = tx.Exec(ctx, "SELECT 'forbidden'")
		refused(t, err, "42501")
		_, err = tx.Exec(ctx, "SELECT 1")
		refused(t, err, "25P02")
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a refusal inside a pipeline answers in place and skips to Sync", func(t *testing.T) {
		pl := c.PgConn().StartPipeline(ctx)
		pl.SendQueryParams("SELECT 1", nil, nil, nil, nil)
		pl.SendQueryParams("SELECT 'forbidden'", nil, nil, nil, nil)
		pl.SendQueryParams("SELECT 3", nil, nil, nil, nil)
		_ = pl.Sync()
		pl.SendQueryParams("SELECT 4", nil, nil, nil, nil)
		_ = pl.Sync()
		got := pipelineOutcomes(t, pl, 2)
		if want := "row 1,error 42501,sync,row 4,sync"; strings.Join(got, ",") != want {
			t.Fatalf("got %v, want %s", got, want)
		}
		_ = pl.Close()
	})
	t.Run("a multi-statement query stops at the refusal", func(t *testing.T) {
		mrr := c.PgConn().Exec(ctx, "SELECT 'forbidden'; SELECT 2")
		_, err := mrr.ReadAll()
		refused(t, err, "42501")
	})
	t.Run("a client cannot forge a refusal marker", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELECT FROM pg_catalog.pgveil_refused_00_1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
			t.Fatalf("want the server's own 42P01, got %v", err)
		}
	})
	t.Run("the hook sees Query and Parse sources with statement names", func(t *testing.T) {
		rw.mu.Lock()
		rw.seen = nil
		rw.mu.Unlock()
		if _, err := c.Prepare(ctx, "named_one", "SELECT 'x'"); err != nil {
			t.Fatal(err)
		}
		rw.mu.Lock()
		defer rw.mu.Unlock()
		var found bool
		for _, st := range rw.seen {
			found = found || (st.Source == proxy.SourceParse && st.Name == "named_one")
		}
		if !found {
			t.Fatalf("hook did not see the named Parse: %+v", rw.seen)
		}
	})
}

func TestPinnedSettings(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	for _, stmt := range []string{
		"SET client_encoding = 'LATIN1'",
		"SET standard_conforming_strings = off",
	} {
		t.Run("the session ends when the upstream reports "+stmt, func(t *testing.T) {
			c := p.Connect(t, "alice")
			_, err := c.Exec(ctx, stmt)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "pinned setting") {
				t.Fatalf("want pinned-setting FATAL, got %v", err)
			}
			if err := c.Ping(ctx); err == nil {
				t.Fatal("session still usable")
			}
		})
	}
}
