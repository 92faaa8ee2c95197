package policy

import "testing"

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
