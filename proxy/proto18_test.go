package proxy_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// startCopyAudited starts the demo on relay, where hq may insert into
// pool_scratch.sink, auditing to a fresh trail.
func startCopyAudited(t *testing.T, relay string, pool bool) (*proxytest.Proxy, *audit.Log, string) {
	t.Helper()
	proxytest.SetupDemo(t)
	for _, q := range []string{
		"CREATE SCHEMA IF NOT EXISTS pool_scratch",
		"CREATE TABLE IF NOT EXISTS pool_scratch.sink (note text)",
		"GRANT USAGE ON SCHEMA pool_scratch TO pgveil_svc",
		"GRANT SELECT, INSERT ON pool_scratch.sink TO pgveil_svc",
	} {
		proxytest.Direct(t, q)
	}
	path := filepath.Join(t.TempDir(), "audit.log")
	alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = alog.Close() })
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		if pool {
			c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: time.Second, IdleTimeout: time.Minute}
		}
		c.Listen.Relay = relay
		c.Schemas["pool_scratch"] = &policy.Schema{Name: "pool_scratch", Allow: true}
		c.Roles["central_analyst"].Statements = append(c.Roles["central_analyst"].Statements, rewrite.KindInsert)
	}, func(po *proxy.Options) { po.Audit = alog })
	return p, alog, path
}

// A CopyDone or CopyFail the client sends outside any COPY is ignored by
// PostgreSQL, but counts for pgveil as the end of the next COPY FROM
// STDIN (copyEnds): a Query sent inside that COPY then passes pgveil's
// check and reaches the server, which reads it in COPY mode. What holds:
// it never runs, the server ends the session (FATAL 08P01), and the
// trail credits the Query with no rows. (pgveil cannot tell a stray
// CopyDone from a blind one the server reads in COPY mode; it forwards
// both, so its count stays an approximation the server settles.)
func TestProto18QueryInsideACopyAfterAStrayCopyEndRunsNothing(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		for _, stray := range []pgproto3.FrontendMessage{&pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "x"}} {
			p, alog, path := startCopyAudited(t, relay, false)
			c := p.Connect(t, "hq")
			fe := c.PgConn().Frontend()
			_ = c.PgConn().Conn().SetDeadline(time.Now().Add(20 * time.Second))
			const inside = "SELECT id, email FROM responses ORDER BY id LIMIT 10"
			if rows, codes := proxytest.SendBatch(t, fe, stray, &pgproto3.Query{String: "SELECT 'before'"}); rows != 1 || len(codes) != 0 {
				t.Fatalf("before: rows %d codes %v", rows, codes)
			}
			fe.Send(&pgproto3.Query{String: "COPY pool_scratch.sink FROM STDIN"})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.CopyInResponse); return ok })
			fe.Send(&pgproto3.Query{String: inside})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			fatal := false
			for {
				m, err := fe.Receive()
				if err != nil {
					break
				}
				switch m := m.(type) {
				case *pgproto3.ErrorResponse:
					fatal = fatal || m.Severity == "FATAL" && m.Code == "08P01"
				case *pgproto3.DataRow:
					t.Errorf("the Query inside the COPY returned a row: %q", m.Values)
				case *pgproto3.ReadyForQuery:
					t.Errorf("the session went on after a Query inside its COPY")
				}
			}
			if !fatal {
				t.Error("no FATAL 08P01 ended the session")
			}
			c.Close(context.Background())
			proxytest.WaitSessions(t, p, 0)
			seen := false
			for _, e := range proxytest.ReadAudit(t, alog, path) {
				if e.Event == "statement" && e.SQL == inside {
					seen = true
					if e.Rows != 0 || e.Message == "" {
						t.Errorf("the trail says %q returned %d rows (message %q)", e.SQL, e.Rows, e.Message)
					}
				}
			}
			if !seen {
				t.Errorf("no record of %q", inside)
			}
		}
	})
}

// proto18Case is a message sequence a hostile client sends, after which
// its session must still answer, scoped and masked.
type proto18Case struct {
	name string
	msgs []pgproto3.FrontendMessage
}

func proto18Cases() []proto18Case {
	deny := "SELECT pg_catalog.pg_read_file('/etc/passwd')"
	raw := "SELECT email FROM responses"
	return []proto18Case{
		{"a Bind before any Parse", []pgproto3.FrontendMessage{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"an Execute of an unknown portal", []pgproto3.FrontendMessage{&pgproto3.Execute{Portal: "nope"}, &pgproto3.Sync{}}},
		{"a Describe and a Close of a refused statement", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "r", Query: deny}, &pgproto3.Sync{},
			&pgproto3.Describe{ObjectType: 'S', Name: "r"}, &pgproto3.Sync{},
			&pgproto3.Close{ObjectType: 'S', Name: "r"}, &pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "r"}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"two Parses of the unnamed statement, the first refused", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: deny}, &pgproto3.Parse{Query: raw}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"an allowed named statement Parsed again with a refused text", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "s", Query: raw}, &pgproto3.Sync{},
			&pgproto3.Parse{Name: "s", Query: deny}, &pgproto3.Sync{},
			&pgproto3.Bind{PreparedStatement: "s"}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Close{ObjectType: 'S', Name: "s"}, &pgproto3.Sync{}}},
		{"declared parameter types", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Name: "d", Query: "SELECT count(*) FROM responses WHERE email = $1 OR $2::text IS NOT NULL OR id = $3", ParameterOIDs: []uint32{2205, 705, 0}},
			&pgproto3.Bind{PreparedStatement: "d", Parameters: [][]byte{[]byte("responses"), []byte("x"), []byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Close{ObjectType: 'S', Name: "d"}, &pgproto3.Sync{}}},
		{"a Bind with the wrong counts", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "SELECT count(*) FROM responses WHERE id = $1"},
			&pgproto3.Bind{ParameterFormatCodes: []int16{1, 0, 1}, Parameters: [][]byte{[]byte("1")}}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("1"), []byte("2")}}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"an Execute with max_rows, then Sync and Close", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: raw}, &pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Sync{},
			&pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Close{ObjectType: 'P', Name: "p"}, &pgproto3.Sync{}}},
		{"Flush without Sync, then a Query", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: raw}, &pgproto3.Bind{}, &pgproto3.Execute{MaxRows: 1}, &pgproto3.Flush{},
			&pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{}}},
		{"copy messages outside COPY", []pgproto3.FrontendMessage{
			&pgproto3.CopyData{Data: []byte("x")}, &pgproto3.CopyDone{}, &pgproto3.CopyFail{Message: "x"}, &pgproto3.Sync{}}},
		{"a FunctionCall inside a batch", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: raw}, &pgproto3.FunctionCall{Function: 2624, Arguments: [][]byte{[]byte("/etc/passwd")}}, &pgproto3.Sync{}}},
		{"a COPY TO STDOUT of the extended protocol, refused or rewritten", []pgproto3.FrontendMessage{
			&pgproto3.Parse{Query: "COPY responses TO STDOUT"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{},
			&pgproto3.Parse{Query: "COPY (SELECT email FROM responses) TO STDOUT"}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}}},
		{"a portal of a cursor declared by SQL", []pgproto3.FrontendMessage{
			&pgproto3.Query{String: "BEGIN"}, &pgproto3.Query{String: "DECLARE c CURSOR FOR SELECT email FROM responses"},
			&pgproto3.Execute{Portal: "c"}, &pgproto3.Describe{ObjectType: 'P', Name: "c"}, &pgproto3.Sync{}, &pgproto3.Query{String: "COMMIT"}}},
	}
}

// After each hostile sequence the session still answers, with marie's
// rows only and her masked column NULL, on every relay, in session mode
// and in a transaction pool of one backend. Whatever the sequence got
// back, no email came with it.
func TestProto18HostileSequencesLeaveTheSessionSound(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		for _, pooled := range []bool{false, true} {
			mode := "session mode"
			if pooled {
				mode = "transaction pool"
			}
			t.Run(mode, func(t *testing.T) {
				var p *proxytest.Proxy
				if pooled {
					p = startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 2 * time.Second, IdleTimeout: time.Minute})
				} else {
					p, _ = proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
				}
				want := proxytest.Direct(t, "SELECT count(*) FROM responses WHERE "+proxytest.Scopes["marie"])[0][0]
				emails := proxytest.Direct(t, "SELECT string_agg(email, ' ') FROM responses WHERE email IS NOT NULL")[0][0]
				for _, c := range proto18Cases() {
					t.Run(c.name, func(t *testing.T) {
						conn := p.Connect(t, "marie")
						defer conn.Close(context.Background())
						_ = conn.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
						fe := conn.PgConn().Frontend()
						for _, m := range c.msgs {
							fe.Send(m)
						}
						fe.Send(&pgproto3.Query{String: "SELECT 'end of sequence'"})
						if err := fe.Flush(); err != nil {
							t.Fatal(err)
						}
						var got []string
						for {
							m, err := fe.Receive()
							if err != nil {
								t.Fatalf("after %q: %v", got, err)
							}
							if d, ok := m.(*pgproto3.DataRow); ok {
								for _, v := range d.Values {
									if len(v) > 3 && bytes.Contains([]byte(emails), v) {
										t.Errorf("an email came back: %q", v)
									}
								}
								if string(d.Values[0]) == "end of sequence" {
									break
								}
							}
							if e, ok := m.(*pgproto3.ErrorResponse); ok {
								got = append(got, e.Code+" "+e.Message)
							}
						}
						receiveUntil(t, fe, func(m pgproto3.BackendMessage) bool { _, ok := m.(*pgproto3.ReadyForQuery); return ok })
						t.Logf("errors: %q", got)
						_ = conn.PgConn().Conn().SetDeadline(time.Time{})
						ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
						defer cancel()
						n, err := one(ctx, conn, "SELECT count(*)::text FROM responses")
						if err != nil || n != want {
							t.Errorf("afterwards marie counts %q (%v), want %s", n, err, want)
						}
						m, err := one(ctx, conn, "SELECT count(email)::text FROM responses")
						if err != nil || m != "0" {
							t.Errorf("afterwards marie counts %q emails (%v), want 0", m, err)
						}
					})
				}
			})
		}
	})
}

// A startup-phase packet sent mid-session (a client retrying its
// SSLRequest, GSSENCRequest or StartupMessage on a connection already
// set up) reads as a message of type 0: PostgreSQL refuses it at its
// type byte, with FATAL 08P01, before reading the length the packet's
// next bytes make. So must pgveil on every relay: a relay that waits for
// that length's bytes first leaves the client, which waits for its
// one-byte answer, hanging without an answer.
func TestProto18StartupPacketMidSessionIsRefusedAtOnce(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		t.Run("in session mode", func(t *testing.T) {
			p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
			startupPacketMidSession(t, p, nil)
		})
		t.Run("in a transaction pool", func(t *testing.T) {
			p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 30 * time.Second, IdleTimeout: time.Minute})
			startupPacketMidSession(t, p, nil)
		})
		t.Run("in a transaction pool, holding the backend", func(t *testing.T) {
			p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 30 * time.Second, IdleTimeout: time.Minute})
			startupPacketMidSession(t, p, []string{"BEGIN"})
		})
		t.Run("in a transaction pool, waiting for the backend", func(t *testing.T) {
			p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 30 * time.Second, IdleTimeout: time.Minute})
			other := p.Connect(t, "hq")
			if _, err := other.Exec(context.Background(), "BEGIN"); err != nil {
				t.Fatal(err)
			}
			startupPacketMidSession(t, p, nil)
		})
	})
}

// startupPacketMidSession sends each startup packet on a fresh session
// of marie's that ran before first, and expects FATAL 08P01 for it.
func startupPacketMidSession(t *testing.T, p *proxytest.Proxy, before []string) {
	{
		for _, c := range []struct {
			name   string
			packet []byte
		}{
			{"an SSLRequest", []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}},
			{"a GSSENCRequest", []byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x30}},
			{"a StartupMessage", append([]byte{0, 0, 0, 23, 0, 3, 0, 0}, "user\x00marie\x00\x00"...)},
			{"a message of an unknown type announcing a large body", []byte{'~', 0, 0x10, 0, 0}},
		} {
			t.Run(c.name, func(t *testing.T) {
				conn := p.Connect(t, "marie")
				defer conn.Close(context.Background())
				for _, q := range before {
					if _, err := conn.Exec(context.Background(), q); err != nil {
						t.Fatal(err)
					}
				}
				raw := conn.PgConn().Conn()
				// NOTE: a bound on a hang, not a timing assertion.
				_ = raw.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := raw.Write(c.packet); err != nil {
					t.Fatal(err)
				}
				m, err := conn.PgConn().Frontend().Receive()
				if err != nil {
					t.Fatalf("no answer: %v", err)
				}
				e, ok := m.(*pgproto3.ErrorResponse)
				if !ok || e.Code != "08P01" || e.Severity != "FATAL" {
					t.Fatalf("answered %#v, want FATAL 08P01", m)
				}
			})
		}
	}
}

// A client asking for protocol 3.2 (PostgreSQL 18's libpq with
// max_protocol_version=3.2) or a later minor, or for _pq_. protocol
// options, is told with NegotiateProtocolVersion, before authentication,
// that pgveil speaks 3.0 and none of those options, as PostgreSQL does;
// it then authenticates as any other client. A major version other than
// 3 is refused.
func TestProto18NewerProtocolIsNegotiatedDown(t *testing.T) {
	p := proxytest.StartDemo(t)
	for _, c := range []struct {
		name    string
		version uint32
		options []string
	}{
		{"protocol 3.2", 3<<16 | 2, nil},
		{"protocol 3.2 with _pq_. options", 3<<16 | 2, []string{"_pq_.test_protocol_negotiation", "_pq_.other"}},
		{"protocol 3.0 with a _pq_. option", 3 << 16, []string{"_pq_.x"}},
		{"protocol 3.65535", 3<<16 | 0xffff, nil},
	} {
		t.Run(c.name, func(t *testing.T) {
			params := map[string]string{"user": "marie", "database": "feedback"}
			for _, o := range c.options {
				params[o] = "1"
			}
			conn, err := net.Dial("tcp", p.Addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			fe := pgproto3.NewFrontend(conn, conn)
			fe.Send(&pgproto3.StartupMessage{ProtocolVersion: c.version, Parameters: params})
			if err := fe.Flush(); err != nil {
				t.Fatal(err)
			}
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			npv, ok := m.(*pgproto3.NegotiateProtocolVersion)
			if !ok {
				t.Fatalf("first message %#v, want NegotiateProtocolVersion", m)
			}
			got := append([]string(nil), npv.UnrecognizedOptions...)
			want := append([]string(nil), c.options...)
			slices.Sort(got)
			slices.Sort(want)
			if npv.NewestMinorProtocol != 0 || !slices.Equal(got, want) {
				t.Fatalf("NegotiateProtocolVersion %d %q, want 0 %q", npv.NewestMinorProtocol, got, want)
			}
			if m, err = fe.Receive(); err != nil {
				t.Fatal(err)
			}
			if _, ok := m.(*pgproto3.AuthenticationSASL); !ok {
				t.Fatalf("then %#v, want AuthenticationSASL", m)
			}
		})
	}
	t.Run("protocol 4.0 is refused", func(t *testing.T) {
		conn, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
		fe := pgproto3.NewFrontend(conn, conn)
		fe.Send(&pgproto3.StartupMessage{ProtocolVersion: 4 << 16, Parameters: map[string]string{"user": "marie"}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		expectFatal(t, fe, "0A000", "unsupported frontend protocol 4.0")
	})
}

// In a transaction pool, the unnamed statement a session prepared stays
// on the backend after its batch. Another session's Bind of the unnamed
// statement, with no Parse of its own, must not run it: hq's statement,
// rewritten for hq's rows, would answer marie.
func TestProto18UnnamedStatementStaysWithItsSession(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p := startDemoPool(t, relay, policy.Pool{Mode: policy.PoolTransaction, Size: 1, WaitTimeout: 5 * time.Second, IdleTimeout: time.Minute})
		hq, marie := p.Connect(t, "hq"), p.Connect(t, "marie")
		defer hq.Close(context.Background())
		defer marie.Close(context.Background())
		all := proxytest.Direct(t, "SELECT count(*) FROM responses")[0][0]
		hfe, mfe := hq.PgConn().Frontend(), marie.PgConn().Frontend()
		_ = hq.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
		_ = marie.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
		if rows, codes := proxytest.SendBatch(t, hfe, &pgproto3.Parse{Query: "SELECT count(*) FROM responses"}, &pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Sync{}); rows != 0 || len(codes) != 0 {
			t.Fatalf("hq's Parse: rows %d codes %v", rows, codes)
		}
		for _, batch := range [][]pgproto3.FrontendMessage{
			{&pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{&pgproto3.Describe{ObjectType: 'S'}, &pgproto3.Bind{}, &pgproto3.Execute{}, &pgproto3.Sync{}},
			{&pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{}},
		} {
			for _, m := range batch {
				mfe.Send(m)
			}
			if err := mfe.Flush(); err != nil {
				t.Fatal(err)
			}
			for {
				m, err := mfe.Receive()
				if err != nil {
					t.Fatal(err)
				}
				if d, ok := m.(*pgproto3.DataRow); ok {
					t.Errorf("marie's Bind of no statement of hers returned %q (hq's count is %s)", d.Values[0], all)
				}
				if _, ok := m.(*pgproto3.ReadyForQuery); ok {
					break
				}
			}
		}
	})
}

// A Bind of a portal that exists fails (42P03), and so does one with the
// wrong number of parameters, before it makes its portal: PostgreSQL
// keeps the portal as it was, and a ROLLBACK TO SAVEPOINT undoes the
// error but not the portal. The trail must credit a later Execute of the
// portal to the statement the portal runs, the first Bind's, not to the
// failed Bind's: otherwise a client reads with one statement and the
// trail records another (what it read, its columns, its rows).
func TestProto18FailedBindLeavesThePortalItsStatement(t *testing.T) {
	const (
		reads = "SELECT id, email FROM responses ORDER BY id LIMIT 4"
		other = "SELECT 'cover' FROM responses WHERE id = $1"
	)
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		for _, c := range []struct {
			name   string
			portal string
			// again is the Bind that fails.
			again *pgproto3.Bind
		}{
			{"a named portal bound again", "r", &pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "other", Parameters: [][]byte{[]byte("1")}}},
			{"the unnamed portal bound with a parameter too many", "", &pgproto3.Bind{PreparedStatement: "other", Parameters: [][]byte{[]byte("1"), []byte("2")}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				recs := auditedRunOn(t, relay, nil, func(ctx context.Context, conn *pgx.Conn) {
					fe := conn.PgConn().Frontend()
					_ = conn.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
					for _, batch := range [][]pgproto3.FrontendMessage{
						{&pgproto3.Parse{Name: "reads", Query: reads}, &pgproto3.Parse{Name: "other", Query: other}, &pgproto3.Sync{}},
						{&pgproto3.Query{String: "BEGIN"}},
						{&pgproto3.Bind{DestinationPortal: c.portal, PreparedStatement: "reads"}, &pgproto3.Execute{Portal: c.portal, MaxRows: 1}, &pgproto3.Sync{}},
						// A Query would replace the unnamed portal.
						{&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Bind{DestinationPortal: "ctl", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "ctl"}, &pgproto3.Sync{}},
						{c.again, &pgproto3.Sync{}},
						{&pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Bind{DestinationPortal: "ctl2", PreparedStatement: "back"}, &pgproto3.Execute{Portal: "ctl2"}, &pgproto3.Sync{}},
						{&pgproto3.Execute{Portal: c.portal}, &pgproto3.Sync{}},
						{&pgproto3.Query{String: "COMMIT"}},
					} {
						proxytest.SendBatch(t, fe, batch...)
					}
				})
				// Its Bind failed, and nothing executed it.
				if e := recs[other]; e != nil && e.Rows != 0 {
					t.Errorf("the trail credits %q, whose Bind failed, with %d rows", other, e.Rows)
				}
				// The last record of reads is the second Execute's: the
				// three rows the portal had left.
				if e := recordOf(t, recs, reads); e.Rows != 3 {
					t.Errorf("the trail credits %q with %d rows, want the 3 its portal returned last", reads, e.Rows)
				}
			})
		}
	})
}

// The same with a switch of the viewer: a BI service binds a portal to
// its switch, then fails to bind it to a plain SELECT, and executes it
// after ROLLBACK TO SAVEPOINT. The server switches; so must pgveil,
// which scopes the next statements for the viewer SHOW names.
func TestProto18FailedBindLeavesThePortalItsSwitch(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
		a := actConn{c: p.Connect(t, "metabase")}
		france, service := directCount(t, proxytest.Scopes["marie"]), a.responses(t)
		if france == service {
			t.Fatalf("demo data: the service sees the %d French responses", france)
		}
		fe := a.c.PgConn().Frontend()
		_ = a.c.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
		for _, batch := range [][]pgproto3.FrontendMessage{
			{&pgproto3.Parse{Name: "sw", Query: "SET pgveil.act_for = 'marie'"}, &pgproto3.Parse{Name: "plain", Query: "SELECT 1"},
				&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Sync{}},
			{&pgproto3.Query{String: "BEGIN"}},
			{&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "sw"}, &pgproto3.Sync{}},
			{&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{}},
			{&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "plain"}, &pgproto3.Sync{}},
			{&pgproto3.Bind{DestinationPortal: "c2", PreparedStatement: "back"}, &pgproto3.Execute{Portal: "c2"}, &pgproto3.Sync{}},
			{&pgproto3.Execute{Portal: "r"}, &pgproto3.Sync{}},
			{&pgproto3.Query{String: "COMMIT"}},
		} {
			proxytest.SendBatch(t, fe, batch...)
		}
		_ = a.c.PgConn().Conn().SetDeadline(time.Time{})
		rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "SHOW pgveil.act_for"})
		if err != nil || len(rows) != 1 {
			t.Fatalf("SHOW pgveil.act_for: %v %v", rows, err)
		}
		n := a.responses(t)
		switch {
		case rows[0] == "marie" && n != france:
			t.Errorf("the upstream acts for marie, pgveil scopes %d responses (hers: %d)", n, france)
		case rows[0] != "marie" && n == france:
			t.Errorf("the upstream acts for %q, pgveil scopes marie's %d responses", rows[0], n)
		}
	})
}

// The same, pipelined: every batch sent before any answer. At the
// Execute, the failed Bind is not answered yet, and the Tracker takes the
// portal to run its statement: the server switches to marie, pgveil does
// not, and the trail credits the Execute to the SELECT. Not fixed (see
// the proto18 report): the Execute's plan is decided before the answer
// that settles it.
func TestProto18PipelinedFailedBindLeavesThePortalItsSwitch(t *testing.T) {
	proxytest.OnEveryRelay(t, testPipelinedFailedBindSwitch)
}

func testPipelinedFailedBindSwitch(t *testing.T, relay string) {
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Listen.Relay = relay })
	a := actConn{c: p.Connect(t, "metabase")}
	france := directCount(t, proxytest.Scopes["marie"])
	fe := a.c.PgConn().Frontend()
	_ = a.c.PgConn().Conn().SetDeadline(time.Now().Add(15 * time.Second))
	proxytest.SendBatch(t, fe, &pgproto3.Parse{Name: "sw", Query: "SET pgveil.act_for = 'marie'"}, &pgproto3.Parse{Name: "plain", Query: "SELECT 1"},
		&pgproto3.Parse{Name: "sp", Query: "SAVEPOINT s"}, &pgproto3.Parse{Name: "back", Query: "ROLLBACK TO s"}, &pgproto3.Sync{})
	for _, m := range []pgproto3.FrontendMessage{
		&pgproto3.Query{String: "BEGIN"},
		&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "sw"}, &pgproto3.Sync{},
		&pgproto3.Bind{DestinationPortal: "c1", PreparedStatement: "sp"}, &pgproto3.Execute{Portal: "c1"}, &pgproto3.Sync{},
		&pgproto3.Bind{DestinationPortal: "r", PreparedStatement: "plain"}, &pgproto3.Sync{},
		&pgproto3.Bind{DestinationPortal: "c2", PreparedStatement: "back"}, &pgproto3.Execute{Portal: "c2"}, &pgproto3.Sync{},
		&pgproto3.Execute{Portal: "r"}, &pgproto3.Sync{},
		&pgproto3.Query{String: "COMMIT"},
	} {
		fe.Send(m)
	}
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	var codes []string
	for z := 0; z < 7; {
		m, err := fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.ErrorResponse:
			codes = append(codes, m.Code)
		case *pgproto3.ReadyForQuery:
			z++
		}
	}
	// The failed Bind's 42P03, and the Execute refused (act_for) or run.
	t.Logf("errors: %v", codes)
	_ = a.c.PgConn().Conn().SetDeadline(time.Time{})
	rows, err := proxytest.RoundTrip(t, a.c, &pgproto3.Query{String: "SHOW pgveil.act_for"})
	var pe *pgconn.PgError
	if errors.As(err, &pe) && pe.Code == "42704" {
		// Never set upstream: acting for nobody.
		rows, err = []string{""}, nil
	}
	if err != nil || len(rows) != 1 {
		t.Fatalf("SHOW pgveil.act_for: %v %v", rows, err)
	}
	if n := a.responses(t); (rows[0] == "marie") != (n == france) {
		t.Errorf("the upstream acts for %q, pgveil scopes %d responses (marie's: %d)", rows[0], n, france)
	}
}
