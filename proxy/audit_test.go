package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
)

func TestAuditTrail(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	ctx := context.Background()
	c := p.Connect(t, "marie")
	simple := func(sql string) {
		t.Helper()
		_, _ = c.PgConn().Exec(ctx, sql).ReadAll()
	}
	extended := func(sql string, args ...any) {
		t.Helper()
		rows, err := c.Query(ctx, sql, args...)
		if err == nil {
			for rows.Next() {
			}
			rows.Close()
		}
	}
	simple("SELECT country, count(*) FROM responses GROUP BY 1")
	simple("SELECT * FROM employees")
	extended("SELECT id, email FROM responses WHERE nps > $1 ORDER BY id LIMIT 5", 5)
	simple("SELECT 1; SELECT 2")
	simple("SELECT 1/0")
	extended("SELECT pg_catalog.pg_read_file('/etc/passwd')")
	if _, err := c.Prepare(ctx, "by_code", "SELECT name FROM countries WHERE code = $1"); err != nil {
		t.Fatal(err)
	}
	for _, code := range []string{"FR", "US", "FR"} {
		extended("by_code", code)
	}
	if _, err := c.PgConn().CopyTo(ctx, io.Discard, "COPY (SELECT name FROM countries) TO STDOUT"); err != nil {
		t.Fatal(err)
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	before := alog.Stats()
	if _, err := pgconn.Connect(ctx, p.URL("marie", "wrong", nil)); err == nil {
		t.Fatal("a wrong password was accepted")
	}
	// The proxy records the failure after answering the client.
	proxytest.Poll(2*time.Second, func() bool {
		st := alog.Stats()
		return st.Written+uint64(st.Queued) > before.Written+uint64(before.Queued)
	})
	entries := proxytest.ReadAudit(t, alog, path)

	type want struct {
		sql      string
		decision string
		rows     int64
		sqlstate string
	}
	wants := []want{
		{"SELECT country, count(*) FROM responses GROUP BY 1", "rewritten", 1, ""},
		{"SELECT * FROM employees", "denied", 0, "42501"},
		{"SELECT id, email FROM responses WHERE nps > $1 ORDER BY id LIMIT 5", "rewritten", 5, ""},
		{"SELECT 1; SELECT 2", "allowed", 2, ""},
		{"SELECT 1/0", "allowed", 0, "22012"},
		{"SELECT pg_catalog.pg_read_file('/etc/passwd')", "denied", 0, "42501"},
		{"SELECT name FROM countries WHERE code = $1", "rewritten", 1, ""},
		{"SELECT name FROM countries WHERE code = $1", "rewritten", 0, ""},
		{"SELECT name FROM countries WHERE code = $1", "rewritten", 1, ""},
		{"COPY (SELECT name FROM countries) TO STDOUT", "rewritten", 1, ""},
	}
	var stmts, events []*audit.Entry
	for _, e := range entries {
		switch {
		case e.Event == "statement" && e.User == "marie":
			stmts = append(stmts, e)
		case e.User == "marie":
			events = append(events, e)
		}
	}

	t.Run("every statement appears once, in order, denied ones too", func(t *testing.T) {
		var got []string
		for _, e := range stmts {
			got = append(got, e.SQL)
		}
		var exp []string
		for _, w := range wants {
			exp = append(exp, w.sql)
		}
		if !slices.Equal(got, exp) {
			t.Fatalf("statements:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(exp, "\n"))
		}
	})
	if t.Failed() {
		return
	}
	t.Run("each record has its decision, rows and SQLSTATE", func(t *testing.T) {
		for i, w := range wants {
			e := stmts[i]
			if e.Decision != w.decision || e.Rows != w.rows || e.SQLState != w.sqlstate {
				t.Errorf("%d %q: decision %q rows %d sqlstate %q; want %q %d %q",
					i, w.sql, e.Decision, e.Rows, e.SQLState, w.decision, w.rows, w.sqlstate)
			}
		}
	})
	t.Run("a rewritten statement names its tables, rules, masked and readable columns", func(t *testing.T) {
		e := stmts[2]
		if !slices.Equal(e.Tables, []string{"public.responses"}) || !slices.Contains(e.Rules, "france_only") ||
			!slices.Contains(e.Masked, "public.responses.email") || !slices.Equal(e.Columns, []string{"public.responses.id", "public.responses.nps"}) ||
			e.Rewritten == "" || e.Fingerprint == "" || e.PolicyVersion == "" || !slices.Contains(e.Roles, "country_analyst") {
			t.Errorf("%+v", e)
		}
	})
	t.Run("a denial names the firewall rule", func(t *testing.T) {
		if stmts[1].Reason != "ungoverned_table" || stmts[5].Reason != "files" {
			t.Errorf("reasons %q and %q", stmts[1].Reason, stmts[5].Reason)
		}
	})
	t.Run("a denial names the tables the statement named", func(t *testing.T) {
		// So that an auditor's search by table finds refused reads too.
		if !slices.Equal(stmts[1].Tables, []string{"public.employees"}) || stmts[5].Tables != nil {
			t.Errorf("tables %q and %q", stmts[1].Tables, stmts[5].Tables)
		}
	})
	t.Run("an upstream error is recorded", func(t *testing.T) {
		if !strings.HasPrefix(stmts[4].UpstreamError, "22012") {
			t.Errorf("%q", stmts[4].UpstreamError)
		}
	})
	t.Run("connect, disconnect and the failed authentication are recorded", func(t *testing.T) {
		var got []string
		for _, e := range events {
			got = append(got, e.Event)
		}
		if !slices.Equal(got, []string{"connect", "disconnect", "auth_failure"}) {
			t.Errorf("events %v", got)
		}
	})
}

func TestAuditBlockModeLosesNothingUnderLoad(t *testing.T) {
	// A queue of 4 records for 32 clients: writers wait, none is lost.
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{QueueSize: 4, MaxSize: 64 << 10})
	ctx := context.Background()
	const clients, each = 32, 20
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for i := 0; i < clients; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := pgx.Connect(ctx, p.URL("hq", "demo-hq", nil))
			if err != nil {
				errs <- err
				return
			}
			defer c.Close(ctx)
			for j := 0; j < each; j++ {
				var n int
				if err := c.QueryRow(ctx, "SELECT count(*) FROM responses WHERE nps > $1", j%10).Scan(&n); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	proxytest.WaitSessions(t, p, 0)
	n := 0
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == "statement" && e.User == "hq" {
			n++
		}
	}
	if n != clients*each {
		t.Fatalf("%d statement records, want %d", n, clients*each)
	}
}

func TestAuditKeepsRecordsOfInterruptedStatements(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	ctx := context.Background()
	c := p.Connect(t, "hq")
	ctx2, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err := c.Exec(ctx2, "SELECT pg_catalog.pg_sleep(5)")
	var pe *pgconn.PgError
	if err == nil || (errors.As(err, &pe) && pe.Code != "57014") {
		t.Fatalf("want a cancelled statement, got %v", err)
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == "statement" && strings.Contains(e.SQL, "pg_sleep") {
			return
		}
	}
	t.Fatal("the interrupted statement has no audit record")
}

func TestAuditRecordsWhatEveryStatementReads(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	ctx := context.Background()
	c := p.Connect(t, "marie")
	simple := func(sql string) {
		t.Helper()
		if _, err := c.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	raw := func(msgs ...pgproto3.FrontendMessage) {
		t.Helper()
		if _, err := proxytest.RoundTrip(t, c, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	longStmt, longPortal := "s"+strings.Repeat("x", 3000), "p"+strings.Repeat("x", 3000)
	raw(&pgproto3.Parse{Name: longStmt, Query: "SELECT id FROM responses WHERE nps > 5"},
		&pgproto3.Bind{DestinationPortal: longPortal, PreparedStatement: longStmt},
		&pgproto3.Execute{Portal: longPortal}, &pgproto3.Sync{})
	simple("PREPARE by_sql AS SELECT sentiment FROM responses")
	simple("EXECUTE by_sql")
	raw(&pgproto3.Parse{Query: "execute by_sql"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	raw(&pgproto3.Parse{Name: "by_parse", Query: "SELECT branch FROM responses"}, &pgproto3.Sync{})
	simple("EXECUTE by_parse")
	simple("BEGIN")
	simple("DECLARE cur CURSOR FOR SELECT tags FROM responses")
	simple("FETCH 2 FROM cur")
	raw(&pgproto3.Execute{Portal: "cur", MaxRows: 2}, &pgproto3.Sync{})
	simple("COMMIT")
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)

	var stmts []*audit.Entry
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event == "statement" && e.User == "marie" {
			stmts = append(stmts, e)
		}
	}
	find := func(t *testing.T, sql string) *audit.Entry {
		t.Helper()
		for _, e := range stmts {
			if e.SQL == sql {
				return e
			}
		}
		var got []string
		for _, e := range stmts {
			got = append(got, e.SQL[:min(len(e.SQL), 80)])
		}
		t.Fatalf("no record of %.80q among:\n%s", sql, strings.Join(got, "\n"))
		return nil
	}
	readsColumn := func(t *testing.T, e *audit.Entry, column string) {
		t.Helper()
		if !slices.Equal(e.Tables, []string{"public.responses"}) || !slices.Contains(e.Columns, "public.responses."+column) ||
			!slices.Contains(e.Rules, "france_only") {
			t.Errorf("%.80q: tables %v, columns %v, rules %v; want public.responses and its column %s",
				e.SQL, e.Tables, e.Columns, e.Rules, column)
		}
	}

	t.Run("an Execute of a portal with a name over 1024 bytes is recorded with its statement", func(t *testing.T) {
		e := find(t, "SELECT id FROM responses WHERE nps > 5")
		readsColumn(t, e, "id")
		if e.Rows == 0 {
			t.Errorf("no rows recorded: %+v", e)
		}
	})
	t.Run("an EXECUTE names what the statement prepared with PREPARE reads", func(t *testing.T) {
		readsColumn(t, find(t, "EXECUTE by_sql"), "sentiment")
	})
	t.Run("an EXECUTE sent with Parse names what its statement reads", func(t *testing.T) {
		readsColumn(t, find(t, "execute by_sql"), "sentiment")
	})
	t.Run("an EXECUTE names what the statement prepared with Parse reads", func(t *testing.T) {
		readsColumn(t, find(t, "EXECUTE by_parse"), "branch")
	})
	t.Run("a FETCH names what its cursor reads", func(t *testing.T) {
		readsColumn(t, find(t, "FETCH 2 FROM cur"), "tags")
	})
	t.Run("an Execute of a cursor declared with DECLARE names the cursor and what it reads", func(t *testing.T) {
		readsColumn(t, find(t, `FETCH FROM "cur"`), "tags")
	})
}

// exchange sends msgs and reads the answers up to the ReadyForQuery that
// ends them, returning the error codes seen.
func exchange(t *testing.T, c *pgx.Conn, msgs ...pgproto3.FrontendMessage) []string {
	t.Helper()
	fe := c.PgConn().Frontend()
	for _, m := range msgs {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
		case *pgproto3.ReadyForQuery:
			return codes
		}
	}
}

func TestAuditNamesTheUserActedForInRefusalsMadeBeforeTheCheck(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{})
	ctx := context.Background()
	c := p.Connect(t, "metabase")
	if _, err := c.PgConn().Exec(ctx, "SET ROLE marie").ReadAll(); err != nil {
		t.Fatal(err)
	}
	if codes := exchange(t, c, &pgproto3.FunctionCall{Function: 1299}); len(codes) != 1 {
		t.Fatalf("function call: errors %v", codes)
	}
	if codes := exchange(t, c, &pgproto3.Query{String: "SELECT email FROM responses\x00 -- hidden"}); len(codes) != 1 {
		t.Fatalf("query with a NUL byte: errors %v", codes)
	}
	if codes := exchange(t, c, &pgproto3.Query{String: "SELECT pg_catalog.pg_read_file('/etc/passwd')"}); len(codes) != 1 {
		t.Fatalf("query the rewriter refuses: errors %v", codes)
	}
	c.Close(ctx)
	proxytest.WaitSessions(t, p, 0)
	var version string
	var refusals []*audit.Entry
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event != "statement" {
			continue
		}
		if e.SQL == "SET ROLE marie" {
			version = e.PolicyVersion
			continue
		}
		refusals = append(refusals, e)
	}
	if len(refusals) != 3 || version == "" {
		t.Fatalf("%d refusals recorded, version %q", len(refusals), version)
	}
	for _, e := range refusals {
		if e.Decision != "denied" || e.User != "metabase" || e.ActingFor != "marie" || e.PolicyVersion != version {
			t.Errorf("%q was refused while acting for marie under version %s; its record says decision=%s user=%s acting_for=%q policy_version=%q",
				e.SQL, version, e.Decision, e.User, e.ActingFor, e.PolicyVersion)
		}
	}
	if want := "SELECT email FROM responses /* pgveil: a NUL byte, then 11 more bytes not recorded */"; refusals[1].SQL != want {
		t.Errorf("the query with a NUL byte is recorded as %q, want %q", refusals[1].SQL, want)
	}
}

func TestAuditKeepsTheHeadOfAStatementTooLongForTheWriterToParse(t *testing.T) {
	// NOTE: blanks after a comment: a redacted record keeps no comment,
	// and replaces one the cut would go through whole.
	pad := "/* a comment */" + strings.Repeat(" ", 300<<10)
	for _, c := range []struct {
		name   string
		redact bool
		sql    string
	}{
		{"redact_literals on", true, "SELECT id, email FROM responses WHERE nps < 3 ORDER BY id LIMIT 3 " + pad},
		{"redact_literals off, a secret word in a comment", false, "SELECT id, email FROM responses WHERE nps < 3 ORDER BY id LIMIT 3 /* server */ " + pad},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{RedactLiterals: c.redact, RewrittenSQL: audit.RewrittenHash})
			ctx := context.Background()
			conn := p.Connect(t, "hq")
			res, err := conn.PgConn().Exec(ctx, c.sql).ReadAll()
			if err != nil || len(res[0].Rows) != 3 {
				t.Fatalf("%v", err)
			}
			conn.Close(ctx)
			proxytest.WaitSessions(t, p, 0)
			n := 0
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event != "statement" {
					continue
				}
				n++
				if !strings.HasPrefix(e.SQL, "SELECT id, email FROM responses WHERE nps < $1 ORDER BY id LIMIT $2 ") ||
					!strings.Contains(e.SQL, "/*…*/   ") || strings.Contains(e.SQL, "a comment") ||
					!strings.Contains(e.SQL, "   …<statement truncated: the first 6553") || // audit.DefaultMaxText
					!strings.HasSuffix(e.SQL, fmt.Sprintf(" of %d bytes kept>", len(c.sql))) ||
					e.Rows != 3 || e.RewrittenSHA256 == "" {
					t.Errorf("the statement is recorded as %.100q … %q, rows %d", e.SQL, e.SQL[max(0, len(e.SQL)-80):], e.Rows)
				}
			}
			if n != 1 {
				t.Errorf("%d statement records", n)
			}
		})
	}
}
