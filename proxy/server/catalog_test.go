package server

import (
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/internal/pgtest"
)

// TestCatalogFollowsDDL holds pgveil to following a DBA's DDL without a
// reload: a column dropped from a governed table, a column added.
func TestCatalogFollowsDDL(t *testing.T) {
	pgtest.Require(t, cluster)
	ctx := context.Background()
	const table = "catalog_ddl"
	exec := func(sql string) {
		t.Helper()
		if err := cluster.Exec(ctx, "postgres", sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("DROP TABLE IF EXISTS " + table + "; CREATE TABLE " + table + " (id int, gone text, secret text); " +
		"INSERT INTO " + table + " VALUES (1, 'g', 's'), (-1, 'g', 's')")
	t.Cleanup(func() { _ = cluster.Exec(context.Background(), "postgres", "DROP TABLE IF EXISTS "+table) })

	path := writeConfig(t, `
table "public.`+table+`" {
  column "secret" { class = "pii" }
}
rule "positive" {
  tables = ["public.`+table+`"]
  roles  = ["reader"]
  where  = "id > 0"
}
`)
	// A long period: only the reads a failing statement asks for, and
	// the explicit ones below, happen during the test.
	setUpstream(t, path, `catalog_refresh = "1h"`)
	srv, err := Start(ctx, Config{Path: path, Config: load(t, path), Version: "test"})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = srv.Close() })
	c, err := pgconn.Connect(ctx, "postgres://carol:pw@"+srv.Addr().String()+"/postgres?sslmode=disable")
	if err != nil {
		t.Fatalf("connecting: %v", err)
	}
	defer c.Close(ctx)
	query := func(sql string) ([][][]byte, error) {
		res, err := c.Exec(ctx, sql).ReadAll()
		if err != nil {
			return nil, err
		}
		return res[len(res)-1].Rows, nil
	}
	engine := func() interface {
		Refresh(context.Context) (bool, error)
	} {
		return srv.Policies().Current().Engine
	}

	t.Run("an unchanged catalog is read and changes nothing", func(t *testing.T) {
		if changed, err := engine().Refresh(ctx); err != nil || changed {
			t.Fatalf("Refresh = %v, %v; want false, nil", changed, err)
		}
	})

	t.Run("a column dropped upstream fails one statement, then the next reads the new snapshot", func(t *testing.T) {
		if rows, err := query("SELECT id FROM " + table); err != nil || len(rows) != 1 {
			t.Fatalf("before the DDL: %d rows, %v; want 1", len(rows), err)
		}
		exec("ALTER TABLE " + table + " DROP COLUMN gone")
		// The scoped subquery of the old snapshot still lists the column.
		_, err := query("SELECT id FROM " + table)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42703" {
			t.Fatalf("first statement after the DDL: %v; want 42703 from upstream", err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			rows, err := query("SELECT id FROM " + table)
			if err == nil {
				if len(rows) != 1 || string(rows[0][0]) != "1" {
					t.Fatalf("after the new snapshot: %q; want the one row in scope", rows)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("15 s after the DDL, statements still fail: %v", err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	})

	t.Run("a column added upstream is read at the next read of the catalog, under the table's rules", func(t *testing.T) {
		exec("ALTER TABLE " + table + " ADD COLUMN extra int DEFAULT 7")
		if changed, err := engine().Refresh(ctx); err != nil || !changed {
			t.Fatalf("Refresh = %v, %v; want true, nil", changed, err)
		}
		rows, err := query("SELECT * FROM " + table)
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || len(rows[0]) != 3 || rows[0][1] != nil || string(rows[0][2]) != "7" {
			t.Fatalf("SELECT * = %q; want one row (1, NULL, 7): the new column, the mask and the rule", rows)
		}
	})

	t.Run("the reads are counted by result", func(t *testing.T) {
		resp, err := http.Get("http://" + srv.AdminAddr().String() + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `pgveil_catalog_reads_total{result="changed"} 1`) {
			t.Errorf("/metrics lacks one changed read (the kicked one):\n%s", grepLines(string(b), "pgveil_catalog"))
		}
	})

	t.Run("each snapshot put in force is in the audit trail", func(t *testing.T) {
		trail := filepath.Join(filepath.Dir(path), "audit.log")
		deadline := time.Now().Add(10 * time.Second)
		for !slices.Contains(auditEvents(t, trail), "catalog") {
			if time.Now().After(deadline) {
				t.Fatalf("no catalog record in %v", auditEvents(t, trail))
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	t.Run("a reload's catalog_refresh sets the period of the reads", func(t *testing.T) {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		b = []byte(strings.Replace(string(b), `catalog_refresh = "1h"`, `catalog_refresh = "200ms"`, 1))
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := srv.Reload(ctx); err != nil {
			t.Fatalf("Reload: %v", err)
		}
		exec("ALTER TABLE " + table + " ADD COLUMN later int DEFAULT 8")
		deadline := time.Now().Add(10 * time.Second)
		for {
			rows, err := query("SELECT * FROM " + table)
			if err != nil {
				t.Fatal(err)
			}
			if len(rows) == 1 && len(rows[0]) == 4 && string(rows[0][3]) == "8" {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("10 s after the DDL, SELECT * = %q; want the column added", rows)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
}

// setUpstream adds attrs to the upstream block of the configuration at
// path, as writeConfig wrote it.
func setUpstream(t *testing.T, path, attrs string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	const anchor = `password = env("PGVEIL_SERVER_TEST_PW")`
	s := strings.Replace(string(b), anchor, anchor+"\n  "+attrs, 1)
	if s == string(b) {
		t.Fatal("the configuration has no upstream password line")
	}
	if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
		t.Fatal(err)
	}
}

// grepLines returns the lines of s that contain sub.
func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
