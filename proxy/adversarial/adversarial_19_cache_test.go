package adversarial_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdversarial19Cache holds the review of the checks that read a
// constant's value or spelling against the engine's caches: a statement
// refused when sent fresh must be refused as well after a statement of
// the same normalisation (or literal shape) was forwarded, sent twice so
// that every cache holds it. On PostgreSQL 15, whose grammar reads JSON
// as an identifier where pgveil's parser (PostgreSQL 17) reads a keyword,
// the word SET takes as its value is a constant to pg_query's
// normalisation (a grammar_version refusal is a syntax error, 42601, as
// the upstream's would be). Each pair runs on both protocols as marie.
func TestAdversarial19Cache(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	conn := proxytest.StartDemo(t).Connect(t, "marie").PgConn()
	run := func(sql string, extended bool) error {
		if extended {
			return conn.ExecParams(ctx, sql, nil, nil, nil, nil).Read().Err
		}
		_, err := conn.Exec(ctx, sql).ReadAll()
		return err
	}
	for _, tc := range []struct{ allowed, refused, code, why string }{
		{"SET datestyle = E'ISO'", "SET datestyle = json", "42601", "read differently by the upstream"},
		{"SET xmloption = content", "SET xmloption = json", "42601", "read differently by the upstream"},
		{"SELECT 1 + E'2'", "SELECT 0x1F + E'2'", "42601", "read differently by the upstream"},
		{"SET client_min_messages = E'notice'", "SET client_min_messages = E'debug5'", "42501", "may only be set to"},
		{"SELECT set_config(E'work_mem', '4MB', false)", "SELECT set_config(E'search_path', 'pgveil', false)", "42501", "set_config may not change"},
		{"SET search_path = E'public'", "SET search_path = E'pgveil, public'", "42501", "pins the setting"},
	} {
		for _, extended := range []bool{false, true} {
			t.Run(tc.refused+" is refused after "+tc.allowed+protocolName(extended), func(t *testing.T) {
				for range 2 {
					if err := run(tc.allowed, extended); err != nil {
						t.Fatalf("%s: %v", tc.allowed, err)
					}
				}
				err := run(tc.refused, extended)
				var pe *pgconn.PgError
				if !errors.As(err, &pe) || pe.Code != tc.code || !strings.Contains(pe.Message, tc.why) {
					t.Fatalf("%s answers %v, want pgveil's refusal (%s, %q)", tc.refused, err, tc.code, tc.why)
				}
				if err := run("SELECT 1", extended); err != nil {
					t.Fatalf("the session is unusable after the refusal: %v", err)
				}
			})
		}
	}
}

func protocolName(extended bool) string {
	if extended {
		return " (extended protocol)"
	}
	return " (simple protocol)"
}
