package proxy_test

import (
	"context"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/internal/ldaptest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// withLDAP adds an ldap block for dir (simple bind, groups by search,
// timeout) mapping the groups analysts and managers to the roles of the
// same names, and TLS for clients (not required).
func withLDAP(t testing.TB, dirURL string, timeout time.Duration) proxytest.Option {
	return func(c *policy.Config, o *proxy.Options) {
		proxytest.WithTLS(t, false)(c, o)
		c.Roles = map[string]*policy.Role{"analysts": {Name: "analysts"}, "managers": {Name: "managers"}}
		c.LDAP = &policy.LDAP{
			Directory: ldapauth.Config{URL: dirURL, Prefix: "uid=", Suffix: "," + ldaptest.PeopleDN,
				GroupBaseDN: ldaptest.GroupsDN, Timeout: timeout},
			Groups: []*policy.LDAPGroup{
				{DN: ldaptest.GroupDN("analysts"), Roles: []string{"analysts"}, Groups: []string{"analysts"}},
				{DN: strings.ToUpper(ldaptest.GroupDN("managers")), Roles: []string{"managers"}},
			},
		}
	}
}

func TestLDAPAuthentication(t *testing.T) {
	dir := ldaptest.Start(t,
		map[string]string{"dana": "dana-pw", "eve": "eve-pw", "filler": "x"},
		map[string][]string{"analysts": {"dana", "filler"}, "managers": {"dana", "filler"}, "others": {"eve"}})
	rec := &recordingAuditor{}
	p := proxytest.StartProxy(t, withLDAP(t, dir.URL, 2*time.Second), func(_ *policy.Config, o *proxy.Options) { o.Audit = rec })
	tlsURL := func(user, password string) string {
		return p.URL(user, password, url.Values{"sslmode": {"require"}})
	}
	const query = "SELECT 'ldap-' || count(*) FROM items"
	connectRoles := func(t *testing.T, user string) (roles []string) {
		t.Helper()
		proxytest.Poll(2*time.Second, func() bool {
			for _, r := range slices.Backward(rec.events("connect")) {
				if r.User == user {
					roles = r.Roles
					return true
				}
			}
			return false
		})
		return roles
	}
	// lastFailure returns the reason of the first failure audited after
	// the first before ones: the proxy audits a failure after answering
	// the client.
	lastFailure := func(t *testing.T, before int) string {
		t.Helper()
		var ev []*audit.Record
		proxytest.Poll(2*time.Second, func() bool { ev = rec.events("auth_failure"); return len(ev) > before })
		if len(ev) <= before {
			return ""
		}
		return ev[len(ev)-1].Reason
	}

	t.Run("a person known only to the directory logs in with the roles of her groups", func(t *testing.T) {
		out, err := psql(t, tlsURL("dana", "dana-pw"), "-c", query)
		if err != nil || strings.TrimSpace(out) != "ldap-100" {
			t.Fatalf("%v: %s", err, out)
		}
		if roles := connectRoles(t, "dana"); !slices.Equal(roles, []string{"analysts", "managers"}) {
			t.Errorf("roles %q", roles)
		}
	})
	failures := []struct{ name, user, password, reason string }{
		{"a wrong password", "dana", "wrong", "invalid credentials"},
		{"an unknown user", "nobody", "dana-pw", "invalid credentials"},
		{"a person whose groups give no role", "eve", "eve-pw", "give no role"},
		// The directory binds DANA to dana's entry; pgveil keys her
		// method, limits and audit records by the exact login.
		{"a login the directory spells otherwise", "DANA", "dana-pw", "spells the login"},
	}
	for _, f := range failures {
		t.Run(f.name+" is refused with PostgreSQL's message and audited", func(t *testing.T) {
			before := len(rec.events("auth_failure"))
			out, err := psql(t, tlsURL(f.user, f.password), "-c", query)
			if err == nil || !strings.Contains(out, `LDAP authentication failed for user "`+f.user+`"`) {
				t.Fatalf("%v: %s", err, out)
			}
			if r := lastFailure(t, before); !strings.Contains(r, f.reason) {
				t.Errorf("audited reason %q, want %q", r, f.reason)
			}
		})
	}
	t.Run("without TLS the password is not asked for", func(t *testing.T) {
		out, err := psql(t, p.URL("dana", "dana-pw", nil), "-c", query)
		if err == nil || !strings.Contains(out, "LDAP authentication requires an encrypted connection") {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("password users still use SCRAM", func(t *testing.T) {
		out, err := psql(t, tlsURL("alice", proxytest.Users["alice"]), "-c", query)
		if err != nil || strings.TrimSpace(out) != "ldap-100" {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("a group removed in the directory is gone at the next login", func(t *testing.T) {
		dir.RemoveMember(t, "managers", "dana")
		before := len(rec.events("connect"))
		out, err := psql(t, tlsURL("dana", "dana-pw"), "-c", query)
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		proxytest.Eventually(t, 2*time.Second, "a connect record", func() bool { return len(rec.events("connect")) > before })
		if roles := connectRoles(t, "dana"); !slices.Equal(roles, []string{"analysts"}) {
			t.Errorf("roles %q", roles)
		}
	})
	t.Run("a directory that hangs gives a clear error within the timeout", func(t *testing.T) {
		dir.Pause(t)
		defer dir.Resume(t)
		start := time.Now()
		out, err := psql(t, tlsURL("dana", "dana-pw"), "-c", query)
		took := time.Since(start)
		if err == nil || !strings.Contains(out, "could not reach the LDAP directory") || took > 4*time.Second {
			t.Fatalf("after %s: %v: %s", took, err, out)
		}
	})
	t.Run("a directory that is down gives a clear error at once", func(t *testing.T) {
		down := proxytest.StartProxy(t, withLDAP(t, ldaptest.DownURL(t), 2*time.Second))
		out, err := psql(t, down.URL("dana", "dana-pw", url.Values{"sslmode": {"require"}}), "-c", query)
		if err == nil || !strings.Contains(out, "could not reach the LDAP directory") {
			t.Fatalf("%v: %s", err, out)
		}
	})
}

func TestLDAPUsersGetTheirGroupsPolicy(t *testing.T) {
	dir := ldaptest.Start(t,
		map[string]string{"dana": "dana-pw", "filler": "x"},
		map[string][]string{"central": {"dana", "filler"}, "admins": {"dana", "filler"}})
	demo, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "demo.hcl"), demo, 0o600); err != nil {
		t.Fatal(err)
	}
	ldapHCL := `
ldap {
  url             = "` + dir.URL + `"
  prefix          = "uid="
  suffix          = ",` + ldaptest.PeopleDN + `"
  group_base_dn   = "` + ldaptest.GroupsDN + `"
  timeout         = "2s"
  allow_cleartext = true   # the demo listens without TLS
  group "` + ldaptest.GroupDN("central") + `" { roles = ["central_analyst"] }
  group "` + ldaptest.GroupDN("admins") + `"  { roles = ["survey_admin"] }
}
`
	if err := os.WriteFile(filepath.Join(cfgDir, "ldap.hcl"), []byte(ldapHCL), 0o600); err != nil {
		t.Fatal(err)
	}
	p, pols := proxytest.StartDemoFrom(t, cfgDir)
	core, logs := observer.New(zap.WarnLevel)
	rl := &server.Reloader{Path: cfgDir, Base: p.Config, Policies: pols, Server: p.Server, Logger: zap.New(core)}
	ctx := context.Background()
	loginCount := func(t *testing.T, sql string) (int64, error) {
		t.Helper()
		c, err := pgx.Connect(ctx, p.URL("dana", "dana-pw", nil))
		if err != nil {
			return 0, err
		}
		defer c.Close(ctx)
		var n int64
		err = c.QueryRow(ctx, sql).Scan(&n)
		return n, err
	}
	const scores = "SELECT count(score) FROM responses"
	t.Run("the roles of both groups apply: the technical score is readable", func(t *testing.T) {
		if n, err := loginCount(t, scores); err != nil || n == 0 {
			t.Fatalf("%d %v", n, err)
		}
	})
	t.Run("a reload applies new group blocks to a running session, and ends it when they give no role", func(t *testing.T) {
		c, err := pgx.Connect(ctx, p.URL("dana", "dana-pw", nil))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close(ctx)
		if n := proxytest.Count(t, c, scores); n == 0 {
			t.Fatal("no score before the reload")
		}
		ldapPath := filepath.Join(cfgDir, "ldap.hcl")
		proxytest.EditConfig(t, ldapPath, `roles = ["central_analyst"]`, `roles = ["survey_admin"]`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		if n := proxytest.Count(t, c, scores); n != 0 {
			t.Errorf("%d scores after central lost central_analyst", n)
		}
		// Simple bind cannot read the groups without the password.
		if w := logs.FilterMessageSnippet("apply at the next login").All(); len(w) != 1 {
			t.Errorf("warnings %v", logs.All())
		}
		proxytest.EditConfig(t, ldapPath, `roles = ["survey_admin"]`, `groups = ["former"]`)
		proxytest.EditConfig(t, ldapPath, `roles = ["survey_admin"]`, `groups = ["former"]`)
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		var n int
		if err := c.QueryRow(ctx, scores).Scan(&n); err == nil {
			t.Errorf("the session outlived its last role: %d", n)
		}
		if err := os.WriteFile(ldapPath, []byte(ldapHCL), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("after leaving the group that gives the score, the next login sees it masked", func(t *testing.T) {
		dir.RemoveMember(t, "central", "dana")
		if n, err := loginCount(t, scores); err != nil || n != 0 {
			t.Fatalf("%d %v", n, err)
		}
	})
	t.Run("after leaving every mapped group, the next login is refused", func(t *testing.T) {
		dir.RemoveMember(t, "admins", "dana")
		if _, err := loginCount(t, scores); err == nil || !strings.Contains(err.Error(), `LDAP authentication failed for user "dana"`) {
			t.Fatalf("%v", err)
		}
	})
}

func TestLDAPReloadReadsGroupsAgain(t *testing.T) {
	dir := ldaptest.Start(t,
		map[string]string{"dana": "dana-pw", "omar": "omar-pw", "filler": "x"},
		map[string][]string{"central": {"dana", "omar", "filler"}, "admins": {"dana", "omar", "filler"}})
	demo, err := os.ReadFile("../configs/demo.hcl")
	if err != nil {
		t.Fatal(err)
	}
	cfgDir := t.TempDir()
	if err := os.WriteFile(filepath.Join(cfgDir, "demo.hcl"), demo, 0o600); err != nil {
		t.Fatal(err)
	}
	ldapHCL := `
ldap {
  url                 = "` + dir.URL + `"
  base_dn             = "` + ldaptest.PeopleDN + `"
  bind_dn             = "` + ldaptest.ReaderDN + `"
  bind_password       = "` + ldaptest.ReaderPassword + `"
  member_of_attribute = "memberOf"
  timeout             = "1s"
  allow_cleartext     = true   # the demo listens without TLS
  group "` + ldaptest.GroupDN("central") + `" { roles = ["central_analyst"] }
  group "` + ldaptest.GroupDN("admins") + `"  { roles = ["survey_admin"] }
}
`
	if err := os.WriteFile(filepath.Join(cfgDir, "ldap.hcl"), []byte(ldapHCL), 0o600); err != nil {
		t.Fatal(err)
	}
	rec := &recordingAuditor{}
	p, pols := proxytest.StartDemoFrom(t, cfgDir, func(o *proxy.Options) { o.Audit = rec })
	core, logs := observer.New(zap.WarnLevel)
	rl := &server.Reloader{Path: cfgDir, Base: p.Config, Policies: pols, Server: p.Server, Logger: zap.New(core)}
	ctx := context.Background()
	connect := func(t *testing.T, user string) *pgx.Conn {
		t.Helper()
		c, err := pgx.Connect(ctx, p.URL(user, user+"-pw", nil))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close(ctx) })
		return c
	}
	reload := func(t *testing.T) {
		t.Helper()
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
	}
	const scores = "SELECT count(score) FROM responses"
	dana, omar := connect(t, "dana"), connect(t, "omar")
	if _, err := dana.Prepare(ctx, "scores", scores); err != nil {
		t.Fatal(err)
	}
	if n := proxytest.Count(t, dana, "scores"); n == 0 {
		t.Fatal("no score before the reload")
	}

	t.Run("a group left in the directory stops applying at the reload, prepared statements included", func(t *testing.T) {
		dir.RemoveMember(t, "central", "dana")
		if n := proxytest.Count(t, dana, "scores"); n == 0 {
			t.Fatal("the groups changed before the reload")
		}
		reload(t)
		if n := proxytest.Count(t, dana, "scores"); n != 0 {
			t.Errorf("%d scores from the statement prepared before the reload", n)
		}
		if n := proxytest.Count(t, dana, scores); n != 0 {
			t.Errorf("%d scores after the reload", n)
		}
	})
	t.Run("a directory that hangs at the reload delays it by the timeout at most, and sessions keep their groups", func(t *testing.T) {
		dir.RemoveMember(t, "central", "omar")
		logs.TakeAll()
		dir.Pause(t)
		start := time.Now()
		err := rl.Reload(ctx)
		took := time.Since(start)
		// The sessions work while the directory still hangs.
		n := proxytest.Count(t, omar, scores)
		dir.Resume(t)
		if err != nil || took > 3*time.Second {
			t.Fatalf("reload after %s: %v", took, err)
		}
		if n == 0 {
			t.Error("omar lost central_analyst though the directory could not be read")
		}
		if w := logs.FilterMessageSnippet("could not read the directory groups").All(); len(w) != 1 {
			t.Errorf("warnings %v", logs.All())
		}
		reload(t)
		if n := proxytest.Count(t, omar, scores); n != 0 {
			t.Errorf("%d scores once the directory answers again", n)
		}
	})
	t.Run("a person who left every mapped group is ended at the reload", func(t *testing.T) {
		dir.RemoveMember(t, "admins", "dana")
		reload(t)
		var n int
		if err := dana.QueryRow(ctx, scores).Scan(&n); err == nil {
			t.Errorf("the session outlived its last role: %d", n)
		}
	})
	t.Run("a person removed from the directory is ended at the reload, with an audit record", func(t *testing.T) {
		dir.RemovePerson(t, "omar")
		reload(t)
		var n int
		if err := omar.QueryRow(ctx, scores).Scan(&n); err == nil || !strings.Contains(err.Error(), "no longer in the directory") {
			t.Errorf("%d %v", n, err)
		}
		if !proxytest.Poll(2*time.Second, func() bool {
			for _, r := range rec.events("disconnect") {
				if r.User == "omar" && strings.Contains(r.Reason, "removed from the directory") {
					return true
				}
			}
			return false
		}) {
			t.Errorf("no disconnect record for omar: %+v", rec.events("disconnect"))
		}
	})
}
