package adversarial_test

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/audit"
)

// rawAuditConn connects to p as user and returns the raw connection,
// whose Frontend can pipeline.
func rawAuditConn(t *testing.T, p *proxytest.Proxy, user string) *pgconn.PgConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgconn.Connect(ctx, p.URL(user, "demo-"+user, nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close(context.Background()) })
	return c
}

// pipeline sends each of sqls, n times in all (in turn), as Query
// messages, and reads the answers to the last ReadyForQuery; it returns
// the ErrorResponses' codes.
func pipeline(t *testing.T, c *pgconn.PgConn, n int, sqls ...string) []string {
	t.Helper()
	fe := c.Frontend()
	errc := make(chan error, 1)
	go func() {
		for i := range n {
			fe.Send(&pgproto3.Query{String: sqls[i%len(sqls)]})
			if i%10 == 9 || i == n-1 {
				if err := fe.Flush(); err != nil {
					errc <- err
					return
				}
			}
		}
		errc <- nil
	}()
	var codes []string
	for ready := 0; ready < n; {
		m, err := fe.Receive()
		if err != nil {
			t.Fatalf("after %d answers: %v", ready, err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
		case *pgproto3.ReadyForQuery:
			ready++
		}
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return codes
}

// TestAuditRepeatedRefusalParsedOnce is the red team's
// TestDoSAuditWriterParse bounded: a 50 KiB statement the rewriter
// refuses from its cache, repeated, cost the one audit writer a full
// parse per record (40 records/s: the queue of 2000 filled in 2 s and
// every session of the loop waited). Its fingerprint now comes cached
// with the refusal: the writer parses it no more.
func TestAuditRepeatedRefusalParsedOnce(t *testing.T) {
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{QueueSize: 2000})
	c := rawAuditConn(t, p, "marie")
	sql := "SELECT " + strings.TrimSuffix(strings.Repeat("1,", 20000), ",") + " FROM employees"
	want, err := pg_query.Fingerprint(sql)
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	start := time.Now()
	codes := pipeline(t, c, n, sql)
	if len(codes) != n {
		t.Fatalf("%d errors for %d refused statements: %v", len(codes), n, codes[:min(len(codes), 5)])
	}
	if !proxytest.Poll(10*time.Second, func() bool { return alog.Stats().Queued == 0 }) {
		t.Fatalf("the writer is still behind after 10 s: %+v", alog.Stats())
	}
	t.Logf("%d refusals answered and written in %v", n, time.Since(start))
	if s := alog.Stats(); s.Parses > 2 {
		t.Errorf("the writer parsed %d texts for %d records of one refused statement: %+v", s.Parses, n, s)
	}
	denied := 0
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event != audit.EventStatement || e.SQL != sql {
			continue
		}
		denied++
		if e.Decision != audit.DecisionDenied || e.Fingerprint != want {
			t.Fatalf("record %d: decision %s, fingerprint %q, want %q", e.Seq, e.Decision, e.Fingerprint, want)
		}
	}
	if denied != n {
		t.Errorf("%d records of the refused statement, want %d", denied, n)
	}
}

// TestAuditQueueBytesBounded is the red team's TestDoSAuditQueueMemory
// bounded: 50 KiB refusals mixed with 5 MiB ones (refused by the
// guard) piled up in the queue, bounded in records only, at 100 MiB/s,
// and each wrote a 5 MiB line. The queued records now hold at most
// queue_bytes, and a record at most max_text of each text.
func TestAuditQueueBytesBounded(t *testing.T) {
	const budget = 2 << 20
	p, alog, path := proxytest.StartAuditedDemo(t, audit.Options{QueueBytes: budget})
	c := rawAuditConn(t, p, "marie")
	slow := "SELECT " + strings.TrimSuffix(strings.Repeat("1,", 20000), ",") + " FROM employees"
	big := "SELECT '" + strings.Repeat("x", 5<<20) + "' FROM employees"
	var peak atomic.Int64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for {
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
			s := alog.Stats()
			if s.QueuedBytes > peak.Load() {
				peak.Store(s.QueuedBytes)
			}
		}
	}()
	const pairs = 40
	pipeline(t, c, 2*pairs, slow, big)
	close(stop)
	<-sampled
	if got := peak.Load(); got > budget {
		t.Errorf("the queue held %d bytes, budget %d", got, budget)
	}
	s := alog.Stats()
	t.Logf("peak queued bytes %d of %d; %+v", peak.Load(), budget, s)
	n := 0
	for _, e := range proxytest.ReadAudit(t, alog, path) {
		if e.Event != audit.EventStatement {
			continue
		}
		if len(e.SQL) > audit.DefaultMaxText+200 {
			t.Fatalf("record %d keeps %d bytes of text", e.Seq, len(e.SQL))
		}
		if strings.HasPrefix(e.SQL, "SELECT 'xxx") {
			n++
			if !strings.Contains(e.SQL, "…<statement truncated: the first 65536 of "+strconv.Itoa(len(big))+" bytes kept, sha256 ") {
				t.Fatalf("record %d: %q", e.Seq, e.SQL[len(e.SQL)-200:])
			}
		}
	}
	if n != pairs {
		t.Errorf("%d records of the 5 MiB statement, want %d", n, pairs)
	}
}
