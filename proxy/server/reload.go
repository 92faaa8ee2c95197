package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

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
	if len(changes.Restart) > 0 {
		log.Warn("configuration changes that apply at the next restart only", zap.String("blocks", strings.Join(changes.Restart, ", ")))
	}
	ended := r.putInForce(ctx, log, old, enf, idiags, true)
	if r.Metrics != nil {
		r.Metrics.Reloads.Inc()
	}
	if r.Audit != nil {
		r.Audit.Write(&audit.Record{Event: audit.EventReload, PolicyVersion: enf.Version, OldPolicyVersion: old.Version, Count: int64(ended)})
	}
	log.Info("policies reloaded", zap.String("policy_version", enf.Version),
		zap.String("old_policy_version", old.Version), zap.Int("sessions_ended", ended))
	return nil
}

// putInForce puts enf, loaded with the warnings diags, in force in place
// of old, as a reload and an identity refresh both do: sessions pick it
// up at their next statement, the sessions of users it no longer knows
// are ended, and directory logins have their groups read again. It
// returns how many sessions it ended. r.mu must be held. carry is false
// for an identity refresh, whose snapshot was checked against old's
// baseline already (loadEnforcement).
func (r *Reloader) putInForce(ctx context.Context, log *zap.Logger, old, enf *Enforcement, diags hcl.Diagnostics, carry bool) int {
	logWarnings(log, diags)
	enf.SetLogger(log)
	if carry {
		enf.carryFrom(old)
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
		r.Metrics.SetPolicyVersion(enf.Version)
	}
	return ended
}

// IdentityRefreshReason is the reason of the audit trail's reload record
// of an identity refresh (its reload records otherwise have none: a
// reload of the files).
const IdentityRefreshReason = "identity refresh"

// RefreshIdentities reads the identities of the configuration in force
// again (its identity blocks' queries), one reload at a time, and, when
// the rows changed, puts the policies with the new rows in force exactly
// as a reload does: the files are not read again, so an edit waiting for
// a reload stays waiting. It reports whether the policies changed.
//
// A read that fails (upstream unreachable, a query error), or rows that
// the configuration refuses as a reload would (an error diagnostic, the
// policies no longer matching the database), change nothing: the
// identities in force keep serving, never part of a read, and the error
// says why.
func (r *Reloader) RefreshIdentities(ctx context.Context) (bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	log := r.Logger
	if log == nil {
		log = zap.NewNop()
	}
	old := r.Policies.Current()
	enf, diags, err := loadEnforcement(ctx, old.Config, old)
	if err != nil {
		var problems []string
		for _, d := range diags {
			if d.Severity == hcl.DiagError {
				problems = append(problems, d.Error())
			}
		}
		if len(problems) > 0 {
			err = fmt.Errorf("%w: %s", err, strings.Join(problems, "; "))
		}
		return false, err
	}
	if enf == nil {
		return false, nil
	}
	// NOTE: only the warnings the new rows bring: those of the service
	// account and the like were logged at the load in force, and would
	// be again at each change of the rows.
	var fresh hcl.Diagnostics
	for _, d := range diags {
		if d.Severity != hcl.DiagWarning || !old.warned[warningKey(d)] {
			fresh = append(fresh, d)
		}
	}
	added, removed := loginChanges(old.Identities, enf.Identities)
	ended := r.putInForce(ctx, log, old, enf, fresh, false)
	if r.Audit != nil {
		r.Audit.Write(&audit.Record{Event: audit.EventReload, Reason: IdentityRefreshReason,
			PolicyVersion: enf.Version, OldPolicyVersion: old.Version, Count: int64(ended),
			Message: identityChangeMessage(added, removed)})
	}
	log.Info("identity rows changed upstream; policies with the new rows put in force",
		zap.String("policy_version", enf.Version), zap.String("old_policy_version", old.Version),
		zap.Strings("logins_added", capNames(added)), zap.Strings("logins_removed", capNames(removed)),
		zap.Int("sessions_ended", ended))
	return true, nil
}

// loginChanges returns the logins that may log in under new and not
// under old, and those that may under old and not under new, in order.
// Both sides ask User: Logins also lists the rows that cannot log in (an
// employee row with no password and no role, which only lends its team
// and groups to a user block of another source, or to no one), and
// comparing one list with the other named each such row as both added
// and removed at every refresh.
func loginChanges(old, new *policy.Identities) (added, removed []string) {
	diff := func(a, b *policy.Identities) (out []string) {
		for _, l := range a.Logins() {
			if _, ok := a.User(l); !ok {
				continue
			}
			if _, ok := b.User(l); !ok {
				out = append(out, l)
			}
		}
		return out
	}
	return diff(new, old), diff(old, new)
}

// maxNamedLogins bounds the logins an identity refresh names in its log
// line and audit record: an HR import may change thousands.
const maxNamedLogins = 20

// maxNamedLoginBytes bounds each login an identity refresh names: the
// identity query returns text of any length, and the audit trail cuts
// statement texts only, never a message.
const maxNamedLoginBytes = 64

// capNames returns at most maxNamedLogins of names, each cut to
// maxNamedLoginBytes (capName), and "…" after them when there were more.
func capNames(names []string) []string {
	n := min(len(names), maxNamedLogins)
	out := make([]string, 0, n+1)
	for _, name := range names[:n] {
		out = append(out, capName(name))
	}
	if len(names) > maxNamedLogins {
		out = append(out, fmt.Sprintf("… (%d more)", len(names)-maxNamedLogins))
	}
	return out
}

// capName returns login, or, when longer than maxNamedLoginBytes, its
// first bytes up to a character boundary and its length.
func capName(login string) string {
	if head := clipName(login); head != login {
		return fmt.Sprintf("%s… (%d bytes)", head, len(login))
	}
	return login
}

// clipName returns login, or, when longer than maxNamedLoginBytes, its
// first bytes up to a character boundary.
func clipName(login string) string {
	if len(login) <= maxNamedLoginBytes {
		return login
	}
	cut := maxNamedLoginBytes
	for cut > 0 && !utf8.RuneStart(login[cut]) {
		cut--
	}
	return login[:cut]
}

// identityChangeMessage is the audit message of an identity refresh:
// who was added and who removed (the users whose attributes changed are
// not named: the new policy version says that the rows changed).
func identityChangeMessage(added, removed []string) string {
	msg := "identity rows changed upstream"
	if len(added) > 0 {
		msg += fmt.Sprintf("; logins added (%d): %s", len(added), quotedNames(added))
	}
	if len(removed) > 0 {
		msg += fmt.Sprintf("; logins removed, now without access (%d): %s", len(removed), quotedNames(removed))
	}
	return msg
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

// quotedNames is capNames of names for the audit trail's message, each
// login quoted as a Go string: a login is any text of an identity row,
// and one named "x; logins removed, now without access (1): hanna" read
// as the record's own words.
func quotedNames(names []string) string {
	n := min(len(names), maxNamedLogins)
	out := make([]string, 0, n+1)
	for _, name := range names[:n] {
		if head := clipName(name); head != name {
			out = append(out, fmt.Sprintf("%s (%d bytes)", strconv.Quote(head+"…"), len(name)))
		} else {
			out = append(out, strconv.Quote(name))
		}
	}
	if len(names) > maxNamedLogins {
		out = append(out, fmt.Sprintf("… (%d more)", len(names)-maxNamedLogins))
	}
	return strings.Join(out, ", ")
}
