package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

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
func BenchmarkPipelinedAnswers(b *testing.B) {
	unnamed := encodeAll(&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{})
	refused := encodeAll(&pgproto3.Parse{Query: "SELECT deny"}, &pgproto3.Sync{})
	for _, c := range []struct {
		name    string
		txn     []byte
		answers string
	}{
		{"unnamed", unnamed, "12CZ"},
		// The server skips a refusal's marker or answers it with an
		// error; either way its ReadyForQuery forgets it.
		{"refused", refused, "Z"},
	} {
		for _, depth := range []int{100, 10_000} {
			b.Run(fmt.Sprintf("%s/depth=%d", c.name, depth), func(b *testing.B) {
				benchPipelined(b, c.txn, c.answers, depth)
			})
		}
	}
}

// benchPipelined relays depth copies of txn at a time, then gives the
// tracker and the session answers (one letter each, Z a ReadyForQuery)
// for each.
func benchPipelined(b *testing.B, txn []byte, answers string, depth int) {
	srv := fuzzServer(b)
	in := bytes.Repeat(txn, depth)
	ss := &session{
		srv:          srv,
		log:          zap.NewNop(),
		ctx:          context.Background(),
		uout:         wire.NewWriter(io.Discard, upstreamWrite),
		cout:         wire.NewWriter(io.Discard, clientWriteBuf),
		markerPrefix: "pgveil_refused_bench_",
		refusals:     map[uint64]pendingRefusal{},
		track:        statement.NewTracker(false, fixedVersion{}),
	}
	readyForQuery := []byte{'Z', 0, 0, 0, 5, 'I'}
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; {
		n := min(depth, b.N-done)
		ss.cin = wire.NewReader(bytes.NewReader(in[:n*len(txn)]), clientReadBuf, srv.cfg.MaxMessageSize)
		if e := ss.clientRelay(); e.reason != "client disconnected" {
			b.Fatalf("the relay ended before the input's end: %s", e.reason)
		}
		for range n {
			for _, a := range []byte(answers) {
				if a != 'Z' {
					ss.track.OnAnswer(a, 5, "", "", false)
				} else if _, err := ss.onReadyForQuery(readyForQuery); err != nil {
					b.Fatal(err)
				}
			}
		}
		done += n
	}
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
