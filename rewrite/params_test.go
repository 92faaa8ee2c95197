package rewrite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestDeclaredParameters holds the copies of comparisons with parameters
// to what the client declared: a cast to the column's type may overflow
// where PostgreSQL, comparing in the declared type, answers.
func TestDeclaredParameters(t *testing.T) {
	cat := demoCatalog(t)
	p := marie(t)
	const oidInt4, oidInt8, oidNumeric, oidFloat8, oidText = 23, 20, 1700, 701, 25
	const scope = "WHERE responses.country = 'France'"
	type declaredCase struct {
		name  string
		sql   string
		types []uint32
		// copied is what the scoped subquery's WHERE holds after the
		// scope; "" for no copy.
		copied string
	}
	tests := []declaredCase{
		{"an undeclared parameter is cast to the column's type", "SELECT count(*) FROM responses WHERE nps < $1", nil,
			" AND responses.nps OPERATOR(pg_catalog.<=) $1::int OFFSET 0"},
		{"a parameter of the column's type keeps its operator", "SELECT count(*) FROM responses WHERE nps < $1", []uint32{oidInt4},
			" AND responses.nps OPERATOR(pg_catalog.<) $1::int OFFSET 0"},
		{"a bigint parameter compares an integer column as bigint", "SELECT count(*) FROM responses WHERE nps < $1", []uint32{oidInt8},
			" AND responses.nps OPERATOR(pg_catalog.<) $1::bigint OFFSET 0"},
		{"a numeric parameter stays outside", "SELECT count(*) FROM responses WHERE nps < $1", []uint32{oidNumeric}, ""},
		{"a float parameter stays outside", "SELECT count(*) FROM responses WHERE id = $1", []uint32{oidFloat8}, ""},
		{"an unknown type (OID 0) declares nothing", "SELECT count(*) FROM responses WHERE id = $2 AND nps < $1", []uint32{oidNumeric, 0},
			" AND responses.id OPERATOR(pg_catalog.=) $2::bigint OFFSET 0"},
		{"an undeclared parameter the statement references twice stays outside",
			"SELECT count(*) FROM responses WHERE $1::numeric IS NOT NULL AND nps > $1", nil, ""},
		{"so does one compared with two columns", "SELECT count(*) FROM responses WHERE nps > $1 AND id > $1", nil, ""},
		{"a text parameter against a text column is cast as before", "SELECT count(*) FROM responses WHERE comment = $1", []uint32{oidText},
			" AND responses.comment OPERATOR(pg_catalog.=) $1::pg_catalog.text OFFSET 0"},
	}
	// Scoped UPDATE and DELETE copy comparisons the same way.
	p.kinds[rewrite.KindUpdate], p.kinds[rewrite.KindDelete] = true, true
	tests = append(tests,
		declaredCase{"a numeric parameter of a DELETE stays outside", "DELETE FROM responses WHERE nps < $1", []uint32{oidNumeric}, ""},
		declaredCase{"a bigint parameter of an UPDATE compares as bigint", "UPDATE responses SET comment = 'x' WHERE nps < $1", []uint32{oidInt8},
			" AND responses.nps OPERATOR(pg_catalog.<) $1::bigint OFFSET 0"},
	)
	ctx := context.Background()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
			res, err := e.RewriteParse(ctx, "marie", tt.sql, tt.types)
			if err != nil {
				t.Fatal(err)
			}
			if tt.copied == "" {
				if !strings.Contains(res.SQL, scope+" OFFSET 0") {
					t.Fatalf("a comparison was copied:\n%s", res.SQL)
				}
				return
			}
			if !strings.Contains(res.SQL, scope+tt.copied) {
				t.Fatalf("want %q after the scope:\n%s", tt.copied, res.SQL)
			}
		})
	}

	t.Run("the same text declared two ways is cached apart", func(t *testing.T) {
		e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
		const sql = "SELECT count(*) FROM responses WHERE nps < $1"
		a, _ := e.RewriteParse(ctx, "marie", sql, []uint32{oidNumeric})
		b, _ := e.RewriteParse(ctx, "marie", sql, nil)
		if a.SQL == b.SQL {
			t.Fatalf("one rewrite for both:\n%s", a.SQL)
		}
		if c, ok, _ := e.RewriteParseCached("marie", sql, []uint32{oidNumeric}); !ok || c.SQL != a.SQL {
			t.Fatalf("the declared rewrite is not cached as its own")
		}
	})

	t.Run("SQL PREPARE declares its parameters too", func(t *testing.T) {
		for sql, copied := range map[string]string{
			"PREPARE q(numeric) AS SELECT count(*) FROM responses WHERE nps < $1": "",
			"PREPARE q(bigint) AS SELECT count(*) FROM responses WHERE nps < $1":  " AND responses.nps OPERATOR(pg_catalog.<) $1::bigint OFFSET 0",
			"PREPARE q(int) AS SELECT count(*) FROM responses WHERE nps < $1":     " AND responses.nps OPERATOR(pg_catalog.<) $1::int OFFSET 0",
			"PREPARE q AS SELECT count(*) FROM responses WHERE nps < $1":          " AND responses.nps OPERATOR(pg_catalog.<=) $1::int OFFSET 0",
		} {
			res, err := rewrite.Rewrite(sql, cat, p)
			if err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
			if copied == "" && !strings.Contains(res.SQL, scope+" OFFSET 0") || copied != "" && !strings.Contains(res.SQL, scope+copied) {
				t.Errorf("%s: want %q after the scope:\n%s", sql, copied, res.SQL)
			}
		}
	})
}

// taggingPolicy is a Policy that names its user in application_name.
type taggingPolicy struct{ rewrite.Policy }

func (taggingPolicy) ApplicationNamePrefix() string { return "pgveil:marie:" }

// TestDeclaredParametersKeepTheSessionTag holds a statement with declared
// parameter types to the checks of the user's own policy: a declaration
// must not lift the application_name prefix, or a user could pose as
// another in the upstream's views and logs.
func TestDeclaredParametersKeepTheSessionTag(t *testing.T) {
	cat := demoCatalog(t)
	p := taggingPolicy{marie(t)}
	e := rewrite.NewEngine(cat, func(string) (rewrite.Policy, error) { return p, nil }, nil, 100)
	for _, sql := range []string{
		"SET application_name = 'pgveil:hq:forged'",
		"SELECT set_config('application_name', 'pgveil:hq:forged', false) WHERE $1::int = 1",
	} {
		res, err := e.RewriteParse(context.Background(), "marie", sql, []uint32{23})
		if err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
		if !strings.Contains(res.SQL, "pgveil:marie:") {
			t.Fatalf("%s, declared: the prefix is gone:\n%s", sql, res.SQL)
		}
	}
}
