package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/hashicorp/hcl/v2"
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
	// NOTE: every Config field says in its reload tag how a reload
	// treats its change (TestEveryConfigFieldHasAReloadClass): a new
	// field cannot be missed here.
	changes := policy.ReloadDiff(r.Base, cfg)
	if len(changes.Refuse) > 0 {
		return fail("the upstream block changed ("+strings.Join(changes.Refuse, ", ")+"); restart pgveil to apply it", "")
	}
	enf, idiags, err := LoadEnforcement(ctx, cfg)
	if err != nil {
		var b strings.Builder
		_ = policy.WriteDiagnostics(&b, l.Files(), idiags)
		return fail(err.Error(), b.String())
	}
	logWarnings(log, idiags)
	enf.SetLogger(log)
	enf.carryFrom(old)
	if len(changes.Restart) > 0 {
		log.Warn("configuration changes that apply at the next restart only", zap.String("blocks", strings.Join(changes.Restart, ", ")))
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

// logWarnings logs the warnings of diags, which no one else reads once
// the server runs.
func logWarnings(log *zap.Logger, diags hcl.Diagnostics) {
	for _, d := range diags {
		if d.Severity == hcl.DiagWarning {
			log.Warn(d.Summary, zap.String("detail", d.Detail))
		}
	}
}
