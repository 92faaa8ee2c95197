package policy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// IsService reports whether the user may act for other users (act_for).
func (u *User) IsService() bool { return len(u.ActFor) > 0 }

// MayActFor returns nil when service may act for target under these
// identities: service lists target's login, one of its roles or one of
// its groups in act_for, and target is a user with access. The error
// says why not, for the client; it never names who else is listed.
func (ids *Identities) MayActFor(service, target string) error {
	s, err := ids.actingService(service)
	if err != nil {
		return err
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
	return ids.actForListed(s, t, service, target)
}

// actingService returns the user service, when it may act for others.
func (ids *Identities) actingService(service string) (*User, error) {
	s, why := ids.lookup(service)
	if s == nil {
		return nil, fmt.Errorf("%s may not act for other users: %s", service, why)
	}
	if !s.IsService() {
		return nil, fmt.Errorf("%s is not a BI service: its user block has no act_for", service)
	}
	return s, nil
}

// actForListed returns nil when s's act_for lists t (target) by login,
// role or group, and t has a role.
func (ids *Identities) actForListed(s, t *User, service, target string) error {
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

// ActsThroughDirectory reports whether a service acting for target must
// read target's groups in the directory first (MayActForDirectory): the
// ldap block has group blocks and can look people up without their
// password (base_dn and bind_dn), and target logs in through it, as
// DirectoryUser takes it: a user block with auth = "ldap", identity rows
// without a password, or a login pgveil does not know otherwise (and
// not spelled like a known one).
//
// NOTE: then the person's roles, groups and attributes when a service
// acts for her are exactly those of her own login: user block, identity
// rows and the groups the directory holds now. Without a bind DN,
// MayActFor sees only the first two, and says so when only groups give
// her a role (directoryRolesHint).
func (ids *Identities) ActsThroughDirectory(target string) bool {
	l := ids.cfg.LDAP
	if l == nil || len(l.Groups) == 0 || !l.Directory.CanLookup() {
		return false
	}
	if u, ok := ids.users[target]; ok && u.IsService() {
		return false
	}
	return ids.LogsInThroughDirectory(target)
}

// LogsInThroughDirectory reports whether login authenticates through
// the ldap block, as DirectoryUser takes it: a user block with auth =
// "ldap", identity rows without a password, or a login pgveil does not
// know otherwise (and not spelled like a known one). Its roles are then
// those DirectoryUser gives it with the groups the directory holds.
//
// NOTE: services too (a BI service may log in through the directory);
// ActsThroughDirectory is about the people a service acts for.
func (ids *Identities) LogsInThroughDirectory(login string) bool {
	if ids.cfg.LDAP == nil {
		return false
	}
	if _, bad := ids.broken[login]; bad {
		return false
	}
	if !ids.knows(login) {
		return !ids.folded[looseLogin(login)]
	}
	u, ok := ids.users[login]
	if !ok {
		return false
	}
	_, block := ids.cfg.Users[login]
	return u.Method() == AuthLDAP || (!block && !u.HasPassword())
}

// MayActForDirectory is MayActFor for a target ActsThroughDirectory
// holds, whose directory groups groupDNs were read as the bind DN: the
// target is the user DirectoryUser makes of them, refused when they give
// it no role, as its own login would be.
func (ids *Identities) MayActForDirectory(service, target string, groupDNs []string) error {
	s, err := ids.actingService(service)
	if err != nil {
		return err
	}
	if !ids.ActsThroughDirectory(target) {
		return fmt.Errorf("%s may not act for %q: it does not log in through the directory", service, target)
	}
	t, ok := ids.DirectoryUser(target, groupDNs)
	if !ok {
		return noDirectoryRole(s, service, target, target)
	}
	return ids.actForListed(s, t, service, target)
}

// noDirectoryRole is the refusal of a switch of s to target, a person
// whose directory groups give no role.
//
// NOTE: as MayActFor: a service learns why a person has no role only
// when act_for lists her login; otherwise she is not listed, in the
// words given one whose groups give roles it does not list.
// shown is target as the refusal names it.
func noDirectoryRole(s *User, service, target, shown string) error {
	if !slices.Contains(s.ActFor, target) {
		return fmt.Errorf("%s may not act for %s: neither the login nor its roles or groups are in its act_for", service, shown)
	}
	return fmt.Errorf("%s may not act for %s: its directory groups give it no role, so it could not log in", service, shown)
}

// ActForReachesDirectory returns nil when some directory groups could
// let service act for target, a person ActsThroughDirectory holds: its
// act_for lists her login, or a role or group that her user block,
// identity rows or any group block gives. Otherwise the refusal, the one
// MayActForDirectory would give whatever her groups, so that the
// directory need not be asked.
//
// NOTE: asked before the lookup: a service whose act_for no directory
// group can satisfy must not learn, from which refusal it gets, who is
// in the directory (or in which groups); groups only add roles and
// groups, so her user with every group block's is the most it could
// reach.
func (ids *Identities) ActForReachesDirectory(service, target string) error {
	s, err := ids.actingService(service)
	if err != nil {
		return err
	}
	var all []string
	if l := ids.cfg.LDAP; l != nil {
		for _, g := range l.Groups {
			all = append(all, g.DN)
		}
	}
	// NOTE: quoted unless the policy knows it, as MayActFor's: a name
	// the directory was not asked about may be a secret typed by mistake.
	shown := target
	if !ids.knows(target) {
		shown = strconv.Quote(target)
	}
	t, ok := ids.DirectoryUser(target, all)
	if !ok {
		return noDirectoryRole(s, service, target, shown)
	}
	if ids.actForListed(s, t, service, target) != nil {
		return fmt.Errorf("%s may not act for %s: neither the login nor its roles or groups are in its act_for", service, shown)
	}
	return nil
}

// SwitchRefusal returns why login may not make a change of the acting
// user to target (a SET ROLE, rewrite.Act.Login; "" or login itself
// returns to the login), as the proxy checks it for a session acting for
// no one, or nil. For a person the proxy would ask the directory about
// (ActsThroughDirectory) it checks what the configuration alone decides
// (ActForReachesDirectory): her groups are the directory's answer.
//
// NOTE: the rewriter accepts every switch, whoever its target: the
// proxy refuses it afterwards. pgveil explain and pgveil test ask this,
// so that a switch they show as accepted is one serve makes.
func (ids *Identities) SwitchRefusal(login, target string) error {
	if target == "" || target == login || ids.ActsThroughDirectory(target) {
		if u, ok := ids.User(login); !ok || !u.IsService() {
			return fmt.Errorf("%s is not a BI service: its user block has no act_for", login)
		}
		if target == "" || target == login {
			return nil
		}
		return ids.ActForReachesDirectory(login, target)
	}
	return ids.MayActFor(login, target)
}
