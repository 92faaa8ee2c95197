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
	"io"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

var (
	fuzzOnce sync.Once
	fuzzSrv  *Server
	// fuzzClosed is a second fuzzServer, closed (Close) at once: every
	// start it handles is a start the shutdown cut.
	fuzzClosedOnce sync.Once
	fuzzClosed     *Server
)

// fuzzClosedServer is a Server like fuzzServer's, closed before any
// connection comes: its starts must end as the shutdown's (57P01) or
// their own failure, never hang.
func fuzzClosedServer(t testing.TB) *Server {
	fuzzClosedOnce.Do(func() {
		fuzzClosed = newFuzzServer()
		fuzzClosed.Close()
	})
	return fuzzClosed
}

// fuzzServer is a Server whose upstream is never reached: no fuzz input
// can authenticate.
func fuzzServer(t testing.TB) *Server {
	fuzzOnce.Do(func() { fuzzSrv = newFuzzServer() })
	return fuzzSrv
}

// newFuzzServer makes a fuzzServer.
func newFuzzServer() *Server {
	{
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
		der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		v, _ := scram.NewVerifier("pw", 4096)
		cfg := &policy.Config{
			Listen: policy.Listen{Address: "127.0.0.1:0", Database: "db", StartupTimeout: time.Second,
				ShutdownTimeout: time.Second, MaxMessageSize: 1 << 16,
				TLS: &policy.ListenTLS{Config: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}}},
			Upstream: policy.Upstream{Address: "127.0.0.1:1", Database: "db", User: "svc", SearchPath: "public",
				ConnectTimeout: 100 * time.Millisecond},
			Users: map[string]*policy.User{"alice": {Login: "alice", Verifier: v}},
		}
		opts := Options{Logger: zap.NewNop(), Rewriter: &refuseWord{}, Audit: discardAudit{}, Metrics: NewMetrics(prometheus.NewRegistry()),
			ScrubDataErrors: true}
		StaticIdentities(cfg, &opts)
		srv, err := New(ConfigOf(cfg), opts)
		if err != nil {
			panic(err)
		}
		return srv
	}
}

// refuseWord refuses statements containing "deny" and rewrites "old".
// Its policy version changes at every look, so that every Bind of a fuzz
// input prepares its statement again.
type refuseWord struct{ version atomic.Int64 }

func (w *refuseWord) PolicyVersion() string { return strconv.FormatInt(w.version.Add(1), 10) }

// discardAudit is an Auditor that keeps nothing.
type discardAudit struct{}

func (discardAudit) Write(*audit.Record) {}

func (*refuseWord) Rewrite(_ context.Context, _ *SessionInfo, st *Statement) (*rewrite.Result, error) {
	if strings.Contains(st.Text, "deny") {
		return nil, &Refusal{Message: "denied"}
	}
	return &rewrite.Result{SQL: strings.ReplaceAll(st.Text, "old", "new")}, nil
}

func startupSeed(params ...string) []byte {
	m := map[string]string{}
	for i := 0; i+1 < len(params); i += 2 {
		m[params[i]] = params[i+1]
	}
	b, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: m}).Encode(nil)
	return b
}

func encodeAll(msgs ...pgproto3.FrontendMessage) []byte {
	var b []byte
	for _, m := range msgs {
		b, _ = m.Encode(b)
	}
	return b
}

// FuzzStartup feeds arbitrary bytes to the startup and authentication
// path of a connection: it must never panic or hang.
func FuzzStartup(f *testing.F) {
	ssl := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), sslRequestCode)
	gss := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, 8), gssEncRequestCode)
	cancel, _ := (&pgproto3.CancelRequest{ProcessID: 7, SecretKey: []byte{1, 2, 3, 4}}).Encode(nil)
	f.Add(startupSeed("user", "alice", "database", "db"))
	f.Add(append(startupSeed("user", "alice", "database", "db"),
		encodeAll(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abcdef")})...))
	f.Add(append(startupSeed("user", "mallory"),
		encodeAll(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=x")},
			&pgproto3.SASLResponse{Data: []byte("c=biws,r=x,p=AAAA")})...))
	f.Add(append(ssl, startupSeed("user", "alice")...))
	f.Add(append(gss, startupSeed("user", "alice", "options", "-c x=y")...))
	f.Add(cancel)
	f.Add(startupSeed("user", "a", "client_encoding", "SJIS"))
	f.Add(startupSeed("user", "a", "options", `-c statement_timeout=5s --DateStyle=ISO,\ DMY -cwork_mem=1MB`, "search_path", `"public"`))
	f.Add(startupSeed("user", "a", "ssl_renegotiation_limit", "0", "search_path", `public, "$user"`))
	f.Add(startupSeed("user", "a", "_pq_.x", "1"))
	f.Add([]byte{0, 0, 0, 8, 0, 4, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	// A TLS record's first bytes, as a direct TLS client opens with,
	// then the same after an SSLRequest.
	f.Add([]byte{0x16, 3, 1, 0, 0x20, 1, 0, 0, 0x1c, 3, 3})
	f.Add(append(ssl, 0x16, 3, 1, 0, 5))
	srv, closed := fuzzServer(f), fuzzClosedServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		// Each input starts on the running server, then on the closed one,
		// where every start is one the shutdown cut.
		for _, srv := range []*Server{srv, closed} {
			client, server := net.Pipe()
			done := make(chan struct{})
			srv.wg.Add(1)
			go func() { srv.handle(server, false); close(done) }()
			go func() { _, _ = io.Copy(io.Discard, client) }()
			_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
			_, _ = client.Write(data)
			client.Close()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				t.Fatal("startup handler did not return")
			}
		}
	})
}

// fuzzSession is a session reading client bytes from in and writing
// upstream bytes to out, without any network.
func fuzzSession(srv *Server, in io.Reader, out io.Writer) *session {
	ss := &session{
		srv:          srv,
		log:          zap.NewNop(),
		ctx:          context.Background(),
		cin:          wire.NewReader(in, clientReadBuf, srv.cfg.MaxMessageSize),
		uout:         wire.NewWriter(out, upstreamWrite),
		uin:          wire.NewReader(in, upstreamReadBuf, maxUpstreamMessage),
		cout:         wire.NewWriter(out, clientWriteBuf),
		markerPrefix: "pgveil_refused_fuzz_",
		refusals:     map[uint64]pendingRefusal{},
		track:        statement.NewTracker(true, srv.rewriter.(statement.PolicyVersioner)),
	}
	ss.info.User = "alice"
	return ss
}

// FuzzClientRelay feeds arbitrary post-authentication bytes to the
// client relay: it must never panic, and every message it forwards must
// be a well-framed message of a type the relay accepts.
func FuzzClientRelay(f *testing.F) {
	f.Add(encodeAll(&pgproto3.Query{String: "SELECT old"}, &pgproto3.Terminate{}))
	f.Add(encodeAll(&pgproto3.Parse{Name: "s", Query: "SELECT deny"}, &pgproto3.Bind{PreparedStatement: "s"},
		&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{MaxRows: 5}, &pgproto3.Sync{}))
	f.Add(encodeAll(&pgproto3.Query{String: "COPY t FROM STDIN"}, &pgproto3.CopyData{Data: []byte("1\n")},
		&pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "x"}))
	f.Add(encodeAll(&pgproto3.FunctionCall{Function: 1}, &pgproto3.Flush{}, &pgproto3.Close{ObjectType: 'S'}))
	f.Add([]byte{'Q', 0, 0, 0, 4})
	f.Add([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{'Q', 0, 0, 0, 6, 'a', 0, 'b', 0})
	// Queries and a FunctionCall inside an extended batch.
	f.Add(encodeAll(&pgproto3.Parse{Query: "SELECT 1/0"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Query{String: "SELECT 1"}, &pgproto3.FunctionCall{Function: 1}, &pgproto3.Parse{Query: "SELECT deny"},
		&pgproto3.Query{String: "SELECT deny"}, &pgproto3.Sync{}, &pgproto3.Query{String: "SELECT 2"}))
	srv := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		ss := fuzzSession(srv, bytes.NewReader(data), &out)
		_ = ss.clientRelay()
		_ = ss.uout.Flush()
		// What went upstream must parse as a sequence of messages. Only the
		// last may be cut short: a client that hangs up mid-message has had
		// its message's beginning streamed upstream, and the session ends
		// with the upstream connection closed.
		fr := wire.NewReader(bytes.NewReader(out.Bytes()), 1024, 1<<30)
		for {
			typ, total, err := fr.Header()
			if err == io.EOF {
				break
			}
			if err != nil {
				t.Fatalf("forwarded stream is malformed: %v", err)
			}
			if !strings.ContainsRune("QPBEDCHSdcfX", rune(typ)) {
				t.Fatalf("forwarded message type %q", typ)
			}
			msg, err := fr.Message(total)
			if err == io.ErrUnexpectedEOF {
				break
			}
			if err != nil {
				t.Fatalf("forwarded stream is malformed: %v", err)
			}
			if typ == 'Q' && bytes.Contains(msg, []byte("deny")) {
				t.Fatalf("refused statement forwarded: %q", msg)
			}
		}
		checkExtNotes(t, ss, out.Bytes(), "")
	})
}

// checkExtNotes checks what the client relay of ss noted of the Queries
// a failed extended batch may skip (ext_skip.go) against out, what it
// wrote upstream: each Query or Sync is a batch boundary, and each Query
// after an extended-protocol message since the last Sync is noted with
// the extended messages written since the last boundary, exactly.
//
// lazy, when not "", is the upstream name of a statement the backend
// lacks: the first Parse of it is ensureStmt's, whose answer the backend
// relay skips before counting it (pooledNote), so it is not counted.
func checkExtNotes(t *testing.T, ss *session, out []byte, lazy string) {
	t.Helper()
	var want []extQuery
	var batch, ext int64
	window := false
	fr := wire.NewReader(bytes.NewReader(out), 1024, 1<<30)
	for {
		typ, total, err := fr.Header()
		if err != nil {
			break
		}
		msg, err := fr.Message(total)
		if err != nil && typ != 'S' {
			break
		}
		if typ == 'P' && lazy != "" {
			if name, _, ok := cstring(msg[wire.HeaderLen:]); ok && name == lazy {
				lazy = ""
				continue
			}
		}
		// A Sync cut short by a client that hung up was counted before
		// its beginning went upstream.
		switch typ {
		case 'P', 'B', 'E', 'C', 'D':
			ext++
			window = true
		case 'S':
			batch++
			ext, window = 0, false
		case 'Q':
			batch++
			if window {
				want = append(want, extQuery{batch: batch, ext: ext})
			}
			ext = 0
		}
		if err != nil {
			break
		}
	}
	if got := ss.sent.Load(); got != batch {
		t.Fatalf("%d batch boundaries went upstream, the session counted %d", batch, got)
	}
	ss.extSkips.mu.Lock()
	got := append([]extQuery(nil), ss.extSkips.queries...)
	ss.extSkips.mu.Unlock()
	if len(got) != len(want) {
		t.Fatalf("Queries noted in extended batches: got %v, want %v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("Queries noted in extended batches: got %v, want %v", got, want)
		}
	}
}

// FuzzBackendRelay feeds arbitrary upstream bytes to the backend relay:
// it must never panic.
func FuzzBackendRelay(f *testing.F) {
	var seed []byte
	seed, _ = (&pgproto3.RowDescription{}).Encode(seed)
	seed, _ = (&pgproto3.DataRow{Values: [][]byte{[]byte("x")}}).Encode(seed)
	seed, _ = (&pgproto3.ParameterStatus{Name: "client_encoding", Value: "UTF8"}).Encode(seed)
	seed, _ = (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "42P01", Message: `relation "pg_catalog.pgveil_refused_fuzz_1" does not exist`}).Encode(seed)
	seed, _ = (&pgproto3.CopyInResponse{}).Encode(seed)
	seed, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(seed)
	f.Add(seed)
	// Notices, one a trigger raised (withheld), and an exception.
	seed, _ = (&pgproto3.NoticeResponse{Severity: "NOTICE", Code: "00000", Message: "row (1,x)", Where: "PL/pgSQL function f() line 3 at RAISE"}).Encode(nil)
	seed, _ = (&pgproto3.NoticeResponse{Severity: "WARNING", Code: "01000", Message: "while locking tuple (1,2)"}).Encode(seed)
	seed, _ = (&pgproto3.ErrorResponse{Severity: "ERROR", Code: "P0001", Message: "bad x", Detail: "y", Hint: "z"}).Encode(seed)
	seed, _ = (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(seed)
	f.Add(seed)
	f.Add([]byte{'Z', 0, 0, 0, 5, 'I', 'S', 0, 0, 0, 4})
	// Both batches answered under a drain (13 bytes: length 1 mod 3),
	// then the same with an Execute sent before its Sync (14 bytes).
	rfq, _ := (&pgproto3.ReadyForQuery{TxStatus: 'I'}).Encode(nil)
	rfq2 := append(append([]byte(nil), rfq...), rfq...)
	f.Add(append(append([]byte(nil), rfq2...), 'N'))
	f.Add(append(append([]byte(nil), rfq2...), 'N', 0))
	srv := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		ss := fuzzSession(srv, bytes.NewReader(data), io.Discard)
		ss.governed.Store(len(data)%2 == 0)
		ss.refusals[1] = pendingRefusal{r: &Refusal{Message: "x"}, batch: 1}
		// Answers awaited, made by the tracker's own events: a statement
		// prepared again under a newer policy (its Close and Parse
		// answers swallowed), an Execute of its portal in batch 1, and
		// a Query in batch 2.
		tr := ss.track
		res := &rewrite.Result{SQL: "SELECT 1", Kinds: []string{"select"}}
		tr.OnStatement(&Statement{Source: SourceParse, Name: "s", Text: "SELECT 1", PolicyVersion: "0"}, res, nil)
		if plan := tr.OnBind("", "s", true); plan.Again != nil {
			tr.OnReprepared("", plan.Again, res, nil)
		}
		tr.OnExecuteDecided(tr.OnExecute(""), nil)
		tr.OnBatchClosed(1)
		tr.OnBatchClosed(2)
		tr.OnStatement(&Statement{Source: SourceQuery, Text: "SELECT 1"}, res, nil)
		// A drain under way, by the input's length: with the two batches
		// sent, and with an Execute sent after them, before its Sync
		// (session.unsynced), which no answer makes quiet.
		drain := len(data) % 3
		if drain > 0 {
			ss.sent.Store(2)
			ss.draining.Store(true)
			ss.unsynced.Store(drain == 2)
		}
		e := ss.backendRelay()
		if e.resp != nil && e.resp.Code == CodeAdminShutdown {
			if drain == 0 {
				t.Fatalf("the session ended as drained, with no drain: %q", e.resp.Message)
			}
			if drain == 2 {
				t.Fatal("the drain ended a session with an Execute sent before its Sync")
			}
			if done, sent := ss.done.Load(), ss.sent.Load(); done < sent {
				t.Fatalf("the drain ended a session with %d of %d batches answered", done, sent)
			}
		}
	})
}

// FuzzPooledClientRelay feeds arbitrary post-authentication bytes to the
// client relay of a transaction-mode session holding a backend: every
// prepared statement it names upstream must be the unnamed one or one of
// the session's own (pooled_stmt.go), whatever names the client sends.
func FuzzPooledClientRelay(f *testing.F) {
	f.Add(encodeAll(&pgproto3.Parse{Name: "s", Query: "SELECT 1"}, &pgproto3.Bind{PreparedStatement: "s"},
		&pgproto3.Describe{ObjectType: 'S', Name: "s"}, &pgproto3.Execute{}, &pgproto3.Close{ObjectType: 'S', Name: "s"},
		&pgproto3.Sync{}))
	f.Add(encodeAll(&pgproto3.Bind{PreparedStatement: "pgveil_0123456789abcdef_1"},
		&pgproto3.Describe{ObjectType: 'S', Name: "other"}, &pgproto3.Close{ObjectType: 'S', Name: "x"}, &pgproto3.Sync{}))
	f.Add(encodeAll(&pgproto3.Parse{Name: "d", Query: "SELECT deny"}, &pgproto3.Parse{Query: "SELECT 2"},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "d"}, &pgproto3.Describe{ObjectType: 'P', Name: "p"},
		&pgproto3.Sync{}))
	// SETs the session follows: alone, in a block, and bound again.
	f.Add(encodeAll(&pgproto3.Parse{Query: "SET TimeZone = 'UTC'"}, &pgproto3.Sync{},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}))
	f.Add(encodeAll(&pgproto3.Query{String: "BEGIN"}, &pgproto3.Parse{Query: "SET DateStyle = 'German'"},
		&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Parse{Query: "BEGIN"}, &pgproto3.Sync{},
		&pgproto3.Query{String: "RESET ALL"}))
	f.Add(encodeAll(&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Describe{ObjectType: 'S', Name: "s"},
		&pgproto3.Bind{PreparedStatement: "held"}, &pgproto3.Parse{Name: "s", Query: "SELECT 2"}, &pgproto3.Sync{},
		&pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Sync{}))
	// Under a drain begun halfway (odd length): an Execute whose Sync
	// comes later, a Parse and Bind with none, and a Flush after an
	// Execute.
	f.Add(append(encodeAll(&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
		&pgproto3.Flush{}, &pgproto3.Sync{}, &pgproto3.Sync{}, &pgproto3.Sync{}), 'S'))
	f.Add(append(encodeAll(&pgproto3.Parse{Name: "s", Query: "SELECT 2"}, &pgproto3.Bind{PreparedStatement: "s"},
		&pgproto3.Describe{ObjectType: 'P'}), 'H'))
	srv := fuzzServer(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		var out bytes.Buffer
		// A drain begins, for inputs of odd length, once the relay reads
		// past half the input.
		in := &drainAt{r: bytes.NewReader(data), left: len(data) / 2}
		ss := fuzzSession(srv, in, &out)
		if len(data)%2 == 1 {
			in.ss = ss
		}
		pl := newPoolLink(nil, "fuzzsession")
		pl.b = &backend{prepared: newBackendStmts(), out: ss.uout}
		// Statements the session holds: "s" the backend lacks (prepared
		// when named, ensureStmt), "held" one it holds. Their Parses, of
		// a parameter type no client names, tell ensureStmt's apart.
		var lazy [][]byte
		for name, server := range map[string]string{"s": pl.prefix + "0", "held": pl.prefix + "h"} {
			parse, _ := (&pgproto3.Parse{Name: server, Query: "SELECT 1", ParameterOIDs: []uint32{0xfffffffe}}).Encode(nil)
			pl.stmts[name] = &pooledStmt{server: server, parse: parse}
			lazy = append(lazy, parse)
		}
		pl.b.prepared.use(pl.stmts["held"])
		ss.pl = pl
		// Nothing answers, so a session may end as drained only before it
		// sent a batch boundary or an Execute (session.quiet).
		e := ss.clientRelay()
		_ = ss.uout.Flush()
		if e.resp != nil && e.resp.Code == CodeAdminShutdown {
			if !ss.draining.Load() {
				t.Fatalf("the session ended as drained, with no drain: %q", e.resp.Message)
			}
			checkDrainedQuiet(t, withoutLazy(out.Bytes(), lazy))
		}
		fr := wire.NewReader(bytes.NewReader(out.Bytes()), 1024, 1<<30)
		for {
			typ, total, err := fr.Header()
			if err != nil {
				break
			}
			msg, err := fr.Message(total)
			if err != nil {
				break
			}
			body := msg[wire.HeaderLen:]
			var name string
			var ok bool
			switch typ {
			case 'P':
				name, _, ok = cstring(body)
			case 'B':
				if _, rest, ok1 := cstring(body); ok1 {
					name, _, ok = cstring(rest)
				}
			case 'D', 'C':
				if len(body) > 1 && body[0] == 'S' {
					name, _, ok = cstring(body[1:])
				}
			}
			if ok && name != "" && !strings.HasPrefix(name, pl.prefix) {
				t.Fatalf("message %q names the statement %q upstream, not one of the session's", typ, name)
			}
		}
		checkExtNotes(t, ss, withoutLazy(out.Bytes(), lazy), "")
	})
}

// withoutLazy returns out, messages written upstream, without those
// ensureStmt added, which ext_skip does not count, as their answers are
// swallowed: a Parse of lazy, and a Close just ahead of one.
func withoutLazy(out []byte, lazy [][]byte) []byte {
	var msgs [][]byte
	rest := out
	for len(rest) >= wire.HeaderLen {
		n := int(binary.BigEndian.Uint32(rest[1:])) + 1
		if n < wire.HeaderLen || n > len(rest) {
			break
		}
		msgs, rest = append(msgs, rest[:n]), rest[n:]
	}
	isLazy := func(m []byte) bool {
		for _, l := range lazy {
			if bytes.Equal(m, l) {
				return true
			}
		}
		return false
	}
	var kept []byte
	for i, m := range msgs {
		if isLazy(m) || m[0] == 'C' && i+1 < len(msgs) && isLazy(msgs[i+1]) {
			continue
		}
		kept = append(kept, m...)
	}
	return append(kept, rest...)
}

// checkDrainedQuiet checks out, what a session that ended as drained
// wrote upstream while nothing was answered: no batch boundary and no
// Execute, either of which leaves something running (session.quiet).
func checkDrainedQuiet(t *testing.T, out []byte) {
	t.Helper()
	fr := wire.NewReader(bytes.NewReader(out), 1024, 1<<30)
	for {
		typ, total, err := fr.Header()
		if err != nil {
			return
		}
		if strings.ContainsRune("QSEF", rune(typ)) {
			t.Fatalf("the drain ended a session with a %q sent and unanswered", typ)
		}
		if _, err := fr.Message(total); err != nil {
			return
		}
	}
}

// drainAt reads r, left bytes at most in a first read, and drains ss, if
// not nil, at the first read after those: the drain begins while the
// relay holds no message it did not start.
type drainAt struct {
	r    io.Reader
	left int
	ss   *session
}

func (d *drainAt) Read(p []byte) (int, error) {
	if d.left <= 0 {
		if d.ss != nil {
			d.ss.draining.Store(true)
		}
		return d.r.Read(p)
	}
	n, err := d.r.Read(p[:min(len(p), d.left)])
	d.left -= n
	return n, err
}
