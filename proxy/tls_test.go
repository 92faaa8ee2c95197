package proxy_test

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// psql runs the real psql binary with args and returns its combined
// output.
func psql(t *testing.T, conn string, args ...string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("psql")
	if err != nil {
		if dir := proxytest.Cluster.BinDir(); dir != "" {
			bin = dir + "/psql"
		}
	}
	if _, err := os.Stat(bin); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("psql not found: %v", err)
		}
		t.Skip("psql not found")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, append([]string{"-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-d", conn}, args...)...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=10", "LC_ALL=C")
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestPsql(t *testing.T) {
	plain := proxytest.StartProxy(t)
	secure := proxytest.StartProxy(t, proxytest.WithTLS(t, true))

	t.Run("psql logs in with SCRAM over plaintext", func(t *testing.T) {
		out, err := psql(t, plain.URL("alice", proxytest.Users["alice"], nil), "-c", "SELECT count(*) FROM items")
		if err != nil || strings.TrimSpace(out) != "100" {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("psql logs in over TLS with channel binding required", func(t *testing.T) {
		conn := secure.URL("bob", proxytest.Users["bob"], url.Values{
			"sslmode": {"verify-full"}, "sslrootcert": {secure.CertFile}, "channel_binding": {"require"}, "host": {"localhost"},
		})
		out, err := psql(t, conn, "-c", "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()", "-c", "SELECT 'tls-ok'")
		if err != nil || !strings.Contains(out, "tls-ok") {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("psql without TLS is refused when TLS is required", func(t *testing.T) {
		out, err := psql(t, secure.URL("alice", proxytest.Users["alice"], nil), "-c", "SELECT 1")
		if err == nil || !strings.Contains(out, "pgveil requires an encrypted connection") {
			t.Fatalf("plaintext accepted: %v: %s", err, out)
		}
	})
	t.Run("psql with a wrong password sees PostgreSQL's message", func(t *testing.T) {
		out, err := psql(t, plain.URL("alice", "wrong", nil), "-c", "SELECT 1")
		if err == nil || !strings.Contains(out, `password authentication failed for user "alice"`) {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("psql runs COPY and multi-statement scripts", func(t *testing.T) {
		out, err := psql(t, plain.URL("alice", proxytest.Users["alice"], nil),
			"-c", `\copy (SELECT id FROM items WHERE id <= 3 ORDER BY id) TO STDOUT`,
			"-c", "SELECT 1; SELECT 2")
		if err != nil || strings.Fields(out)[0] != "1" || !strings.Contains(out, "2") {
			t.Fatalf("%v: %s", err, out)
		}
	})
}

func TestTLSWithPgx(t *testing.T) {
	p := proxytest.StartProxy(t, proxytest.WithTLS(t, false))
	ctx := context.Background()
	t.Run("pgx negotiates TLS and SCRAM-SHA-256-PLUS", func(t *testing.T) {
		cfg, err := pgconn.ParseConfig(p.URL("alice", proxytest.Users["alice"], url.Values{"sslmode": {"require"}, "channel_binding": {"require"}}))
		if err != nil {
			t.Fatal(err)
		}
		c, err := pgconn.ConnectConfig(ctx, cfg)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if _, ok := c.Conn().(*tls.Conn); !ok {
			t.Fatalf("connection is %T, not TLS", c.Conn())
		}
	})
	t.Run("plaintext is still accepted when TLS is not required", func(t *testing.T) {
		c, err := pgconn.Connect(ctx, p.URL("alice", proxytest.Users["alice"], nil))
		if err != nil {
			t.Fatal(err)
		}
		c.Close(ctx)
	})
	t.Run("plaintext sent after SSLRequest is never read as a startup", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var req [8]byte
		binary.BigEndian.PutUint32(req[:], 8)
		binary.BigEndian.PutUint32(req[4:], 80877103)
		startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": "alice", "database": proxytest.TestDB}}).Encode(nil)
		// One write: the startup rides right behind the SSLRequest.
		if _, err := c.Write(append(req[:], startup...)); err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'S' {
			t.Fatalf("want 'S', got %q %v", b, err)
		}
		rest, err := io.ReadAll(c)
		// The server must not answer with an authentication request: the
		// only acceptable outcomes are a TLS alert or a closed connection.
		if len(rest) > 0 && rest[0] == 'R' {
			t.Fatalf("plaintext startup was processed: %q", rest)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatal("connection left open")
		}
	})
	t.Run("GSSENCRequest is declined", func(t *testing.T) {
		c, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		var req [8]byte
		binary.BigEndian.PutUint32(req[:], 8)
		binary.BigEndian.PutUint32(req[4:], 80877104)
		_, _ = c.Write(req[:])
		b := make([]byte, 1)
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'N' {
			t.Fatalf("want 'N', got %q %v", b, err)
		}
	})
}

// TestDirectTLS covers PostgreSQL 17's sslnegotiation=direct: a client
// that opens with a ClientHello instead of an SSLRequest.
func TestDirectTLS(t *testing.T) {
	secure := proxytest.StartProxy(t, proxytest.WithTLS(t, true))
	plain := proxytest.StartProxy(t)
	ctx := context.Background()
	connect := func(p *proxytest.Proxy, params url.Values) (*pgconn.PgConn, error) {
		cfg, err := pgconn.ParseConfig(p.URL("alice", proxytest.Users["alice"], params))
		if err != nil {
			t.Fatal(err)
		}
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		return pgconn.ConnectConfig(cctx, cfg)
	}
	t.Run("pgx with sslnegotiation=direct logs in with channel binding", func(t *testing.T) {
		c, err := connect(secure, url.Values{"sslmode": {"require"}, "sslnegotiation": {"direct"}, "channel_binding": {"require"}})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		tc, ok := c.Conn().(*tls.Conn)
		if !ok {
			t.Fatalf("connection is %T, not TLS", c.Conn())
		}
		if p := tc.ConnectionState().NegotiatedProtocol; p != "postgresql" {
			t.Fatalf("ALPN protocol %q", p)
		}
		rr := c.ExecParams(ctx, "SELECT count(*) FROM items", nil, nil, nil, nil).Read()
		if rr.Err != nil || len(rr.Rows) != 1 || string(rr.Rows[0][0]) != "100" {
			t.Fatalf("%v %q", rr.Err, rr.Rows)
		}
	})
	hello := func(t *testing.T, p *proxytest.Proxy, protos []string) (string, error) {
		raw, err := net.Dial("tcp", p.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer raw.Close()
		_ = raw.SetDeadline(time.Now().Add(5 * time.Second))
		tc := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, NextProtos: protos})
		if err := tc.Handshake(); err != nil {
			return "", err
		}
		// A startup message: a server that went on would ask for a password.
		startup, _ := (&pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
			Parameters: map[string]string{"user": "alice", "database": proxytest.TestDB}}).Encode(nil)
		if _, err := tc.Write(startup); err != nil {
			return "", err
		}
		b := make([]byte, 1)
		n, err := io.ReadFull(tc, b)
		return string(b[:n]), err
	}
	t.Run("a ClientHello without the postgresql ALPN protocol is refused", func(t *testing.T) {
		// The connection closes with no answer to the startup.
		if out, err := hello(t, secure, nil); out != "" {
			t.Fatalf("served a client that did not ask for postgresql: %q %v", out, err)
		}
	})
	t.Run("a ClientHello for another protocol is refused in the handshake", func(t *testing.T) {
		if _, err := hello(t, secure, []string{"http/1.1"}); err == nil {
			t.Fatal("handshake succeeded")
		}
	})
	t.Run("with the postgresql protocol the server asks for a password", func(t *testing.T) {
		out, err := hello(t, secure, []string{"postgresql"})
		if !strings.HasPrefix(out, "R") {
			t.Fatalf("want an authentication request, got %q %v", out, err)
		}
	})
	t.Run("a ClientHello to a listener without TLS is closed", func(t *testing.T) {
		if _, err := connect(plain, url.Values{"sslmode": {"require"}, "sslnegotiation": {"direct"}}); err == nil {
			t.Fatal("connected")
		}
		if _, err := hello(t, plain, []string{"postgresql"}); err == nil {
			t.Fatal("handshake succeeded")
		}
	})
	t.Run("a ClientHello after another startup packet is refused", func(t *testing.T) {
		c, err := net.Dial("tcp", secure.Addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		var req [8]byte
		binary.BigEndian.PutUint32(req[:], 8)
		binary.BigEndian.PutUint32(req[4:], 80877104) // GSSENCRequest, declined
		_, _ = c.Write(req[:])
		b := make([]byte, 1)
		if _, err := io.ReadFull(c, b); err != nil || b[0] != 'N' {
			t.Fatalf("want 'N', got %q %v", b, err)
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true, NextProtos: []string{"postgresql"}})
		if err := tc.Handshake(); err == nil {
			t.Fatal("direct TLS accepted after another startup packet")
		}
	})
}
