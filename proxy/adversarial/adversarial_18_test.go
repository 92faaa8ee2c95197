package adversarial_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestAdversarial18 holds the angles of the eighteenth red team on the
// GROUP BY widening (rewrite/grouping.go) and classic tricks, each run
// through pgveil against the real PostgreSQL as marie (France rows only;
// email, contact and score masked as NULL), on both protocols. None
// reached a masked value or a filtered row: the columns a GROUP BY on
// the key gets are the scoped subquery's own, so whatever steers them
// (sublinks, windows, GROUPING(), DISTINCT ON, set operations, LATERAL,
// CTEs, positions) groups and compares by the masked value only.
func TestAdversarial18(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	p := proxytest.StartDemo(t)
	proxytest.SeedMarkers(t)
	conn := p.Connect(t, "marie")

	// rows runs sql on both protocols and returns the rows as text, or
	// the error.
	rows := func(t *testing.T, sql string) (out [2]string, errs [2]error) {
		t.Helper()
		for i, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			rs, err := conn.Query(ctx, sql, mode)
			var b strings.Builder
			if err == nil {
				for rs.Next() {
					v, _ := rs.Values()
					fmt.Fprintf(&b, "%v\n", v)
				}
				rs.Close()
				err = rs.Err()
			}
			out[i], errs[i] = b.String(), err
		}
		return out, errs
	}
	noSecret := func(t *testing.T, what string) {
		t.Helper()
		for _, s := range []string{"MARKER", "987.65", "876.54", "USA", "Germany"} {
			if strings.Contains(what, s) {
				t.Errorf("the answer holds %q:\n%s", s, what)
			}
		}
	}

	cases := []struct {
		name, sql string
		// want is the answer on each protocol; "" with wantErr for an
		// error holding wantErr.
		want, wantErr string
	}{
		{
			name: "a GROUP BY on the key reads the masked columns it adds as NULL",
			sql:  "SELECT r.id, r.email, r.contact, r.score, count(*) FROM responses r WHERE r.id IN (990011, 990012, 990001) GROUP BY r.id ORDER BY r.id",
			want: "[990011 <nil> <nil> <nil> 1]\n[990012 <nil> <nil> <nil> 1]\n",
		},
		{
			name: "a sublink correlated to the grouped table compares masked values",
			sql:  "SELECT r.id, (SELECT count(*) FROM responses r2 WHERE r2.email = r.email OR r2.contact = r.contact) FROM responses r WHERE r.id = 990011 GROUP BY r.id",
			want: "[990011 0]\n",
		},
		{
			name: "HAVING with a sublink and GROUPING() sees the masked value",
			sql:  "SELECT id, grouping(id) FROM responses WHERE id = 990011 GROUP BY id HAVING EXISTS (SELECT 1 WHERE email LIKE 'MARKER%') OR max(contact) IS NOT NULL",
			want: "",
		},
		{
			name: "DISTINCT ON a masked column added to the GROUP BY collapses the masked values",
			sql:  "SELECT DISTINCT ON (email) id FROM responses WHERE id IN (990011, 990012) GROUP BY id ORDER BY email, id",
			want: "[990011]\n",
		},
		{
			name: "a window over the grouped result partitions by the masked value",
			sql:  "SELECT id, row_number() OVER (PARTITION BY email ORDER BY contact, id) FROM responses WHERE id IN (990011, 990012) GROUP BY id ORDER BY id",
			want: "[990011 1]\n[990012 2]\n",
		},
		{
			name: "ORDER BY a masked column's alias orders by the masked value",
			sql:  "SELECT id, email AS e FROM responses WHERE id IN (990011, 990012) GROUP BY id ORDER BY e, contact, id",
			want: "[990011 <nil>]\n[990012 <nil>]\n",
		},
		{
			name: "a set operation of two grouped arms reaches no filtered row",
			sql:  "SELECT id, email FROM responses WHERE id = 990011 GROUP BY id UNION SELECT id, email FROM responses WHERE id = 990001 GROUP BY id",
			want: "[990011 <nil>]\n",
		},
		{
			name: "a grouped CTE read twice and a LATERAL item read the masked value",
			sql:  "WITH g AS (SELECT id, email FROM responses WHERE id IN (990011, 990001) GROUP BY id) SELECT a.id, b.email, l.e FROM g a JOIN g b USING (id), LATERAL (SELECT a.email AS e) l",
			want: "[990011 <nil> <nil>]\n",
		},
		{
			name: "grouping sets that all hold the key add the masked columns as NULL",
			sql:  "SELECT id, email, count(*) FROM responses WHERE id = 990011 GROUP BY GROUPING SETS ((id), (id, branch))",
			want: "[990011 <nil> 1]\n[990011 <nil> 1]\n",
		},
		{
			name:    "ROLLUP on the key keeps PostgreSQL's own refusal",
			sql:     "SELECT id, email FROM responses WHERE id = 990011 GROUP BY ROLLUP (id)",
			wantErr: "42803",
		},
		{
			name: "a whole row compared with the real values matches nothing",
			sql:  "SELECT count(*) FROM responses r WHERE r::text LIKE '%MARKER%' OR to_jsonb(r)::text LIKE '%MARKER%' OR row_to_json(r)::text LIKE '%987.65%'",
			want: "[0]\n",
		},
		{
			name: "pg_sleep in a CASE on a masked value never runs",
			sql:  "SELECT CASE WHEN email LIKE 'MARKER%' THEN pg_sleep(30) END FROM responses WHERE id = 990011",
			want: "[<nil>]\n",
		},
		{
			name: "a failing cast on a filtered row's column never runs",
			sql:  "SELECT count(*) FROM responses WHERE id = 990001 AND comment::int = 1",
			want: "[0]\n",
		},
		{
			name:    "TABLESAMPLE of a governed table is refused",
			sql:     "SELECT count(*) FROM responses TABLESAMPLE BERNOULLI (100) REPEATABLE (1)",
			wantErr: "42501",
		},
		{
			name:    "EXPLAIN EXECUTE of a prepared statement is refused",
			sql:     "EXPLAIN EXECUTE s18",
			wantErr: "42501",
		},
		{
			name: "the table's size in the catalog reads as unknown",
			sql:  "SELECT reltuples, relpages, pg_relation_size('responses') FROM pg_class WHERE relname = 'responses'",
			want: "[-1 0 <nil>]\n",
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, errs := rows(t, c.sql)
			for i := range out {
				noSecret(t, out[i])
				if errs[i] != nil {
					noSecret(t, errs[i].Error())
				}
				switch {
				case c.wantErr != "":
					if errs[i] == nil || !strings.Contains(errs[i].Error(), c.wantErr) {
						t.Errorf("protocol %d: want an error %s, got %v (%q)", i, c.wantErr, errs[i], out[i])
					}
				case errs[i] != nil:
					t.Errorf("protocol %d: %v", i, errs[i])
				case out[i] != c.want:
					t.Errorf("protocol %d: got\n%swant\n%s", i, out[i], c.want)
				}
			}
		})
	}
}

// TestAdversarial18MaskedKey: a GROUP BY holding a primary key one of
// whose columns is masked (partial) groups by the masked value, no key:
// no column is added for it, PostgreSQL's own 42803 stands, and two rows
// whose masked values agree are one group, never split by the real one.
func TestAdversarial18MaskedKey(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	drop := `DROP TABLE IF EXISTS public.adv18_k`
	for _, sql := range []string{drop,
		`CREATE TABLE public.adv18_k (a int, b text, country text, v text, PRIMARY KEY (a, b))`,
		`INSERT INTO public.adv18_k VALUES (1, 'SECRET-B1', 'France', 'x'), (1, 'SECRET-B2', 'France', 'y'), (2, 'SECRET-B3', 'USA', 'SECRET-hidden')`,
		`GRANT SELECT ON public.adv18_k TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	raw, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.adv18_k" {
  column "b" {
    class      = "pii"
    mask       = "partial"
    keep_start = 1
  }
}
rule "adv18_k_own_country" {
  tables = ["public.adv18_k"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoWith(t, path, nil)
	conn := p.Connect(t, "marie")

	for _, sql := range []string{
		"SELECT a, b, v FROM adv18_k GROUP BY a, b",
		"SELECT k.a, k.v FROM adv18_k k GROUP BY 1, k.b",
		"SELECT a, b, v FROM adv18_k GROUP BY GROUPING SETS ((a, b))",
	} {
		t.Run("a masked key column adds nothing: "+sql, func(t *testing.T) {
			_, err := conn.Exec(ctx, sql)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42803" {
				t.Fatalf("want PostgreSQL's 42803, got %v", err)
			}
			if strings.Contains(pe.Error(), "SECRET") {
				t.Errorf("the error holds a real value: %v", pe)
			}
		})
	}
	t.Run("rows whose masked key agrees are one group", func(t *testing.T) {
		var a, n int
		var b string
		if err := conn.QueryRow(ctx, "SELECT a, b, count(*) FROM adv18_k GROUP BY a, b").Scan(&a, &b, &n); err != nil {
			t.Fatal(err)
		}
		if a != 1 || b != "S********" || n != 2 {
			t.Errorf("got (%d, %q, %d), want (1, %q, 2)", a, b, n, "S********")
		}
	})
}

// TestAdversarial18GeneratedColumn: a stored generated column computed
// from a masked column is a copy of the real value, whatever its own
// classification: it reads as masked (NULL) for a user for whom a column
// it is computed from is masked, in the result and in comparisons, and
// as itself for a user who sees them all.
func TestAdversarial18GeneratedColumn(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	drop := `DROP TABLE IF EXISTS public.adv18_g`
	for _, sql := range []string{drop,
		`CREATE TABLE public.adv18_g (id int PRIMARY KEY, country text, email text,
			email_upper text GENERATED ALWAYS AS (upper(email)) STORED,
			email_lower text GENERATED ALWAYS AS (lower(email)) STORED,
			label text GENERATED ALWAYS AS (country || ' #' || id) STORED)`,
		`INSERT INTO public.adv18_g (id, country, email) VALUES (1, 'France', 'secret-mail@example.com'), (2, 'USA', 'hidden@example.com')`,
		`GRANT SELECT ON public.adv18_g TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	raw, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.adv18_g" {
  column "email" { class = "pii" }
  column "email_lower" {
    class      = "pii"
    mask       = "partial"
    keep_start = 3
    keep_end   = 4
  }
}
rule "adv18_g_own_country" {
  tables = ["public.adv18_g"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
rule "adv18_g_all" {
  tables = ["public.adv18_g"]
  roles  = ["survey_admin"]
  scope  = "all"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoWith(t, path, nil)
	marie := p.Connect(t, "marie")

	t.Run("a generated column computed from a masked column reads as NULL", func(t *testing.T) {
		var email, upper, label *string
		if err := marie.QueryRow(ctx, "SELECT email, email_upper, label FROM adv18_g").Scan(&email, &upper, &label); err != nil {
			t.Fatal(err)
		}
		if email != nil || upper != nil {
			t.Errorf("email %v, email_upper %v: want both NULL", deref(email), deref(upper))
		}
		if label == nil || *label != "France #1" {
			t.Errorf("label %v: want the generated column of visible columns as it is", deref(label))
		}
	})
	t.Run("a generated column whose own block masks it otherwise still reads as NULL", func(t *testing.T) {
		// NOTE: its own partial mask would run on upper(email)'s real
		// value: the first and last characters of an email masked NULL.
		var lower *string
		if err := marie.QueryRow(ctx, "SELECT email_lower FROM adv18_g").Scan(&lower); err != nil {
			t.Fatal(err)
		}
		if lower != nil {
			t.Errorf("email_lower %v: want NULL", deref(lower))
		}
	})
	t.Run("one text read by users of different masks in turn reads each one's own", func(t *testing.T) {
		// NOTE: the rewrite cache must not serve marie's NULL to the
		// survey admin, who sees the email and so email_lower, nor hers
		// to marie.
		admin := p.Connect(t, "survey_admin")
		const q = "SELECT email_lower FROM adv18_g WHERE id = 1"
		for i, c := range []struct {
			user string
			conn *pgx.Conn
			want string
		}{{"marie", marie, "NULL"}, {"survey_admin", admin, "secret-mail@example.com"}, {"marie", marie, "NULL"}, {"survey_admin", admin, "secret-mail@example.com"}} {
			var lower *string
			if err := c.conn.QueryRow(ctx, q).Scan(&lower); err != nil {
				t.Fatal(err)
			}
			if got := deref(lower); got != c.want {
				t.Errorf("read %d, by %s: email_lower %s, want %s", i+1, c.user, got, c.want)
			}
		}
	})
	t.Run("a comparison with such a column compares the masked value", func(t *testing.T) {
		var n int
		if err := marie.QueryRow(ctx, "SELECT count(*) FROM adv18_g WHERE email_upper = 'SECRET-MAIL@EXAMPLE.COM' OR email_upper LIKE 'S%'").Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n != 0 {
			t.Errorf("%d rows match the real value, want 0", n)
		}
	})
	t.Run("a user who sees the column it is computed from sees it", func(t *testing.T) {
		var upper string
		if err := p.Connect(t, "survey_admin").QueryRow(ctx, "SELECT email_upper FROM adv18_g WHERE id = 1").Scan(&upper); err != nil {
			t.Fatal(err)
		}
		if upper != "SECRET-MAIL@EXAMPLE.COM" {
			t.Errorf("got %q", upper)
		}
	})
}

// deref shows a nullable string.
func deref(s *string) string {
	if s == nil {
		return "NULL"
	}
	return *s
}

// TestAdversarial18CheckOracle: a CHECK constraint that reads a column
// the user may write beside one masked for her answers, on each UPDATE,
// a question about the real masked value (bonus <= salary: is the salary
// at least the bonus written?); a few writes find it. Such an UPDATE is
// refused, as one of a column an index holds with a masked one is.
func TestAdversarial18CheckOracle(t *testing.T) {
	proxytest.SetupDemo(t)
	ctx := context.Background()
	drop := `DROP TABLE IF EXISTS public.adv18_c`
	for _, sql := range []string{drop,
		`CREATE TABLE public.adv18_c (id int PRIMARY KEY, country text, salary int, bonus int, note text,
			CONSTRAINT adv18_bonus_le_salary CHECK (bonus <= salary))`,
		`INSERT INTO public.adv18_c VALUES (1, 'France', 4242, 0, 'n')`,
		`GRANT SELECT, UPDATE ON public.adv18_c TO pgveil_svc`,
	} {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	t.Cleanup(func() { _ = proxytest.Cluster.Exec(context.Background(), proxytest.DemoDB, drop) })
	raw, err := os.ReadFile(proxytest.DemoHCL)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "demo.hcl")
	extra := `
table "public.adv18_c" {
  column "salary" { class = "pii" }
}
rule "adv18_c_own_country" {
  tables = ["public.adv18_c"]
  roles  = ["country_analyst"]
  where  = "country = me.country"
}
`
	if err := os.WriteFile(path, append(raw, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	p, _ := proxytest.StartDemoWith(t, path, func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements, rewrite.KindUpdate)
	})
	marie := p.Connect(t, "marie")

	t.Run("an UPDATE whose CHECK reads a masked column is refused", func(t *testing.T) {
		for _, bonus := range []string{"4242", "4243"} {
			_, err := marie.Exec(ctx, "UPDATE adv18_c SET bonus = "+bonus+" WHERE id = 1")
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Fatalf("bonus %s: want a refusal (42501), got %v: the CHECK's answer tells the salary", bonus, err)
			}
		}
	})
	t.Run("an UPDATE of a column no such CHECK reads passes", func(t *testing.T) {
		if _, err := marie.Exec(ctx, "UPDATE adv18_c SET note = 'm' WHERE id = 1"); err != nil {
			t.Fatal(err)
		}
	})
}
