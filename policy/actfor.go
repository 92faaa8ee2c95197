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

// IsService reports whether the user may act for other users (act_for).
func (u *User) IsService() bool { return len(u.ActFor) > 0 }

// MayActFor returns nil when service may act for target under these
// identities: service lists target's login, one of its roles or one of
// its groups in act_for, and target is a user with access. The error
// says why not, for the client; it never names who else is listed.
func (ids *Identities) MayActFor(service, target string) error {
	s, why := ids.lookup(service)
	if s == nil {
		return fmt.Errorf("%s may not act for other users: %s", service, why)
	}
	if !s.IsService() {
		return fmt.Errorf("%s is not a BI service: its user block has no act_for", service)
	}
	t, why := ids.lookup(target)
	if t == nil {
		return fmt.Errorf("%s may not act for %q: %s", service, target, why)
	}
	if t.IsService() {
		return fmt.Errorf("%s may not act for %q: it is a BI service itself", service, target)
	}
	listed := slices.ContainsFunc(s.ActFor, func(e string) bool {
		if r, ok := strings.CutPrefix(e, actForRole); ok {
			return slices.Contains(t.Roles, r)
		}
		if g, ok := strings.CutPrefix(e, actForGroup); ok {
			return slices.Contains(t.Groups, g)
		}
		return e == target
	})
	if !listed {
		return fmt.Errorf("%s may not act for %q: neither the login nor its roles or groups are in its act_for", service, target)
	}
	if !slices.ContainsFunc(t.Roles, func(r string) bool { return ids.cfg.Roles[r] != nil }) {
		return fmt.Errorf("%s may not act for %q: the user has no role", service, target)
	}
	return nil
}
