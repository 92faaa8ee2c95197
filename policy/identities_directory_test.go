package policy

import (
	"errors"
	"strings"
	"testing"
)

// TestDirectoryUserSpelledLikeAKnownLogin: a directory matches logins
// ignoring case and insignificant characters, so DANA binds dana's entry;
// pgveil keys users by the exact login and refuses the other spellings of
// a login it knows.
func TestDirectoryUserSpelledLikeAKnownLogin(t *testing.T) {
	const analysts = "cn=analysts,ou=groups,dc=example,dc=org"
	c := &Config{
		Roles: map[string]*Role{"analyst": {Name: "analyst"}},
		LDAP:  &LDAP{Groups: []*LDAPGroup{{DN: analysts, Roles: []string{"analyst"}}}},
		Users: map[string]*User{
			"dana":  {Login: "dana", Auth: AuthCert, Roles: []string{"analyst"}, MaxConnections: 1},
			"marie": {Login: "marie", Auth: AuthLDAP},
			"Marie": {Login: "Marie", Auth: AuthLDAP, Roles: []string{"analyst"}},
		},
	}
	ids := c.HCLIdentities()
	groups := []string{analysts}
	for _, tt := range []struct {
		login string
		ok    bool
	}{
		{"marie", true},
		{"erin", true},  // known to the directory only
		{"dana", false}, // a certificate login
		{"DANA", false},
		{"Dana", false},
		{"MARIE", false},
		{"ｄａｎａ", false},       // fullwidth letters, NFKC's dana
		{"da\u00adna", false}, // a soft hyphen, which the directory ignores
		{"ERIN", true},        // no known login spelled so: the directory decides
		{"MAR\u0130E", false}, // a dotted capital I, which folds to i and a dot
		{"\u2133arie", false}, // a script M, NFKC's M, folded
		{"Marie", true},       // known exactly, though it shares marie's loose spelling
	} {
		if _, ok := ids.DirectoryUser(tt.login, groups); ok != tt.ok {
			t.Errorf("%q: a directory user %v, want %v", tt.login, ok, tt.ok)
		}
	}
}

// TestRolesFromDirectoryGroupsOnly: a person whose roles only LDAP group
// blocks give has none outside a session of her own, so a BI service
// cannot act for her and pgveil test cannot compile her policy; both
// refusals say why and what to do, not just "no role".
func TestRolesFromDirectoryGroupsOnly(t *testing.T) {
	const managers = "cn=managers,ou=groups,dc=example,dc=org"
	c := &Config{
		Roles: map[string]*Role{"manager": {Name: "manager"}},
		LDAP:  &LDAP{Groups: []*LDAPGroup{{DN: managers, Roles: []string{"manager"}}}},
		Users: map[string]*User{
			"superset": {Login: "superset", Auth: AuthCert, Roles: []string{"manager"}, ActFor: []string{"role:manager"}},
			"fanny":    {Login: "fanny", Auth: AuthLDAP},
			"erik":     {Login: "erik", Auth: AuthLDAP, Roles: []string{"manager"}},
			"tom":      {Login: "tom", Auth: AuthCert},
			"metabase": {Login: "metabase", Auth: AuthCert, Roles: []string{"manager"}, ActFor: []string{"fanny"}},
			"looker":   {Login: "looker", Auth: AuthCert, Roles: []string{"manager"}, ActFor: []string{"erik"}},
		},
	}
	ids := c.HCLIdentities()
	const hint = "its roles come from its LDAP groups, which pgveil reads at its own login"
	t.Run("a service listing roles is told that roles of LDAP groups are not known to act_for", func(t *testing.T) {
		err := ids.MayActFor("superset", "fanny")
		if err == nil || !strings.Contains(err.Error(), "roles that LDAP groups give are read only at a person's own login") {
			t.Errorf("got %v, want a refusal saying LDAP group roles are unknown here", err)
		}
	})
	t.Run("a service listing a person by login is told why she has no role", func(t *testing.T) {
		err := ids.MayActFor("metabase", "fanny")
		if err == nil || !strings.Contains(err.Error(), hint) {
			t.Errorf("got %v, want a refusal saying %q", err, hint)
		}
	})
	for _, svc := range []string{"superset", "looker"} {
		t.Run(svc+" learns nothing of how a person it may not act for gets her roles", func(t *testing.T) {
			fanny, tom := ids.MayActFor(svc, "fanny"), ids.MayActFor(svc, "tom")
			if fanny == nil || tom == nil {
				t.Fatalf("fanny: %v, tom: %v: want both refused", fanny, tom)
			}
			if f := strings.ReplaceAll(fanny.Error(), "fanny", "X"); f != strings.ReplaceAll(tom.Error(), "tom", "X") {
				t.Errorf("the refusals differ:\n fanny: %v\n tom:   %v", fanny, tom)
			}
		})
	}
	t.Run("a service acts for a directory person whose user block gives roles", func(t *testing.T) {
		if err := ids.MayActFor("superset", "erik"); err != nil {
			t.Errorf("refused: %v", err)
		}
	})
	t.Run("a certificate user without a role gets no directory hint", func(t *testing.T) {
		err := ids.MayActFor("superset", "tom")
		if err == nil || strings.Contains(err.Error(), hint) {
			t.Errorf("got %v, want a refusal without %q", err, hint)
		}
	})
	t.Run("compiling her policy outside her session says where her roles come from", func(t *testing.T) {
		_, err := c.Compile("fanny", ids)
		if err == nil || !errors.Is(err, ErrNoAccess) || !strings.Contains(err.Error(), hint) {
			t.Errorf("got %v, want no access saying %q", err, hint)
		}
		_, err = c.Compile("tom", ids)
		if err == nil || strings.Contains(err.Error(), hint) {
			t.Errorf("tom: got %v, want no access without the hint", err)
		}
	})
}

// TestActForThroughTheDirectory: with a bind DN, a service acts for a
// directory person with the roles her groups give, as her login would;
// a person her groups give no role is refused, and so is a login spelled
// like a known one, or one not logging in through the directory.
func TestActForThroughTheDirectory(t *testing.T) {
	const managers = "cn=managers,ou=groups,dc=example,dc=org"
	c := &Config{
		Roles: map[string]*Role{"manager": {Name: "manager"}, "analyst": {Name: "analyst"}},
		LDAP:  &LDAP{Groups: []*LDAPGroup{{DN: managers, Roles: []string{"manager"}}}},
		Users: map[string]*User{
			"superset": {Login: "superset", Auth: AuthCert, Roles: []string{"analyst"}, ActFor: []string{"role:manager"}},
			"fanny":    {Login: "fanny", Auth: AuthLDAP},
			"tom":      {Login: "tom", Auth: AuthCert, Roles: []string{"manager"}},
		},
	}
	c.LDAP.Directory.BaseDN, c.LDAP.Directory.BindDN = "ou=people,dc=example,dc=org", "cn=reader,dc=example,dc=org"
	ids := c.HCLIdentities()
	for _, tc := range []struct {
		name, target string
		groups       []string
		through      bool
		admitted     bool
	}{
		{"a person whose group gives a listed role is admitted", "fanny", []string{managers}, true, true},
		{"a person in no mapped group is refused", "fanny", nil, true, false},
		{"a person only the directory knows is admitted by her groups", "erik", []string{strings.ToUpper(managers)}, true, true},
		{"a login spelled like a known one is not looked up", "FANNY", []string{managers}, false, false},
		{"a certificate user is not looked up", "tom", []string{managers}, false, false},
		{"the service itself is not looked up", "superset", []string{managers}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ids.ActsThroughDirectory(tc.target); got != tc.through {
				t.Errorf("ActsThroughDirectory(%q) = %v", tc.target, got)
			}
			err := ids.MayActForDirectory("superset", tc.target, tc.groups)
			if (err == nil) != tc.admitted {
				t.Errorf("MayActForDirectory(%q, %q) = %v", tc.target, tc.groups, err)
			}
		})
	}
	t.Run("a service learns that her groups give no role only when it lists her login", func(t *testing.T) {
		err := ids.MayActForDirectory("superset", "erik", nil)
		if err == nil || strings.Contains(err.Error(), "no role") || !strings.Contains(err.Error(), "act_for") {
			t.Errorf("not listed: %v", err)
		}
		c.Users["looker"] = &User{Login: "looker", Auth: AuthCert, Roles: []string{"analyst"}, ActFor: []string{"erik"}}
		defer delete(c.Users, "looker")
		ids := c.HCLIdentities()
		if err := ids.MayActForDirectory("looker", "erik", nil); err == nil || !strings.Contains(err.Error(), "give it no role") {
			t.Errorf("listed: %v", err)
		}
		// A name the directory is not asked about is quoted, as an unknown
		// one's by MayActFor (a redacted audit trail scrubs it).
		if err := ids.ActForReachesDirectory("looker", "hunter2"); err == nil || !strings.Contains(err.Error(), `"hunter2"`) {
			t.Errorf("unreachable: %v", err)
		}
	})
	t.Run("whatever her groups, a lookup that would admit her is never skipped", func(t *testing.T) {
		const analysts = "cn=analysts,ou=groups,dc=example,dc=org"
		c.LDAP.Groups = append(c.LDAP.Groups, &LDAPGroup{DN: analysts, Roles: []string{"analyst"}, Groups: []string{"north"}})
		c.Users["by-group"] = &User{Login: "by-group", Auth: AuthCert, Roles: []string{"analyst"}, ActFor: []string{"group:north"}}
		c.Users["by-role"] = &User{Login: "by-role", Auth: AuthCert, Roles: []string{"analyst"}, ActFor: []string{"role:analyst"}}
		c.Users["by-login"] = &User{Login: "by-login", Auth: AuthCert, Roles: []string{"analyst"}, ActFor: []string{"erik", "nina"}}
		c.Users["nina"] = &User{Login: "nina", Auth: AuthLDAP, Roles: []string{"analyst"}, Groups: []string{"north"}}
		defer func() {
			c.LDAP.Groups = c.LDAP.Groups[:1]
			for _, u := range []string{"by-group", "by-role", "by-login", "nina"} {
				delete(c.Users, u)
			}
		}()
		ids := c.HCLIdentities()
		for _, service := range []string{"superset", "by-group", "by-role", "by-login"} {
			for _, target := range []string{"fanny", "erik", "nina"} {
				for _, groups := range [][]string{nil, {managers}, {analysts}, {managers, analysts}} {
					if ids.MayActForDirectory(service, target, groups) != nil {
						continue
					}
					if err := ids.ActForReachesDirectory(service, target); err != nil {
						t.Errorf("%s for %s in %v: admitted after a lookup, refused before it: %v", service, target, groups, err)
					}
				}
			}
		}
	})
	t.Run("without a bind DN nobody is looked up", func(t *testing.T) {
		c.LDAP.Directory.BindDN = ""
		if ids.ActsThroughDirectory("fanny") {
			t.Error("looked up without a bind DN")
		}
	})
}
