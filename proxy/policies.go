package proxy

import (
	"context"
	"sync/atomic"

	"github.com/pgveil/pgveil/policy"
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

// Rewrite implements Rewriter with the Enforcement in force.
func (p *Policies) Rewrite(ctx context.Context, s *SessionInfo, st *Statement) (*rewrite.Result, error) {
	e := p.cur.Load()
	st.PolicyVersion = e.Version
	login := s.User
	if s.Service != "" {
		// Checked again at each statement: a reload may have taken the
		// end user off the service's act_for.
		if err := e.Identities.MayActFor(s.Service, s.User); err != nil {
			// Only a change of the acting user may still pass (the
			// proxy checks it against the service's act_for): RESET ROLE
			// must always work.
			service := s.Service
			if s.Directory {
				service = e.directoryLogin(s.Service, s.DirectoryGroups)
			}
			res, rerr := e.Engine.Rewrite(ctx, service, byte(st.Source), st.Text)
			if rerr == nil && res.Act != nil {
				return res, nil
			}
			return nil, actRefusal(err.Error() + "; RESET ROLE to act as " + s.Service)
		}
	} else if s.Directory {
		// NOTE: a viewer a service acts for is a user of the
		// configuration, never one known only to the directory.
		login = e.directoryLogin(s.User, s.DirectoryGroups)
	}
	return e.Engine.Rewrite(ctx, login, byte(st.Source), st.Text)
}

// LDAP implements Directory with the Enforcement in force.
func (p *Policies) LDAP() *policy.LDAP { return p.cur.Load().Config.LDAP }

// DirectoryUser implements Directory with the Enforcement in force.
func (p *Policies) DirectoryUser(login string, groupDNs []string) (*policy.User, bool) {
	return p.cur.Load().Identities.DirectoryUser(login, groupDNs)
}

// MayActFor implements actAuthorizer with the identities in force.
func (p *Policies) MayActFor(service, target string) error {
	return p.cur.Load().Identities.MayActFor(service, target)
}

// PolicyVersion returns the version of the policies in force.
func (p *Policies) PolicyVersion() string { return p.cur.Load().Version }

// User looks login up in the identities in force.
func (p *Policies) User(login string) (*policy.User, bool) {
	return p.cur.Load().Identities.User(login)
}

// Apply sets the options that enforce the policies in force: the
// rewriter, the users and the scrubbing of data errors.
func (p *Policies) Apply(o *Options) {
	o.Rewriter = p
	o.Users = p.User
	o.Directory = p
	o.ScrubDataErrors = true
}

// Directory is the LDAP directory in force and the users it maps to
// roles; see policy.Identities.DirectoryUser.
type Directory interface {
	// LDAP returns the ldap block in force, nil without one.
	LDAP() *policy.LDAP
	// DirectoryUser returns the user a directory login with groupDNs
	// logs in as, false when it has no access.
	DirectoryUser(login string, groupDNs []string) (*policy.User, bool)
}

// StaticIdentities sets the options that authenticate the logins of
// cfg's user blocks and ldap block, as they are: for a server without
// reloadable policies or a rewriter that knows the users.
func StaticIdentities(cfg *policy.Config, o *Options) {
	o.Users = func(login string) (*policy.User, bool) {
		u, ok := cfg.Users[login]
		return u, ok
	}
	o.Directory = fixedDirectory{cfg: cfg, ids: cfg.HCLIdentities()}
}

// fixedDirectory is the Directory of one configuration, for servers
// without reloadable policies.
type fixedDirectory struct {
	cfg *policy.Config
	ids *policy.Identities
}

// LDAP implements Directory.
func (d fixedDirectory) LDAP() *policy.LDAP { return d.cfg.LDAP }

// DirectoryUser implements Directory.
func (d fixedDirectory) DirectoryUser(login string, groupDNs []string) (*policy.User, bool) {
	return d.ids.DirectoryUser(login, groupDNs)
}

// noDirectory is the Directory of a server given none: no ldap block,
// no directory login.
type noDirectory struct{}

// LDAP implements Directory.
func (noDirectory) LDAP() *policy.LDAP { return nil }

// DirectoryUser implements Directory.
func (noDirectory) DirectoryUser(string, []string) (*policy.User, bool) { return nil, false }
