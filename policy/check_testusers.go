package policy

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// RolesFromFiles reports whether the roles of login are known from the
// configuration files alone: there are no identity blocks, or its user
// block sets roles (which identity rows cannot change). pgveil test uses
// it to decide what it can check without the upstream.
func (c *Config) RolesFromFiles(login string) bool {
	u := c.Users[login]
	if len(c.IdentitySources) == 0 {
		return u != nil
	}
	return u != nil && (u.set&fieldRoles != 0 || u.Roles != nil)
}

// CheckTestUser reports a test whose user no user block or identity row
// defines, with a suggestion for a near miss; nil when the login is
// defined (even when it has no access, which the test then observes).
func (c *Config) CheckTestUser(t *Test, ids *Identities) *hcl.Diagnostic {
	if _, ok := ids.users[t.User]; ok {
		return nil
	}
	// NOTE: a test giving groups runs as a person only the directory may
	// know, as she logs in.
	if t.Groups != nil && ids.LogsInThroughDirectory(t.User) {
		return nil
	}
	if _, ok := ids.broken[t.User]; ok {
		return nil
	}
	known := append(sortedKeys(ids.users), sortedKeys(ids.broken)...)
	detail := fmt.Sprintf("Test %q runs as %q, which no user block or identity row defines.", t.Name, t.User)
	if s := suggest(t.User, known); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", s)
	}
	d := &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unknown user",
		Detail:   detail,
		Subject:  t.UserRange.Ptr(),
	}
	if a := c.attrs["test."+t.Name+".user"]; a != nil {
		d.Context = a.Range.Ptr()
	}
	return d
}
