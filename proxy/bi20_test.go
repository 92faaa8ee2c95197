package proxy_test

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestBI20Introspection runs, as governed users, the catalog queries BI
// tools and psql send to describe the database, and checks that each is
// answered as it is upstream where nothing of it is hidden, and that
// what stays refused says what to do.
func TestBI20Introspection(t *testing.T) {
	p := startDemo(t)

	t.Run("psql's \\db lists the tablespaces, their locations unknown", func(t *testing.T) {
		// psql's \db, as psql -E prints it; DBeaver's and pgAdmin's
		// tablespace lists read pg_tablespace_location too.
		const q = `SELECT spcname AS "Name",
  pg_catalog.pg_get_userbyid(spcowner) AS "Owner",
  pg_catalog.pg_tablespace_location(oid) AS "Location"
FROM pg_catalog.pg_tablespace
ORDER BY 1`
		want := direct(t, `SELECT spcname, pg_catalog.pg_get_userbyid(spcowner), NULL FROM pg_catalog.pg_tablespace ORDER BY 1`)
		for _, user := range []string{"marie", "tom", "bank_app"} {
			got := through(t, p.connect(t, user), q)
			for i := range want {
				want[i][2] = "NULL"
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("%s: got %v, want %v", user, got, want)
			}
		}
	})

	t.Run("a tablespace's location is answered NULL as text, whatever it is compared with", func(t *testing.T) {
		c := p.connect(t, "marie")
		got := through(t, c, `SELECT pg_typeof(pg_tablespace_location(oid))::text, pg_tablespace_location(oid) IS NULL, coalesce(pg_catalog.pg_tablespace_location(oid), 'unknown') FROM pg_tablespace WHERE spcname = 'pg_default'`)
		if want := [][]string{{"text", "t", "unknown"}}; !reflect.DeepEqual(got, want) {
			t.Errorf("got %v, want %v", got, want)
		}
	})

	t.Run("a refused file function says what to do in its hint", func(t *testing.T) {
		c := p.connect(t, "marie")
		err := c.PgConn().Exec(context.Background(), "SELECT pg_ls_dir('.')").Close()
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42501" {
			t.Fatalf("got %v, want a 42501 refusal", err)
		}
		if pgErr.Hint == "" {
			t.Errorf("the refusal %q has no hint", pgErr.Message)
		}
	})
}
