package reload_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

func TestReload(t *testing.T) {
	alogPath := filepath.Join(t.TempDir(), "audit.log")
	alog, err := audit.Open(audit.Options{File: alogPath, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	defer alog.Close()
	p, path, rl := proxytest.ReloadableDemo(t, func(o *proxy.Options) { o.Audit = alog })
	ctx := context.Background()
	marie := p.Connect(t, "marie")
	before := proxytest.Count(t, marie, "SELECT count(*) FROM responses")
	if before == 0 {
		t.Fatal("marie sees no rows before the reload: the test proves nothing")
	}

	t.Run("a policy with an error is refused and the old one keeps serving", func(t *testing.T) {
		proxytest.EditConfig(t, path, `rule "france_only" {`, `rule "france_only" {
  colour = "blue"`)
		err := rl.Reload(ctx)
		if !errors.Is(err, server.ErrReloadRefused) {
			t.Fatalf("reload of a broken configuration: %v", err)
		}
		if n := proxytest.Count(t, marie, "SELECT count(*) FROM responses"); n != before {
			t.Fatalf("marie sees %d rows, want %d", n, before)
		}
		proxytest.EditConfig(t, path, `
  colour = "blue"`, "")
	})
	t.Run("revoking marie's rule takes effect at her next statement", func(t *testing.T) {
		proxytest.EditConfig(t, path, `  where  = "country = me.country"`, `  where  = "country = me.country"
  enabled = false`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := proxytest.Count(t, marie, "SELECT count(*) FROM responses"); n != 0 {
			t.Fatalf("marie still sees %d rows", n)
		}
	})
	t.Run("a removed user's sessions are ended", func(t *testing.T) {
		hq := p.Connect(t, "hq")
		proxytest.EditConfig(t, path, `user "hq" {`, `user "hq_renamed" {`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if err := hq.Ping(ctx); err == nil {
			t.Fatal("hq's session survived the removal of hq")
		}
		if err := marie.Ping(ctx); err != nil {
			t.Fatalf("marie's session ended too: %v", err)
		}
	})
	t.Run("the audit trail records each reload with both versions", func(t *testing.T) {
		marie.Close(ctx)
		proxytest.WaitSessions(t, p, 0)
		var events []string
		for _, e := range proxytest.ReadAudit(t, alog, alogPath) {
			switch e.Event {
			case "reload":
				if e.OldPolicyVersion == "" || e.PolicyVersion == "" || e.OldPolicyVersion == e.PolicyVersion {
					t.Errorf("reload versions %q → %q", e.OldPolicyVersion, e.PolicyVersion)
				}
				events = append(events, e.Event)
			case "reload_failed":
				events = append(events, e.Event)
			}
		}
		if strings.Join(events, " ") != "reload_failed reload reload" {
			t.Errorf("events %v", events)
		}
	})
}

func TestReloadUnderLoadLosesNoStatement(t *testing.T) {
	proxytest.NoLeaks(t)
	p, _, rl := proxytest.ReloadableDemo(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var done atomic.Int64
	errs := make(chan error, 4)
	for i := 0; i < 4; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, p.URL("marie", "demo-marie", nil))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(context.Background())
			for ctx.Err() == nil {
				var n int
				if err := c.QueryRow(ctx, "SELECT count(*) FROM responses WHERE nps >= $1", 0).Scan(&n); err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				if n == 0 {
					errs <- errors.New("marie saw no rows during a reload")
					return
				}
				done.Add(1)
			}
		}()
	}
	for i := 0; i < 30; i++ {
		if err := rl.Reload(context.Background()); err != nil {
			t.Fatalf("reload %d: %v", i, err)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if done.Load() == 0 {
		t.Fatal("no statement ran during the reloads")
	}
}

func TestReloadDoesNotLetOldStatementsRun(t *testing.T) {
	p, path, rl := proxytest.ReloadableDemo(t)
	ctx := context.Background()
	c := p.Connect(t, "marie")
	exec := func(sql string) error {
		_, err := c.PgConn().Exec(ctx, sql).ReadAll()
		return err
	}
	bump := func() {
		t.Helper()
		proxytest.EditConfig(t, path, `rule "france_only" {`, `# edited
rule "france_only" {`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	refusedAsChanged := func(t *testing.T, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "policy_changed") {
			t.Fatalf("want a policy_changed refusal, got %v", err)
		}
	}

	t.Run("a statement prepared with PREPARE before a reload is refused after it", func(t *testing.T) {
		if err := exec("PREPARE q AS SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
		if err := exec("EXECUTE q"); err != nil {
			t.Fatal(err)
		}
		bump()
		refusedAsChanged(t, exec("EXECUTE q"))
		if err := exec("DEALLOCATE q"); err != nil {
			t.Fatal(err)
		}
		if err := exec("PREPARE q AS SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
		if err := exec("EXECUTE q"); err != nil {
			t.Fatalf("prepared again under the new policy: %v", err)
		}
	})
	t.Run("a cursor declared before a reload cannot be fetched from after it", func(t *testing.T) {
		if err := exec("BEGIN; DECLARE cur CURSOR FOR SELECT id FROM responses; FETCH 1 FROM cur"); err != nil {
			t.Fatal(err)
		}
		bump()
		refusedAsChanged(t, exec("FETCH 1 FROM cur"))
		_ = exec("ROLLBACK")
	})
	t.Run("a failed DECLARE of an existing name does not make the old cursor current", func(t *testing.T) {
		if err := exec("DECLARE held CURSOR WITH HOLD FOR SELECT id FROM responses"); err != nil {
			t.Fatal(err)
		}
		bump()
		// The cursor exists: PostgreSQL refuses the DECLARE and keeps it.
		if err := exec("DECLARE held CURSOR WITH HOLD FOR SELECT id FROM responses"); err == nil {
			t.Fatal("a second DECLARE of the same cursor succeeded")
		}
		refusedAsChanged(t, exec("FETCH 1 FROM held"))
		if err := exec("CLOSE held"); err != nil {
			t.Fatal(err)
		}
		if err := exec("DECLARE held CURSOR WITH HOLD FOR SELECT id FROM responses"); err != nil {
			t.Fatal(err)
		}
		if err := exec("FETCH 1 FROM held"); err != nil {
			t.Fatalf("a cursor declared again under the new policy: %v", err)
		}
		_ = exec("CLOSE held")
	})
	t.Run("a failed DEALLOCATE keeps the old statement refused", func(t *testing.T) {
		if err := exec("PREPARE kept AS SELECT count(*) FROM responses"); err != nil {
			t.Fatal(err)
		}
		bump()
		// In an aborted transaction DEALLOCATE fails; the statement stays.
		_ = exec("BEGIN")
		_ = exec("SELECT 1/0")
		if err := exec("DEALLOCATE kept"); err == nil {
			t.Fatal("DEALLOCATE ran in an aborted transaction")
		}
		_ = exec("ROLLBACK")
		refusedAsChanged(t, exec("EXECUTE kept"))
	})
	t.Run("a protocol-level prepared statement is prepared again, transparently", func(t *testing.T) {
		sd, err := c.Prepare(ctx, "named", "SELECT count(*) FROM responses WHERE nps >= $1")
		if err != nil {
			t.Fatal(err)
		}
		var before, after int
		if err := c.QueryRow(ctx, sd.Name, 0).Scan(&before); err != nil {
			t.Fatal(err)
		}
		bump()
		for i := 0; i < 3; i++ {
			if err := c.QueryRow(ctx, sd.Name, 0).Scan(&after); err != nil {
				t.Fatalf("execution %d after the reload: %v", i, err)
			}
		}
		if after != before {
			t.Fatalf("%d rows after the reload, %d before", after, before)
		}
	})
}

func TestReloadLeavesNoStaleStatementUpstream(t *testing.T) {
	p, path, rl := proxytest.ReloadableDemo(t)
	ctx := context.Background()
	revoke := func(t *testing.T) {
		t.Helper()
		proxytest.EditConfig(t, path, `  where  = "country = me.country"`, `  where  = "country = me.country"
  enabled = false`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			proxytest.EditConfig(t, path, `
  enabled = false`, "")
			if err := rl.Reload(ctx); err != nil {
				t.Fatal(err)
			}
		})
	}
	count := func(t *testing.T, c *pgx.Conn, name string) (int, error) {
		t.Helper()
		rr := c.PgConn().ExecPrepared(ctx, name, nil, nil, nil).Read()
		if rr.Err != nil {
			return 0, rr.Err
		}
		var n int
		_, err := fmt.Sscan(string(rr.Rows[0][0]), &n)
		return n, err
	}

	t.Run("a refused Parse of an existing name does not leave the old statement runnable", func(t *testing.T) {
		c := p.Connect(t, "marie")
		if _, err := c.PgConn().Prepare(ctx, "s1", "SELECT count(*) FROM responses", nil); err != nil {
			t.Fatal(err)
		}
		revoke(t)
		// PostgreSQL keeps s1 when a Parse of that name fails.
		if _, err := c.PgConn().Prepare(ctx, "s1", "SELECT * FROM employees", nil); err == nil {
			t.Fatal("the Parse of a refused statement succeeded")
		}
		if n, err := count(t, c, "s1"); err == nil && n != 0 {
			t.Fatalf("the statement prepared under the old policy ran: %d rows", n)
		}
	})
	t.Run("a Close skipped after an error does not leave the old statement runnable", func(t *testing.T) {
		c := p.Connect(t, "marie")
		if _, err := c.PgConn().Prepare(ctx, "s2", "SELECT count(*) FROM responses", nil); err != nil {
			t.Fatal(err)
		}
		// An error first: PostgreSQL skips the Close that follows.
		proxytest.RunPipeline(t, c, func(pl *pgconn.Pipeline) {
			pl.SendPrepare("", "SELECT FROM", nil)
			pl.SendDeallocate("s2")
		})
		revoke(t)
		if n, err := count(t, c, "s2"); err == nil && n != 0 {
			t.Fatalf("the statement prepared under the old policy ran: %d rows", n)
		}
	})
}

func TestReloadReachesEveryName(t *testing.T) {
	p, path, rl := proxytest.ReloadableDemo(t)
	ctx := context.Background()
	bump := func(t *testing.T) {
		t.Helper()
		proxytest.EditConfig(t, path, `rule "france_only" {`, `# edited
rule "france_only" {`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	refusedAsChanged := func(t *testing.T, what string, err error) {
		t.Helper()
		if err == nil || !strings.Contains(err.Error(), "policy_changed") {
			t.Fatalf("%s: want a policy_changed refusal, got %v", what, err)
		}
	}
	exec := func(t *testing.T, c *pgx.Conn, sql string) error {
		t.Helper()
		_, err := c.PgConn().Exec(ctx, sql).ReadAll()
		return err
	}
	const countAll = "SELECT count(*) FROM responses"
	long := func(prefix string) string { return prefix + strings.Repeat("x", 3000) }

	t.Run("an SQL EXECUTE of a statement prepared with Parse is refused after a reload", func(t *testing.T) {
		c := p.Connect(t, "marie")
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: "proto_s", Query: countAll}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		if err := exec(t, c, "EXECUTE proto_s"); err != nil {
			t.Fatalf("before the reload: %v", err)
		}
		bump(t)
		refusedAsChanged(t, "EXECUTE in a Query", exec(t, c, "EXECUTE proto_s"))
		_, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Query: "EXECUTE proto_s"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
		refusedAsChanged(t, "EXECUTE in a Parse", err)
	})
	t.Run("a FETCH or MOVE from a portal bound with Bind is refused after a reload", func(t *testing.T) {
		c := p.Connect(t, "marie")
		for _, sql := range []string{"FETCH ALL FROM proto_p", "MOVE ALL IN proto_p", "FETCH ALL proto_p"} {
			if err := exec(t, c, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Query: "SELECT id FROM responses"},
				&pgproto3.Bind{DestinationPortal: "proto_p"}, &pgproto3.Sync{}); err != nil {
				t.Fatal(err)
			}
			bump(t)
			refusedAsChanged(t, sql, exec(t, c, sql))
			if err := exec(t, c, "ROLLBACK"); err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("a statement with a name over 1024 bytes is prepared again under the new policy", func(t *testing.T) {
		c := p.Connect(t, "marie")
		name := long("s")
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: name, Query: countAll}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		rows, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if err != nil || len(rows) != 1 || rows[0] == "0" {
			t.Fatalf("before the reload: %v %v", rows, err)
		}
		proxytest.EditConfig(t, path, `  where  = "country = me.country"`, `  where  = "country = me.country"
  enabled = false`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		defer func() {
			proxytest.EditConfig(t, path, `
  enabled = false`, "")
			if err := rl.Reload(ctx); err != nil {
				t.Fatal(err)
			}
		}()
		rows, err = proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: name}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if err != nil || len(rows) != 1 || rows[0] != "0" {
			t.Fatalf("after revoking marie's rule: %v %v, want 0 rows counted", rows, err)
		}
	})
	t.Run("a portal with a name over 1024 bytes is refused after a reload", func(t *testing.T) {
		c := p.Connect(t, "marie")
		name := long("p")
		if err := exec(t, c, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Query: countAll},
			&pgproto3.Bind{DestinationPortal: name}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		bump(t)
		_, err := proxytest.RoundTrip(t, c, &pgproto3.Execute{Portal: name}, &pgproto3.Sync{})
		refusedAsChanged(t, "Execute", err)
		_ = exec(t, c, "ROLLBACK")
	})
	t.Run("a statement prepared with PREPARE and a cursor declared with DECLARE are refused through the protocol", func(t *testing.T) {
		c := p.Connect(t, "marie")
		if err := exec(t, c, "PREPARE sql_s AS "+countAll); err != nil {
			t.Fatal(err)
		}
		if err := exec(t, c, "BEGIN; DECLARE sql_c CURSOR FOR SELECT id FROM responses"); err != nil {
			t.Fatal(err)
		}
		bump(t)
		_, err := proxytest.RoundTrip(t, c, &pgproto3.Execute{Portal: "sql_c"}, &pgproto3.Sync{})
		refusedAsChanged(t, "Execute of the cursor", err)
		_ = exec(t, c, "ROLLBACK")
		_, err = proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: "sql_s"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		refusedAsChanged(t, "Bind and Execute of the statement", err)
	})
	t.Run("a statement prepared again under the new policy runs, whichever way it is executed", func(t *testing.T) {
		c := p.Connect(t, "marie")
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Parse{Name: "again", Query: countAll}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		bump(t)
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Close{ObjectType: 'S', Name: "again"},
			&pgproto3.Parse{Name: "again", Query: countAll}, &pgproto3.Sync{}); err != nil {
			t.Fatal(err)
		}
		if err := exec(t, c, "EXECUTE again"); err != nil {
			t.Fatalf("EXECUTE of the statement prepared again: %v", err)
		}
		if err := exec(t, c, "DEALLOCATE again; PREPARE again AS "+countAll); err != nil {
			t.Fatal(err)
		}
		if _, err := proxytest.RoundTrip(t, c, &pgproto3.Bind{PreparedStatement: "again"}, &pgproto3.Execute{}, &pgproto3.Sync{}); err != nil {
			t.Fatalf("Bind of the statement prepared again with PREPARE: %v", err)
		}
	})
}

func TestReloadableSessionsForgetOnlyClosedNames(t *testing.T) {
	p, _, _ := proxytest.ReloadableDemo(t)
	c := p.Connect(t, "marie")
	// More statements and portals than a session remembers, each closed
	// and the close answered: forgetting them loses nothing.
	var msgs []pgproto3.FrontendMessage
	for i := 0; i < 10050; i++ {
		s, pt := fmt.Sprintf("s%d", i), fmt.Sprintf("p%d", i)
		msgs = append(msgs, &pgproto3.Parse{Name: s, Query: "SELECT 1"}, &pgproto3.Bind{DestinationPortal: pt, PreparedStatement: s},
			&pgproto3.Close{ObjectType: 'P', Name: pt}, &pgproto3.Close{ObjectType: 'S', Name: s})
		if i%500 == 499 {
			msgs = append(msgs, &pgproto3.Sync{})
			if _, err := proxytest.RoundTrip(t, c, msgs...); err != nil {
				t.Fatal(err)
			}
			msgs = msgs[:0]
		}
	}
	if _, err := proxytest.RoundTrip(t, c, append(msgs, &pgproto3.Sync{})...); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"EXECUTE never_prepared", "FETCH 1 FROM never_declared"} {
		_, err := c.PgConn().Exec(context.Background(), sql).ReadAll()
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || (pe.Code != "26000" && pe.Code != "34000") {
			t.Errorf("%s: %v, want PostgreSQL's error for a name that does not exist", sql, err)
		}
	}
}
