package ldapauth

import (
	"strings"
	"testing"

	ber "github.com/go-asn1-ber/asn1-ber"
	"github.com/go-ldap/ldap/v3"
)

// FuzzUserFilter holds the filter that finds a login's entry to one
// equality on the login attribute with exactly that login, whatever the
// client sends as its login: a login cannot widen or change the search.
func FuzzUserFilter(f *testing.F) {
	for _, s := range []string{"marie", "o'brien", "a*", "x)(uid=*", "é", "a\x00b", " lead", "cn=x,dc=y", `\2a`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, login string) {
		if !validLogin(login) {
			return
		}
		for _, c := range []*Config{{}, {SearchAttribute: "sAMAccountName"}, {SearchFilter: "(&(objectClass=person)(uid=$username))"}} {
			filter := c.userFilter(login)
			p, err := ldap.CompileFilter(filter)
			if err != nil {
				t.Fatalf("%q: filter %q does not compile: %v", login, filter, err)
			}
			// One equality of the expected attribute with the login.
			var eqs []*ldapFilterEq
			collectEqualities(t, p, &eqs)
			found := false
			for _, e := range eqs {
				if e.value == login && (e.attr == "uid" || e.attr == "sAMAccountName") {
					found = true
				} else if e.attr != "objectClass" {
					t.Fatalf("%q: filter %q tests %s=%q", login, filter, e.attr, e.value)
				}
			}
			if !found || strings.Count(filter, "(") != strings.Count(filter, ")") {
				t.Fatalf("%q: filter %q does not test the login", login, filter)
			}
		}
	})
}

// ldapFilterEq is an equality of a compiled filter.
type ldapFilterEq struct{ attr, value string }

// collectEqualities appends the equality matches of the compiled filter
// p, and fails on any other match: a login must never make a substring
// or presence match.
func collectEqualities(t *testing.T, p *ber.Packet, out *[]*ldapFilterEq) {
	switch p.Tag {
	case ldap.FilterAnd, ldap.FilterOr, ldap.FilterNot:
		for _, c := range p.Children {
			collectEqualities(t, c, out)
		}
	case ldap.FilterEqualityMatch:
		if len(p.Children) != 2 {
			t.Fatalf("an equality of %d parts", len(p.Children))
		}
		attr, _ := p.Children[0].Value.(string)
		*out = append(*out, &ldapFilterEq{attr: attr, value: p.Children[1].Data.String()})
	default:
		t.Fatalf("a filter of tag %d (%s)", p.Tag, ldap.FilterMap[uint64(p.Tag)])
	}
}
