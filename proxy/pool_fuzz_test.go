package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// TestPoolProtocolFuzz sends random sequences of protocol messages as
// one user on a pool of one backend, then checks that another user's
// session on that backend reads its startup settings and exactly the
// answers to its own statement.
func TestPoolProtocolFuzz(t *testing.T) { proxytest.OnEveryRelay(t, testPoolProtocolFuzz) }

var fuzzVocab = []string{
	"SET DateStyle = 'German'", "RESET DateStyle", "SET TimeZone = 'Asia/Tokyo'", "RESET ALL",
	"SET LOCAL DateStyle = 'SQL'", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT s", "ROLLBACK TO SAVEPOINT s",
	"RELEASE s", "COMMIT AND CHAIN", "ROLLBACK AND CHAIN", "SELECT 1", "SELECT 1/0", "SELECT count(*) FROM responses",
	"SELECT * FROM pg_stat_activity", "DECLARE c CURSOR FOR SELECT 1", "FETCH c", "CLOSE c", "SHOW DateStyle",
	"SELECT pg_sleep(0.01)", "START TRANSACTION READ ONLY", "END", "ABORT", "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE",
	"SET SESSION CHARACTERISTICS AS TRANSACTION READ ONLY", "SET datestyle TO DEFAULT", "",
	"COPY pool_scratch.sink FROM STDIN", "COPY pool_scratch.sink FROM STDIN", "COPY (SELECT 1) TO STDOUT",
}

func fuzzMessage(r *rand.Rand) pgproto3.FrontendMessage {
	names := []string{"", "", "s1", "s2"}
	portals := []string{"", "", "p"}
	sql := func() string {
		if r.Intn(6) == 0 {
			return fuzzVocab[r.Intn(len(fuzzVocab))] + "; " + fuzzVocab[r.Intn(len(fuzzVocab))]
		}
		return fuzzVocab[r.Intn(len(fuzzVocab))]
	}
	switch r.Intn(15) {
	case 12:
		return &pgproto3.CopyData{Data: []byte([]string{"a row\n", "a\tb\n", ""}[r.Intn(3)])}
	case 13:
		return &pgproto3.CopyDone{}
	case 14:
		if r.Intn(4) == 0 {
			return &pgproto3.FunctionCall{Function: 1242, ResultFormatCode: 0}
		}
		return &pgproto3.CopyFail{Message: "no"}
	case 0, 1:
		return &pgproto3.Parse{Name: names[r.Intn(len(names))], Query: fuzzVocab[r.Intn(len(fuzzVocab))]}
	case 2, 3:
		return &pgproto3.Bind{DestinationPortal: portals[r.Intn(len(portals))], PreparedStatement: names[r.Intn(len(names))]}
	case 4, 5:
		return &pgproto3.Execute{Portal: portals[r.Intn(len(portals))], MaxRows: uint32(r.Intn(2))}
	case 6:
		if r.Intn(2) == 0 {
			return &pgproto3.Describe{ObjectType: 'S', Name: names[r.Intn(len(names))]}
		}
		return &pgproto3.Describe{ObjectType: 'P', Name: portals[r.Intn(len(portals))]}
	case 7:
		if r.Intn(2) == 0 {
			return &pgproto3.Close{ObjectType: 'S', Name: names[r.Intn(len(names))]}
		}
		return &pgproto3.Close{ObjectType: 'P', Name: portals[r.Intn(len(portals))]}
	case 8:
		return &pgproto3.Flush{}
	case 9:
		return &pgproto3.Sync{}
	default:
		return &pgproto3.Query{String: sql()}
	}
}

// drain reads what the connection's server sends until it is quiet for
// quiet, and returns the messages' types.
func drain(fe *pgproto3.Frontend, conn net.Conn, quiet time.Duration) (string, error) {
	var b strings.Builder
	for {
		_ = conn.SetReadDeadline(time.Now().Add(quiet))
		m, err := fe.Receive()
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				return b.String(), nil
			}
			return b.String(), err
		}
		fmt.Fprintf(&b, "%T ", m)
	}
}

func testPoolProtocolFuzz(t *testing.T, relay string) {
	if os.Getenv("PGVEIL_POOL_FUZZ") == "" {
		t.Skip("set PGVEIL_POOL_FUZZ=1 to run (minutes)")
	}
	proxytest.SetupDemo(t)
	proxytest.Direct(t, "CREATE SCHEMA IF NOT EXISTS pool_scratch")
	proxytest.Direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)")
	proxytest.Direct(t, "GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc")
	proxytest.Direct(t, "GRANT SELECT, INSERT ON pool_scratch.sink TO pgveil_svc")
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 700 * time.Millisecond, IdleTimeout: time.Minute}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	})
	ctx := context.Background()
	seed := time.Now().UnixNano()
	if s := os.Getenv("POOLRED_SEED"); s != "" {
		seed, _ = strconv.ParseInt(s, 10, 64)
	}
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	iterations := 150
	if s := os.Getenv("POOLRED_ITER"); s != "" {
		iterations, _ = strconv.Atoi(s)
	}
	connect := func(user string) *pgx.Conn {
		c, err := pgx.Connect(ctx, p.URL(user, "demo-"+user, nil))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	b := connect("tom")
	defer b.Close(ctx)
	wantTZ := b.PgConn().ParameterStatus("TimeZone")
	var a *pgx.Conn
	kept := 0
	for i := range iterations {
		if a == nil || r.Intn(8) == 0 {
			if a != nil {
				a.Close(ctx)
			}
			a = connect("hq")
		}
		var msgs []pgproto3.FrontendMessage
		n := 1 + r.Intn(8)
		for range n {
			msgs = append(msgs, fuzzMessage(r))
		}
		if r.Intn(4) != 0 {
			msgs = append(msgs, &pgproto3.Sync{})
		}
		var desc []string
		for _, m := range msgs {
			desc = append(desc, fmt.Sprintf("%T%+v", m, m))
		}
		fe := a.PgConn().Frontend()
		for _, m := range msgs {
			fe.Send(m)
		}
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		got, err := drain(fe, a.PgConn().Conn(), 100*time.Millisecond)
		if err == nil && r.Intn(2) == 0 {
			// End what the sequence left open, as a client would.
			fe.Send(&pgproto3.Sync{})
			fe.Send(&pgproto3.Query{String: "ROLLBACK"})
			_ = fe.Flush()
			var more string
			more, err = drain(fe, a.PgConn().Conn(), 100*time.Millisecond)
			got += "| " + more
		}
		if err != nil {
			t.Logf("iteration %d: the fuzzing session ended: %v (%s)", i, err, got)
			a.Close(ctx)
			a = nil
		}
		// The checking session, run while the other may hold the backend.
		bfe := b.PgConn().Frontend()
		bfe.Send(&pgproto3.Query{String: "SELECT current_setting('DateStyle') || '|' || current_setting('TimeZone') || '|' || current_setting('transaction_read_only') || '|' || current_setting('application_name')"})
		if err := bfe.Flush(); err != nil {
			t.Fatal(err)
		}
		var seen []string
		var rows []string
		var pgErr string
		_ = b.PgConn().Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
		for done := false; !done; {
			m, err := bfe.Receive()
			if err != nil {
				t.Fatalf("iteration %d: the checking session: %v", i, err)
			}
			seen = append(seen, fmt.Sprintf("%T", m))
			switch m := m.(type) {
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.ErrorResponse:
				pgErr = m.Code + " " + m.Message
			case *pgproto3.ReadyForQuery:
				done = true
			}
		}
		// Give the fuzzing session's pending answers a chance later.
		if pgErr != "" {
			if strings.HasPrefix(pgErr, "53300") {
				kept++
				if a != nil {
					a.Close(ctx)
					a = nil
				}
				continue
			}
			t.Fatalf("iteration %d: the checking session got %s after %s", i, pgErr, strings.Join(desc, " "))
		}
		want := "ISO, MDY|" + wantTZ + "|off|pgveil:tom:"
		if len(rows) != 1 || !strings.HasPrefix(rows[0], want) || len(seen) != 4 {
			t.Fatalf("iteration %d: the checking session read %q (%v), want %q, after the other session sent %s (and read %s)", i, rows, seen, want, strings.Join(desc, " "), got)
		}
	}
	t.Logf("%d of %d iterations found the backend kept", kept, iterations)
	if a != nil {
		a.Close(ctx)
	}
}

// TestPoolConcurrentFuzz runs the fuzzing session and the checking
// session at once, the fuzzer never waiting for its answers.
func TestPoolConcurrentFuzz(t *testing.T) { proxytest.OnEveryRelay(t, testPoolConcurrentFuzz) }

func testPoolConcurrentFuzz(t *testing.T, relay string) {
	if os.Getenv("PGVEIL_POOL_FUZZ") == "" {
		t.Skip("set PGVEIL_POOL_FUZZ=1 to run (minutes)")
	}
	proxytest.SetupDemo(t)
	proxytest.Direct(t, "CREATE SCHEMA IF NOT EXISTS pool_scratch")
	proxytest.Direct(t, "CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)")
	proxytest.Direct(t, "GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc")
	proxytest.Direct(t, "GRANT SELECT, INSERT ON pool_scratch.sink TO pgveil_svc")
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 3 * time.Second, IdleTimeout: time.Minute}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	})
	ctx := context.Background()
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	stop := make(chan struct{})
	fuzzDone := make(chan struct{})
	go func() {
		defer close(fuzzDone)
		r := rand.New(rand.NewSource(seed))
		for {
			select {
			case <-stop:
				return
			default:
			}
			a, err := pgx.Connect(ctx, p.URL("hq", "demo-hq", nil))
			if err != nil {
				continue
			}
			conn := a.PgConn().Conn()
			fe := a.PgConn().Frontend()
			go func() {
				for {
					if _, err := fe.Receive(); err != nil {
						return
					}
				}
			}()
			for range 1 + r.Intn(30) {
				var buf []byte
				for range 1 + r.Intn(8) {
					buf, _ = fuzzMessage(r).Encode(buf)
				}
				if r.Intn(3) == 0 {
					buf, _ = (&pgproto3.Sync{}).Encode(buf)
					buf, _ = (&pgproto3.Query{String: "ROLLBACK"}).Encode(buf)
				}
				if _, err := conn.Write(buf); err != nil {
					break
				}
				time.Sleep(time.Duration(r.Intn(3)) * time.Millisecond)
			}
			conn.Close()
		}
	}()
	b, err := pgx.Connect(ctx, p.URL("tom", "demo-tom", nil))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close(ctx)
	wantTZ := b.PgConn().ParameterStatus("TimeZone")
	want := "ISO, MDY|" + wantTZ + "|off|pgveil:tom:"
	deadline := time.Now().Add(60 * time.Second)
	checks, waits := 0, 0
	for time.Now().Before(deadline) {
		bfe := b.PgConn().Frontend()
		bfe.Send(&pgproto3.Query{String: "SELECT current_setting('DateStyle') || '|' || current_setting('TimeZone') || '|' || current_setting('transaction_read_only') || '|' || current_setting('application_name')"})
		if err := bfe.Flush(); err != nil {
			t.Fatal(err)
		}
		var seen, rows []string
		pgErr := ""
		_ = b.PgConn().Conn().SetReadDeadline(time.Now().Add(10 * time.Second))
		for done := false; !done; {
			m, err := bfe.Receive()
			if err != nil {
				t.Fatalf("the checking session: %v (after %v)", err, seen)
			}
			seen = append(seen, fmt.Sprintf("%T", m))
			switch m := m.(type) {
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.ErrorResponse:
				pgErr = m.Code + " " + m.Message
			case *pgproto3.ReadyForQuery:
				done = true
			}
		}
		if strings.HasPrefix(pgErr, "53300") {
			waits++
			t.Logf("wait in vain: %s", proxy.PoolRedStats(p.Server))
			continue
		}
		checks++
		if pgErr != "" || len(rows) != 1 || !strings.HasPrefix(rows[0], want) || len(seen) != 4 {
			close(stop)
			<-fuzzDone
			t.Fatalf("check %d: the checking session read %q %q (%v), want %q", checks, rows, pgErr, seen, want)
		}
	}
	close(stop)
	<-fuzzDone
	t.Logf("%d checks, %d waits in vain", checks, waits)
	// Every fuzzing connection is closed: the backend must come back.
	began := time.Now()
	for {
		var s string
		err := b.QueryRow(ctx, "SELECT 'served'").Scan(&s)
		if err == nil {
			t.Logf("served %s after the fuzzer stopped", time.Since(began))
			break
		}
		if time.Since(began) > 30*time.Second {
			t.Fatalf("30s after every other client left, still %v (%s)", err, proxy.PoolRedStats(p.Server))
		}
	}
}
