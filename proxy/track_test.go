package proxy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
	"github.com/pgveil/pgveil/rewrite"
)

// seqRewriter is a Rewriter whose policy version a test sets. It refuses
// texts that hold "deny", and those that hold "forbid-" and the version
// in force, and prefixes every other text with the version that checked
// it, so that what the upstream runs shows which policy checked it.
type seqRewriter struct {
	mu      sync.Mutex
	version string
}

// PolicyVersion implements statement.PolicyVersioner.
func (r *seqRewriter) PolicyVersion() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.version
}

// Rewrite implements Rewriter.
func (r *seqRewriter) Rewrite(_ context.Context, _ *SessionInfo, st *Statement) (*rewrite.Result, error) {
	v := r.PolicyVersion()
	st.PolicyVersion = v
	if strings.Contains(st.Text, "deny") || strings.Contains(st.Text, "forbid-"+v) {
		return nil, firewall.Deny("statement_kind", "pgveil refused the statement")
	}
	res := &rewrite.Result{SQL: "/*" + v + "*/ " + st.Text, Kinds: []string{"select"}}
	// PREPARE, EXECUTE, DEALLOCATE, DECLARE, FETCH and CLOSE of one
	// name, as the engine reports them.
	if f := strings.Fields(st.Text); len(f) >= 2 {
		switch op := strings.ToLower(f[0]); op {
		case "prepare", "execute", "deallocate", "declare", "fetch", "close":
			res.Kinds = []string{op}
			res.Objects = []rewrite.SessionObject{{Op: op, Name: f[1]}}
		}
	}
	return res, nil
}

// seqAudit keeps the statement records of the audit trail as
// "decision rule: sql".
type seqAudit struct {
	mu   sync.Mutex
	recs []string
}

// Write implements Auditor.
func (a *seqAudit) Write(r *audit.Record) {
	if r.Event != "statement" {
		return
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	s := r.Decision
	if r.Reason != "" {
		s += " " + r.Reason
	}
	if strings.HasPrefix(r.Message, ExecuteOfRefusedParse) {
		s += " (its Execute)"
	}
	a.recs = append(a.recs, s+": "+r.SQL)
}

// fakeUpstream answers the extended query protocol as PostgreSQL does,
// as far as the tracker cares: named statements and portals, the
// skipping of a batch's messages after an error up to its Sync, and the
// refusal markers, which fail. It records the SQL of every execution.
type fakeUpstream struct {
	stmts, portals map[string]string
	// skipping: an error happened; messages up to the next Sync are
	// ignored.
	skipping bool
	ran      []string
}

// answer returns the upstream's answers to msgs.
func (u *fakeUpstream) answer(msgs []pgproto3.FrontendMessage) []pgproto3.BackendMessage {
	var out []pgproto3.BackendMessage
	fail := func(code, msg string) {
		out = append(out, &pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg})
		u.skipping = true
	}
	for _, m := range msgs {
		if u.skipping {
			if _, ok := m.(*pgproto3.Sync); !ok {
				continue
			}
		}
		switch m := m.(type) {
		case *pgproto3.Parse:
			if m.Name == "" {
				// A Parse of the unnamed statement drops the old one
				// first, even when it fails.
				delete(u.stmts, "")
			}
			if i := strings.Index(m.Query, "pgveil_refused_"); i >= 0 {
				fail("42P01", fmt.Sprintf("relation %q does not exist", "pg_catalog."+m.Query[i:]))
				continue
			}
			if _, ok := u.stmts[m.Name]; ok && m.Name != "" {
				fail("42P05", fmt.Sprintf("prepared statement %q already exists", m.Name))
				continue
			}
			u.stmts[m.Name] = m.Query
			out = append(out, &pgproto3.ParseComplete{})
		case *pgproto3.Bind:
			sql, ok := u.stmts[m.PreparedStatement]
			if !ok {
				fail("26000", fmt.Sprintf("prepared statement %q does not exist", m.PreparedStatement))
				continue
			}
			if _, ok := u.portals[m.DestinationPortal]; ok && m.DestinationPortal != "" {
				fail("42P03", fmt.Sprintf("cursor %q already exists", m.DestinationPortal))
				continue
			}
			u.portals[m.DestinationPortal] = sql
			out = append(out, &pgproto3.BindComplete{})
		case *pgproto3.Execute:
			sql, ok := u.portals[m.Portal]
			if !ok {
				fail("34000", fmt.Sprintf("portal %q does not exist", m.Portal))
				continue
			}
			u.ran = append(u.ran, sql)
			out = append(out, &pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
		case *pgproto3.Close:
			if m.ObjectType == 'S' {
				delete(u.stmts, m.Name)
			} else {
				delete(u.portals, m.Name)
			}
			out = append(out, &pgproto3.CloseComplete{})
		case *pgproto3.Query:
			out = append(out, u.query(m.String)...)
		case *pgproto3.Sync:
			u.skipping = false
			delete(u.portals, "")
			out = append(out, &pgproto3.ReadyForQuery{TxStatus: 'I'})
		default:
			panic(fmt.Sprintf("fakeUpstream: unexpected %T", m))
		}
	}
	return out
}

// query answers a simple Query of one statement: a refusal marker fails,
// PREPARE, EXECUTE and DEALLOCATE act on the statements Parse makes too
// (PostgreSQL has one namespace for both), anything else completes.
func (u *fakeUpstream) query(sql string) []pgproto3.BackendMessage {
	ready := &pgproto3.ReadyForQuery{TxStatus: 'I'}
	fail := func(code, msg string) []pgproto3.BackendMessage {
		return []pgproto3.BackendMessage{&pgproto3.ErrorResponse{Severity: "ERROR", SeverityUnlocalized: "ERROR", Code: code, Message: msg}, ready}
	}
	if i := strings.Index(sql, "pgveil_refused_"); i >= 0 {
		return fail("42P01", fmt.Sprintf("relation %q does not exist", "pg_catalog."+sql[i:]))
	}
	f := strings.Fields(sql)
	if len(f) < 3 {
		return []pgproto3.BackendMessage{&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, ready}
	}
	name := f[2]
	switch strings.ToLower(f[1]) {
	case "prepare":
		if _, ok := u.stmts[name]; ok {
			return fail("42P05", fmt.Sprintf("prepared statement %q already exists", name))
		}
		u.stmts[name] = sql
		return []pgproto3.BackendMessage{&pgproto3.CommandComplete{CommandTag: []byte("PREPARE")}, ready}
	case "execute":
		text, ok := u.stmts[name]
		if !ok {
			return fail("26000", fmt.Sprintf("prepared statement %q does not exist", name))
		}
		u.ran = append(u.ran, text)
		return []pgproto3.BackendMessage{&pgproto3.DataRow{Values: [][]byte{[]byte("1")}}, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, ready}
	case "deallocate":
		if _, ok := u.stmts[name]; !ok {
			return fail("26000", fmt.Sprintf("prepared statement %q does not exist", name))
		}
		delete(u.stmts, name)
		return []pgproto3.BackendMessage{&pgproto3.CommandComplete{CommandTag: []byte("DEALLOCATE")}, ready}
	}
	return []pgproto3.BackendMessage{&pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")}, ready}
}

// seqSession is one session whose relays run without any network: the
// client relay reads the messages a step sends, the fake upstream
// answers what it forwarded, and the backend relay reads the answers.
type seqSession struct {
	ss    *session
	rw    *seqRewriter
	audit *seqAudit
	up    *fakeUpstream
	// held are messages forwarded upstream and not answered yet.
	held []pgproto3.FrontendMessage
}

func newSeqSession(t *testing.T) *seqSession {
	t.Helper()
	rw := &seqRewriter{version: "v1"}
	rec := &seqAudit{}
	srv, err := New(Config{
		Address: "127.0.0.1:0", Database: "db", StartupTimeout: time.Second, MaxMessageSize: 1 << 16,
		Upstream: policy.Upstream{Address: "127.0.0.1:1", Database: "db", User: "svc", SearchPath: "public", ConnectTimeout: time.Second},
	}, Options{Logger: zap.NewNop(), Rewriter: rw, Audit: rec})
	if err != nil {
		t.Fatal(err)
	}
	ss := &session{
		srv:          srv,
		log:          zap.NewNop(),
		ctx:          context.Background(),
		markerPrefix: "pgveil_refused_seq_",
		refusals:     map[uint64]pendingRefusal{},
		track:        statement.NewTracker(true, rw),
	}
	ss.info.User = "alice"
	return &seqSession{ss: ss, rw: rw, audit: rec, up: &fakeUpstream{stmts: map[string]string{}, portals: map[string]string{}}}
}

// send runs the client relay over msgs and returns what it forwarded
// upstream.
func (s *seqSession) send(t *testing.T, msgs ...pgproto3.FrontendMessage) []pgproto3.FrontendMessage {
	t.Helper()
	var in, up bytes.Buffer
	for _, m := range msgs {
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(b)
	}
	s.ss.cin = wire.NewReader(&in, clientReadBuf, 1<<16)
	s.ss.uout = wire.NewWriter(&up, upstreamWrite)
	if end := s.ss.clientRelay(); end.resp != nil {
		t.Fatalf("the client relay ended the session: %s", end.reason)
	}
	if err := s.ss.uout.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []pgproto3.FrontendMessage
	for _, b := range split(t, up.Bytes()) {
		m, err := pgproto3.NewBackend(bytes.NewReader(b), io.Discard).Receive()
		if err != nil {
			t.Fatalf("reading what went upstream: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// split cuts a stream into its messages.
func split(t *testing.T, stream []byte) [][]byte {
	t.Helper()
	r := wire.NewReader(bytes.NewReader(stream), 64, 1<<20)
	var out [][]byte
	for {
		_, total, err := r.Header()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("splitting messages: %v", err)
		}
		m, err := r.Message(total)
		if err != nil {
			t.Fatalf("splitting messages: %v", err)
		}
		out = append(out, bytes.Clone(m))
	}
}

// receive runs the backend relay over msgs and returns what it forwarded
// to the client.
func (s *seqSession) receive(t *testing.T, msgs []pgproto3.BackendMessage) []pgproto3.BackendMessage {
	t.Helper()
	var in, down bytes.Buffer
	for _, m := range msgs {
		b, err := m.Encode(nil)
		if err != nil {
			t.Fatal(err)
		}
		in.Write(b)
	}
	s.ss.uin = wire.NewReader(&in, upstreamReadBuf, maxUpstreamMessage)
	s.ss.cout = wire.NewWriter(&down, clientWriteBuf)
	// The end of the answers reads as the upstream's end.
	if end := s.ss.backendRelay(); end.reason != "upstream connection lost" {
		t.Fatalf("the backend relay ended the session: %s", end.reason)
	}
	if err := s.ss.cout.Flush(); err != nil {
		t.Fatal(err)
	}
	var out []pgproto3.BackendMessage
	for _, b := range split(t, down.Bytes()) {
		m, err := pgproto3.NewFrontend(bytes.NewReader(b), io.Discard).Receive()
		if err != nil {
			t.Fatalf("reading what went to the client: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// describeFrontend writes msgs compactly: a Parse as P(name), a Bind as
// B(portal,statement), an Execute as E(portal), a Close as CS(name) or
// CP(name), a Sync as S; a refusal marker's name is "marker".
func describeFrontend(msgs []pgproto3.FrontendMessage) string {
	var parts []string
	for _, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.Parse:
			name := m.Name
			if strings.Contains(m.Query, "pgveil_refused_") {
				name += ":marker"
			}
			parts = append(parts, "P("+name+")")
		case *pgproto3.Bind:
			parts = append(parts, "B("+m.DestinationPortal+","+m.PreparedStatement+")")
		case *pgproto3.Execute:
			portal := m.Portal
			if strings.Contains(portal, "pgveil_refused_") {
				portal = "marker"
			}
			parts = append(parts, "E("+portal+")")
		case *pgproto3.Close:
			parts = append(parts, "C"+string(m.ObjectType)+"("+m.Name+")")
		case *pgproto3.Query:
			if strings.Contains(m.String, "pgveil_refused_") {
				parts = append(parts, "Q(marker)")
			} else {
				parts = append(parts, "Q")
			}
		case *pgproto3.Sync:
			parts = append(parts, "S")
		default:
			parts = append(parts, fmt.Sprintf("%T", m))
		}
	}
	return strings.Join(parts, " ")
}

// describeBackend writes msgs compactly: 1 2 3 for ParseComplete,
// BindComplete and CloseComplete, D for a row, C for CommandComplete, Z
// for ReadyForQuery, E(sqlstate) for an error.
func describeBackend(msgs []pgproto3.BackendMessage) string {
	var parts []string
	for _, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.ParseComplete:
			parts = append(parts, "1")
		case *pgproto3.BindComplete:
			parts = append(parts, "2")
		case *pgproto3.CloseComplete:
			parts = append(parts, "3")
		case *pgproto3.DataRow:
			parts = append(parts, "D")
		case *pgproto3.CommandComplete:
			parts = append(parts, "C")
		case *pgproto3.ReadyForQuery:
			parts = append(parts, "Z")
		case *pgproto3.ErrorResponse:
			parts = append(parts, "E("+m.Code+")")
		default:
			parts = append(parts, fmt.Sprintf("%T", m))
		}
	}
	return strings.Join(parts, " ")
}

// seqStep is one step of a sequence: the policy may reload, the client
// sends messages, the upstream answers everything forwarded so far
// (unless hold), and the client receives the answers.
type seqStep struct {
	// reload puts this policy version in force before the messages.
	reload string
	send   []pgproto3.FrontendMessage
	// hold keeps the upstream from answering yet: the answers come with
	// the next step's.
	hold bool
	// up is what the upstream receives (describeFrontend); down what the
	// client receives (describeBackend).
	up, down string
}

// Messages of the sequences.
var (
	syncMsg = &pgproto3.Sync{}
)

func parse(name, sql string) *pgproto3.Parse { return &pgproto3.Parse{Name: name, Query: sql} }
func bind(portal, stmt string) *pgproto3.Bind {
	return &pgproto3.Bind{DestinationPortal: portal, PreparedStatement: stmt}
}
func execute(portal string) *pgproto3.Execute { return &pgproto3.Execute{Portal: portal} }
func closeStmt(name string) *pgproto3.Close   { return &pgproto3.Close{ObjectType: 'S', Name: name} }
func query(sql string) *pgproto3.Query        { return &pgproto3.Query{String: sql} }

// TestTrackerSequences drives the tracker through sequences of the
// extended query protocol, with errors and policy reloads, against a
// fake upstream: no PostgreSQL is needed. Each sequence checks what the
// upstream receives and the client sees at every step, what the upstream
// ran (each statement names the policy version that checked it) and the
// audit trail.
func TestTrackerSequences(t *testing.T) {
	tests := []struct {
		name  string
		steps []seqStep
		// ran is what the upstream executed, in order.
		ran []string
		// audit are the statement records, in order.
		audit []string
	}{
		{
			name: "a statement prepared and run under one policy runs as checked",
			steps: []seqStep{{
				send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), bind("p", "s1"), execute("p"), syncMsg},
				up:   "P(s1) B(p,s1) E(p) S", down: "1 2 D C Z",
			}},
			ran:   []string{"/*v1*/ SELECT 1"},
			audit: []string{"allowed: SELECT 1"},
		},
		{
			name: "a statement prepared under an older policy is prepared again at its next Bind, unseen by the client",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), syncMsg}, up: "P(s1) S", down: "1 Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("p", "s1"), execute("p"), syncMsg},
					up: "CS(s1) P(s1) B(p,s1) E(p) S", down: "2 D C Z"},
				{send: []pgproto3.FrontendMessage{bind("", "s1"), execute(""), syncMsg}, up: "B(,s1) E() S", down: "2 D C Z"},
			},
			ran:   []string{"/*v2*/ SELECT 1", "/*v2*/ SELECT 1"},
			audit: []string{"allowed: SELECT 1", "allowed: SELECT 1"},
		},
		{
			name: "a portal bound under an older policy is refused at its Execute",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), bind("p", "s1"), syncMsg}, up: "P(s1) B(p,s1) S", down: "1 2 Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{execute("p"), syncMsg}, up: "E(marker) S", down: "E(42501) Z"},
			},
			audit: []string{"denied policy_changed: SELECT 1"},
		},
		{
			name: "a refused Parse fails in its place and its batch is skipped",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT deny"), bind("p", "s1"), execute("p"), syncMsg},
					up: "P(s1:marker) B(p,s1) E(p) S", down: "E(42501) Z"},
			},
			// The Execute of the refused statement's portal is audited
			// with the statement's refusal, its message saying it is the
			// Execute of the statement refused at its Parse.
			audit: []string{"denied statement_kind: SELECT deny", "denied statement_kind (its Execute): SELECT deny"},
		},
		{
			name: "a failed Parse of a taken name keeps the earlier statement, prepared again after a reload",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), syncMsg}, up: "P(s1) S", down: "1 Z"},
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 2"), syncMsg}, up: "P(s1) S", down: "E(42P05) Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("p", "s1"), execute("p"), syncMsg},
					up: "CS(s1) P(s1) B(p,s1) E(p) S", down: "2 D C Z"},
			},
			ran:   []string{"/*v2*/ SELECT 1"},
			audit: []string{"allowed: SELECT 1"},
		},
		{
			name: "a Close skipped after an error leaves the statement, prepared again after a reload",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), syncMsg}, up: "P(s1) S", down: "1 Z"},
				{send: []pgproto3.FrontendMessage{execute("nope"), closeStmt("s1"), syncMsg}, up: "E(nope) CS(s1) S", down: "E(34000) Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("p", "s1"), execute("p"), syncMsg},
					up: "CS(s1) P(s1) B(p,s1) E(p) S", down: "2 D C Z"},
			},
			ran:   []string{"/*v2*/ SELECT 1"},
			audit: []string{"allowed: FETCH FROM \"nope\"", "allowed: SELECT 1"},
		},
		{
			name: "a Close answered before a reload leaves nothing to prepare again",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), closeStmt("s1"), syncMsg}, up: "P(s1) CS(s1) S", down: "1 3 Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("p", "s1"), execute("p"), syncMsg},
					up: "B(p,s1) E(p) S", down: "E(26000) Z"},
			},
			// The Bind failed: the Execute names a portal nothing made.
			audit: []string{"allowed: FETCH FROM \"p\""},
		},
		{
			name: "a reload while a Parse is in flight prepares it again at a Bind of a later batch",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), syncMsg}, hold: true, up: "P(s1) S"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("p", "s1"), execute("p"), syncMsg},
					up: "CS(s1) P(s1) B(p,s1) E(p) S", down: "1 Z 2 D C Z"},
			},
			ran:   []string{"/*v2*/ SELECT 1"},
			audit: []string{"allowed: SELECT 1"},
		},
		{
			// The Parse may yet fail and leave an older statement under the
			// name: only in the Parse's own batch is the Bind sure of it.
			name: "a Bind pipelined a batch after an unanswered Parse prepares it again, unseen by the client",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("s1", "SELECT 1"), syncMsg}, hold: true, up: "P(s1) S"},
				{send: []pgproto3.FrontendMessage{bind("p", "s1"), execute("p"), syncMsg},
					up: "CS(s1) P(s1) B(p,s1) E(p) S", down: "1 Z 2 D C Z"},
			},
			ran:   []string{"/*v1*/ SELECT 1"},
			audit: []string{"allowed: SELECT 1"},
		},
		{
			name: "the unnamed statement prepared under an older policy is prepared again",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("", "SELECT 1"), syncMsg}, up: "P() S", down: "1 Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("", ""), execute(""), syncMsg},
					up: "CS() P() B(,) E() S", down: "2 D C Z"},
			},
			ran:   []string{"/*v2*/ SELECT 1"},
			audit: []string{"allowed: SELECT 1"},
		},
		{
			// A failed Parse dropped it; one the server skipped after an
			// earlier error kept the one before: closed before the Bind.
			name: "an unanswered Parse of the unnamed statement leaves it unknown: closed before the next Bind",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{parse("", "SELECT 1"), syncMsg}, up: "P() S", down: "1 Z"},
				{send: []pgproto3.FrontendMessage{parse("", "SELECT deny"), syncMsg}, up: "P(:marker) S", down: "E(42501) Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{bind("", ""), execute(""), syncMsg},
					up: "CS() B(,) E() S", down: "E(26000) Z"},
			},
			audit: []string{"denied statement_kind: SELECT deny", "allowed: FETCH FROM \"\""},
		},
		{
			name: "a statement prepared with SQL under an older policy is refused at its EXECUTE",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{query("PREPARE q AS SELECT 1")}, up: "Q", down: "C Z"},
				{send: []pgproto3.FrontendMessage{query("EXECUTE q")}, up: "Q", down: "D C Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{query("EXECUTE q")}, up: "Q(marker)", down: "E(42501) Z"},
			},
			ran:   []string{"/*v1*/ PREPARE q AS SELECT 1"},
			audit: []string{"allowed: PREPARE q AS SELECT 1", "allowed: EXECUTE q", "denied policy_changed: EXECUTE q"},
		},
		{
			name: "a PREPARE that fails keeps the earlier statement and its policy",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{query("PREPARE q AS SELECT 1")}, up: "Q", down: "C Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{query("PREPARE q AS SELECT 2")}, up: "Q", down: "E(42P05) Z"},
				{send: []pgproto3.FrontendMessage{query("EXECUTE q")}, up: "Q(marker)", down: "E(42501) Z"},
			},
			audit: []string{"allowed: PREPARE q AS SELECT 1", "allowed: PREPARE q AS SELECT 2", "denied policy_changed: EXECUTE q"},
		},
		{
			name: "a statement deallocated and prepared again under the policy in force runs",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{query("PREPARE q AS SELECT 1")}, up: "Q", down: "C Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{query("DEALLOCATE q")}, up: "Q", down: "C Z"},
				{send: []pgproto3.FrontendMessage{query("PREPARE q AS SELECT 1")}, up: "Q", down: "C Z"},
				{send: []pgproto3.FrontendMessage{query("EXECUTE q")}, up: "Q", down: "D C Z"},
			},
			ran: []string{"/*v2*/ PREPARE q AS SELECT 1"},
			audit: []string{"allowed: PREPARE q AS SELECT 1", "allowed: DEALLOCATE q", "allowed: PREPARE q AS SELECT 1",
				"allowed: EXECUTE q"},
		},
		{
			name: "a Parse of EXECUTE runs what the name holds at its Execute",
			steps: []seqStep{
				{send: []pgproto3.FrontendMessage{query("PREPARE q AS SELECT 1")}, up: "Q", down: "C Z"},
				{send: []pgproto3.FrontendMessage{parse("s1", "EXECUTE q"), bind("p", "s1"), syncMsg}, up: "P(s1) B(p,s1) S", down: "1 2 Z"},
				{reload: "v2", send: []pgproto3.FrontendMessage{execute("p"), syncMsg}, up: "E(marker) S", down: "E(42501) Z"},
			},
			audit: []string{"allowed: PREPARE q AS SELECT 1", "denied policy_changed: EXECUTE q"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSeqSession(t)
			for i, st := range tt.steps {
				if st.reload != "" {
					s.rw.mu.Lock()
					s.rw.version = st.reload
					s.rw.mu.Unlock()
				}
				up := s.send(t, st.send...)
				if got := describeFrontend(up); got != st.up {
					t.Fatalf("step %d: the upstream received %q; want %q", i+1, got, st.up)
				}
				s.held = append(s.held, up...)
				if st.hold {
					continue
				}
				down := s.receive(t, s.up.answer(s.held))
				s.held = nil
				if got := describeBackend(down); got != st.down {
					t.Fatalf("step %d: the client received %q; want %q", i+1, got, st.down)
				}
			}
			if got := strings.Join(s.up.ran, " | "); got != strings.Join(tt.ran, " | ") {
				t.Errorf("the upstream ran %q; want %q", s.up.ran, tt.ran)
			}
			if got := strings.Join(s.audit.recs, " | "); got != strings.Join(tt.audit, " | ") {
				t.Errorf("the audit trail holds %q; want %q", s.audit.recs, tt.audit)
			}
		})
	}
}
