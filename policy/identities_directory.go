package policy

import (
	"slices"
	"strings"
	"unicode"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/pgveil/pgveil/internal/ldapauth"
)

// looseLogin is login as a directory's matching rule may read it: case
// folded, in compatibility normal form, without format characters (soft
// hyphens, zero-width spaces), runs of white space as one space. Two
// logins of one loose spelling may bind the same directory entry.
func looseLogin(login string) string {
	s := norm.NFKC.String(cases.Fold().String(login))
	s = strings.Map(func(r rune) rune {
		if unicode.Is(unicode.Cf, r) {
			return -1
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
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
	if known, ok := ids.folded[looseLogin(login)]; ok && known != login {
		// DANA would bind dana's entry and escape what pgveil keys by
		// dana: her authentication method, connection limit, roles and
		// attributes, and her name in the audit trail.
		return nil, false
	}
	u := &User{Login: login, Auth: AuthLDAP, Attributes: map[string]Value{}}
	if block := ids.cfg.Users[login]; block != nil {
		u.MaxConnections = block.MaxConnections
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
