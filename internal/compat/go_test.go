package compat

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver
)

func TestPgbench(t *testing.T) {
	requireVeil(t)
	bin := lookPath(t, "pgbench")
	processed := regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	failed := regexp.MustCompile(`number of failed transactions: (\d+)`)
	for _, mode := range []string{"simple", "extended", "prepared"} {
		t.Run("hq runs a custom script for 3 seconds in "+mode+" mode without a failed transaction", func(t *testing.T) {
			out := runClient(t, through(t, "hq").libpqEnv(), bin, "-n", "-M", mode, "-c", "2", "-j", "1", "-T", "3",
				"-f", filepath.Join("testdata", "pgbench", "responses.sql"))
			m := processed.FindStringSubmatch(out)
			if m == nil {
				t.Fatalf("pgbench printed no transaction count:\n%s", out)
			}
			if n, _ := strconv.Atoi(m[1]); n == 0 {
				t.Fatalf("pgbench processed no transaction:\n%s", out)
			}
			if f := failed.FindStringSubmatch(out); f != nil && f[1] != "0" {
				t.Fatalf("%s failed transactions:\n%s", f[1], out)
			}
			t.Logf("%s: %s transactions", mode, m[1])
		})
	}
}

func TestDatabaseSQL(t *testing.T) {
	requireVeil(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func(t *testing.T, url string) *sql.DB {
		t.Helper()
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return db
	}
	columnTypes := func(t *testing.T, db *sql.DB) []string {
		t.Helper()
		rows, err := db.QueryContext(ctx, "SELECT * FROM responses LIMIT 0")
		if err != nil {
			t.Fatalf("selecting the columns of responses: %v", err)
		}
		defer rows.Close()
		cts, err := rows.ColumnTypes()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, c := range cts {
			out = append(out, c.Name()+" "+c.DatabaseTypeName())
		}
		return out
	}
	want := columnTypes(t, open(t, upstream().url("postgres")))

	for _, user := range []string{"marie", "hq"} {
		t.Run("as "+user+" through pgx/stdlib: queries, prepared statements, a transaction, an error", func(t *testing.T) {
			e := expect(t, user)
			db := open(t, veilURL(user))
			db.SetMaxOpenConns(2)

			var countries []any
			rows, err := db.QueryContext(ctx, "SELECT DISTINCT country FROM responses ORDER BY 1")
			if err != nil {
				t.Fatal(err)
			}
			for rows.Next() {
				var c string
				if err := rows.Scan(&c); err != nil {
					t.Fatal(err)
				}
				countries = append(countries, c)
			}
			rows.Close()
			if !equal(countries, e.countries) {
				t.Errorf("countries: %v, want %v", countries, e.countries)
			}

			var usa int
			if err := db.QueryRowContext(ctx, "SELECT count(*) FROM responses WHERE country = $1", "USA").Scan(&usa); err != nil {
				t.Fatal(err)
			}
			if usa != e.usa {
				t.Errorf("USA rows: %d, want %d", usa, e.usa)
			}

			stmt, err := db.PrepareContext(ctx, "SELECT count(*), count(email), count(score) FROM responses WHERE nps = $1")
			if err != nil {
				t.Fatal(err)
			}
			total, scores := 0, 0
			for nps := 0; nps <= 10; nps++ {
				var n, emails, s int
				if err := stmt.QueryRowContext(ctx, nps).Scan(&n, &emails, &s); err != nil {
					t.Fatal(err)
				}
				if emails != 0 {
					t.Errorf("%d emails visible at nps %d", emails, nps)
				}
				total, scores = total+n, scores+s
			}
			stmt.Close()
			if total != e.rows || scores != e.score {
				t.Errorf("prepared statement: %d rows, %d scores; want %d, %d", total, scores, e.rows, e.score)
			}

			tx, err := db.BeginTx(ctx, &sql.TxOptions{ReadOnly: true, Isolation: sql.LevelRepeatableRead})
			if err != nil {
				t.Fatal(err)
			}
			var n int
			if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM responses").Scan(&n); err != nil {
				t.Fatal(err)
			}
			if err := tx.Commit(); err != nil {
				t.Fatal(err)
			}
			if n != e.rows {
				t.Errorf("in a read-only transaction: %d rows, want %d", n, e.rows)
			}

			if got := columnTypes(t, db); !equal(toAny(got), toAny(want)) {
				t.Errorf("column types through pgveil: %v\nupstream: %v", got, want)
			}

			_, err = db.ExecContext(ctx, "SELECT login FROM employees")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Errorf("reading employees: %v, want SQLSTATE 42501", err)
			}
			if err := db.PingContext(ctx); err != nil {
				t.Errorf("the pool is unusable after a refusal: %v", err)
			}
		})
	}
}

func toAny(xs []string) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}

func equal(a, b []any) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
