package proxy_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestTransactionPoolCopySyncsNeverRunAhead: message sequences around a
// COPY FROM STDIN whose Syncs the server ignores, answers or never sees
// as a COPY's, sent by a client that pipelines without waiting. pgveil may
// keep the backend with the session longer than needed, never release it
// with answers still to come: another session never reads the loader's
// rows nor runs inside its transaction, and the loader reads its own
// answers in order.
func TestTransactionPoolCopySyncsNeverRunAhead(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolCopySyncsNeverRunAhead)
}

func testTransactionPoolCopySyncsNeverRunAhead(t *testing.T, relay string) {
	p := startCopyLoader(t, relay,
		// slowsink's rows take a while: its CommandComplete comes long
		// after its CopyInResponse.
		"CREATE TABLE IF NOT EXISTS pool_scratch.slowsink (note text)",
		"CREATE OR REPLACE FUNCTION pool_scratch.slow() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN PERFORM pg_sleep(0.3); RETURN NEW; END $$",
		"CREATE OR REPLACE TRIGGER slow BEFORE INSERT ON pool_scratch.slowsink FOR EACH ROW EXECUTE FUNCTION pool_scratch.slow()",
		"GRANT SELECT, INSERT ON pool_scratch.slowsink TO pgveil_svc")
	const copySQL, slowSQL = "COPY pool_scratch.sink FROM STDIN", "COPY pool_scratch.slowsink FROM STDIN"
	extended := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: copySQL}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	slowRow := []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("row\n")}, &pgproto3.CopyDone{}}
	q2 := []pgproto3.FrontendMessage{&pgproto3.Parse{Query: "SELECT 'q2'"}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	isG := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok }
	isZ := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }
	type step struct {
		send []pgproto3.FrontendMessage
		// until is what the loader reads before the next step.
		until func(pgproto3.BackendMessage) bool
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"a CopyDone sent blindly, Syncs, and a CopyDone after the COPY", []step{
			{append(extended, &pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{}, &pgproto3.Sync{}, &pgproto3.CopyDone{}), isZ},
			{nil, isZ},
		}},
		{"a CopyDone after the CopyInResponse, then Syncs and a stray CopyDone", []step{
			{append(extended, &pgproto3.Sync{}), isG},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.Sync{}, &pgproto3.Sync{}, &pgproto3.CopyDone{}}, isZ},
			{nil, isZ},
		}},
		{"two COPYs of one Query, a Sync in the first", []step{
			{[]pgproto3.FrontendMessage{&pgproto3.Query{String: copySQL + "; " + copySQL}, &pgproto3.Sync{}, &pgproto3.CopyDone{}}, isG},
			{nil, isG},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyDone{}}, isZ},
		}},
		{"two COPYs of one Query, each CopyDone after its CopyInResponse", []step{
			{[]pgproto3.FrontendMessage{&pgproto3.Query{String: copySQL + "; " + copySQL}}, isG},
			{[]pgproto3.FrontendMessage{&pgproto3.Sync{}, &pgproto3.CopyDone{}}, isG},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyDone{}}, isZ},
		}},
		// A CopyDone sent blindly ends the COPY; the CopyInResponse
		// comes after a later Query, whose Syncs the server answers.
		{"a blind CopyDone, then a Query and a stray CopyDone while the COPY still runs", []step{
			{append([]pgproto3.FrontendMessage{&pgproto3.Query{String: slowSQL}}, slowRow...), isG},
			{append(append([]pgproto3.FrontendMessage{&pgproto3.Query{String: "SELECT 'q2'"}}, q2...), &pgproto3.Sync{}, &pgproto3.CopyDone{}), isZ},
			{nil, isZ},
			{nil, isZ},
		}},
		{"a blind extended CopyDone, then an Execute of the same batch and a stray CopyDone", []step{
			{append([]pgproto3.FrontendMessage{&pgproto3.Parse{Query: slowSQL}, &pgproto3.Bind{}, &pgproto3.Execute{}}, slowRow...), isG},
			{append(q2, &pgproto3.Sync{}, &pgproto3.CopyDone{}), isZ},
		}},
		{"two pipelined extended COPYs", []step{
			{append(append(append([]pgproto3.FrontendMessage{}, extended...), &pgproto3.CopyDone{}, &pgproto3.Sync{}), append(extended,
				&pgproto3.Sync{}, &pgproto3.Sync{}, &pgproto3.CopyData{Data: []byte("loader row\n")}, &pgproto3.CopyDone{})...), isZ},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			loader, other := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
			_ = loader.PgConn().Conn().SetDeadline(time.Now().Add(20 * time.Second))
			fe := loader.PgConn().Frontend()
			for _, s := range c.steps {
				for _, m := range s.send {
					fe.Send(m)
				}
				if err := fe.Flush(); err != nil {
					t.Fatal(err)
				}
				receiveUntil(t, fe, s.until)
			}
			// The loader pipelines three statements, the second slow; marie
			// asks while it runs.
			for _, q := range []string{"SELECT 'first'", "SELECT 'loader sleep' FROM pg_sleep(0.5)", "SELECT 'loader secret'", "SYNC"} {
				if q == "SYNC" {
					fe.Send(&pgproto3.Sync{})
				} else {
					fe.Send(&pgproto3.Query{String: q})
				}
			}
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			marie := make(chan string, 1)
			go func() {
				var s string
				err := other.QueryRow(t.Context(), "SELECT 'marie private'").Scan(&s)
				var pgErr *pgconn.PgError
				switch {
				case errors.As(err, &pgErr) && pgErr.Code == "53300":
					s = "waited"
				case err != nil:
					s = err.Error()
				}
				marie <- s
			}()
			var rows []string
			for len(rows) < 3 {
				m, err := fe.Receive()
				if err != nil {
					t.Fatalf("loader: %v after %v", err, rows)
				}
				if d, ok := m.(*pgproto3.DataRow); ok {
					rows = append(rows, string(d.Values[0]))
				}
			}
			if fmt.Sprint(rows) != "[first loader sleep loader secret]" {
				t.Errorf("the loader read %v", rows)
			}
			if got := <-marie; got != "marie private" && got != "waited" {
				t.Errorf("marie read %q", got)
			}
		})
	}
}

// startCopyLoader starts the demo on relay with a transaction pool of one
// backend, where hq (central_analyst) may insert into the allowed schema
// pool_scratch, which holds sink (note text), after running setup
// upstream.
func startCopyLoader(t *testing.T, relay string, setup ...string) *proxytest.Proxy {
	t.Helper()
	proxytest.SetupDemo(t)
	for _, q := range append([]string{
		"CREATE SCHEMA IF NOT EXISTS pool_scratch",
		"CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)",
		"GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc",
		"GRANT SELECT, INSERT ON pool_scratch.sink TO pgveil_svc",
	}, setup...) {
		proxytest.Direct(t, q)
	}
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: time.Second, IdleTimeout: time.Minute}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	})
	return p
}

// TestTransactionPoolCopyDoubtAlreadyAnswered: a Sync sent within a COPY
// that fails before the server reads it is answered, and the client sees
// that answer; Syncs it sends afterwards are surely answered, and it must
// get every one of them.
func TestTransactionPoolCopyDoubtAlreadyAnswered(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolCopyDoubtAlreadyAnswered)
}

func testTransactionPoolCopyDoubtAlreadyAnswered(t *testing.T, relay string) {
	p := startCopyLoader(t, relay,
		// refuses fails every COPY before it reads any data.
		"CREATE TABLE IF NOT EXISTS pool_scratch.refuses (note text)",
		"CREATE OR REPLACE FUNCTION pool_scratch.refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RAISE EXCEPTION 'no rows here'; END $$",
		"CREATE OR REPLACE TRIGGER refuse BEFORE INSERT ON pool_scratch.refuses FOR EACH STATEMENT EXECUTE FUNCTION pool_scratch.refuse()",
		"GRANT SELECT, INSERT ON pool_scratch.refuses TO pgveil_svc")
	isG := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok }
	isZ := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }
	exec := func(sql string) []pgproto3.FrontendMessage {
		return []pgproto3.FrontendMessage{&pgproto3.Parse{Query: sql}, &pgproto3.Bind{}, &pgproto3.Execute{}}
	}
	type step struct {
		send  []pgproto3.FrontendMessage
		until func(pgproto3.BackendMessage) bool
	}
	// After the COPY failed and the client saw its Sync answered: a Sync,
	// a late CopyDone, a Sync: both Syncs are answered.
	after := step{[]pgproto3.FrontendMessage{&pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{}}, isZ}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"bad data and a Sync, answered, then Sync, CopyDone, Sync", []step{
			{exec("COPY pool_scratch.sink FROM STDIN"), isG},
			{[]pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("a\tb\tc\n")}, &pgproto3.Sync{}}, isZ},
			after, {nil, isZ},
		}},
		{"libpq's Sync answered after a statement trigger failed the COPY, then Sync, CopyDone, Sync", []step{
			{append(exec("COPY pool_scratch.refuses FROM STDIN"), &pgproto3.Sync{}), isZ},
			after, {nil, isZ},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i := range 10 {
				loader := p.SimpleConn(t, "hq")
				_ = loader.PgConn().Conn().SetDeadline(time.Now().Add(5 * time.Second))
				fe := loader.PgConn().Frontend()
				for j, s := range c.steps {
					for _, m := range s.send {
						fe.Send(m)
					}
					if err := fe.Flush(); err != nil {
						t.Fatal(err)
					}
					for {
						m, err := fe.Receive()
						if err != nil {
							t.Fatalf("round %d, step %d: %v", i, j, err)
						}
						if s.until(m) {
							break
						}
					}
				}
				want := fmt.Sprintf("loader %d", i)
				if got, err := one(t.Context(), loader, "SELECT '"+want+"'"); err != nil || got != want {
					t.Fatalf("round %d: the loader's next statement: %q, %v", i, got, err)
				}
				loader.Close(t.Context())
			}
		})
	}
}

// TestTransactionPoolFlushNeverGivesAwayAMessage: a backend whose last
// answer came while its session's flush was finishing its bookkeeping
// stays with the session when the session starts its next message
// meanwhile: that message, written after the flush, must not reach the
// backend's next holder (a review's sequence, with the relay's thread
// preempted after the flush's write).
func TestTransactionPoolFlushNeverGivesAwayAMessage(t *testing.T) {
	p := startCopyLoader(t, policy.RelayGoroutines)
	loader, other := p.SimpleConn(t, "hq"), p.SimpleConn(t, "marie")
	defer proxy.DelayPooledFlushes(100 * time.Millisecond)()
	conn, fe := loader.PgConn().Conn(), loader.PgConn().Frontend()
	q1, _ := (&pgproto3.Query{String: "SELECT 'loader first'"}).Encode(nil)
	q2, _ := (&pgproto3.Query{String: "SELECT 'loader secret'"}).Encode(nil)
	if _, err := conn.Write(q1); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	// The next message's header and a byte: the client relay holds the
	// backend and reads on.
	if _, err := conn.Write(q2[:7]); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	got := make(chan string, 2)
	go func() {
		for _, q := range []string{"SELECT 'marie 1' FROM pg_sleep(0.4)", "SELECT 'marie 2'"} {
			s, err := one(context.Background(), other, q)
			if err != nil {
				s = err.Error()
			}
			got <- s
		}
	}()
	time.Sleep(150 * time.Millisecond)
	if _, err := conn.Write(q2[7:]); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"marie 1", "marie 2"} {
		if s := <-got; s != want {
			t.Fatalf("marie got %q, want %q", s, want)
		}
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	var rows []string
	for len(rows) < 2 {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("the loader, after %q: %v", rows, err)
		}
		if d, ok := m.(*pgproto3.DataRow); ok {
			rows = append(rows, string(d.Values[0]))
		}
	}
	if rows[0] != "loader first" || rows[1] != "loader secret" {
		t.Fatalf("the loader got %q", rows)
	}
}

// TestTransactionPoolStreamedMessageKeepsItsBackend: a client message
// streamed through in parts (a CopyData larger than the read buffer, a
// stray one after a Query or the rest of one after its COPY failed) keeps
// the backend until its last byte went upstream. Given to another session
// in the middle, the rest would reach that session's backend and be read
// there as messages: a review ran its own SQL, unchecked, in another
// session's place. And once it has gone, the backend goes back to the
// pool, though the batch's last answer came before.
func TestTransactionPoolStreamedMessageKeepsItsBackend(t *testing.T) {
	proxytest.OnEveryRelay(t, testTransactionPoolStreamedMessageKeepsItsBackend)
}

func testTransactionPoolStreamedMessageKeepsItsBackend(t *testing.T, relay string) {
	p := startCopyLoader(t, relay)
	isG := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok }
	isZ := func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok }
	for _, c := range []struct {
		name string
		// before starts the attacker's sequence, and what it waits for.
		before []pgproto3.FrontendMessage
		until  func(pgproto3.BackendMessage) bool
		// first is sent ahead of the CopyData's first part.
		first pgproto3.FrontendMessage
	}{
		{"a stray CopyData after a Query", nil, nil, &pgproto3.Query{String: "SELECT 'attacker'"}},
		{"the rest of a CopyData after its COPY failed",
			[]pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY pool_scratch.sink FROM STDIN"}}, isG,
			&pgproto3.CopyData{Data: []byte("a\tb\tc\n")}},
	} {
		t.Run(c.name, func(t *testing.T) {
			a, b := p.SimpleConn(t, "hq"), p.SimpleConn(t, "hq")
			aconn, afe := a.PgConn().Conn(), a.PgConn().Frontend()
			bconn, bfe := b.PgConn().Conn(), b.PgConn().Frontend()
			for _, c := range []interface{ SetDeadline(time.Time) error }{aconn, bconn} {
				_ = c.SetDeadline(time.Now().Add(10 * time.Second))
			}
			rows := func(fe *pgproto3.Frontend, stop func(pgproto3.BackendMessage) bool) []string {
				var got []string
				for {
					m, err := fe.Receive()
					if err != nil {
						t.Fatalf("after %q: %v", got, err)
					}
					switch m := m.(type) {
					case *pgproto3.DataRow:
						got = append(got, string(m.Values[0]))
					case *pgproto3.ErrorResponse:
						got = append(got, "error: "+m.Message)
					}
					if stop(m) {
						return got
					}
				}
			}
			for _, m := range c.before {
				afe.Send(m)
			}
			if c.before != nil {
				if err := afe.Flush(); err != nil {
					t.Fatal(err)
				}
				rows(afe, c.until)
			}
			// The other session's Query, and the attacker's of its length.
			vq, _ := (&pgproto3.Query{String: "SELECT 'victim answer xxxxxxxxxxxxxxxxxxxxxxx'"}).Encode(nil)
			inj := "SELECT current_user::text || ' INJECTED' -- "
			inj += strings.Repeat("x", len(vq)-5-1-len(inj))
			iq, _ := (&pgproto3.Query{String: inj}).Encode(nil)
			// A CopyData of p1 bytes now and r to come.
			const p1, r = 20000, 16 << 10
			head, _ := c.first.Encode(nil)
			hdr := []byte{'d', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(hdr[1:], uint32(4+p1+r))
			if _, err := aconn.Write(append(append(head, hdr...), bytes.Repeat([]byte("x"), p1)...)); err != nil {
				t.Fatal(err)
			}
			rows(afe, isZ)
			time.Sleep(200 * time.Millisecond)
			if _, err := bconn.Write(vq); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)
			if _, err := aconn.Write(append(bytes.Repeat([]byte("x"), r-len(iq)), iq...)); err != nil {
				t.Fatal(err)
			}
			if got := rows(bfe, isZ); fmt.Sprint(got) != "[victim answer xxxxxxxxxxxxxxxxxxxxxxx]" {
				t.Fatalf("the other session got %q, not its own answer", got)
			}
			// The attacker idle, the backend is free again.
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			if s, err := one(ctx, p.SimpleConn(t, "marie"), "SELECT 'marie'"); err != nil || s != "marie" {
				t.Fatalf("with the attacker idle, marie got %q, %v", s, err)
			}
		})
	}
}

// TestTransactionPoolParkedBackendWakes: the rest of a streamed CopyData
// and a message that gets no answer of its own (copy data, a Flush) in
// one write: the backend relay, parked at the Query's ReadyForQuery while
// the CopyData held the batch open, is still woken to let the backend go
// once the session is idle (a review's sequence).
func TestTransactionPoolParkedBackendWakes(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		for _, extra := range []pgproto3.FrontendMessage{&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.Flush{}} {
			p := startCopyLoader(t, relay)
			a := p.SimpleConn(t, "hq")
			aconn, afe := a.PgConn().Conn(), a.PgConn().Frontend()
			_ = aconn.SetDeadline(time.Now().Add(10 * time.Second))
			head, _ := (&pgproto3.Query{String: "SELECT 1"}).Encode(nil)
			// A small tail: it and the next message arrive in one read.
			const p1, r = 36000, 10
			hdr := []byte{'d', 0, 0, 0, 0}
			binary.BigEndian.PutUint32(hdr[1:], uint32(4+p1+r))
			if _, err := aconn.Write(append(append(head, hdr...), bytes.Repeat([]byte("x"), p1)...)); err != nil {
				t.Fatal(err)
			}
			receiveUntil(t, afe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
			time.Sleep(200 * time.Millisecond)
			tail, _ := extra.Encode(nil)
			if _, err := aconn.Write(append(bytes.Repeat([]byte("x"), r), tail...)); err != nil {
				t.Fatal(err)
			}
			time.Sleep(200 * time.Millisecond)
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			s, err := one(ctx, p.SimpleConn(t, "marie"), "SELECT 'marie'")
			cancel()
			if err != nil || s != "marie" {
				t.Errorf("after %T, marie got %q, %v", extra, s, err)
			}
		}
	})
}
