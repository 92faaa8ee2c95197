package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
)

// Prefixes of act_for entries that name a role or a group rather than a
// login.
const (
	actForRole  = "role:"
	actForGroup = "group:"
)

// decodeActFor decodes a user block's act_for: the logins, roles
// ("role:<name>") and groups ("group:<name>") whose users the login, a BI
// service, may act for (SET ROLE, SET pgveil.act_for).
func (d *decoder) decodeActFor(u *User, c *hcl.BodyContent) {
	a := c.Attributes["act_for"]
	if a == nil {
		return
	}
	list, _, _ := d.stringList(a, "a login, \"role:<name>\" or \"group:<name>\"")
	for _, s := range list {
		for _, p := range []string{actForRole, actForGroup} {
			if rest, ok := strings.CutPrefix(s, p); ok && rest == "" {
				d.errorRange(d.elementRange(a, s), a, "Invalid value", fmt.Sprintf("%q names no %s: write %s<name>.", s, strings.TrimSuffix(p, ":"), p))
			}
		}
		if s == u.Login {
			d.errorRange(d.elementRange(a, s), a, "Invalid value", fmt.Sprintf(
				"User %q lists itself in act_for: a service acts as itself without impersonation (RESET ROLE).", s))
		}
	}
	u.ActFor = list
}

// checkActFor checks that the roles act_for names are defined, and,
// without identity blocks, its logins too (and warns of its groups no
// user is in).
func (d *decoder) checkActFor(fromFilesOnly bool) {
	cfg := d.cfg
	roleNames, logins := sortedKeys(cfg.Roles), sortedKeys(cfg.Users)
	for _, login := range logins {
		u := cfg.Users[login]
		a := d.attrs["user."+login+".act_for"]
		if a == nil {
			continue
		}
		for _, s := range u.ActFor {
			switch {
			case strings.HasPrefix(s, actForRole):
				if r := strings.TrimPrefix(s, actForRole); r != "" && cfg.Roles[r] == nil {
					d.unknown(d.elementRange(a, s), a, "role", r, roleNames, "Define it with a role block.")
				}
			case strings.HasPrefix(s, actForGroup):
				if g := strings.TrimPrefix(s, actForGroup); g != "" && fromFilesOnly && !d.groupKnown(g) {
					d.diags = append(d.diags, &hcl.Diagnostic{
						Severity: hcl.DiagWarning, Summary: "Empty group",
						Detail:  fmt.Sprintf("No user is in group %q, so %s acts for nobody through it.", g, s),
						Subject: d.elementRange(a, s).Ptr(), Context: a.Range.Ptr(),
					})
				}
			case fromFilesOnly && cfg.Users[s] == nil:
				d.unknown(d.elementRange(a, s), a, "user", s, logins,
					"Define it with a user block (or list users upstream with an identity block), or write role:<name> or group:<name>.")
			}
		}
	}
}

// groupKnown reports whether a user block puts someone in group g.
func (d *decoder) groupKnown(g string) bool {
	for _, u := range d.cfg.Users {
		if slices.Contains(u.Groups, g) {
			return true
		}
	}
	return false
}
