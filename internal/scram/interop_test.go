package scram

import (
	"github.com/pgveil/pgveil/internal/testcert"

	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// authResult is what fakeServer learnt from one connection.
type authResult struct {
	// err is nil when the client authenticated.
	err error
	// channelBound reports whether SCRAM-SHA-256-PLUS was used.
	channelBound bool
}

// fakeServer speaks just enough of the PostgreSQL protocol for a client to
// authenticate with SCRAM, using this package for the exchange.
type fakeServer struct {
	// users maps a user name to its verifier.
	users map[string]Verifier
	// tls is nil when the server refuses SSLRequest.
	tls *tls.Config
	// results receives one authResult per connection.
	results chan authResult
}

// start listens on a loopback port and serves connections until the test
// ends; it returns the port.
func (s *fakeServer) start(t *testing.T) int {
	t.Helper()
	s.results = make(chan authResult, 16)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				s.results <- s.serve(conn)
			}()
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port
}

// serve runs the startup and authentication of one connection, then answers
// every query with an empty result until the client leaves.
func (s *fakeServer) serve(conn net.Conn) authResult {
	backend := pgproto3.NewBackend(conn, conn)
	var cbData []byte
	var startup *pgproto3.StartupMessage
	for startup == nil {
		msg, err := backend.ReceiveStartupMessage()
		if err != nil {
			return authResult{err: fmt.Errorf("startup: %w", err)}
		}
		switch msg := msg.(type) {
		case *pgproto3.SSLRequest:
			if s.tls == nil || cbData != nil {
				conn.Write([]byte("N"))
				continue
			}
			conn.Write([]byte("S"))
			tlsConn := tls.Server(conn, s.tls)
			if err := tlsConn.Handshake(); err != nil {
				return authResult{err: fmt.Errorf("TLS handshake: %w", err)}
			}
			conn = tlsConn
			cbData = TLSServerEndPoint(s.tls.Certificates[0].Leaf)
			backend = pgproto3.NewBackend(conn, conn)
		case *pgproto3.GSSEncRequest:
			conn.Write([]byte("N"))
		case *pgproto3.StartupMessage:
			startup = msg
		default:
			return authResult{err: fmt.Errorf("unexpected %T", msg)}
		}
	}

	user := startup.Parameters["user"]
	v, known := s.users[user]
	if !known {
		v = MockVerifier(user, []byte("fake server secret"))
	}
	conv := NewConversation(v, known, cbData)
	fail := func(err error) authResult {
		code := "28P01"
		if errors.Is(err, ErrMalformed) {
			code = "08P01"
		}
		backend.Send(&pgproto3.ErrorResponse{Severity: "FATAL", SeverityUnlocalized: "FATAL", Code: code, Message: err.Error()})
		backend.Flush()
		return authResult{err: err}
	}

	backend.Send(&pgproto3.AuthenticationSASL{AuthMechanisms: Mechanisms(cbData != nil)})
	if err := backend.Flush(); err != nil {
		return authResult{err: err}
	}
	backend.SetAuthType(pgproto3.AuthTypeSASL)
	msg, err := backend.Receive()
	if err != nil {
		return authResult{err: err}
	}
	initial, ok := msg.(*pgproto3.SASLInitialResponse)
	if !ok {
		return fail(fmt.Errorf("%w: unexpected %T", ErrMalformed, msg))
	}
	serverFirst, err := conv.ServerFirst(initial.AuthMechanism, initial.Data)
	if err != nil {
		return fail(err)
	}
	backend.Send(&pgproto3.AuthenticationSASLContinue{Data: serverFirst})
	if err := backend.Flush(); err != nil {
		return authResult{err: err}
	}
	backend.SetAuthType(pgproto3.AuthTypeSASLContinue)
	if msg, err = backend.Receive(); err != nil {
		return authResult{err: err}
	}
	response, ok := msg.(*pgproto3.SASLResponse)
	if !ok {
		return fail(fmt.Errorf("%w: unexpected %T", ErrMalformed, msg))
	}
	serverFinal, err := conv.ServerFinal(response.Data)
	if err != nil {
		return fail(err)
	}
	backend.Send(&pgproto3.AuthenticationSASLFinal{Data: serverFinal})
	backend.Send(&pgproto3.AuthenticationOk{})
	for name, value := range map[string]string{"server_version": "15.0", "client_encoding": "UTF8", "standard_conforming_strings": "on", "DateStyle": "ISO, MDY", "integer_datetimes": "on"} {
		backend.Send(&pgproto3.ParameterStatus{Name: name, Value: value})
	}
	backend.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	backend.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	result := authResult{channelBound: conv.ChannelBound()}
	if err := backend.Flush(); err != nil {
		return authResult{err: err}
	}
	for {
		msg, err := backend.Receive()
		if err != nil {
			return result
		}
		switch msg.(type) {
		case *pgproto3.Query:
			backend.Send(&pgproto3.EmptyQueryResponse{})
			backend.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
			backend.Flush()
		case *pgproto3.Terminate:
			return result
		}
	}
}

// testTLSConfig returns a server configuration with a fresh self-signed
// ECDSA certificate (signed with SHA-256).
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	return &tls.Config{Certificates: []tls.Certificate{testcert.New(t)}, MinVersion: tls.VersionTLS12}
}

// interopCases are the connections every client library must get right.
var interopCases = []struct {
	name           string
	user           string
	password       string
	sslmode        string
	channelBinding string
	wantOK         bool
	wantBound      bool
}{
	{"the right password without TLS succeeds", "marie", "pw", "disable", "disable", true, false},
	{"a wrong password without TLS fails", "marie", "px", "disable", "disable", false, false},
	{"an unknown user fails", "ghost", "pw", "disable", "disable", false, false},
	{"TLS with channel binding required succeeds bound", "marie", "pw", "require", "require", true, true},
	{"TLS with channel binding preferred succeeds bound", "marie", "pw", "require", "prefer", true, true},
	{"TLS with channel binding disabled succeeds unbound", "marie", "pw", "require", "disable", true, false},
	{"TLS with channel binding and a wrong password fails", "marie", "px", "require", "require", false, false},
	{"a non-ASCII password normalised alike by every client succeeds", "jose", "Jos\u00e9 \u00c5", "disable", "disable", true, false},
}

// interopServer starts a fakeServer with TLS and two users.
func interopServer(t *testing.T) (*fakeServer, int) {
	t.Helper()
	jose, err := NewVerifier("Jos\u00e9 \u00c5", DefaultIterations)
	if err != nil {
		t.Fatal(err)
	}
	srv := &fakeServer{
		users: map[string]Verifier{"marie": mustParse(t, postgresVerifierPW), "jose": jose},
		tls:   testTLSConfig(t),
	}
	return srv, srv.start(t)
}

func TestInteropPgx(t *testing.T) {
	srv, port := interopServer(t)
	for _, tt := range interopCases {
		t.Run(tt.name, func(t *testing.T) {
			connString := fmt.Sprintf("host=127.0.0.1 port=%d user=%s password='%s' dbname=db sslmode=%s channel_binding=%s connect_timeout=5",
				port, tt.user, tt.password, tt.sslmode, tt.channelBinding)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			conn, err := pgconn.Connect(ctx, connString)
			if err == nil {
				conn.Close(ctx)
			}
			result := <-srv.results
			if (err == nil) != tt.wantOK || (result.err == nil) != tt.wantOK {
				t.Fatalf("client error %v, server error %v; want success %v", err, result.err, tt.wantOK)
			}
			if !tt.wantOK && !strings.Contains(err.Error(), "password authentication failed") {
				t.Errorf("client error %v does not say the password failed", err)
			}
			if result.channelBound != tt.wantBound {
				t.Errorf("channel bound %v, want %v", result.channelBound, tt.wantBound)
			}
		})
	}
}

// TestInteropLibpq runs psql, when installed, against the fake server: it
// proves libpq (and so every client built on it) agrees with this package.
func TestInteropLibpq(t *testing.T) {
	psql, err := exec.LookPath("psql")
	if err != nil {
		t.Skip("psql is not installed")
	}
	srv, port := interopServer(t)
	for _, tt := range interopCases {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			connString := fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=db sslmode=%s channel_binding=%s gssencmode=disable connect_timeout=5",
				port, tt.user, tt.sslmode, tt.channelBinding)
			cmd := exec.CommandContext(ctx, psql, "-X", "-w", "-d", connString, "-c", "SELECT 1")
			cmd.Env = append(os.Environ(), "PGPASSWORD="+tt.password, "PGSSLROOTCERT=", "PGSERVICEFILE=/nonexistent", "PGPASSFILE=/nonexistent")
			out, err := cmd.CombinedOutput()
			if ctx.Err() != nil {
				t.Fatalf("psql timed out: %s", out)
			}
			var result authResult
			select {
			case result = <-srv.results:
			case <-ctx.Done():
				t.Fatalf("psql never reached the server: %v: %s", err, out)
			}
			if (err == nil) != tt.wantOK || (result.err == nil) != tt.wantOK {
				t.Fatalf("psql: %v: %s; server error %v; want success %v", err, out, result.err, tt.wantOK)
			}
			if !tt.wantOK && !strings.Contains(string(out), "password authentication failed") {
				t.Errorf("psql output %q does not say the password failed", out)
			}
			if result.channelBound != tt.wantBound {
				t.Errorf("channel bound %v, want %v", result.channelBound, tt.wantBound)
			}
		})
	}
}
