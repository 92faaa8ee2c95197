package proxy

import (
	"time"

	"github.com/pgveil/pgveil/policy"
)

// Config is what a Server reads of pgveil's configuration: where it
// listens, the limits of a client connection, and the upstream its
// sessions reach. Policies, identities, the audit trail and the admin
// endpoint are not its business (see package server).
type Config struct {
	// Address is host:port ListenAndServe listens on.
	Address string
	// Database is the only database name clients may ask for.
	Database string
	// StartupTimeout bounds TLS negotiation, the startup packet and
	// authentication together.
	StartupTimeout time.Duration
	// MaxMessageSize caps the size of any message a client sends, in
	// bytes, header included.
	MaxMessageSize int
	// MaxConnections caps the client connections open at once, those in
	// their startup included; 0 sets no cap (see limits.go).
	MaxConnections int
	// MaxUserConnections caps the sessions of any one login, unless its
	// user's MaxConnections says otherwise; 0 sets no cap.
	MaxUserConnections int
	// MaxStartupPerAddress caps the connections of one client address
	// still in their startup; 0 sets no cap (see limits.go).
	MaxStartupPerAddress int
	// MaxAuthFailures is how many attempts of one login from one address
	// may fail a minute; 0 turns the throttle off (see throttle.go).
	MaxAuthFailures int
	// Relay is policy.RelayEventLoop or policy.RelayGoroutines: how
	// plaintext sessions relay. "" is the event loop.
	Relay string
	// TLS is the listen block's tls block; nil without one, when clients
	// asking for TLS are told 'N'.
	TLS *policy.ListenTLS
	// Upstream is the PostgreSQL server every session connects to, as
	// its service account.
	Upstream policy.Upstream
}

// ConfigOf returns what a Server reads of cfg, which policy.Load
// returned.
func ConfigOf(cfg *policy.Config) Config {
	return Config{
		Address:              cfg.Listen.Address,
		Database:             cfg.Listen.Database,
		StartupTimeout:       cfg.Listen.StartupTimeout,
		MaxMessageSize:       cfg.Listen.MaxMessageSize,
		MaxConnections:       cfg.Listen.MaxConnections,
		MaxUserConnections:   cfg.Listen.MaxUserConnections,
		MaxStartupPerAddress: cfg.Listen.MaxStartupPerAddress,
		MaxAuthFailures:      cfg.Listen.MaxAuthFailures,
		Relay:                cfg.Listen.Relay,
		TLS:                  cfg.Listen.TLS,
		Upstream:             cfg.Upstream,
	}
}
