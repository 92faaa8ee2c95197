package compat

import (
	"path/filepath"
	"strings"
	"testing"
)

// psql runs a script of testdata/psql with psql against e and returns
// its standard output and error.
func psql(t *testing.T, bin string, e endpoint, script string, extra ...string) (string, string) {
	t.Helper()
	args := append([]string{"-X", "-v", "ON_ERROR_STOP=1", "-f", filepath.Join("testdata", "psql", script)}, extra...)
	out, stderr, err := tryClient(t, e.libpqEnv(), bin, args...)
	if err != nil {
		t.Fatalf("psql -f %s: %v\nstdout:\n%s\nstderr:\n%s", script, err, out, stderr)
	}
	return out, stderr
}

func TestPsql(t *testing.T) {
	requireVeil(t)
	bin := lookPath(t, "psql")
	version, _, _ := tryClient(t, nil, bin, "--version")
	t.Logf("%s", strings.TrimSpace(version))

	t.Run("describe commands show the same tables and columns as without pgveil", func(t *testing.T) {
		want, _ := psql(t, bin, upstream(), "describe.sql")
		for _, user := range []string{"marie", "hq"} {
			got, _ := psql(t, bin, through(t, user), "describe.sql")
			if got != want {
				t.Errorf("as %s, \\d and friends differ from upstream:\n%s\nupstream:\n%s", user, got, want)
			}
		}
		for _, s := range []string{"responses", "contact", "numeric(5,2)", "timestamp with time zone", "text[]"} {
			if !strings.Contains(want, s) {
				t.Errorf("the describe output lacks %q: the comparison proves little", s)
			}
		}
	})

	// copyColumns checks the rows of a COPY TO STDOUT text output: the
	// country field is user's, the masked fields are \N.
	copyColumns := func(t *testing.T, user, out string, fields, country int, masked []int, score int) int {
		t.Helper()
		e := expect(t, user)
		n := 0
		for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
			f := strings.Split(line, "\t")
			if len(f) != fields {
				t.Fatalf("a COPY row has %d fields, want %d: %q", len(f), fields, line)
			}
			n++
			if user == "marie" && f[country] != "France" {
				t.Fatalf("marie copied a row of %s", f[country])
			}
			for _, m := range masked {
				if f[m] != `\N` {
					t.Fatalf("as %s, masked field %d holds %q", user, m, f[m])
				}
			}
			if (f[score] == `\N`) != (e.score == 0) {
				t.Fatalf("as %s, the score field holds %q", user, f[score])
			}
		}
		if n != e.rows {
			t.Errorf("as %s, COPY gave %d rows, want %d", user, n, e.rows)
		}
		if strings.Contains(out, "@") {
			t.Errorf("as %s, COPY output holds an email address", user)
		}
		return n
	}

	t.Run(`\copy (SELECT …) TO STDOUT copies the user's rows with masked columns empty`, func(t *testing.T) {
		for _, user := range []string{"marie", "hq"} {
			out, _ := psql(t, bin, through(t, user), "copy_query.sql")
			copyColumns(t, user, out, 5, 1, []int{2, 3}, 4)
		}
	})

	t.Run(`\copy responses TO STDOUT copies the user's view of the table, never more`, func(t *testing.T) {
		for _, user := range []string{"marie", "hq"} {
			out, _ := psql(t, bin, through(t, user), "copy_table.sql")
			copyColumns(t, user, out, 14, 4, []int{2, 3}, 7)
		}
	})

	t.Run("a session survives a refused statement", func(t *testing.T) {
		out, stderr := psql(t, bin, through(t, "marie"), "session.sql")
		for _, want := range []string{"rows 1171", "country | France", "France  |  1171", "after-error", "still_usable"} {
			if !strings.Contains(out, want) {
				t.Errorf("psql output lacks %q:\n%s", want, out)
			}
		}
		if !strings.Contains(stderr, "ERROR:  42501: pgveil refused the statement") || !strings.Contains(stderr, "ungoverned_table") {
			t.Errorf("reading employees: no refusal with SQLSTATE 42501 naming the rule:\n%s", stderr)
		}
		// \dt+ adds each table's size (pg_table_size): a size tells how
		// many rows a governed table holds beyond the user's, so pgveil
		// answers it NULL and psql shows an empty Size column.
		if !strings.Contains(out, "| responses") || strings.Contains(out, " kB") || strings.Contains(out, " bytes") {
			t.Errorf("\\dt+ did not list the tables without their sizes:\n%s", out)
		}
		t.Logf("psql session:\n%s\n%s", out, stderr)
	})
}
