package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// sendCancel sends a CancelRequest for (pid, secret) to addr.
func sendCancel(t testing.TB, addr string, pid uint32, secret []byte) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	buf, _ := (&pgproto3.CancelRequest{ProcessID: pid, SecretKey: secret}).Encode(nil)
	if _, err := c.Write(buf); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, _ = io.ReadAll(c)
}

// startupRaw connects to addr and sends a StartupMessage with params,
// returning the connection and a frontend to read the answer.
func startupRaw(t testing.TB, addr string, params map[string]string) (net.Conn, *pgproto3.Frontend) {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fe := pgproto3.NewFrontend(c, c)
	fe.Send(&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: params})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	return c, fe
}

// expectFatal reads until an ErrorResponse and checks its code and that
// its message contains want.
func expectFatal(t testing.TB, fe *pgproto3.Frontend, code, want string) {
	t.Helper()
	for {
		msg, err := fe.Receive()
		if err != nil {
			t.Fatalf("want error %s, connection ended: %v", code, err)
		}
		if e, ok := msg.(*pgproto3.ErrorResponse); ok {
			if e.Code != code || !strings.Contains(e.Message, want) {
				t.Fatalf("want %s %q, got %s %q", code, want, e.Code, e.Message)
			}
			return
		}
	}
}

func TestStartupIsRefused(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	base := func(extra map[string]string) map[string]string {
		m := map[string]string{"user": "alice", "database": proxytest.TestDB}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	cases := []struct {
		name   string
		params map[string]string
		code   string
		msg    string
	}{
		{"when options set search_path", base(map[string]string{"options": "-c search_path=evil"}), "42501", `"options" is not allowed through pgveil with the setting "search_path"`},
		{"when options set a setting pgveil does not forward", base(map[string]string{"options": "--enable-seqscan=off"}), "42501", `the setting "enable-seqscan"`},
		{"when options give another switch", base(map[string]string{"options": "-c statement_timeout=5s -B 100"}), "42501", `"-B"`},
		{"when options set a setting twice", base(map[string]string{"options": "-c work_mem=1MB", "work_mem": "2MB"}), "08P01", "duplicate"},
		{"when search_path is given", base(map[string]string{"search_path": "evil"}), "42501", `"search_path" is pinned`},
		{"when search_path adds a schema to the pinned one", base(map[string]string{"search_path": "public, evil"}), "42501", `"search_path" is pinned`},
		{"when search_path quotes the pinned schema in capitals", base(map[string]string{"search_path": `"PUBLIC"`}), "42501", `"search_path" is pinned`},
		{"when ssl_renegotiation_limit is not 0", base(map[string]string{"ssl_renegotiation_limit": "512MB"}), "42501", "not allowed"},
		{"when standard_conforming_strings is given", base(map[string]string{"standard_conforming_strings": "off"}), "42501", "pinned"},
		{"for replication connections", base(map[string]string{"replication": "database"}), "42501", "replication"},
		{"for the SJIS encoding", base(map[string]string{"client_encoding": "SJIS"}), "42501", "refused"},
		{"for the GBK encoding spelled win936", base(map[string]string{"client_encoding": "win936"}), "42501", "refused"},
		{"for an unsupported encoding", base(map[string]string{"client_encoding": "LATIN1"}), "0A000", "not supported"},
		{"for an unknown parameter", base(map[string]string{"role": "postgres"}), "42501", "pinned"},
		{"for a parameter pgveil does not know", base(map[string]string{"enable_seqscan": "off"}), "42501", "not allowed"},
		{"without a user", map[string]string{"database": proxytest.TestDB}, "28000", "no PostgreSQL user name"},
		{"for a forwarded setting's value longer than 256 bytes", base(map[string]string{"work_mem": "0" + strings.Repeat("0", 300) + "64kB"}), "22023", "longer than 256 bytes"},
		{"for one in options", base(map[string]string{"options": "-c work_mem=" + strings.Repeat("0", 300) + "64kB"}), "22023", "longer than 256 bytes"},
		{"for a user name longer than 256 bytes", base(map[string]string{"user": strings.Repeat("\x01", 257)}), "28000", "longer than 256 bytes"},
		{"for a database name longer than PostgreSQL's", base(map[string]string{"database": strings.Repeat("d", 3000)}), "3D000", "longer than 63 bytes"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, fe := startupRaw(t, p.Addr, tc.params)
			expectFatal(t, fe, tc.code, tc.msg)
		})
	}
}

func TestStartupParamsAccepted(t *testing.T) {
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		params map[string]string
		// show is a setting to SHOW, and want its value.
		show, want string
	}{
		{"ssl_renegotiation_limit 0, as Npgsql 4 and Power BI send it", map[string]string{"ssl_renegotiation_limit": "0"}, "", ""},
		{"the pinned search_path, as PgJDBC's currentSchema sends it", map[string]string{"search_path": "Public"}, "search_path", "public"},
		{"the pinned search_path quoted", map[string]string{"search_path": ` "public" `}, "search_path", "public"},
		{"options setting statement_timeout, as SQLAlchemy users do", map[string]string{"options": "-c statement_timeout=5000"}, "statement_timeout", "5s"},
		{"options with --name and escaped spaces", map[string]string{"options": `--DateStyle=ISO,\ DMY -clock_timeout=2s`}, "DateStyle", "ISO, DMY"},
	} {
		t.Run(tc.name+" is accepted", func(t *testing.T) {
			cfg, err := pgconn.ParseConfig(p.URL("alice", proxytest.Users["alice"], nil))
			if err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.params {
				cfg.RuntimeParams[k] = v
			}
			c, err := pgconn.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if tc.show == "" {
				return
			}
			res := c.ExecParams(ctx, "SHOW "+tc.show, nil, nil, nil, nil).Read()
			if res.Err != nil || len(res.Rows) != 1 || string(res.Rows[0][0]) != tc.want {
				t.Fatalf("SHOW %s: %v, %v; want %q", tc.show, res.Rows, res.Err, tc.want)
			}
		})
	}
}

func TestStartupEncodingsAccepted(t *testing.T) {
	p := proxytest.StartProxy(t)
	for _, enc := range []string{"UTF8", "utf-8", "SQL_ASCII", "auto"} {
		t.Run("client_encoding "+enc+" is accepted", func(t *testing.T) {
			ctx := context.Background()
			cfg, err := pgconn.ParseConfig(p.URL("alice", proxytest.Users["alice"], nil))
			if err != nil {
				t.Fatal(err)
			}
			cfg.RuntimeParams["client_encoding"] = enc
			c, err := pgconn.ConnectConfig(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close(ctx)
			if got := c.ParameterStatus("client_encoding"); got != "UTF8" {
				t.Fatalf("client told %q", got)
			}
		})
	}
}

func TestAuthentication(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	connectErr := func(user, pw string, extra map[string]string) error {
		cfg, err := pgconn.ParseConfig(p.URL(user, pw, nil))
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range extra {
			cfg.RuntimeParams[k] = v
		}
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err == nil {
			c.Close(ctx)
		}
		return err
	}
	t.Run("a user with a non-ASCII, quoted password logs in", func(t *testing.T) {
		if err := connectErr("bob", proxytest.Users["bob"], nil); err != nil {
			t.Fatal(err)
		}
	})
	var wrong, unknown *pgconn.PgError
	t.Run("a wrong password fails with 28P01", func(t *testing.T) {
		err := connectErr("alice", "nope", nil)
		if !errors.As(err, &wrong) || wrong.Code != "28P01" || wrong.Message != `password authentication failed for user "alice"` {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("an unknown user fails exactly like a wrong password", func(t *testing.T) {
		err := connectErr("mallory", "nope", nil)
		if !errors.As(err, &unknown) || unknown.Code != "28P01" || unknown.Message != `password authentication failed for user "mallory"` {
			t.Fatalf("got %v", err)
		}
		if unknown.Severity != wrong.Severity || unknown.Detail != wrong.Detail || unknown.Hint != wrong.Hint {
			t.Fatalf("unknown user distinguishable: %+v vs %+v", unknown, wrong)
		}
	})
	t.Run("a wrong database is refused after authentication", func(t *testing.T) {
		cfg, _ := pgconn.ParseConfig(p.URL("alice", proxytest.Users["alice"], nil))
		cfg.Database = "postgres"
		_, err := pgconn.ConnectConfig(ctx, cfg)
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "3D000" || !strings.Contains(pgErr.Hint, proxytest.TestDB) {
			t.Fatalf("got %v", err)
		}
	})
	t.Run("the session reports the login as session_authorization", func(t *testing.T) {
		c := p.Connect(t, "alice")
		if got := c.PgConn().ParameterStatus("session_authorization"); got != "alice" {
			t.Fatalf("session_authorization %q", got)
		}
		var app string
		if err := c.QueryRow(ctx, "SELECT current_setting('application_name')").Scan(&app); err != nil || !strings.HasPrefix(app, "pgveil:alice:") {
			t.Fatalf("upstream application_name %q %v", app, err)
		}
	})
}

func TestFunctionCallIsRefused(t *testing.T) {
	p := proxytest.StartProxy(t)
	c := p.Connect(t, "alice")
	fe := c.PgConn().Frontend()
	fe.Send(&pgproto3.FunctionCall{Function: 1598 /* random() */, ResultFormatCode: 0})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	expectFatal(t, fe, "42501", "fast-path function call")
	msg, err := fe.Receive()
	if rfq, ok := msg.(*pgproto3.ReadyForQuery); err != nil || !ok || rfq.TxStatus != 'I' {
		t.Fatalf("want ReadyForQuery, got %T %v", msg, err)
	}
	var one int
	if err := c.QueryRow(context.Background(), "SELECT 1").Scan(&one); err != nil {
		t.Fatalf("session unusable: %v", err)
	}
}

func TestBadInputKeepsTheProxyServing(t *testing.T) {
	proxytest.NoLeaks(t)
	p := proxytest.StartProxy(t)
	ctx := context.Background()
	stillServes := func(t *testing.T) {
		t.Helper()
		c := p.Connect(t, "bob")
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("proxy stopped serving: %v", err)
		}
		c.Close(ctx)
	}

	t.Run("garbage bytes get the connection closed", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = c.Write([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, _ = io.ReadAll(c)
		c.Close()
		stillServes(t)
	})
	t.Run("an oversized message ends the session with 08P01", func(t *testing.T) {
		c := p.Connect(t, "alice")
		fe := c.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 2<<20) + "'"})
		_ = fe.Flush()
		expectFatal(t, fe, "08P01", "too large")
		stillServes(t)
	})
	t.Run("a NUL byte inside a Query's text is an ERROR, and the session and its transaction go on as PostgreSQL's would", func(t *testing.T) {
		c := p.Connect(t, "alice")
		if _, err := c.Exec(ctx, "BEGIN"); err != nil {
			t.Fatal(err)
		}
		conn := c.PgConn().Conn()
		body := "SELECT 1\x00SELECT 2\x00"
		msg := append([]byte{'Q', 0, 0, 0, byte(4 + len(body))}, body...)
		_, _ = conn.Write(msg)
		fe := c.PgConn().Frontend()
		m, err := fe.Receive()
		er, ok := m.(*pgproto3.ErrorResponse)
		if err != nil || !ok || er.Severity != "ERROR" || er.Code != "08P01" {
			t.Fatalf("want ERROR 08P01, got %T %+v %v", m, m, err)
		}
		m, err = fe.Receive()
		if rfq, ok := m.(*pgproto3.ReadyForQuery); err != nil || !ok || rfq.TxStatus != 'E' {
			t.Fatalf("want ReadyForQuery in a failed transaction, got %T %+v %v", m, m, err)
		}
		if _, err := c.Exec(ctx, "ROLLBACK"); err != nil {
			t.Fatal(err)
		}
		if err := c.Ping(ctx); err != nil {
			t.Fatalf("session unusable: %v", err)
		}
	})
	t.Run("an invalid message type ends the session with 08P01", func(t *testing.T) {
		c := p.Connect(t, "alice")
		conn := c.PgConn().Conn()
		_, _ = conn.Write([]byte{'!', 0, 0, 0, 4})
		expectFatal(t, c.PgConn().Frontend(), "08P01", "invalid frontend message type")
		stillServes(t)
	})
	t.Run("a negative message length ends the session", func(t *testing.T) {
		c := p.Connect(t, "alice")
		conn := c.PgConn().Conn()
		_, _ = conn.Write([]byte{'Q', 0xff, 0xff, 0xff, 0xff})
		expectFatal(t, c.PgConn().Frontend(), "08P01", "")
		stillServes(t)
	})
	t.Run("an idle startup times out", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(15 * time.Second))
		start := time.Now()
		_, err = c.Read(make([]byte, 1))
		if err == nil || time.Since(start) > 12*time.Second {
			t.Fatalf("idle startup not closed: %v after %v", err, time.Since(start))
		}
	})
	t.Run("an oversized startup packet is refused", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var hdr [8]byte
		binary.BigEndian.PutUint32(hdr[:], 1<<20)
		binary.BigEndian.PutUint32(hdr[4:], pgproto3.ProtocolVersion30)
		_, _ = c.Write(hdr[:])
		fe := pgproto3.NewFrontend(c, c)
		expectFatal(t, fe, "08P01", "invalid length of startup packet")
		stillServes(t)
	})
	t.Run("a client dropping mid-result frees its upstream backend", func(t *testing.T) {
		c := p.Connect(t, "alice")
		fe := c.PgConn().Frontend()
		fe.Send(&pgproto3.Query{String: "SELECT g, repeat('y', 100) FROM generate_series(1, 5000000) g"})
		_ = fe.Flush()
		if _, err := fe.Receive(); err != nil {
			t.Fatal(err)
		}
		c.PgConn().Conn().Close()
		admin, err := proxytest.Cluster.Connect(ctx, proxytest.TestDB)
		if err != nil {
			t.Fatal(err)
		}
		defer admin.Close(ctx)
		proxytest.Eventually(t, 10*time.Second, "the upstream backend's end after the client dropped", func() bool {
			res := admin.ExecParams(ctx, "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND query LIKE '%5000000%' AND pid <> pg_backend_pid()",
				[][]byte{[]byte(proxytest.SvcUser)}, nil, nil, nil).Read()
			if res.Err != nil {
				t.Fatal(res.Err)
			}
			return string(res.Rows[0][0]) == "0"
		})
		stillServes(t)
	})
}

// serverFirstOf starts a SCRAM exchange as login and returns the
// server-first-message's attributes after the nonce (",s=…,i=…").
func serverFirstOf(t *testing.T, addr, login string) string {
	t.Helper()
	c, fe := startupRaw(t, addr, map[string]string{"user": login, "database": proxytest.TestDB})
	defer c.Close()
	if msg, err := fe.Receive(); err != nil {
		t.Fatal(err)
	} else if _, ok := msg.(*pgproto3.AuthenticationSASL); !ok {
		t.Fatalf("%s: got %T, want AuthenticationSASL", login, msg)
	}
	fe.Send(&pgproto3.SASLInitialResponse{AuthMechanism: "SCRAM-SHA-256", Data: []byte("n,,n=,r=abcdefghijklmnop")})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	msg, err := fe.Receive()
	if err != nil {
		t.Fatal(err)
	}
	cont, ok := msg.(*pgproto3.AuthenticationSASLContinue)
	if !ok {
		t.Fatalf("%s: got %T, want AuthenticationSASLContinue", login, msg)
	}
	_, rest, _ := strings.Cut(string(cont.Data), ",s=")
	return rest
}

func TestAnUnknownLoginIsAskedForTheIterationCountOfTheConfiguredOnes(t *testing.T) {
	const iterations = 10000
	p := proxytest.StartProxy(t, func(c *policy.Config, _ *proxy.Options) {
		for login := range proxytest.Users {
			v, err := scram.NewVerifier(proxytest.Users[login], iterations)
			if err != nil {
				t.Fatal(err)
			}
			c.Users[login].Verifier = v
		}
	})
	iterationsOf := func(login string) string {
		_, i, _ := strings.Cut(serverFirstOf(t, p.Addr, login), ",i=")
		return i
	}
	if known, unknown := iterationsOf("alice"), iterationsOf("mallory"); known != unknown {
		t.Fatalf("a configured login is asked for %s iterations, an unknown one for %s: the count tells them apart", known, unknown)
	}
}
