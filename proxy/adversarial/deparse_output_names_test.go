package adversarial_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// namedRows returns a result's column names and its rows as strings, NULL
// for null.
func namedRows(t *testing.T, sql string, res *pgconn.Result) ([]string, [][]string) {
	t.Helper()
	names := make([]string, len(res.FieldDescriptions))
	for i, f := range res.FieldDescriptions {
		names[i] = f.Name
	}
	return names, proxytest.TextRows(t, sql, res)
}

// TestDeparseKeepsOutputNames: a statement pgveil deparses (its pushed
// comparison's constant is dollar-quoted, which the splice leaves to the
// deparse: literalAt) whose deparse needs an operand wrapped
// (parenthesizeOperands: the AT TIME ZONE bound of a BETWEEN) returns
// upstream what the client's text returns, column names included, or is
// refused. PostgreSQL names an output column after the expression under
// its COLLATE, cast, subscript or CASE's ELSE (FigureColname): wrapped in
// COALESCE, it would be named coalesce, and ORDER BY name would then sort
// by the relation's column rather than the output column; left unwrapped
// where the same expression in GROUP BY is wrapped, it would no longer be
// the grouped one.
func TestDeparseKeepsOutputNames(t *testing.T) {
	p := proxytest.StartDemo(t)
	c := p.Connect(t, "hq")
	ctx := context.Background()
	dc, err := proxytest.Cluster.Connect(ctx, proxytest.DemoDB)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close(ctx)
	const bound = `now() BETWEEN (now() AT TIME ZONE 'UTC') AND now()`
	for _, tc := range []struct {
		name, sql string
		refused   bool
	}{
		{"a COLLATE of a COLLATE is named after the column",
			`SELECT name COLLATE "C" COLLATE "POSIX", ` + bound + ` FROM countries WHERE code <> $$XX$$ ORDER BY 1`, true},
		{"a COLLATE of an operator is ?column?",
			`SELECT (name || 'x') COLLATE "C", ` + bound + ` FROM countries WHERE code <> $$XX$$ ORDER BY 1`, true},
		{"a COLLATE of an operator grouped by is the grouped expression",
			`SELECT (name || 'x') COLLATE "C", ` + bound + ` FROM countries WHERE code <> $$XX$$ GROUP BY (name || 'x') COLLATE "C" ORDER BY 1`, true},
		{"a cast of op ANY (subquery) is named after the type",
			`SELECT (code = ANY (SELECT 'FR'))::int, ` + bound + ` FROM countries WHERE code <> $$XX$$ ORDER BY 1`, true},
		{"ORDER BY the name of a CASE's ELSE sorts by the output column",
			`SELECT CASE WHEN code = 'FR' THEN 'zzz' ELSE name COLLATE "C" COLLATE "C" END, ` + bound + ` FROM countries WHERE code <> $$XX$$ ORDER BY name`, true},
		{"an aliased COLLATE of a COLLATE is named by its alias",
			`SELECT name COLLATE "C" COLLATE "POSIX" AS n, ` + bound + ` FROM countries WHERE code <> $$XX$$ ORDER BY n`, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			wantNames, want := namedRows(t, tc.sql, dc.ExecParams(ctx, tc.sql, nil, nil, nil, nil).Read())
			// NOTE: three times, in simple protocol: the first statement
			// of a shape may be spliced, later ones are served by its
			// template.
			for i := 0; i < 3; i++ {
				rs, err := c.PgConn().Exec(ctx, tc.sql).ReadAll()
				var pgErr *pgconn.PgError
				switch {
				case tc.refused && errors.As(err, &pgErr) && pgErr.Code == "42501":
					continue
				case err != nil:
					t.Fatalf("run %d: %s: %v", i, tc.sql, err)
				}
				names, got := namedRows(t, tc.sql, rs[0])
				if !reflect.DeepEqual(names, wantNames) || !reflect.DeepEqual(got, want) {
					t.Fatalf("run %d: %s\nthrough pgveil: %q %q\ndirectly:       %q %q", i, tc.sql, names, got, wantNames, want)
				}
			}
		})
	}
}
