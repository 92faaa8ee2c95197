package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

func TestQueriesThroughTheProxy(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()

	t.Run("the simple protocol returns rows", func(t *testing.T) {
		c := p.Connect(t, "alice")
		var n int
		var name string
		err := c.QueryRow(ctx, "SELECT count(*), max(name) FROM items", pgx.QueryExecModeSimpleProtocol).Scan(&n, &name)
		if err != nil || n != 100 || name != "item 99" {
			t.Fatalf("got %d %q %v", n, name, err)
		}
	})
	t.Run("the extended protocol binds parameters", func(t *testing.T) {
		c := p.Connect(t, "alice")
		var name string
		if err := c.QueryRow(ctx, "SELECT name FROM items WHERE id = $1", 42).Scan(&name); err != nil || name != "item 42" {
			t.Fatalf("got %q %v", name, err)
		}
	})
	t.Run("a prepared statement runs many times and can be deallocated", func(t *testing.T) {
		c := p.Connect(t, "bob")
		if _, err := c.Prepare(ctx, "by_id", "SELECT name FROM items WHERE id = $1"); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 20; i++ {
			var name string
			if err := c.QueryRow(ctx, "by_id", i).Scan(&name); err != nil || name != fmt.Sprintf("item %d", i) {
				t.Fatalf("run %d: %q %v", i, name, err)
			}
		}
		if err := c.Deallocate(ctx, "by_id"); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a statement with an error leaves the session usable", func(t *testing.T) {
		c := p.Connect(t, "alice")
		_, err := c.Exec(ctx, "SELECT * FROM no_such_table")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "42P01" {
			t.Fatalf("want 42P01, got %v", err)
		}
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Fatalf("session unusable after error: %v", err)
		}
	})
}

func TestPipelining(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice").PgConn()

	t.Run("pipelined statements answer in order", func(t *testing.T) {
		pl := c.StartPipeline(ctx)
		for i := 1; i <= 5; i++ {
			pl.SendQueryParams("SELECT name FROM items WHERE id = $1", [][]byte{[]byte(fmt.Sprint(i))}, nil, nil, nil)
		}
		if err := pl.Sync(); err != nil {
			t.Fatal(err)
		}
		for i := 1; i <= 5; i++ {
			res, err := pl.GetResults()
			if err != nil {
				t.Fatal(err)
			}
			rr := res.(*pgconn.ResultReader).Read()
			if rr.Err != nil || string(rr.Rows[0][0]) != fmt.Sprintf("item %d", i) {
				t.Fatalf("result %d: %v %q", i, rr.Err, rr.Rows)
			}
		}
		if res, err := pl.GetResults(); err != nil {
			t.Fatal(err)
		} else if _, ok := res.(*pgconn.PipelineSync); !ok {
			t.Fatalf("want sync, got %T", res)
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("an error discards the rest of its batch until Sync", func(t *testing.T) {
		pl := c.StartPipeline(ctx)
		pl.SendQueryParams("SELECT 1", nil, nil, nil, nil)
		pl.SendQueryParams("SELECT 1/0", nil, nil, nil, nil)
		pl.SendQueryParams("SELECT 3", nil, nil, nil, nil)
		_ = pl.Sync()
		pl.SendQueryParams("SELECT 4", nil, nil, nil, nil)
		_ = pl.Sync()

		got := pipelineOutcomes(t, pl, 2)
		if want := "row 1,error 22012,sync,row 4,sync"; strings.Join(got, ",") != want {
			t.Fatalf("got %v, want %s", got, want)
		}
		if err := pl.Close(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestPortalsWithRowLimits(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice")
	tx, err := c.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx)
	if _, err := tx.Exec(ctx, "DECLARE cur CURSOR FOR SELECT id FROM items ORDER BY id"); err != nil {
		t.Fatal(err)
	}
	seen := 0
	for {
		rows, _ := tx.Query(ctx, "FETCH 7 FROM cur")
		ids, err := pgx.CollectRows(rows, pgx.RowTo[int32])
		if err != nil {
			t.Fatal(err)
		}
		if len(ids) == 0 {
			break
		}
		for _, id := range ids {
			seen++
			if int(id) != seen {
				t.Fatalf("row %d has id %d", seen, id)
			}
		}
	}
	if seen != 100 {
		t.Fatalf("fetched %d rows", seen)
	}
	_ = tx.Rollback(ctx)

	t.Run("Execute with a row limit suspends the portal", func(t *testing.T) {
		fe := p.Connect(t, "bob").PgConn().Frontend()
		fe.Send(&pgproto3.Parse{Query: "SELECT id FROM items ORDER BY id"})
		fe.Send(&pgproto3.Bind{})
		fe.Send(&pgproto3.Execute{MaxRows: 30})
		fe.Send(&pgproto3.Execute{MaxRows: 30})
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		var rows, suspended int
		for {
			msg, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := msg.(type) {
			case *pgproto3.DataRow:
				rows++
			case *pgproto3.PortalSuspended:
				suspended++
			case *pgproto3.ErrorResponse:
				t.Fatalf("error: %s", m.Message)
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				break
			}
		}
		if rows != 60 || suspended != 2 {
			t.Fatalf("%d rows, %d suspensions", rows, suspended)
		}
	})
}

func TestLargeResultStreams(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice").PgConn()
	const n = 1_000_000
	rr := c.ExecParams(ctx, "SELECT g, repeat('x', 50) FROM generate_series(1, $1::int) g",
		[][]byte{[]byte(fmt.Sprint(n))}, nil, nil, nil)
	rows, bytesSeen := 0, 0
	for rr.NextRow() {
		rows++
		for _, v := range rr.Values() {
			bytesSeen += len(v)
		}
	}
	if _, err := rr.Close(); err != nil {
		t.Fatal(err)
	}
	if rows != n || bytesSeen < n*50 {
		t.Fatalf("got %d rows, %d bytes", rows, bytesSeen)
	}
}

func TestCopy(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice")

	t.Run("COPY TO STDOUT streams the table", func(t *testing.T) {
		var buf bytes.Buffer
		tag, err := c.PgConn().CopyTo(ctx, &buf, "COPY (SELECT id, name FROM items ORDER BY id) TO STDOUT")
		if err != nil {
			t.Fatal(err)
		}
		if tag.RowsAffected() != 100 || !strings.HasPrefix(buf.String(), "1\titem 1\n2\titem 2\n") {
			t.Fatalf("tag %v, data %.40q", tag, buf.String())
		}
	})
	t.Run("COPY FROM STDIN loads rows", func(t *testing.T) {
		if _, err := c.Exec(ctx, "DELETE FROM sink"); err != nil {
			t.Fatal(err)
		}
		var in strings.Builder
		for i := 0; i < 5000; i++ {
			fmt.Fprintf(&in, "%d\tnote %d\n", i, i)
		}
		tag, err := c.PgConn().CopyFrom(ctx, strings.NewReader(in.String()), "COPY sink FROM STDIN")
		if err != nil {
			t.Fatal(err)
		}
		var count int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM sink").Scan(&count); err != nil || count != 5000 || tag.RowsAffected() != 5000 {
			t.Fatalf("count %d, tag %v, %v", count, tag, err)
		}
	})
	t.Run("pgx binary CopyFrom works", func(t *testing.T) {
		rows := [][]any{{1, "a"}, {2, "b"}, {3, "c"}}
		n, err := c.CopyFrom(ctx, pgx.Identifier{"sink"}, []string{"id", "note"}, pgx.CopyFromRows(rows))
		if err != nil || n != 3 {
			t.Fatalf("%d %v", n, err)
		}
	})
	t.Run("a failing COPY FROM leaves the session usable", func(t *testing.T) {
		_, err := c.PgConn().CopyFrom(ctx, strings.NewReader("not-a-number\tx\n"), "COPY sink FROM STDIN")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "22P02" {
			t.Fatalf("want 22P02, got %v", err)
		}
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("a COPY FROM aborted by the client leaves the session usable", func(t *testing.T) {
		_, err := c.PgConn().CopyFrom(ctx, &failingReader{}, "COPY sink FROM STDIN")
		if err == nil {
			t.Fatal("expected an error")
		}
		var one int
		if err := c.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil {
			t.Fatal(err)
		}
	})
}

// failingReader returns a little data, then an error, so pgconn sends
// CopyFail.
type failingReader struct{ n int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.n > 0 {
		return 0, errors.New("source broke")
	}
	r.n++
	return copy(p, "1\tx\n"), nil
}

var _ io.Reader = (*failingReader)(nil)

func TestTransactions(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	c := p.Connect(t, "alice")
	if _, err := c.Exec(ctx, "DELETE FROM sink"); err != nil {
		t.Fatal(err)
	}
	count := func() int {
		var n int
		if err := c.QueryRow(ctx, "SELECT count(*) FROM sink").Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}

	t.Run("a rolled back transaction leaves nothing", func(t *testing.T) {
		tx, _ := c.Begin(ctx)
		_, _ = tx.Exec(ctx, "INSERT INTO sink VALUES (1, 'x')")
		if err := tx.Rollback(ctx); err != nil {
			t.Fatal(err)
		}
		if n := count(); n != 0 {
			t.Fatalf("%d rows", n)
		}
	})
	t.Run("a committed transaction keeps its rows", func(t *testing.T) {
		err := pgx.BeginFunc(ctx, c, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, "INSERT INTO sink VALUES (1, 'x'), (2, 'y')")
			return err
		})
		if err != nil || count() != 2 {
			t.Fatalf("%v", err)
		}
	})
	t.Run("an error aborts the transaction until rollback", func(t *testing.T) {
		tx, _ := c.Begin(ctx)
		_, _ = tx.Exec(ctx, "SELECT 1/0")
		_, err := tx.Exec(ctx, "SELECT 1")
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "25P02" {
			t.Fatalf("want 25P02, got %v", err)
		}
		if c.PgConn().TxStatus() != 'E' {
			t.Fatalf("tx status %c", c.PgConn().TxStatus())
		}
		_ = tx.Rollback(ctx)
		if c.PgConn().TxStatus() != 'I' {
			t.Fatalf("tx status %c", c.PgConn().TxStatus())
		}
	})
}

func TestCancel(t *testing.T) {
	reg := prometheus.NewRegistry()
	p := proxytest.StartProxy(t, func(_ *policy.Config, o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()

	t.Run("a cancel request stops a running statement", func(t *testing.T) {
		c := p.Connect(t, "alice")
		start := time.Now()
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(10), 'cancel-me'")
			done <- err
		}()
		proxytest.WaitRunning(t, "cancel-me")
		// pgconn dials the proxy with the key the proxy gave it.
		if err := c.PgConn().CancelRequest(ctx); err != nil {
			t.Errorf("cancel request: %v", err)
		}
		err := <-done
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
		if time.Since(start) > 8*time.Second {
			t.Fatalf("cancel took %v", time.Since(start))
		}
	})
	t.Run("a forged cancel key cancels nothing", func(t *testing.T) {
		c := p.Connect(t, "alice")
		pid := c.PgConn().PID()
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(1), 'forged-cancel'")
			done <- err
		}()
		proxytest.WaitRunning(t, "forged-cancel")
		sendCancel(t, p.Addr, pid, []byte{1, 2, 3, 4})
		sendCancel(t, p.Addr, pid+1, []byte{1, 2, 3, 4})
		if err := <-done; err != nil {
			t.Fatalf("statement was cancelled by a forged key: %v", err)
		}
	})
	t.Run("a cancel request right after another still stops the next statement", func(t *testing.T) {
		c := p.Connect(t, "alice")
		for i := range 2 {
			tag := fmt.Sprintf("cancel-twice-%d", i)
			done := make(chan error, 1)
			go func() {
				_, err := c.Exec(ctx, "SELECT pg_sleep(10), '"+tag+"'")
				done <- err
			}()
			proxytest.WaitRunning(t, tag)
			start := time.Now()
			if err := c.PgConn().CancelRequest(ctx); err != nil {
				t.Errorf("cancel request: %v", err)
			}
			var pgErr *pgconn.PgError
			if err := <-done; !errors.As(err, &pgErr) || pgErr.Code != "57014" {
				t.Fatalf("statement %d: want 57014 query_canceled, got %v", i, err)
			}
			if took := time.Since(start); took > 5*time.Second {
				t.Fatalf("statement %d: cancel took %v", i, took)
			}
		}
	})
	t.Run("a client that hangs up mid-statement has it cancelled, and the metric counts it delivered", func(t *testing.T) {
		c := p.Connect(t, "alice")
		before := labelled(t, reg, "pgveil_end_cancels_total", "outcome", "delivered")
		go func() { _, _ = c.Exec(ctx, "SELECT pg_sleep(30), 'hang-up-cancel'") }()
		proxytest.WaitRunning(t, "hang-up-cancel")
		_ = c.PgConn().Conn().Close()
		proxytest.Eventually(t, 10*time.Second, "the ended session's cancel counted delivered", func() bool {
			return labelled(t, reg, "pgveil_end_cancels_total", "outcome", "delivered") == before+1
		})
		admin, err := proxytest.Cluster.Connect(ctx, "postgres")
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		proxytest.Eventually(t, 10*time.Second, "no statement with hang-up-cancel running", func() bool {
			res := admin.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND strpos(query, 'hang-up-' || 'cancel') > 0",
				nil, nil, nil, nil).Read()
			return res.Err == nil && len(res.Rows) == 1 && string(res.Rows[0][0]) == "0"
		})
		for _, o := range []string{"busy", "failed"} {
			if n := labelled(t, reg, "pgveil_end_cancels_total", "outcome", o); n != 0 {
				t.Errorf("end cancels %s: %v, want 0", o, n)
			}
		}
	})
	t.Run("a flood of cancel requests reaches the upstream once per interval", func(t *testing.T) {
		c := p.Connect(t, "alice")
		done := make(chan error, 1)
		go func() {
			_, err := c.Exec(ctx, "SELECT pg_sleep(10), 'flood-cancel'")
			done <- err
		}()
		proxytest.WaitRunning(t, "flood-cancel")
		before := labelled(t, reg, "pgveil_cancel_requests_total", "outcome", "forwarded")
		busyBefore := labelled(t, reg, "pgveil_cancel_requests_total", "outcome", "busy")
		const flood = 50
		start := time.Now()
		var wg sync.WaitGroup
		for range 5 {
			wg.Go(func() {
				for range flood / 5 {
					// Each returns once pgveil is done with it.
					sendCancel(t, p.Addr, c.PgConn().PID(), c.PgConn().SecretKey())
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		var pgErr *pgconn.PgError
		if err := <-done; !errors.As(err, &pgErr) || pgErr.Code != "57014" {
			t.Fatalf("want 57014 query_canceled, got %v", err)
		}
		forwarded := labelled(t, reg, "pgveil_cancel_requests_total", "outcome", "forwarded") - before
		busy := labelled(t, reg, "pgveil_cancel_requests_total", "outcome", "busy") - busyBefore
		if most := 1 + int(took/(100*time.Millisecond)); forwarded < 1 || forwarded > float64(most) || forwarded+busy != flood {
			t.Fatalf("%v forwarded and %v dropped of %d in %v: want 1 to %d forwarded, the rest dropped", forwarded, busy, flood, took, most)
		}
	})
}

// labelled returns the value of the counter name of reg whose label is
// value, 0 when there is none.
func labelled(t *testing.T, reg *prometheus.Registry, name, label, value string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == label && l.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// pipelineOutcomes reads a pipeline's results up to its syncs-th Sync and
// names each: "row <first value>", "error <SQLSTATE>" or "sync".
func pipelineOutcomes(t *testing.T, pl *pgconn.Pipeline, syncs int) []string {
	t.Helper()
	var got []string
	for seen := 0; seen < syncs; {
		res, err := pl.GetResults()
		var pgErr *pgconn.PgError
		switch {
		case errors.As(err, &pgErr):
			got = append(got, "error "+pgErr.Code)
			continue
		case err != nil:
			t.Fatal(err)
		}
		switch r := res.(type) {
		case *pgconn.PipelineSync:
			got = append(got, "sync")
			seen++
		case *pgconn.ResultReader:
			rr := r.Read()
			if errors.As(rr.Err, &pgErr) {
				got = append(got, "error "+pgErr.Code)
			} else if rr.Err != nil {
				t.Fatal(rr.Err)
			} else {
				got = append(got, "row "+string(rr.Rows[0][0]))
			}
		case nil:
			t.Fatalf("results ended early: %v", got)
		}
	}
	return got
}
