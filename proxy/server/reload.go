package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// Reloader reloads the configuration's policies and identities while the
// server runs (SIGHUP, or a change of the files when watched).
//
// A reload parses and validates everything again, reads the identities
// and the catalog snapshot upstream, and only then swaps the policies in
// force: a configuration with an error is refused, with its diagnostics
// in the log, and the old policies keep serving. Sessions pick up the new
// policies at their next statement; the sessions of users who are no
// longer configured are ended, and directory logins have their groups
// read again (Server.RefreshDirectory).
//
// NOTE: the listen, upstream, audit and admin blocks are read at start
// only. A reload whose upstream block differs is refused (its policies
// would be checked against another database than the one sessions use);
// changes to the other three are applied at the next restart, and the
// log says so.
type Reloader struct {
	// Path is the configuration file or directory.
	Path string
	// Base is the configuration the server started with.
	Base *policy.Config
	// Policies are the policies in force, which Reload replaces.
	Policies *Policies
	// Server ends the sessions of removed users and reads the groups of
	// directory logins again; nil for none.
	Server *proxy.Server
	// Audit records each reload; nil for none.
	Audit proxy.Auditor
	// Metrics counts reloads; nil for none.
	Metrics *proxy.Metrics
	// Logger receives the outcome and the diagnostics.
	Logger *zap.Logger

	// mu runs one reload at a time.
	mu sync.Mutex
}

// ErrReloadRefused wraps the reason a reload was refused.
var ErrReloadRefused = errors.New("policy reload refused")

// Reload loads the configuration again and puts it in force, or returns
// an error wrapping ErrReloadRefused and keeps the policies in force.
func (r *Reloader) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.Logger
	if log == nil {
		log = zap.NewNop()
	}
	old := r.Policies.Current()
	fail := func(reason string, diags string) error {
		log.Error("policy reload refused; the policies in force keep serving",
			zap.String("reason", reason), zap.String("diagnostics", diags),
			zap.String("policy_version", old.Version))
		if r.Metrics != nil {
			r.Metrics.ReloadFailures.Inc()
		}
		if r.Audit != nil {
			r.Audit.Write(&audit.Record{Event: "reload_failed", Reason: reason, Message: diags, PolicyVersion: old.Version})
		}
		return fmt.Errorf("%w: %s", ErrReloadRefused, reason)
	}

	l := policy.NewLoader()
	cfg, diags := l.Load(r.Path)
	if diags.HasErrors() || cfg == nil {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), diags)
		return fail("the configuration has errors", b.String())
	}
	if why := upstreamChanged(&r.Base.Upstream, &cfg.Upstream); why != "" {
		return fail("the upstream block changed ("+why+"); restart pgveil to apply it", "")
	}
	enf, idiags, err := LoadEnforcement(ctx, cfg)
	if err != nil {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), idiags)
		return fail(err.Error(), b.String())
	}
	if why := restartOnly(r.Base, cfg); why != "" {
		log.Warn("configuration changes that apply at the next restart only", zap.String("blocks", why))
	}

	r.Policies.Swap(enf)
	ended := 0
	if r.Server != nil {
		// NOTE: the directory groups first, so that EndSessionsOf maps
		// the groups the directory holds now.
		ended = r.Server.RefreshDirectory(ctx, enf.Config.LDAP, log)
		ended += r.Server.EndSessionsOf(func(login string) bool {
			_, ok := enf.Identities.User(login)
			return ok
		})
	}
	if r.Metrics != nil {
		r.Metrics.Reloads.Inc()
		r.Metrics.SetPolicyVersion(enf.Version)
	}
	if r.Audit != nil {
		r.Audit.Write(&audit.Record{Event: "reload", PolicyVersion: enf.Version, OldPolicyVersion: old.Version, Count: int64(ended)})
	}
	log.Info("policies reloaded", zap.String("policy_version", enf.Version),
		zap.String("old_policy_version", old.Version), zap.Int("sessions_ended", ended))
	return nil
}

// upstreamChanged names what differs between two upstream blocks in a
// way that changes the database sessions reach, or returns "".
func upstreamChanged(a, b *policy.Upstream) string {
	var diffs []string
	if a.Address != b.Address {
		diffs = append(diffs, "address")
	}
	if a.Database != b.Database {
		diffs = append(diffs, "database")
	}
	if a.User != b.User {
		diffs = append(diffs, "user")
	}
	if a.SearchPath != b.SearchPath {
		diffs = append(diffs, "search_path")
	}
	if a.TLS.Mode != b.TLS.Mode || a.TLS.CAFile != b.TLS.CAFile || a.TLS.ServerName != b.TLS.ServerName {
		diffs = append(diffs, "tls")
	}
	return strings.Join(diffs, ", ")
}

// restartOnly names the blocks read at start only that differ.
func restartOnly(a, b *policy.Config) string {
	var diffs []string
	la, lb := a.Listen, b.Listen
	if la.Address != lb.Address || la.Database != lb.Database || la.MaxMessageSize != lb.MaxMessageSize ||
		la.StartupTimeout != lb.StartupTimeout || la.ShutdownTimeout != lb.ShutdownTimeout || (la.TLS == nil) != (lb.TLS == nil) ||
		(la.TLS != nil && (la.TLS.CertFile != lb.TLS.CertFile || la.TLS.KeyFile != lb.TLS.KeyFile || la.TLS.Require != lb.TLS.Require)) {
		diffs = append(diffs, "listen")
	}
	if (a.Audit == nil) != (b.Audit == nil) || (a.Audit != nil && a.Audit.File != b.Audit.File) {
		diffs = append(diffs, "audit")
	}
	if (a.Admin == nil) != (b.Admin == nil) || (a.Admin != nil && *a.Admin != *b.Admin) {
		diffs = append(diffs, "admin")
	}
	return strings.Join(diffs, ", ")
}
