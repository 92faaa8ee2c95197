package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

func TestDataErrorsAreScrubbed(t *testing.T) {
	p := proxytest.StartProxy(t, func(_ *policy.Config, o *proxy.Options) { o.ScrubDataErrors = true })
	ctx := context.Background()
	c := p.Connect(t, "alice")
	cases := []struct{ name, sql, code string }{
		{"a cast error loses the value", "SELECT 'hidden-marker'::int", "22P02"},
		{"a date error loses the value", "SELECT 'hidden-marker 2020-13-45'::date", "22007"},
		{"a unique violation loses the key", "INSERT INTO items VALUES (1, 'hidden-marker')", "23505"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Exec(ctx, tc.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != tc.code {
				t.Fatalf("want %s, got %v", tc.code, err)
			}
			all := pgErr.Message + pgErr.Detail + pgErr.Where + pgErr.Hint
			if strings.Contains(all, "hidden-marker") || strings.Contains(all, "(id)=(1)") {
				t.Fatalf("value leaked: %+v", pgErr)
			}
		})
	}
	t.Run("other errors keep their text", func(t *testing.T) {
		_, err := c.Exec(ctx, "SELECT * FROM \"no-such-table\"")
		if err == nil || !strings.Contains(err.Error(), "no-such-table") {
			t.Fatalf("got %v", err)
		}
	})
}
