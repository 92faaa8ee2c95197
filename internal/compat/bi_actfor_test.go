package compat

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestMetabaseImpersonation runs Metabase's query sets through the demo's
// metabase service login as two viewers, with connection impersonation
// as Metabase does it on each checkout (SET ROLE <viewer>, the
// statements, SET ROLE NONE): every statement must give what it gives
// the viewer's own login, refusals included.
func TestMetabaseImpersonation(t *testing.T) {
	requireVeil(t)
	files, err := filepath.Glob(filepath.Join("testdata", "bi", "metabase*.sql"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no Metabase query set in testdata/bi: %v", err)
	}
	for _, file := range files {
		set, err := parseBISet(file)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(set.tool, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			plain, err := pgx.Connect(ctx, upstream().url("postgres"))
			if err != nil {
				t.Fatal(err)
			}
			defer plain.Close(ctx)
			service := connect(t, "metabase").PgConn()
			// Twice, so that the second checkout of each viewer follows
			// the other viewer's on the same connection.
			for round := 1; round <= 2; round++ {
				for _, viewer := range []string{"marie", "hq"} {
					t.Run(fmt.Sprintf("checkout %d for %s gives what %s gets", round, viewer, viewer), func(t *testing.T) {
						own := connect(t, viewer).PgConn()
						if r := set.exec(ctx, service, "SET ROLE "+viewer); r.err != nil {
							t.Fatal(r.err)
						}
						for _, st := range set.statements {
							where := fmt.Sprintf("%s:%d", filepath.Base(file), st.line)
							got := set.exec(ctx, service, st.sql)
							checkBI(t, where, viewer, st, got, func() biResult { return set.exec(ctx, plain.PgConn(), st.sql) })
							want := set.exec(ctx, own, st.sql)
							if !sameOutcome(got, want) {
								t.Errorf("%s: through metabase as %s: %v %v %s; as %s: %v %v %s", where, viewer,
									got.err, got.columns, render(got.rows), viewer, want.err, want.columns, render(want.rows))
							}
						}
						if r := set.exec(ctx, service, "SET ROLE NONE"); r.err != nil {
							t.Fatal(r.err)
						}
					})
				}
			}
		})
	}
}

// sameOutcome reports whether two results are the same rows, or errors
// with the same SQLSTATE and message.
func sameOutcome(a, b biResult) bool {
	if a.err != nil || b.err != nil {
		var pa, pb *pgconn.PgError
		return errors.As(a.err, &pa) && errors.As(b.err, &pb) && pa.Code == pb.Code && pa.Message == pb.Message
	}
	return reflect.DeepEqual(a.columns, b.columns) && reflect.DeepEqual(a.rows, b.rows)
}
