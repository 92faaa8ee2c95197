package policy

import (
	"crypto/tls"
	"crypto/x509"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/internal/scram"
)

// Config is a loaded, provisioned and validated pgveil configuration.
//
// NOTE: a *Config is immutable once Load returns it; the proxy shares one
// value between all sessions.
type Config struct {
	// Files lists the HCL files the configuration was read from, in the
	// order they were read.
	Files []string
	// Listen describes the client-facing side.
	Listen Listen
	// Upstream describes the PostgreSQL server pgveil forwards to.
	Upstream Upstream
	// Users maps a login name to the user allowed to connect with it.
	Users map[string]*User
}

// Listen is the `listen` block: where clients connect.
type Listen struct {
	// Address is host:port to listen on, e.g. "127.0.0.1:6432".
	Address string
	// Database is the only database name clients may ask for. It defaults
	// to Upstream.Database.
	Database string
	// StartupTimeout bounds TLS negotiation, the startup packet and
	// authentication together. Default 10s.
	StartupTimeout time.Duration
	// ShutdownTimeout bounds how long a graceful shutdown waits for running
	// statements before closing sessions. Default 30s.
	ShutdownTimeout time.Duration
	// MaxMessageSize caps the size of any message a client sends, in bytes
	// (header included). Default 64 MiB.
	MaxMessageSize int
	// TLS is nil when no `tls` block is present: clients asking for TLS are
	// told 'N'.
	TLS *ListenTLS
}

// ListenTLS is the `listen { tls { … } }` block.
type ListenTLS struct {
	// CertFile is the PEM certificate chain presented to clients, resolved
	// against the directory of the configuration file that names it.
	CertFile string
	// KeyFile is the PEM private key of CertFile, resolved the same way.
	KeyFile string
	// Require rejects clients that do not negotiate TLS.
	Require bool
	// Config is provisioned from CertFile and KeyFile.
	Config *tls.Config
}

// Upstream is the `upstream` block: the PostgreSQL server and the service
// account pgveil uses for every session.
type Upstream struct {
	// Address is host:port of the PostgreSQL server.
	Address string
	// Database is the database every session connects to.
	Database string
	// User is the service account every session logs in as.
	User string
	// Password of the service account; usually env("NAME").
	Password string
	// SearchPath is pinned on every upstream session. Default "public".
	SearchPath string
	// ConnectTimeout bounds dialing and authenticating upstream. Default 5s.
	ConnectTimeout time.Duration
	// TLS is how the upstream connection is encrypted and verified.
	TLS UpstreamTLS
}

// TLS modes for the upstream connection.
const (
	TLSDisable    = "disable"
	TLSRequire    = "require"
	TLSVerifyFull = "verify-full"
)

// UpstreamTLS is the `upstream { tls { … } }` block.
type UpstreamTLS struct {
	// Mode is one of TLSDisable, TLSRequire, TLSVerifyFull. Default
	// TLSDisable when no tls block is given.
	Mode string
	// CAFile is a PEM bundle used to verify the server with verify-full,
	// resolved against the directory of the configuration file that names
	// it; the system pool is used when empty.
	CAFile string
	// ServerName overrides the host name checked by verify-full.
	ServerName string
	// RootCAs is provisioned from CAFile (nil means the system pool).
	RootCAs *x509.CertPool
}

// User is a `user "login" { … }` block.
type User struct {
	// Login is the user name clients send in the startup packet: the
	// block's label.
	Login string
	// Verifier is the parsed SCRAM-SHA-256 verifier; pgveil never keeps a
	// plaintext password.
	Verifier scram.Verifier
	// DeclRange is where the user block starts, for diagnostics.
	DeclRange hcl.Range
}
