package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// adv20Answer runs sql on c (simple protocol) and returns every row as
// text, or "error <SQLSTATE>".
func adv20Answer(ctx context.Context, c *pgconn.PgConn, sql string) string {
	var b strings.Builder
	rs, err := c.Exec(ctx, sql).ReadAll()
	for _, res := range rs {
		for _, r := range res.Rows {
			fmt.Fprintf(&b, "%q\n", r)
		}
		if res.Err != nil && err == nil {
			err = res.Err
		}
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return "error " + pe.Code + " " + pe.Message
	}
	if err != nil {
		return "error " + err.Error()
	}
	return b.String()
}

// TestAdversarial20DomainRowFunction: PostgreSQL reads r.f as f(r) when
// r has no column f, coercing the row implicitly to the function's
// argument type, a domain over the row's composite type included. Such
// a function, outside every role's list, must be refused through
// attribute notation as it is when called by name: a SQL function
// running as the service account reads every row of the table.
func TestAdversarial20DomainRowFunction(t *testing.T) {
	ctx := context.Background()
	setupDemo(t)
	advSeed(t)
	drop := `DROP DOMAIN IF EXISTS public.adv20_row, public.adv20_row2 CASCADE`
	for _, sql := range []string{drop,
		`CREATE DOMAIN public.adv20_row AS public.responses`,
		`CREATE DOMAIN public.adv20_row2 AS public.adv20_row`,
		`CREATE FUNCTION public.adv20_leak(r public.adv20_row) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
		`CREATE FUNCTION public.adv20_leak2(r public.adv20_row2) RETURNS text LANGUAGE sql STABLE
		   AS $$SELECT string_agg(email, ',' ORDER BY id) FROM public.responses WHERE id IN (1, 990001)$$`,
	} {
		if err := cluster.Exec(ctx, demoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), demoDB, drop) })
	conn := startDemo(t).connect(t, "marie").PgConn()
	for _, c := range []struct{ name, sql string }{
		{"a function of a domain over the row's type is refused as r.f", "SELECT r.adv20_leak FROM responses r WHERE id = 1"},
		{"a function of a domain over the row's type is refused as (r).f", "SELECT (r).adv20_leak FROM responses r WHERE id = 1"},
		{"a function of a domain over such a domain is refused as r.f", "SELECT r.adv20_leak2 FROM responses r WHERE id = 1"},
		{"a function of a domain over the row's type is refused by name", "SELECT adv20_leak(r) FROM responses r WHERE id = 1"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := adv20Answer(ctx, conn, c.sql)
			if strings.Contains(got, "MARKER") || !strings.HasPrefix(got, "error 42501") {
				t.Fatalf("%s\n  => %s\nwant a refusal (42501): the function reads every row as the service account", c.sql, got)
			}
		})
	}
}
