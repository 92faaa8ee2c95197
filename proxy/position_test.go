package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestErrorPositions holds the Position of upstream errors to the
// client's own text: a rewritten statement is longer than the client's
// by its scopes and masks, which the position must not reveal.
func TestErrorPositions(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()
	statements := []struct {
		name, sql, at string
		// maps: the position must be kept, mapped; otherwise it may
		// also be dropped (an error in a comparison pgveil copied into
		// the scoped subquery points there, in no text of the client's).
		maps bool
	}{
		{"after a governed relation", "SELECT count(*) FROM responses WHERE nps + 'abc' > 0", "'abc'", true},
		{"after a governed relation, with a comment and a join",
			"SELECT r.id /* é */ FROM responses r JOIN countries c ON c.name = r.country WHERE r.nps + 'x1' > 0", "'x1'", true},
		{"in a comparison copied into the scoped subquery", "SELECT count(*) FROM responses WHERE nps = 'abc'", "'abc'", false},
		{"before a governed relation", "SELECT 'abc'::int FROM responses", "'abc'", true},
		{"of a statement forwarded unchanged", "SELECT 1 + 'abc'", "'abc'", true},
	}
	for _, user := range []string{"marie", "hq", "paul", "bpo_a"} {
		c := p.Connect(t, user)
		for _, st := range statements {
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
				t.Run(user+" "+st.name+" "+mode.String(), func(t *testing.T) {
					_, err := c.Exec(ctx, st.sql, mode)
					var pe *pgconn.PgError
					if !errors.As(err, &pe) {
						t.Fatalf("want an error, got %v", err)
					}
					want := int32(len([]rune(st.sql[:strings.Index(st.sql, st.at)]))) + 1
					// Mapped into the client's text, or none: never
					// an index into the rewritten one.
					if pe.Position != want && pe.Position != 0 {
						t.Fatalf("Position = %d, want %d (or none): %s", pe.Position, want, pe.Message)
					}
					if pe.Position == 0 && st.maps {
						t.Fatalf("Position dropped where it maps: %s", pe.Message)
					}
				})
			}
		}
	}
}
