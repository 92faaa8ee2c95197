package policy

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/internal/ldapauth"
)

// defaultLDAPTimeout bounds an LDAP authentication without a timeout.
const defaultLDAPTimeout = 5 * time.Second

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
	for i, gb := range c.Blocks {
		dn := gb.Labels[0]
		// NOTE: DNs compare as the directory does (case, spaces): two
		// blocks of one group would each give its members roles, and
		// removing a role from one would leave the other's.
		if j := slices.IndexFunc(c.Blocks[:i], func(prev *hcl.Block) bool { return ldapauth.SameDN(prev.Labels[0], dn) }); j >= 0 {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Duplicate LDAP group",
				Detail: fmt.Sprintf("Group %q is already mapped at %s (as %q): give each group one block.",
					dn, position(c.Blocks[j].DefRange), c.Blocks[j].Labels[0]),
				Subject: gb.DefRange.Ptr(),
			})
			continue
		}
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
