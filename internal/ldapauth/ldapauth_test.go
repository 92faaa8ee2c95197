package ldapauth_test

import (
	"context"
	"crypto/x509"
	"errors"
	"os"
	"slices"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/internal/ldaptest"
)

func TestAuthenticate(t *testing.T) {
	dir := ldaptest.Start(t,
		map[string]string{"marie": "marie-pw", "paul": "paul-pw", "eve$username": "eve-pw"},
		map[string][]string{"analysts": {"marie", "paul", "eve$username"}, "managers": {"marie", "paul"}})
	pem, err := os.ReadFile(dir.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	ctx := context.Background()

	simple := ldapauth.Config{URL: dir.URL, Prefix: "uid=", Suffix: "," + ldaptest.PeopleDN,
		GroupBaseDN: ldaptest.GroupsDN, Timeout: 5 * time.Second}
	search := ldapauth.Config{URL: dir.URL, BaseDN: ldaptest.PeopleDN, BindDN: ldaptest.ReaderDN,
		BindPassword: ldaptest.ReaderPassword, MemberOfAttribute: "memberOf", Timeout: 5 * time.Second}
	ldaps := simple
	ldaps.URL, ldaps.RootCAs = dir.LDAPSURL, roots
	startTLS := search
	startTLS.StartTLS, startTLS.RootCAs = true, roots

	wantGroups := []string{ldaptest.GroupDN("analysts"), ldaptest.GroupDN("managers")}
	modes := []struct {
		name string
		cfg  ldapauth.Config
	}{
		{"simple bind with prefix and suffix, groups by search", simple},
		{"search+bind with a bind DN, groups by memberOf", search},
		{"simple bind over LDAPS", ldaps},
		{"search+bind over StartTLS", startTLS},
	}
	for _, m := range modes {
		t.Run(m.name+" accepts the right password and reads the groups", func(t *testing.T) {
			r, err := m.cfg.Authenticate(ctx, "marie", "marie-pw")
			if err != nil {
				t.Fatal(err)
			}
			if r.DN != ldaptest.PersonDN("marie") || !slices.Equal(r.Groups, wantGroups) {
				t.Errorf("%+v", r)
			}
		})
		t.Run(m.name+" refuses a login the directory spells otherwise, though it binds the entry", func(t *testing.T) {
			for _, login := range []string{"MARIE", "Marie"} {
				if _, err := m.cfg.Authenticate(ctx, login, "marie-pw"); !errors.Is(err, ldapauth.ErrInvalidCredentials) {
					t.Errorf("%q: %v", login, err)
				}
			}
			if m.cfg.CanLookup() {
				if _, err := m.cfg.Lookup(ctx, "MARIE"); !errors.Is(err, ldapauth.ErrNotFound) {
					t.Errorf("lookup: %v", err)
				}
			}
		})
		t.Run(m.name+" refuses a wrong password, an unknown user and an empty password", func(t *testing.T) {
			for _, c := range [][2]string{{"marie", "wrong"}, {"nobody", "marie-pw"}, {"marie", ""}, {"marie,ou=x", "marie-pw"}, {"*", "marie-pw"}} {
				if _, err := m.cfg.Authenticate(ctx, c[0], c[1]); !errors.Is(err, ldapauth.ErrInvalidCredentials) {
					t.Errorf("%q/%q: %v", c[0], c[1], err)
				}
			}
		})
	}
	t.Run("the login attribute is read back whatever the case of its name", func(t *testing.T) {
		c := search
		c.SearchAttribute = "UID"
		if _, err := c.Authenticate(ctx, "marie", "marie-pw"); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Authenticate(ctx, "MARIE", "marie-pw"); !errors.Is(err, ldapauth.ErrInvalidCredentials) {
			t.Errorf("MARIE: %v", err)
		}
		c = simple
		c.Prefix = "UID="
		if _, err := c.Authenticate(ctx, "Marie", "marie-pw"); !errors.Is(err, ldapauth.ErrInvalidCredentials) {
			t.Errorf("simple bind, UID=Marie: %v", err)
		}
	})
	t.Run("a certificate the client does not trust fails as unavailable", func(t *testing.T) {
		c := ldaps
		c.RootCAs = x509.NewCertPool()
		if _, err := c.Authenticate(ctx, "marie", "marie-pw"); !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Errorf("%v", err)
		}
	})
	t.Run("a wrong bind DN password fails as unavailable, not as the user's fault", func(t *testing.T) {
		c := search
		c.BindPassword = "wrong"
		if _, err := c.Authenticate(ctx, "marie", "marie-pw"); !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Errorf("%v", err)
		}
	})
	t.Run("a DN holding the text $username is put in the group filter as it is", func(t *testing.T) {
		r, err := simple.Authenticate(ctx, "eve$username", "eve-pw")
		if err != nil || !slices.Equal(r.Groups, []string{ldaptest.GroupDN("analysts")}) {
			t.Errorf("%+v %v", r, err)
		}
	})
	t.Run("a group removed in the directory is gone at the next authentication", func(t *testing.T) {
		for _, c := range []ldapauth.Config{simple, search} {
			if r, err := c.Authenticate(ctx, "paul", "paul-pw"); err != nil || !slices.Equal(r.Groups, wantGroups) {
				t.Fatalf("before: %+v %v", r, err)
			}
		}
		dir.RemoveMember(t, "managers", "paul")
		for _, c := range []ldapauth.Config{simple, search} {
			r, err := c.Authenticate(ctx, "paul", "paul-pw")
			if err != nil || !slices.Equal(r.Groups, []string{ldaptest.GroupDN("analysts")}) {
				t.Errorf("%+v %v", r, err)
			}
		}
	})
	t.Run("a lookup as the bind DN reads the groups without the password, and misses a removed person", func(t *testing.T) {
		if simple.CanLookup() || !search.CanLookup() {
			t.Fatal("only search+bind with a bind DN can look people up")
		}
		if _, err := simple.Lookup(ctx, "marie"); !errors.Is(err, ldapauth.ErrUnavailable) {
			t.Errorf("simple bind: %v", err)
		}
		r, err := search.Lookup(ctx, "marie")
		if err != nil || r.DN != ldaptest.PersonDN("marie") || !slices.Equal(r.Groups, wantGroups) {
			t.Fatalf("%+v %v", r, err)
		}
		dir.RemovePerson(t, "marie")
		for _, login := range []string{"marie", "nobody", "*"} {
			if r, err := search.Lookup(ctx, login); !errors.Is(err, ldapauth.ErrNotFound) {
				t.Errorf("%s: %+v %v", login, r, err)
			}
		}
	})
	t.Run("a directory that is down fails fast as unavailable", func(t *testing.T) {
		c := simple
		c.URL = ldaptest.DownURL(t)
		start := time.Now()
		if _, err := c.Authenticate(ctx, "marie", "marie-pw"); !errors.Is(err, ldapauth.ErrUnavailable) || time.Since(start) > 5*time.Second {
			t.Errorf("%v after %s", err, time.Since(start))
		}
	})
	t.Run("a directory that hangs fails as unavailable within the timeout", func(t *testing.T) {
		for _, c := range []ldapauth.Config{simple, startTLS, search} {
			c.Timeout = 500 * time.Millisecond
			dir.Pause(t)
			start := time.Now()
			_, err := c.Authenticate(ctx, "paul", "paul-pw")
			if c.CanLookup() {
				_, err = c.Lookup(ctx, "paul")
			}
			took := time.Since(start)
			dir.Resume(t)
			if !errors.Is(err, ldapauth.ErrUnavailable) || took > 2*time.Second {
				t.Errorf("%v after %s", err, took)
			}
		}
	})
}
