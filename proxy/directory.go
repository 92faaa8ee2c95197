package proxy

import "github.com/pgveil/pgveil/policy"

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
	ids := cfg.HCLIdentities()
	o.Directory = fixedDirectory{cfg: cfg, ids: ids}
	o.MockIterations = ids.MockIterations
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
