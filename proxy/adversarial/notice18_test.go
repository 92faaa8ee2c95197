package adversarial_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestRaisedMessagesOfGovernedRows holds what a DBA's code, run on the
// real row during a user's write, may say to the user: a trigger's
// notices and exceptions name the row's masked values; the message is
// withheld, its SQLSTATE and severity kept. A CHECK violation's
// DETAIL ("Failing row contains") was already scrubbed (class 23).
func TestRaisedMessagesOfGovernedRows(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	// The DBA's triggers, on marie's two rows only (other tests share the
	// table).
	ddl := `
CREATE FUNCTION notice18_before() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'row %', NEW;
  RAISE WARNING 'old email %', OLD.email USING DETAIL = OLD.contact, HINT = OLD.email;
  IF NEW.nps = 0 THEN
    RAISE EXCEPTION 'bad %', OLD.email USING DETAIL = OLD.contact, HINT = OLD.email;
  END IF;
  RETURN NEW;
END $$;
CREATE FUNCTION notice18_sql(text) RETURNS int LANGUAGE sql AS $$ SELECT 1 / (length($1) - length($1)) $$;
CREATE FUNCTION notice18_after() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.nps = 1 THEN
    PERFORM notice18_sql(NEW.email);
  END IF;
  IF NEW.nps = 2 THEN
    PERFORM NEW.email::int;
  END IF;
  IF NEW.nps = 4 THEN
    RAISE NOTICE 'long %', repeat(NEW.email, 20000);
  END IF;
  IF NEW.nps = 3 THEN
    RAISE EXCEPTION 'bad %', OLD.email USING ERRCODE = 'check_violation';
  END IF;
  RETURN NEW;
END $$;
CREATE FUNCTION notice18_deferred() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.nps = 5 THEN
    RAISE WARNING 'at commit %', OLD.email;
  END IF;
  RETURN NULL;
END $$;
CREATE CONSTRAINT TRIGGER notice18_deferred AFTER UPDATE ON responses DEFERRABLE INITIALLY DEFERRED FOR EACH ROW
  WHEN (OLD.id IN (990011, 990012)) EXECUTE FUNCTION notice18_deferred();
CREATE TRIGGER notice18_before BEFORE UPDATE ON responses FOR EACH ROW
  WHEN (OLD.id IN (990011, 990012)) EXECUTE FUNCTION notice18_before();
CREATE TRIGGER notice18_after AFTER UPDATE ON responses FOR EACH ROW
  WHEN (OLD.id IN (990011, 990012)) EXECUTE FUNCTION notice18_after();`
	if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, ddl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, `DROP TRIGGER IF EXISTS notice18_before ON responses;
DROP TRIGGER IF EXISTS notice18_after ON responses;
DROP TRIGGER IF EXISTS notice18_deferred ON responses;
DROP FUNCTION IF EXISTS notice18_before(), notice18_after(), notice18_deferred(), notice18_sql(text)`); err != nil {
			t.Errorf("dropping the triggers: %v", err)
		}
	})
	proxytest.SeedMarkers(t)
	secret := func(s string) bool { return strings.Contains(s, "MARKER-") }

	for _, mode := range []string{"session", "transaction"} {
		t.Run("in "+mode+" mode", func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
				path := proxytest.DemoHCL
				if mode == "transaction" {
					path = proxytest.PooledDemo(t, 2)
				}
				p, _ := proxytest.StartDemoWith(t, path, func(c *policy.Config) {
					c.Listen.Relay = relay
					c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements, rewrite.KindUpdate)
				})
				var mu sync.Mutex
				var notices []*pgconn.Notice
				cfg, err := pgx.ParseConfig(p.URL("marie", "demo-marie", nil))
				if err != nil {
					t.Fatal(err)
				}
				cfg.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
					mu.Lock()
					notices = append(notices, n)
					mu.Unlock()
				}
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				defer cancel()
				c, err := pgx.ConnectConfig(cctx, cfg)
				if err != nil {
					t.Fatal(err)
				}
				defer c.Close(ctx)
				taken := func() []*pgconn.Notice {
					mu.Lock()
					defer mu.Unlock()
					n := notices
					notices = nil
					return n
				}
				all := func(pe *pgconn.PgError) string {
					return strings.Join([]string{pe.Message, pe.Detail, pe.Hint, pe.Where, pe.InternalQuery}, "\n")
				}

				t.Run("a trigger's notices and warnings do not name the row's masked values", func(t *testing.T) {
					taken()
					if _, err := c.Exec(ctx, "UPDATE responses SET nps = nps WHERE id = 990011"); err != nil {
						t.Fatal(err)
					}
					got := taken()
					if len(got) != 2 {
						t.Fatalf("want the trigger's two notices, got %d", len(got))
					}
					for i, n := range got {
						pe := (*pgconn.PgError)(n)
						if secret(all(pe)) {
							t.Errorf("a notice names a masked value:\n%s", all(pe))
						}
						if want := []string{"NOTICE", "WARNING"}[i]; pe.Severity != want {
							t.Errorf("the notice's severity: want %s, got %s", want, pe.Severity)
						}
						if want := []string{"00000", "01000"}[i]; pe.Code != want {
							t.Errorf("the notice's SQLSTATE: want %s, got %s", want, pe.Code)
						}
						if !strings.Contains(pe.Detail, "pgveil") {
							t.Errorf("the notice does not say pgveil withheld it: %+v", pe)
						}
					}
				})

				t.Run("a notice larger than a read buffer is withheld whole", func(t *testing.T) {
					taken()
					if _, err := c.Exec(ctx, "UPDATE responses SET nps = 4 WHERE id = 990012"); err != nil {
						t.Fatal(err)
					}
					got := taken()
					if len(got) != 3 {
						t.Fatalf("want the triggers' three notices, got %d", len(got))
					}
					for _, n := range got {
						if pe := (*pgconn.PgError)(n); secret(all(pe)) || !strings.Contains(pe.Detail, "pgveil") {
							t.Errorf("a notice is not withheld: %.200s", all(pe))
						}
					}
				})

				t.Run("a deferred trigger's warning at COMMIT is withheld", func(t *testing.T) {
					taken()
					for _, q := range []string{"BEGIN", "UPDATE responses SET nps = 5 WHERE id = 990011"} {
						if _, err := c.Exec(ctx, q); err != nil {
							t.Fatal(err)
						}
					}
					taken()
					if _, err := c.Exec(ctx, "COMMIT"); err != nil {
						t.Fatal(err)
					}
					got := taken()
					// Back to its seeded value, for the next relay's run.
					if _, err := c.Exec(ctx, "UPDATE responses SET nps = 8 WHERE id = 990011"); err != nil {
						t.Fatal(err)
					}
					if len(got) != 1 {
						t.Fatalf("want the deferred trigger's warning, got %d notices", len(got))
					}
					if pe := (*pgconn.PgError)(got[0]); secret(all(pe)) || pe.Severity != "WARNING" {
						t.Errorf("the warning at COMMIT is not withheld:\n%s", all(pe))
					}
				})

				t.Run("PostgreSQL's own notices pass unchanged", func(t *testing.T) {
					taken()
					if _, err := c.Exec(ctx, "SELECT to_tsquery('english', 'the')"); err != nil {
						t.Fatal(err)
					}
					got := taken()
					if len(got) != 1 || !strings.Contains(got[0].Message, "stop words") || got[0].Code != "00000" {
						t.Fatalf("want the stop-word notice, got %+v", got)
					}
				})

				for _, tc := range []struct {
					name, sql, code string
					withheld        bool
				}{
					{"a trigger's exception does not name the row's masked values", "UPDATE responses SET nps = 0 WHERE id = 990011", "P0001", true},
					{"an error of an SQL function a trigger calls does not either", "UPDATE responses SET nps = 1 WHERE id = 990012", "22012", true},
					{"nor a cast error in a trigger", "UPDATE responses SET nps = 2 WHERE id = 990012", "22P02", true},
					{"nor a trigger's exception under a data error's SQLSTATE", "UPDATE responses SET nps = 3 WHERE id = 990012", "23514", true},
					{"a CHECK violation's failing row is not shown", "UPDATE responses SET nps = 42 WHERE id = 990011", "23514", false},
				} {
					t.Run(tc.name, func(t *testing.T) {
						taken()
						_, err := c.Exec(ctx, tc.sql)
						var pe *pgconn.PgError
						if !errors.As(err, &pe) || pe.Code != tc.code {
							t.Fatalf("want %s, got %v", tc.code, err)
						}
						if secret(all(pe)) {
							t.Errorf("the error names a masked value:\n%s", all(pe))
						}
						if tc.withheld && !strings.Contains(pe.Detail, "pgveil") {
							t.Errorf("the error does not say pgveil withheld it: %+v", pe)
						}
						for _, n := range taken() {
							if pe := (*pgconn.PgError)(n); secret(all(pe)) {
								t.Errorf("a notice names a masked value:\n%s", all(pe))
							}
						}
						// The session stays usable.
						if _, err := c.Exec(ctx, "SELECT 1"); err != nil {
							t.Fatal(err)
						}
					})
				}
			})
		})
	}
}
