package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/internal/ldapauth"
)

// AuthLDAP is a password checked by binding to an LDAP directory (the
// `ldap` block), as PostgreSQL's ldap method.
const AuthLDAP = "ldap"

// defaultLDAPTimeout bounds an LDAP authentication without a timeout.
const defaultLDAPTimeout = 5 * time.Second

// LDAP is the `ldap` block: the directory that checks the passwords of
// users with auth = "ldap", and of people with no user block, whose
// groups map to roles and groups.
type LDAP struct {
	// Directory says how to reach the directory and find a user in it;
	// its RootCAs are provisioned from CAFile.
	Directory ldapauth.Config
	// CAFile is the PEM bundle verifying the directory's certificate,
	// resolved against the configuration file's directory; empty for the
	// system pool.
	CAFile string
	// AllowCleartext lets LDAP logins run over client connections without
	// TLS, where the password the client sends would be readable.
	AllowCleartext bool
	// Groups map directory groups to roles and groups, in file order.
	Groups []*LDAPGroup
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// LDAPGroup is a `group "<dn>"` block inside `ldap`: members of the
// directory group get its roles and groups.
type LDAPGroup struct {
	// DN is the group's distinguished name, the block's label.
	DN string
	// Roles are given to the group's members.
	Roles []string
	// Groups are given to the group's members (me.groups).
	Groups []string
}

var (
	ldapSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "url", Required: true},
			{Name: "start_tls"},
			{Name: "ca_file"},
			{Name: "server_name"},
			{Name: "timeout"},
			{Name: "prefix"},
			{Name: "suffix"},
			{Name: "base_dn"},
			{Name: "bind_dn"},
			{Name: "bind_password"},
			{Name: "search_attribute"},
			{Name: "search_filter"},
			{Name: "member_of_attribute"},
			{Name: "group_base_dn"},
			{Name: "group_filter"},
			{Name: "allow_cleartext"},
		},
		Blocks: []hcl.BlockHeaderSchema{{Type: "group", LabelNames: []string{"dn"}}},
	}
	ldapGroupSchema = &hcl.BodySchema{
		Attributes: []hcl.AttributeSchema{
			{Name: "roles"},
			{Name: "groups"},
		},
	}
)

// decodeLDAP decodes the ldap block.
func (d *decoder) decodeLDAP(b *hcl.Block) {
	c := d.content(b.Body, ldapSchema, "ldap")
	l := &LDAP{DeclRange: b.DefRange}
	dir := &l.Directory
	dir.Timeout = defaultLDAPTimeout
	str := func(name string, dst *string) {
		if a := c.Attributes[name]; a != nil {
			*dst, _ = d.nonEmptyString(a, "ldap."+name)
		}
	}
	str("url", &dir.URL)
	str("server_name", &dir.ServerName)
	str("prefix", &dir.Prefix)
	str("suffix", &dir.Suffix)
	str("base_dn", &dir.BaseDN)
	str("bind_dn", &dir.BindDN)
	str("search_attribute", &dir.SearchAttribute)
	str("search_filter", &dir.SearchFilter)
	str("member_of_attribute", &dir.MemberOfAttribute)
	str("group_base_dn", &dir.GroupBaseDN)
	str("group_filter", &dir.GroupFilter)
	if a := c.Attributes["bind_password"]; a != nil {
		dir.BindPassword, _ = d.string(a)
		d.warnPlainSecret(a, "ldap.bind_password")
	}
	if a := c.Attributes["ca_file"]; a != nil {
		l.CAFile, _ = d.path(a, "ldap.ca_file")
	}
	if a := c.Attributes["start_tls"]; a != nil {
		dir.StartTLS, _ = d.boolean(a)
	}
	if a := c.Attributes["allow_cleartext"]; a != nil {
		l.AllowCleartext, _ = d.boolean(a)
	}
	if a := c.Attributes["timeout"]; a != nil {
		dir.Timeout, _ = d.duration(a, "ldap.timeout")
	}
	if a := c.Attributes["url"]; a != nil && dir.URL != "" {
		switch {
		case strings.HasPrefix(dir.URL, "ldaps://"):
			if dir.StartTLS {
				d.errorAt(c.Attributes["start_tls"], "Setting without effect",
					"ldap.start_tls upgrades an ldap:// connection; an ldaps:// URL is encrypted from the start.")
			}
		case strings.HasPrefix(dir.URL, "ldap://"):
		default:
			d.errorAt(a, "Invalid LDAP URL", fmt.Sprintf("ldap.url must start with ldaps:// or ldap://, not %q.", dir.URL))
		}
	}
	if dir.BaseDN == "" {
		for _, name := range []string{"bind_dn", "bind_password", "search_attribute", "search_filter"} {
			if a := c.Attributes[name]; a != nil {
				d.errorAt(a, "Setting without effect", fmt.Sprintf(
					"ldap.%s is used by search+bind, which base_dn turns on; without base_dn pgveil binds as prefix + login + suffix.", name))
			}
		}
	} else {
		for _, name := range []string{"prefix", "suffix"} {
			if a := c.Attributes[name]; a != nil {
				d.errorAt(a, "Setting without effect", fmt.Sprintf(
					"ldap.%s is used by simple bind; with base_dn pgveil searches for the user's entry instead.", name))
			}
		}
		if dir.SearchAttribute != "" && dir.SearchFilter != "" {
			d.errorAt(c.Attributes["search_filter"], "Conflicting settings",
				"ldap.search_filter replaces search_attribute: set one of them.")
		}
	}
	if a := c.Attributes["group_filter"]; a != nil && dir.GroupBaseDN == "" {
		d.errorAt(a, "Setting without effect", "ldap.group_filter is used with group_base_dn, which is not set.")
	}
	for _, gb := range c.Blocks {
		dn := gb.Labels[0]
		gc := d.content(gb.Body, ldapGroupSchema, "ldap.group."+dn)
		g := &LDAPGroup{DN: dn}
		if a := gc.Attributes["roles"]; a != nil {
			var ranges []hcl.Range
			g.Roles, ranges, _ = d.stringList(a, "a role name")
			for i, r := range g.Roles {
				if d.cfg.Roles[r] == nil {
					d.unknown(ranges[i], a, "role", r, sortedKeys(d.cfg.Roles), "Define it with a role block.")
				}
			}
		}
		if a := gc.Attributes["groups"]; a != nil {
			g.Groups, _, _ = d.stringList(a, "a group name")
		}
		if dn == "" || (g.Roles == nil && g.Groups == nil) {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Invalid LDAP group",
				Detail:   "A group block needs the group's DN as its label, and roles or groups to give its members.",
				Subject:  gb.DefRange.Ptr(),
			})
		}
		l.Groups = append(l.Groups, g)
	}
	d.cfg.LDAP = l
}

// DirectoryUser returns the user a person authenticated by the directory
// logs in as: the merged user of login (a user block with auth = "ldap",
// or identity rows without password), or a user known only to the
// directory, with the roles and groups of the ldap group blocks matching
// groupDNs added. It is false without an ldap block, for a login that
// authenticates otherwise, a broken login, or when no role results.
func (ids *Identities) DirectoryUser(login string, groupDNs []string) (*User, bool) {
	l := ids.cfg.LDAP
	if l == nil {
		return nil, false
	}
	if _, bad := ids.broken[login]; bad {
		return nil, false
	}
	u := &User{Login: login, Auth: AuthLDAP, Attributes: map[string]Value{}}
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
