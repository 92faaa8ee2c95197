package policy

import (
	"fmt"
	"slices"
	"strings"
)

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
		// NOTE: quoted: a name no user has may be a secret typed by
		// mistake, and a redacted audit trail (redact_literals) scrubs
		// the quoted parts of a refusal's message. A user the policy
		// knows is named as is below: the trail keeps whom a service
		// tried to act for.
		return fmt.Errorf("%s may not act for %q: %s", service, target, why)
	}
	if t.IsService() {
		return fmt.Errorf("%s may not act for %s: it is a BI service itself", service, target)
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
		// NOTE: the same words for every target the service may not act
		// for: whether her roles come from LDAP groups is hers, not the
		// service's, to learn. A service listing roles is told, whoever
		// the target, that roles of LDAP groups are not known here.
		if ids.cfg.directoryGroupRoles() && slices.ContainsFunc(s.ActFor, func(e string) bool { return strings.HasPrefix(e, actForRole) }) {
			return fmt.Errorf("%s may not act for %s: neither the login nor its roles or groups are in its act_for; %s", service, target, directoryRolesActForNote)
		}
		return fmt.Errorf("%s may not act for %s: neither the login nor its roles or groups are in its act_for", service, target)
	}
	if !slices.ContainsFunc(t.Roles, func(r string) bool { return ids.cfg.Roles[r] != nil }) {
		if ids.cfg.rolesFromDirectoryOnly(t) {
			return fmt.Errorf("%s may not act for %s: %s", service, target, directoryRolesHint)
		}
		return fmt.Errorf("%s may not act for %s: the user has no role", service, target)
	}
	return nil
}
