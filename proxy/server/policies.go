package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/rewrite"
)

// Policies holds the Enforcement in force and lets a reload replace it
// while sessions run: each statement is decided by the Enforcement in
// force when it arrives, so a session picks up a new policy at its next
// statement.
//
// NOTE: an Enforcement is immutable; Swap replaces the pointer
// atomically, so a statement sees one whole policy version, never a mix.
type Policies struct {
	cur atomic.Pointer[Enforcement]
}

// NewPolicies returns Policies serving e.
func NewPolicies(e *Enforcement) *Policies {
	p := &Policies{}
	p.cur.Store(e)
	return p
}

// Current returns the Enforcement in force.
func (p *Policies) Current() *Enforcement { return p.cur.Load() }

// Swap puts e in force and returns the Enforcement it replaces.
func (p *Policies) Swap(e *Enforcement) *Enforcement { return p.cur.Swap(e) }

// Rewrite implements proxy.Rewriter with the Enforcement in force.
func (p *Policies) Rewrite(ctx context.Context, s *proxy.SessionInfo, st *proxy.Statement) (*rewrite.Result, error) {
	e := p.cur.Load()
	// NOTE: before the rewrite: the snapshot it uses is this one or a
	// newer one, so a statement is never tagged with refusals newer than
	// those it was checked under.
	st.PolicyVersion = e.version()
	login, err := e.rewriteLogin(s)
	if err != nil {
		// Only a change of the acting user may still pass (the proxy
		// checks it against the service's act_for): RESET ROLE must
		// always work.
		// A lone ROLLBACK (ABORT, ROLLBACK TO) passes too: it reads and
		// writes no row, and refused, a block that acted for a user a
		// refresh removed could never end, holding its pool backend.
		res, rerr := e.Engine.Rewrite(ctx, e.serviceLogin(s), byte(st.Source), st.Text)
		if rerr == nil && (res.Act != nil || rollsBackOnly(res)) {
			return res, nil
		}
		return nil, actRefusal(err.Error()+"; RESET ROLE to act as "+s.Service, res, rerr)
	}
	if s.Service != "" {
		// For the audit trail's acting_roles only.
		st.Roles = e.loginRoles(login)
	}
	if st.Source == proxy.SourceParse {
		return e.Engine.RewriteParse(ctx, login, st.Text, st.ParamOIDs)
	}
	return e.Engine.Rewrite(ctx, login, byte(st.Source), st.Text)
}

// actRefusal is the act_for refusal, for why, of a statement the
// service's own policy checked into res or refused with rerr: with the
// statement's kind and the relations it names, as the rewriter's
// refusals have them, so that the audit trail's search by kind or table
// finds it.
// NOTE: only what the text names; nothing of what the end user's
// policy would have shown, which no policy decided.
func actRefusal(why string, res *rewrite.Result, rerr error) *proxy.Refusal {
	r := proxy.ActRefusal(why)
	var other *proxy.Refusal
	switch {
	case res != nil:
		r.Kind = strings.Join(res.Kinds, ",")
		r.Tables = res.Tables
		r.Fingerprint = res.Fingerprint
	case errors.As(rerr, &other):
		r.Kind, r.Tables, r.Fingerprint = other.Kind, other.Tables, other.Fingerprint
	}
	return r
}

// RewriteCached is Rewrite answered from the engine's caches alone; it
// reports false, having done nothing, when the statement needs the
// parser (see proxy.Rewriter).
func (p *Policies) RewriteCached(s *proxy.SessionInfo, st *proxy.Statement) (*rewrite.Result, bool, error) {
	e := p.cur.Load()
	version := e.version() // before the caches: see Rewrite
	login, err := e.rewriteLogin(s)
	if err != nil {
		// Rare: the service lost the right to act for the user.
		return nil, false, nil
	}
	var res *rewrite.Result
	var ok bool
	if st.Source == proxy.SourceParse {
		res, ok, err = e.Engine.RewriteParseCached(login, st.Text, st.ParamOIDs)
	} else {
		res, ok, err = e.Engine.RewriteCached(login, byte(st.Source), st.Text)
	}
	if ok {
		st.PolicyVersion = version
		if s.Service != "" {
			st.Roles = e.loginRoles(login)
		}
	}
	return res, ok, err
}

// loginRoles returns the roles of login, a name rewriteLogin returned,
// as the policy that rewrites its statements gives them (for the audit
// trail): a configured user's, or a directory login's as the mapping
// made them from her groups; nil for one that has none.
// NOTE: the returned slice is the identities' own: never modified.
func (e *Enforcement) loginRoles(login string) []string {
	if strings.HasPrefix(login, directoryPrefix) {
		if u, ok := e.directory.Load(login); ok {
			return u.(*policy.User).Roles
		}
		return nil
	}
	if u, ok := e.Identities.User(login); ok {
		return u.Roles
	}
	return nil
}

// rewriteLogin returns the login whose policy rewrites the statements of
// s, or an error when s acts for a user its service may no longer act
// for.
func (e *Enforcement) rewriteLogin(s *proxy.SessionInfo) (string, error) {
	if s.Service != "" {
		// Checked again at each statement: a reload may have taken the
		// end user off the service's act_for.
		through := e.Identities.ActsThroughDirectory(s.User)
		switch {
		case s.ActingDirectory && through:
			// Her roles, groups and attributes as her own login gets
			// them, with the groups the directory held at the switch
			// (or at the last reload).
			if s.ActingRefused != "" {
				return "", fmt.Errorf("%s may not act for %s: %s", s.Service, s.User, s.ActingRefused)
			}
			if err := e.Identities.MayActForDirectory(s.Service, s.User, s.ActingGroups); err != nil {
				return "", err
			}
			return e.directoryLogin(s.User, s.ActingGroups), nil
		case through:
			// A reload gave the ldap block a bind DN since the switch:
			// her groups were not read.
			return "", fmt.Errorf("%s may not act for %s: its directory groups were not read at the switch; switch to it again", s.Service, s.User)
		}
		// NOTE: without a bind DN, a viewer a service acts for is a user
		// of the configuration, never one known only to the directory.
		if err := e.Identities.MayActFor(s.Service, s.User); err != nil {
			return "", err
		}
		return s.User, nil
	}
	if s.Directory {
		return e.directoryLogin(s.User, s.DirectoryGroups), nil
	}
	return s.User, nil
}

// serviceLogin returns the login whose policy rewrites the statements of
// the BI service that s acts for a user through.
func (e *Enforcement) serviceLogin(s *proxy.SessionInfo) string {
	if s.Directory {
		return e.directoryLogin(s.Service, s.DirectoryGroups)
	}
	return s.Service
}

// LDAP implements proxy.Directory with the Enforcement in force.
func (p *Policies) LDAP() *policy.LDAP { return p.cur.Load().Config.LDAP }

// DirectoryUser implements proxy.Directory with the Enforcement in force.
func (p *Policies) DirectoryUser(login string, groupDNs []string) (*policy.User, bool) {
	return p.cur.Load().Identities.DirectoryUser(login, groupDNs)
}

// MayActFor lets the proxy check act_for with the identities in force.
func (p *Policies) MayActFor(service, target string) error {
	return p.cur.Load().Identities.MayActFor(service, target)
}

// ActsThroughDirectory lets the proxy know, with the identities in force,
// which end users a service acting for must be looked up in the
// directory.
func (p *Policies) ActsThroughDirectory(target string) bool {
	return p.cur.Load().Identities.ActsThroughDirectory(target)
}

// ActForReachesDirectory lets the proxy know, with the identities in
// force, whether a lookup of such an end user could let service act for
// her.
func (p *Policies) ActForReachesDirectory(service, target string) error {
	return p.cur.Load().Identities.ActForReachesDirectory(service, target)
}

// MayActForDirectory lets the proxy check act_for for such an end user
// with the identities in force.
func (p *Policies) MayActForDirectory(service, target string, groupDNs []string) error {
	return p.cur.Load().Identities.MayActForDirectory(service, target, groupDNs)
}

// PolicyVersion returns the version of the policies in force.
func (p *Policies) PolicyVersion() string { return p.cur.Load().version() }

// User looks login up in the identities in force.
func (p *Policies) User(login string) (*policy.User, bool) {
	return p.cur.Load().Identities.User(login)
}

// Apply sets the options that enforce the policies in force: the
// rewriter, the users and the scrubbing of data errors.
func (p *Policies) Apply(o *proxy.Options) {
	o.Rewriter = p
	o.Users = p.User
	o.Directory = p
	o.MockIterations = func() int { return p.Current().Identities.MockIterations() }
	o.ScrubDataErrors = true
}

// RegisterPolicies exports the rewrite cache counters of the policies in
// force.
func RegisterPolicies(reg prometheus.Registerer, p *Policies) {
	reg.MustRegister(
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pgveil_rewrite_cache_hits_total",
			Help: "Statements served from the rewrite cache of the policy in force.",
		}, func() float64 { h, _ := p.Current().Engine.CacheStats(); return float64(h) }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "pgveil_rewrite_cache_misses_total",
			Help: "Statements parsed and checked by the policy in force.",
		}, func() float64 { _, m := p.Current().Engine.CacheStats(); return float64(m) }),
	)
}

// rollsBackOnly reports whether res is one ROLLBACK, ABORT or ROLLBACK
// TO SAVEPOINT and nothing else.
func rollsBackOnly(res *rewrite.Result) bool {
	return len(res.Kinds) == 1 && res.Kinds[0] == "transaction" &&
		(res.TransactionEnd == rewrite.EndRollback || res.TransactionEnd == rewrite.EndRollbackTo)
}
