package proxy

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"fmt"
	"io"
	"math/big"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// fixedVersion is a Rewriter whose policies can reload but do not: the
// tracker is on, as in pgveil serve.
type fixedVersion struct{}

func (fixedVersion) PolicyVersion() string { return "v1" }
func (fixedVersion) Rewrite(_ context.Context, _ *SessionInfo, st *Statement) (*rewrite.Result, error) {
	return &rewrite.Result{SQL: st.Text}, nil
}

// benchClientRelay runs the client relay over n copies of txn with the
// upstream discarded, without any network: the relay's own CPU per
// transaction.
//
// NOTE: the relay runs over chunks of benchChunk transactions, and the
// tracker is given its answers between them (untimed): a session never
// answered ends at statement.MaxHeldMessages, and the benchmark would
// then time nothing (it did: a few ns "per transaction", then an input
// of gigabytes for the next b.N).
func benchClientRelay(b *testing.B, txn []byte, track bool) {
	const benchChunk = 10_000
	srv := fuzzServer(b)
	in := bytes.Repeat(txn, benchChunk)
	ss := &session{
		srv:          srv,
		log:          zap.NewNop(),
		ctx:          context.Background(),
		uout:         wire.NewWriter(io.Discard, upstreamWrite),
		cout:         wire.NewWriter(io.Discard, clientWriteBuf),
		markerPrefix: "pgveil_refused_bench_",
		refusals:     map[uint64]pendingRefusal{},
	}
	prepared := txn[0] == 'B'
	readyForQuery := []byte{'Z', 0, 0, 0, 5, 'I'}
	if track {
		ss.track = statement.NewTracker(false, fixedVersion{})
		// pgbench -M prepared parsed its statement once, and the
		// upstream answered: its Binds find it confirmed.
		const text = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
		ss.track.OnStatement(&Statement{Source: SourceParse, Text: text, Name: "P0_1", PolicyVersion: "v1"},
			&rewrite.Result{SQL: text}, nil)
		ss.track.OnAnswer('1', 5, "", "", false) // ParseComplete
	}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(benchChunk, b.N-done)
		ss.cin = wire.NewReader(bytes.NewReader(in[:n*len(txn)]), clientReadBuf, srv.cfg.MaxMessageSize)
		if e := ss.clientRelay(); e.reason != "client disconnected" {
			b.Fatalf("the relay ended before the input's end: %s", e.reason)
		}
		done += n
		if track {
			b.StopTimer()
			for range n {
				if prepared {
					ss.track.OnAnswer('2', 5, "", "", false) // BindComplete
				}
				if _, err := ss.onReadyForQuery(readyForQuery); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
	}
}

// BenchmarkClientRelay measures the client relay on pgbench -S's
// transactions: a Query (simple) or Bind, Execute, Sync (prepared), with
// and without the tracker that reloadable policies turn on.
func BenchmarkClientRelay(b *testing.B) {
	simple := encodeAll(&pgproto3.Query{String: "SELECT abalance FROM pgbench_accounts WHERE aid = 12345;"})
	prepared := encodeAll(&pgproto3.Bind{PreparedStatement: "P0_1", Parameters: [][]byte{[]byte("12345")}},
		&pgproto3.Execute{}, &pgproto3.Sync{})
	for _, c := range []struct {
		name  string
		txn   []byte
		track bool
	}{
		{"simple", simple, false}, {"simple/track", simple, true},
		{"prepared", prepared, false}, {"prepared/track", prepared, true},
	} {
		b.Run(c.name, func(b *testing.B) { benchClientRelay(b, c.txn, c.track) })
	}
}

// BenchmarkPipelinedAnswers measures a transaction's cost, client message
// and answers, when a client pipelines depth of them before reading: the
// same at any depth, or a pipeline of n costs the relay n² (24,000
// pipelined transactions once cost it 4 to 11 s: every ReadyForQuery
// walked what was still in flight).
//
// NOTE: on objectRewriter, which sets the policy version the tracker
// follows: the unnamed transactions run (checked: nothing refused),
// where a rewriter that sets none would have every Execute refused
// policy_changed, and time the refusal instead.
func BenchmarkPipelinedAnswers(b *testing.B) {
	unnamed := encodeAll(&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	refused := encodeAll(&pgproto3.Parse{Query: "SELECT deny"}, &pgproto3.Sync{})
	for _, c := range []struct {
		name    string
		txn     []byte
		answers string
		refuses bool
	}{
		{"unnamed", unnamed, "12CZ", false},
		// The server skips a refusal's marker or answers it with an
		// error; either way its ReadyForQuery forgets it.
		{"refused", refused, "Z", true},
	} {
		for _, depth := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("%s/depth=%d", c.name, depth), func(b *testing.B) {
				benchPipelined(b, c.txn, c.answers, depth, false, c.refuses)
			})
		}
	}
}

// objectRewriter is a Rewriter whose policies can reload but do not (the
// tracker is on, as in pgveil serve), which sets the policy version of
// what it checks, refuses statements containing "deny", and reports the
// prepared statements and cursors of each ';'-separated statement as
// rewrite.Engine does: PREPARE, EXECUTE, DECLARE and FETCH of the name
// the statement ends with, DEALLOCATE and CLOSE of it or of ALL.
type objectRewriter struct{}

func (objectRewriter) PolicyVersion() string { return "v1" }
func (objectRewriter) Rewrite(_ context.Context, _ *SessionInfo, st *Statement) (*rewrite.Result, error) {
	if strings.Contains(st.Text, "deny") {
		return nil, &Refusal{Message: "denied"}
	}
	st.PolicyVersion = "v1"
	res := &rewrite.Result{SQL: st.Text}
	for _, s := range strings.Split(st.Text, ";") {
		f := strings.Fields(s)
		if len(f) < 2 {
			continue
		}
		op, name := strings.ToLower(f[0]), f[len(f)-1]
		switch op {
		case "deallocate", "close":
			if strings.EqualFold(name, "all") {
				name = ""
			}
			fallthrough
		case "fetch", "execute", "prepare", "declare":
			res.Objects = append(res.Objects, rewrite.SessionObject{Op: op, Name: name})
			res.Kinds = append(res.Kinds, op)
		default:
			res.Kinds = append(res.Kinds, "select")
		}
	}
	return res, nil
}

var (
	objectOnce sync.Once
	objectSrv  *Server
)

// objectServer is a Server as fuzzServer, on objectRewriter.
func objectServer(b testing.TB) *Server {
	objectOnce.Do(func() {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		v, _ := scram.NewVerifier("pw", 4096)
		cfg := &policy.Config{
			Listen: policy.Listen{Address: "127.0.0.1:0", Database: "db", StartupTimeout: time.Second,
				ShutdownTimeout: time.Second, MaxMessageSize: 1 << 20,
				TLS: &policy.ListenTLS{Config: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}},
			Upstream: policy.Upstream{Address: "127.0.0.1:1", Database: "db", User: "svc", SearchPath: "public",
				ConnectTimeout: 100 * time.Millisecond},
			Users: map[string]*policy.User{"alice": {Login: "alice", Verifier: v}},
		}
		opts := Options{Logger: zap.NewNop(), Rewriter: objectRewriter{}, Audit: discardAudit{}, Metrics: NewMetrics(prometheus.NewRegistry())}
		StaticIdentities(cfg, &opts)
		var err error
		if objectSrv, err = New(ConfigOf(cfg), opts); err != nil {
			panic(err)
		}
	})
	return objectSrv
}

// benchSession is a session of objectServer with its upstream and client
// discarded, and a tracker (audit: following executions too).
func benchSession(b testing.TB, audit bool) *session {
	return &session{
		srv:          objectServer(b),
		log:          zap.NewNop(),
		ctx:          context.Background(),
		uout:         wire.NewWriter(io.Discard, upstreamWrite),
		cout:         wire.NewWriter(io.Discard, clientWriteBuf),
		markerPrefix: "pgveil_refused_bench_",
		refusals:     map[uint64]pendingRefusal{},
		track:        statement.NewTracker(audit, objectRewriter{}),
	}
}

// relayAll runs ss's client relay over in, to its end.
func relayAll(b testing.TB, ss *session, in []byte) {
	ss.cin = wire.NewReader(bytes.NewReader(in), clientReadBuf, ss.srv.cfg.MaxMessageSize)
	if e := ss.clientRelay(); e.reason != "client disconnected" {
		b.Fatalf("the relay ended before the input's end: %s", e.reason)
	}
}

// answerAll gives ss's tracker and session answers, one letter each (Z a
// ReadyForQuery).
func answerAll(b testing.TB, ss *session, answers string) {
	readyForQuery := []byte{'Z', 0, 0, 0, 5, 'I'}
	for _, a := range []byte(answers) {
		if a != 'Z' {
			ss.track.OnAnswer(a, 5, "", "", false)
		} else if _, err := ss.onReadyForQuery(readyForQuery); err != nil {
			b.Fatal(err)
		}
	}
}

// benchPipelined relays depth copies of txn at a time, then gives the
// tracker and the session answers (one letter each, Z a ReadyForQuery)
// for each; refuses says whether pgveil refuses them, which it checks.
func benchPipelined(b *testing.B, txn []byte, answers string, depth int, audit, refuses bool) {
	in := bytes.Repeat(txn, depth)
	ss := benchSession(b, audit)
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(depth, b.N-done)
		relayAll(b, ss, in[:n*len(txn)])
		if refused := len(ss.refusals) > 0; refused != refuses {
			b.Fatalf("refused: %v, want %v", refused, refuses)
		}
		for range n {
			answerAll(b, ss, answers)
		}
		done += n
	}
}

// BenchmarkObjectsInFlight measures a transaction that fetches from a
// cursor, when a client pipelines depth of them: by Query, by Parse,
// Bind, Execute and Sync, and by Query with the audit trail on. Each
// one's statement is an object change in flight that the next one's
// check must look past (Tracker.candidates): the cost must not grow with
// depth (it did, 20,000 deep: 16 to 36 times that at 100).
func BenchmarkObjectsInFlight(b *testing.B) {
	query := encodeAll(&pgproto3.Query{String: "FETCH 1 FROM c"})
	ext := encodeAll(&pgproto3.Parse{Query: "FETCH 1 FROM c"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	for _, c := range []struct {
		name    string
		txn     []byte
		answers string
		audit   bool
	}{
		{"query", query, "CZ", false},
		{"extended", ext, "12CZ", false},
		{"query/audit", query, "CZ", true},
	} {
		for _, depth := range []int{100, 20_000} {
			b.Run(fmt.Sprintf("%s/depth=%d", c.name, depth), func(b *testing.B) {
				benchPipelined(b, c.txn, c.answers, depth, c.audit, false)
			})
		}
	}
}

// BenchmarkManyObjectsInFlight measures a Query of k statements, each
// fetching from a cursor of its own, pipelined depth deep: the cost per
// Query must grow with k, not with k times what is in flight.
func BenchmarkManyObjectsInFlight(b *testing.B) {
	for _, k := range []int{100, 4000} {
		var sb strings.Builder
		for i := range k {
			fmt.Fprintf(&sb, "FETCH c%d;", i)
		}
		q := encodeAll(&pgproto3.Query{String: sb.String()})
		for _, depth := range []int{1, 10} {
			b.Run(fmt.Sprintf("k=%d/depth=%d", k, depth), func(b *testing.B) {
				benchPipelined(b, q, "CZ", depth, false, false)
			})
		}
	}
}

// BenchmarkPortalHistory measures a transaction that binds the portal p,
// then, in a batch of its own, executes it, when a client pipelines depth
// of them: each Execute's check must not walk every Bind of p still in
// flight (it did: 31 times the cost 25,000 deep as 100 deep).
func BenchmarkPortalHistory(b *testing.B) {
	txn := encodeAll(&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s"}, &pgproto3.Sync{},
		&pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
	for _, depth := range []int{100, 25_000} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			benchPipelined(b, txn, "2ZCZ", depth, false, false)
		})
	}
}

// BenchmarkDropAll measures what a DEALLOCATE ALL or a CLOSE ALL costs
// once answered, when the session holds names statements or portals made
// after it: a pipeline of 10,000 of them, then a batch of names Parses
// (Binds), answered; the next Bind applies the drops. Its cost per drop,
// bind-ns/drop, must not grow with names (it did: 10,000 drops, then
// 10,000 names, cost the Bind 2.7 s, CLOSE ALL 3.5 s).
func BenchmarkDropAll(b *testing.B) {
	const drops = 10_000
	for _, kind := range []string{"DEALLOCATE ALL", "CLOSE ALL"} {
		for _, names := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("%s/names=%d", strings.Fields(kind)[0], names), func(b *testing.B) {
				in := bytes.Repeat(encodeAll(&pgproto3.Query{String: kind}), drops)
				answers := strings.Repeat("CZ", drops)
				for i := range names {
					if kind == "DEALLOCATE ALL" {
						in = encodeAllTo(in, &pgproto3.Parse{Name: fmt.Sprintf("s%d", i), Query: "SELECT 1"})
						answers += "1"
					} else {
						in = encodeAllTo(in, &pgproto3.Bind{DestinationPortal: fmt.Sprintf("p%d", i)})
						answers += "2"
					}
				}
				in = encodeAllTo(in, &pgproto3.Sync{})
				answers += "Z"
				bind := encodeAll(&pgproto3.Bind{PreparedStatement: "s1"})
				var took time.Duration
				for range b.N {
					ss := benchSession(b, false)
					relayAll(b, ss, in)
					answerAll(b, ss, answers)
					start := time.Now()
					relayAll(b, ss, bind)
					took += time.Since(start)
				}
				b.ReportMetric(float64(took.Nanoseconds())/float64(b.N*drops), "bind-ns/drop")
			})
		}
	}
}

// encodeAllTo appends msgs, encoded, to b.
func encodeAllTo(b []byte, msgs ...pgproto3.FrontendMessage) []byte {
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}

// BenchmarkClientNames measures the renaming of an upstream error that
// quotes one of a transaction-mode session's statements, when the
// session holds the most it may: a client can have one sent back for
// every Parse of a name it holds.
func BenchmarkClientNames(b *testing.B) {
	pl := &poolLink{prefix: "pgveil_0123456789abcdef_", stmts: map[string]*pooledStmt{}, pending: map[string]*pooledStmt{}, byServer: map[string]string{}}
	for i := range maxSessionStatements {
		name, server := fmt.Sprintf("s%d", i), fmt.Sprintf("%s%d", pl.prefix, i)
		pl.stmts[name] = &pooledStmt{server: server}
		pl.byServer[server] = name
	}
	msg := `prepared statement "` + pl.prefix + `42" already exists`
	b.ReportAllocs()
	for b.Loop() {
		if got := pl.clientNames(msg, 1); got != `prepared statement "s42" already exists` {
			b.Fatal(got)
		}
	}
}

// preparedFeed is the client of BenchmarkPreparedTransaction: each Read
// returns one transaction, after the answers to the one before have
// gone through answer, as pgbench -M prepared waits for them.
type preparedFeed struct {
	txn    []byte
	left   int
	sent   bool
	answer func()
}

func (f *preparedFeed) Read(p []byte) (int, error) {
	if f.sent {
		f.answer()
		f.sent = false
	}
	if f.left == 0 {
		return 0, io.EOF
	}
	if len(p) < len(f.txn) {
		return 0, io.ErrShortBuffer
	}
	f.left--
	f.sent = true
	return copy(p, f.txn), nil
}

// BenchmarkPreparedTransaction measures a whole pgbench -S -M prepared
// transaction through the session: the client relay's Bind, Execute
// and Sync, then the answers (BindComplete, DataRow, CommandComplete,
// ReadyForQuery) as the backend relay hands them to the session, one
// transaction at a time: nothing is in flight when the next Bind comes.
// It runs without a tracker, with one whose policies can reload (behind
// actVersions, as a session's), and with one that audits too (audited).
func BenchmarkPreparedTransaction(b *testing.B) {
	txn := encodeAll(&pgproto3.Bind{PreparedStatement: "P0_1", Parameters: [][]byte{[]byte("12345")}},
		&pgproto3.Execute{}, &pgproto3.Sync{})
	answers := encodeAllBackend(&pgproto3.BindComplete{}, &pgproto3.DataRow{Values: [][]byte{[]byte("0")}},
		&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	for _, c := range []struct {
		name         string
		track, audit bool
	}{
		{"untracked", false, false}, {"tracked", true, false}, {"audited", true, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := fuzzServer(b)
			ss := &session{
				srv:          srv,
				log:          zap.NewNop(),
				ctx:          context.Background(),
				uout:         wire.NewWriter(io.Discard, upstreamWrite),
				cout:         wire.NewWriter(io.Discard, clientWriteBuf),
				markerPrefix: "pgveil_refused_bench_",
				refusals:     map[uint64]pendingRefusal{},
			}
			ss.txStatus.Store('I')
			if c.track {
				ss.track = statement.NewTracker(c.audit, actVersions{base: fixedVersion{}, ss: ss})
				// pgbench -M prepared parsed its statement once, and the
				// upstream answered: its Binds find it confirmed.
				const text = "SELECT abalance FROM pgbench_accounts WHERE aid = $1"
				ss.track.OnStatement(&Statement{Source: SourceParse, Text: text, Name: "P0_1", PolicyVersion: "v1"},
					&rewrite.Result{SQL: text}, nil)
				ss.track.OnAnswer('1', 5, "", "", false) // ParseComplete
			}
			feed := &preparedFeed{txn: txn, answer: func() { backendAnswers(b, ss, answers) }}
			ss.cin = wire.NewReader(feed, clientReadBuf, srv.cfg.MaxMessageSize)
			// NOTE: on its own thread, whose CPU time is reported too
			// (cpu-ns/op): on a machine others share, the wall time of
			// each run varies by 2x, the thread's CPU time far less.
			runtime.LockOSThread()
			defer runtime.UnlockOSThread()
			b.ReportAllocs()
			b.ResetTimer()
			feed.left = b.N
			cpu := threadCPU(b)
			if e := ss.clientRelay(); e.reason != "client disconnected" {
				b.Fatalf("the relay ended before the input's end: %s", e.reason)
			}
			b.ReportMetric(float64(threadCPU(b)-cpu)/float64(b.N), "cpu-ns/op")
			if got := ss.done.Load(); got != int64(b.N) {
				b.Fatalf("%d transactions answered, want %d", got, b.N)
			}
		})
	}
}

// backendAnswers hands ss the upstream messages in msgs as the backend
// relay does (upstreamHeader, then upstreamMessage for those it
// decodes), without writing them to the client.
func backendAnswers(b *testing.B, ss *session, msgs []byte) {
	for len(msgs) > 0 {
		typ, total := msgs[0], 1+int(binary.BigEndian.Uint32(msgs[1:5]))
		how, end := ss.upstreamHeader(typ, total)
		if end != nil {
			b.Fatalf("the session ended: %s", end.reason)
		}
		if how == upstreamDecode {
			if end, err := ss.upstreamMessage(typ, msgs[:total]); err != nil || end != nil {
				b.Fatalf("upstream message %q: %v %v", typ, err, end)
			}
		}
		msgs = msgs[total:]
	}
}

// encodeAllBackend returns msgs encoded.
func encodeAllBackend(msgs ...pgproto3.BackendMessage) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}
