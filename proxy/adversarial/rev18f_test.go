package adversarial_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestRaisedFieldsOfGovernedRows holds what TestRaisedMessagesOfGovernedRows
// does not: a trigger's RAISE … USING COLUMN, CONSTRAINT, DATATYPE, TABLE
// and SCHEMA, RAISE INFO (sent whatever client_min_messages says) and
// ASSERT name no masked value, when the session's first statement, sent
// through the extended protocol, is the write that fires them.
func TestRaisedFieldsOfGovernedRows(t *testing.T) {
	ctx := context.Background()
	proxytest.SetupDemo(t)
	ddl := `
CREATE FUNCTION rev18f_fields() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.nps = 6 THEN
    RAISE NOTICE USING MESSAGE = 'm ' || OLD.email, COLUMN = OLD.email, CONSTRAINT = OLD.email,
      DATATYPE = OLD.email, TABLE = OLD.email, SCHEMA = OLD.email, DETAIL = OLD.contact, HINT = OLD.email;
    RAISE INFO 'info %', OLD.email;
  END IF;
  IF NEW.nps = 7 THEN
    ASSERT false, 'assert ' || OLD.email;
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER rev18f_fields BEFORE UPDATE ON responses FOR EACH ROW
  WHEN (OLD.id = 990011 AND NEW.nps IN (6, 7)) EXECUTE FUNCTION rev18f_fields();`
	if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, ddl); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, `DROP TRIGGER IF EXISTS rev18f_fields ON responses;
DROP FUNCTION IF EXISTS rev18f_fields();
UPDATE responses SET nps = 8 WHERE id = 990011`); err != nil {
			t.Errorf("dropping the trigger: %v", err)
		}
	})
	proxytest.SeedMarkers(t)
	all := func(pe *pgconn.PgError) string {
		return strings.Join([]string{pe.Message, pe.Detail, pe.Hint, pe.Where, pe.InternalQuery,
			pe.SchemaName, pe.TableName, pe.ColumnName, pe.DataTypeName, pe.ConstraintName}, "\n")
	}
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) {
			c.Listen.Relay = relay
			c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements, rewrite.KindUpdate)
		})
		var mu sync.Mutex
		var notices []*pgconn.Notice
		connect := func(t *testing.T) *pgconn.PgConn {
			cfg, err := pgconn.ParseConfig(p.URL("marie", "demo-marie", nil))
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
			c, err := pgconn.ConnectConfig(cctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(ctx) })
			return c
		}
		taken := func() []*pgconn.Notice {
			mu.Lock()
			defer mu.Unlock()
			n := notices
			notices = nil
			return n
		}

		t.Run("a notice's fields and RAISE INFO name no masked value", func(t *testing.T) {
			taken()
			c := connect(t)
			if _, err := c.ExecParams(ctx, "UPDATE responses SET nps = 6 WHERE id = $1", [][]byte{[]byte("990011")}, nil, nil, nil).Close(); err != nil {
				t.Fatal(err)
			}
			got := taken()
			if len(got) != 2 {
				t.Fatalf("want the trigger's notice and info, got %d", len(got))
			}
			for _, n := range got {
				if pe := (*pgconn.PgError)(n); strings.Contains(all(pe), "MARKER-") {
					t.Errorf("a notice names a masked value:\n%s", all(pe))
				}
			}
			if _, err := c.ExecParams(ctx, "UPDATE responses SET nps = 8 WHERE id = $1", [][]byte{[]byte("990011")}, nil, nil, nil).Close(); err != nil {
				t.Fatal(err)
			}
		})

		t.Run("an ASSERT's message names no masked value", func(t *testing.T) {
			c := connect(t)
			_, err := c.ExecParams(ctx, "UPDATE responses SET nps = 7 WHERE id = $1", [][]byte{[]byte("990011")}, nil, nil, nil).Close()
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "P0004" {
				t.Fatalf("want P0004, got %v", err)
			}
			if strings.Contains(all(pe), "MARKER-") || !strings.Contains(pe.Detail, "pgveil") {
				t.Errorf("the ASSERT's message is not withheld:\n%s", all(pe))
			}
		})
	})
}
