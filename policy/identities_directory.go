package policy

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/pgveil/pgveil/internal/ldapauth"
)

// looseLogin is login as a directory's matching rule may read it, and
// looser: in compatibility normal form and case folded (NFKC_Casefold:
// NFKC, fold, NFKC again, since each can undo the other), then without
// combining marks (İ folds to i and a dot above), format characters (soft
// hyphens, zero-width spaces) or control characters, runs of white space
// as one space. Two logins of one loose spelling may bind the same
// directory entry; a few that a directory tells apart (josé, jose) share
// one too, which only refuses the one pgveil does not know.
func looseLogin(login string) string {
	s := norm.NFKC.String(cases.Fold().String(norm.NFKC.String(login)))
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Mn, r) || unicode.Is(unicode.Cf, r) || unicode.IsControl(r) {
			return -1
		}
		return r
	}, norm.NFD.String(s))
	return strings.Join(strings.Fields(s), " ")
}

// knows reports whether a user block, an identity row or a broken login
// names login exactly.
func (ids *Identities) knows(login string) bool {
	_, user := ids.users[login]
	_, bad := ids.broken[login]
	_, block := ids.cfg.Users[login]
	return user || bad || block
}

// DirectoryUser returns the user a person authenticated by the directory
// logs in as: the merged user of login (a user block with auth = "ldap",
// or identity rows without password), or a user known only to the
// directory, with the roles and groups of the ldap group blocks matching
// groupDNs added. It is false without an ldap block, for a login that
// authenticates otherwise, a broken login, a login spelled like a known
// one but not exactly (looseLogin), or when no role results.
func (ids *Identities) DirectoryUser(login string, groupDNs []string) (*User, bool) {
	l := ids.cfg.LDAP
	if l == nil {
		return nil, false
	}
	if _, bad := ids.broken[login]; bad {
		return nil, false
	}
	if ids.knows(login) {
		// Its own spelling, though another known login may share its
		// loose one.
	} else if ids.folded[looseLogin(login)] {
		// DANA would bind dana's entry and escape what pgveil keys by
		// dana: her authentication method, connection limit, roles and
		// attributes, and her name in the audit trail.
		return nil, false
	}
	u := &User{Login: login, Auth: AuthLDAP, Attributes: map[string]Value{}}
	if block := ids.cfg.Users[login]; block != nil {
		u.MaxConnections = block.MaxConnections
		u.MaxPoolBackends = block.MaxPoolBackends
	}
	if base, ok := ids.users[login]; ok {
		_, block := ids.cfg.Users[login]
		if base.Method() != AuthLDAP && (block || base.HasPassword()) {
			return nil, false
		}
		u.Team, u.DeclRange = base.Team, base.DeclRange
		u.Roles = slices.Clone(base.Roles)
		u.Groups = slices.Clone(base.Groups)
		for k, v := range base.Attributes {
			u.Attributes[k] = v
		}
	} else {
		u.DeclRange = l.DeclRange
	}
	for _, g := range l.Groups {
		if slices.ContainsFunc(groupDNs, func(dn string) bool { return ldapauth.SameDN(dn, g.DN) }) {
			u.Roles = append(u.Roles, g.Roles...)
			u.Groups = append(u.Groups, g.Groups...)
		}
	}
	slices.Sort(u.Roles)
	u.Roles = slices.Compact(u.Roles)
	slices.Sort(u.Groups)
	u.Groups = slices.Compact(u.Groups)
	u.directory = true
	if !slices.ContainsFunc(u.Roles, func(r string) bool { return ids.cfg.Roles[r] != nil }) {
		return nil, false
	}
	return u, true
}

// rolesFromDirectoryOnly reports whether u, a user of the configuration
// or of identity rows without any role, logs in through the ldap block, so
// that its roles may come from directory groups: those are read with the
// person's own bind at login, and exist for that session only.
//
// NOTE: act_for and pgveil test see the user without them, and say so
// rather than "no role", which a DBA whose group blocks give the role
// would not understand.
func (c *Config) rolesFromDirectoryOnly(u *User) bool {
	if c.LDAP == nil || u.directory || len(c.LDAP.Groups) == 0 {
		return false
	}
	if slices.ContainsFunc(u.Roles, func(r string) bool { return c.Roles[r] != nil }) {
		return false
	}
	_, block := c.Users[u.Login]
	return u.Method() == AuthLDAP || (!block && !u.HasPassword())
}

// directoryRolesHint is what a refusal of a user rolesFromDirectoryOnly
// reports adds.
const directoryRolesHint = "its roles come from its LDAP groups, which pgveil reads at its own login, " +
	"and for a service acting for it only with the ldap block's base_dn and bind_dn: set them for act_for, or give it roles in its user block " +
	"(auth = \"ldap\") or an identity row's roles column for act_for, pgveil test and pgveil explain to see them"

// directoryGroupRoles reports whether the ldap block has group blocks,
// which give roles at a person's own login, and cannot look people up
// without them (no base_dn and bind_dn): a service acting for a person
// then sees none of her groups' roles.
func (c *Config) directoryGroupRoles() bool {
	return c.LDAP != nil && len(c.LDAP.Groups) > 0 && !c.LDAP.Directory.CanLookup()
}

// directoryRolesActForNote is what a refusal of act_for for a target not
// listed adds, when act_for lists roles and LDAP group blocks give roles
// the service cannot see (directoryGroupRoles).
//
// NOTE: it says nothing of the target: it is the same for every target.
const directoryRolesActForNote = "roles that LDAP groups give are read only at a person's own login unless the ldap block has base_dn and bind_dn, " +
	"so act_for's role: entries match only roles of a user block or an identity row's roles column"
