package policy

import (
	"context"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/policy/live"
)

func TestThePackageDoesNoDatabaseIO(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), name, nil, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range f.Imports {
			path, _ := strconv.Unquote(imp.Path.Value)
			if path == "github.com/jackc/pgx/v5" || strings.HasPrefix(path, "github.com/jackc/pgx/v5/pgconn") {
				t.Errorf("%s imports %s: database I/O goes through Server (policy/live)", name, path)
			}
		}
	}
}

func TestServerErrors(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	user, password := cluster.SuperUser()
	conn := connectAs(t, "postgres", user, password)
	srv := live.New(conn)
	t.Run("a statement the server rejects is a rejection with its message and detail", func(t *testing.T) {
		_, _, err := srv.Query(ctx, "SELECT pg_catalog.int4in('x')")
		msg, ok := rejection(err)
		if !ok || msg != `invalid input syntax for type integer: "x"` || !strings.Contains(err.Error(), "(SQLSTATE 22P02)") {
			t.Errorf("%q %v (%v)", msg, ok, err)
		}
	})
	t.Run("a failed connection is not a rejection", func(t *testing.T) {
		_ = conn.Close(ctx)
		_, err := srv.Describe(ctx, "SELECT 1")
		if _, ok := rejection(err); err == nil || ok {
			t.Errorf("%v", err)
		}
	})
}

func TestQuoteIdentIsPgxSanitize(t *testing.T) {
	for _, name := range []string{"svc", `we"ird`, "a\x00b", "Ünïcode", ""} {
		if got, want := quoteIdent(name), (pgx.Identifier{name}).Sanitize(); got != want {
			t.Errorf("quoteIdent(%q) = %s, want %s", name, got, want)
		}
	}
}
