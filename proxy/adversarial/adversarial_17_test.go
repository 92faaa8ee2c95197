package adversarial_test

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestAdversarial17 holds the angles of the seventeenth red team, on
// what is not a plain governed SELECT: the fields of the errors a
// governed write meets upstream. pgveil hides where a row lies in the
// table (ctid is refused in SELECT, SET and RETURNING: a block number
// tells the table's size in pages, and the gaps between a user's rows
// tell how many hidden rows lie between them) and other sessions'
// backends and transaction ids (server_state); PostgreSQL names both in
// the CONTEXT of a lock wait, the DETAIL of a deadlock and of an index
// row too large, and the size of an index row counts every column the
// index holds, masked ones included.
func TestAdversarial17(t *testing.T) {
	ctx := context.Background()
	// A DBA's indexes, in the catalog pgveil reads at its start: one on a
	// column marie may write, and two that hold a column she may write
	// with one masked for her, whose index row's size counts the real
	// value.
	proxytest.SetupDemo(t)
	indexes := []string{
		"CREATE INDEX adv17_branch ON responses (branch)",
		"CREATE INDEX adv17_comment_email ON responses (comment, email)",
		"CREATE INDEX adv17_tags_contact ON responses ((tags[1] || contact))",
	}
	for _, ddl := range indexes {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, ddl); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(func() {
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "DROP INDEX IF EXISTS adv17_branch, adv17_comment_email, adv17_tags_contact"); err != nil {
			t.Errorf("dropping the indexes: %v", err)
		}
	})
	p, _ := proxytest.StartDemoWith(t, proxytest.DemoHCL, func(c *policy.Config) {
		c.Roles["country_analyst"].Statements = append(c.Roles["country_analyst"].Statements, rewrite.KindUpdate)
	})
	proxytest.SeedMarkers(t)
	// Where PostgreSQL keeps marie's rows, as it would print them.
	ctids := map[string]string{}
	for _, r := range proxytest.Direct(t, "SELECT id::text, ctid::text FROM responses WHERE id IN (990011, 990012)") {
		ctids[r[0]] = r[1]
	}
	fields := func(t *testing.T, err error) string {
		t.Helper()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("want an error from PostgreSQL, got %v", err)
		}
		return strings.Join([]string{pe.Message, pe.Detail, pe.Hint, pe.Where, pe.InternalQuery}, "\n")
	}
	noTuple := func(t *testing.T, what, got string) {
		t.Helper()
		for id, ctid := range ctids {
			if strings.Contains(got, ctid) {
				t.Errorf("%s names the position %s of row %s upstream:\n%s", what, ctid, id, got)
			}
		}
		if m := tuplePosition.FindString(got); m != "" {
			t.Errorf("%s names a row's position upstream (%s):\n%s", what, m, got)
		}
	}

	t.Run("a lock wait that times out does not tell where the row lies", func(t *testing.T) {
		holder, waiter := p.Connect(t, "marie"), p.Connect(t, "marie")
		if _, err := holder.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		defer holder.Exec(ctx, "ROLLBACK")
		if _, err := holder.Exec(ctx, "UPDATE responses SET nps = nps WHERE id = 990011"); err != nil {
			t.Fatal(err)
		}
		if _, err := waiter.Exec(ctx, "SET lock_timeout = '20ms'"); err != nil {
			t.Fatal(err)
		}
		for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeExec} {
			_, err := waiter.Exec(ctx, "UPDATE responses SET nps = nps WHERE id = 990011", mode)
			got := fields(t, err)
			if !strings.Contains(got, "lock timeout") {
				t.Fatalf("want a lock timeout, got %s", got)
			}
			noTuple(t, "the lock timeout", got)
		}
	})

	t.Run("a deadlock names neither backends, transactions nor rows", func(t *testing.T) {
		a, b := p.Connect(t, "marie"), p.Connect(t, "marie")
		for _, c := range []struct {
			conn *pgx.Conn
			id   string
		}{{a, "990011"}, {b, "990012"}} {
			if _, err := c.conn.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			defer c.conn.Exec(ctx, "ROLLBACK")
			if _, err := c.conn.Exec(ctx, "UPDATE responses SET nps = nps WHERE id = "+c.id); err != nil {
				t.Fatal(err)
			}
		}
		// Each now waits for the row the other holds: PostgreSQL ends
		// one of them, and the other gets its row once that one rolls
		// back.
		errA := make(chan error, 1)
		go func() {
			_, err := a.Exec(ctx, "UPDATE responses SET nps = nps WHERE id = 990012")
			if err != nil {
				a.Exec(ctx, "ROLLBACK")
			}
			errA <- err
		}()
		_, errB := b.Exec(ctx, "UPDATE responses SET nps = nps WHERE id = 990011")
		if errB != nil {
			b.Exec(ctx, "ROLLBACK")
		}
		err := <-errA
		if err == nil {
			err = errB
		}
		got := fields(t, err)
		if !strings.Contains(got, "deadlock") {
			t.Fatalf("want a deadlock, got %s", got)
		}
		noTuple(t, "the deadlock", got)
		for _, word := range []string{"Process ", "transaction "} {
			if strings.Contains(got, word) {
				t.Errorf("the deadlock names a backend or a transaction (%q):\n%s", word, got)
			}
		}
	})

	t.Run("an index row too large tells neither where the row lies nor how long it is", func(t *testing.T) {
		a := newAdvClient(t, p, "marie")
		// 3 200 characters that do not compress: over a third of a page.
		const big = "(SELECT string_agg(md5(g.i::text), '') FROM generate_series(1, 100) AS g(i))"
		for _, id := range []string{"990011", "990012"} {
			q := "UPDATE responses SET branch = " + big + " WHERE id = " + id
			for _, r := range []advResult{a.simple(q), a.extended(q)} {
				got := fields(t, r.err)
				if !strings.Contains(got, "index row") {
					t.Fatalf("want an index row too large, got %s", got)
				}
				noTuple(t, "the index row error", got)
				if regexp.MustCompile(`\d{3,}`).MatchString(got) {
					t.Errorf("the index row error tells the row's size:\n%s", got)
				}
			}
		}
	})

	t.Run("a column an index holds with a masked one is not updated", func(t *testing.T) {
		// Whether the new index row fits the limit would tell the masked
		// value's length: marie would lengthen the comment she writes
		// until the UPDATE fails.
		a := newAdvClient(t, p, "marie")
		for _, q := range []string{
			"UPDATE responses SET comment = 'x' WHERE id = 990011",
			"UPDATE responses SET (nps, comment) = (1, 'x') WHERE id = 990011",
			"UPDATE responses SET tags = ARRAY['x'] WHERE id = 990011",
		} {
			for _, r := range []advResult{a.simple(q), a.extended(q)} {
				var pe *pgconn.PgError
				if !errors.As(r.err, &pe) || pe.Code != "42501" || !strings.Contains(pe.Message, "write_key") {
					t.Errorf("%s: want a refusal by write_key, got %s", q, r)
				}
			}
		}
		// A column no such index holds is written as before.
		a.noError("UPDATE responses SET nps = nps WHERE id = 990011")
	})
}

// tuplePosition matches a ctid as PostgreSQL prints it in a message.
var tuplePosition = regexp.MustCompile(`\(\d+,\d+\)`)
