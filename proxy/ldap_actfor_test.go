package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/go-ldap/ldap/v3"
	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/ldaptest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// ldapActForHCL is an ldap block searching people as the reader (bind
// DN) for the demo, mapping central to central_analyst and admins to
// survey_admin, and a BI service "bi" (metabase's password) that may act
// for both roles, and "narrow" (the same password) that may act for kim
// alone.
func ldapActForHCL(dirURL string) string {
	return `
ldap {
  url                 = "` + dirURL + `"
  base_dn             = "` + ldaptest.PeopleDN + `"
  bind_dn             = "` + ldaptest.ReaderDN + `"
  bind_password       = "` + ldaptest.ReaderPassword + `"
  member_of_attribute = "memberOf"
  timeout             = "1s"
  allow_cleartext     = true   # the demo listens without TLS
  group "` + ldaptest.GroupDN("central") + `" { roles = ["central_analyst"] }
  group "` + ldaptest.GroupDN("admins") + `"  { roles = ["survey_admin"] }
}

user "bi" {
  password = "SCRAM-SHA-256$4096:dqGsuE5+431/ACUMnYbinw==$9Y9ESNwXJLMjG3NpJX6H/JvNcpofKomXxZGB4HTdnik=:ngnxLLsvY7SYhYyC2fMJjId1VgBVK8bPUt6M4bESKnQ="
  roles    = ["bi_service"]
  act_for  = ["role:central_analyst", "role:survey_admin"]
}

user "narrow" {
  password = "SCRAM-SHA-256$4096:dqGsuE5+431/ACUMnYbinw==$9Y9ESNwXJLMjG3NpJX6H/JvNcpofKomXxZGB4HTdnik=:ngnxLLsvY7SYhYyC2fMJjId1VgBVK8bPUt6M4bESKnQ="
  roles    = ["bi_service"]
  act_for  = ["kim"]
}
`
}

// addMember adds login to the directory group name.
func addMember(t *testing.T, dir *ldaptest.Server, name, login string) {
	t.Helper()
	c := dir.Admin(t)
	defer c.Close()
	r := ldap.NewModifyRequest(ldaptest.GroupDN(name), nil)
	r.Add("member", []string{ldaptest.PersonDN(login)})
	if err := c.Modify(r); err != nil {
		t.Fatalf("adding %s to %s: %v", login, name, err)
	}
}

// TestServiceActsForDirectoryPeople: with a bind DN, a BI service acts
// for people whose roles only their LDAP groups give, with exactly the
// policy of their own logins; people the directory gives no role, or
// does not hold, and names that are LDAP filter syntax are refused; a
// directory that is down refuses the switch and leaves the session
// usable; a reload forgets the directory's answers and reads the acting
// person's groups again.
func TestServiceActsForDirectoryPeople(t *testing.T) {
	for _, mode := range []struct {
		name string
		pool policy.Pool
	}{
		{"in session mode", policy.Pool{}},
		{"with a transaction pool", policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: 20 * time.Second, IdleTimeout: time.Minute}},
	} {
		t.Run(mode.name, func(t *testing.T) { serviceActsForDirectoryPeople(t, mode.pool) })
	}
}

func serviceActsForDirectoryPeople(t *testing.T, pool policy.Pool) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		dir := ldaptest.Start(t,
			map[string]string{"zoe": "zoe-pw", "omar": "omar-pw", "yan": "yan-pw", "kim": "kim-pw", "vic": "vic-pw", "una": "una-pw", "filler": "x"},
			map[string][]string{"central": {"zoe", "omar", "kim", "vic", "una", "filler"}, "admins": {"filler"}, "others": {"yan", "filler"}})
		demo, err := os.ReadFile("../configs/demo.hcl")
		if err != nil {
			t.Fatal(err)
		}
		cfgDir := t.TempDir()
		for name, body := range map[string]string{"demo.hcl": string(demo), "ldap.hcl": ldapActForHCL(dir.URL)} {
			if err := os.WriteFile(filepath.Join(cfgDir, name), []byte(body), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		p, pols := proxytest.StartDemoWith(t, cfgDir, func(c *policy.Config) {
			c.Listen.Relay, c.Upstream.Pool = relay, pool
		})
		rl := &server.Reloader{Path: cfgDir, Base: p.Config, Policies: pols, Server: p.Server, Logger: zap.NewNop()}
		ctx := context.Background()
		connect := func(t *testing.T, user, password string) *pgx.Conn {
			t.Helper()
			c, err := pgx.Connect(ctx, p.URL(user, password, nil))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close(ctx) })
			return c
		}
		// view is what a policy shows of responses: rows, scores and
		// e-mail addresses.
		view := func(t *testing.T, c *pgx.Conn) string {
			t.Helper()
			var v string
			if err := c.QueryRow(ctx, "SELECT count(*) || ' rows, ' || count(score) || ' scores, ' || count(email) || ' emails' FROM responses").Scan(&v); err != nil {
				t.Fatal(err)
			}
			return v
		}
		bi := actConn{c: connect(t, "bi", "demo-metabase")}

		t.Run("a service acting for a person only her groups give a role sees what her own login sees", func(t *testing.T) {
			own := view(t, connect(t, "zoe", "zoe-pw"))
			for _, sw := range []func(string) error{bi.exec, bi.execExtended} {
				if err := sw("SET ROLE zoe"); err != nil {
					t.Fatalf("switch refused: %v", err)
				}
				if got := view(t, bi.c); got != own {
					t.Errorf("acting for zoe: %s, her own session: %s", got, own)
				}
				if err := bi.exec("RESET ROLE"); err != nil {
					t.Fatal(err)
				}
			}
			if strings.Contains(own, " 0 scores") {
				t.Errorf("central_analyst reads no score: %s", own)
			}
		})
		t.Run("a person her groups give no role is refused, as at her login, as one act_for does not list", func(t *testing.T) {
			err := bi.exec("SET ROLE yan")
			refusedBy(t, err, "act_for")
			if err == nil || !strings.Contains(err.Error(), "are in its act_for") {
				t.Errorf("got %v", err)
			}
		})
		t.Run("names that are LDAP filter syntax, or spell a person otherwise, find no one", func(t *testing.T) {
			for _, name := range []string{"*", "zoe)(uid=*", "z*", `zoe\2a`, "ZOE", "zoé", "nobody"} {
				err := bi.execExtended("SET pgveil.act_for = '" + strings.ReplaceAll(name, "'", "''") + "'")
				refusedBy(t, err, "act_for")
			}
			if n := proxytest.Count(t, bi.c, "SELECT 1"); n != 1 {
				t.Errorf("session unusable: %d", n)
			}
		})
		t.Run("a name longer than any login is refused without asking the directory or keeping it", func(t *testing.T) {
			before := proxy.ActLookups(p.Server)
			for _, n := range []int{257, 10 << 10} {
				err := bi.execExtended("SET pgveil.act_for = '" + strings.Repeat("z", n) + "'")
				refusedBy(t, err, "act_for")
			}
			if got := proxy.ActLookups(p.Server); got != before {
				t.Errorf("%d answers kept, %d before", got, before)
			}
			if n := proxytest.Count(t, bi.c, "SELECT 1"); n != 1 {
				t.Errorf("session unusable: %d", n)
			}
		})
		t.Run("a service no directory group lets act for a name does not learn whether the directory holds it", func(t *testing.T) {
			narrow := actConn{c: connect(t, "narrow", "demo-metabase")}
			before := proxy.ActLookups(p.Server)
			var msgs []string
			for _, name := range []string{"zoe", "yan", "nobody"} {
				err := narrow.exec("SET ROLE " + name)
				refusedBy(t, err, "act_for")
				if err != nil {
					msgs = append(msgs, strings.ReplaceAll(strings.ReplaceAll(err.Error(), `"`+name+`"`, "NAME"), name, "NAME"))
				}
			}
			if len(msgs) != 3 || msgs[0] != msgs[1] || msgs[1] != msgs[2] {
				t.Errorf("refusals differ: %q", msgs)
			}
			if got := proxy.ActLookups(p.Server); got != before {
				t.Errorf("the directory was asked: %d answers kept, %d before", got, before)
			}
			if err := narrow.exec("SET ROLE kim"); err != nil {
				t.Errorf("the person it lists by login: %v", err)
			}
			proxy.ExpireActLookups(p.Server) // kim is looked up again below
		})
		t.Run("a switch while the directory hangs is refused with a clear message, and the session stays usable", func(t *testing.T) {
			dir.Pause(t)
			err := bi.exec("SET ROLE kim")
			dir.Resume(t)
			refusedBy(t, err, "act_for")
			if err == nil || !strings.Contains(err.Error(), "could not read its groups in the LDAP directory") {
				t.Errorf("got %v", err)
			}
			if n := proxytest.Count(t, bi.c, "SELECT 1"); n != 1 {
				t.Errorf("session unusable: %d", n)
			}
			if err := bi.exec("SET ROLE kim"); err != nil {
				t.Errorf("refused once the directory answers: %v", err)
			}
			_ = bi.exec("RESET ROLE")
		})
		if pool.Mode == policy.PoolTransaction {
			t.Run("in a transaction pool the person a switch looked up follows the session to other backends, with no lookup there", func(t *testing.T) {
				own := view(t, connect(t, "zoe", "zoe-pw"))
				for _, extended := range []bool{false, true} {
					s := actConn{c: connect(t, "bi", "demo-metabase")}
					sw := s.exec
					if extended {
						sw = s.execExtended
					}
					if err := sw("SET ROLE zoe"); err != nil {
						t.Fatal(err)
					}
					// The directory answers no more: a lookup would be
					// refused. Two other sessions take both backends,
					// then one gives its own back.
					dir.Pause(t)
					var others []*pgx.Conn
					for range 2 {
						o := connect(t, "bi", "demo-metabase")
						if _, err := o.Exec(ctx, "BEGIN"); err != nil {
							t.Fatal(err)
						}
						if n := proxytest.Count(t, o, "SELECT 1"); n != 1 {
							t.Fatalf("SELECT 1: %d", n)
						}
						others = append(others, o)
					}
					if _, err := others[0].Exec(ctx, "COMMIT"); err != nil {
						t.Fatal(err)
					}
					got := view(t, s.c)
					var act string
					err := s.c.QueryRow(ctx, "SELECT current_setting('pgveil.act_for')").Scan(&act)
					dir.Resume(t)
					if got != own || err != nil || act != "zoe" {
						t.Errorf("on another backend, the session acting for zoe reads %s (her own %s), pgveil.act_for %q (%v)", got, own, act, err)
					}
					if _, err := others[1].Exec(ctx, "COMMIT"); err != nil {
						t.Fatal(err)
					}
					if n, why := proxy.KeptBackends(p.Server); n != 0 {
						t.Errorf("%d sessions keep their backend: %q", n, why)
					}
					if err := s.exec("RESET ROLE"); err != nil {
						t.Fatal(err)
					}
				}
			})
		}
		t.Run("a name the directory could not be asked about is quoted in the refusal, for a redacted audit trail", func(t *testing.T) {
			dir.Pause(t)
			err := bi.exec("SET pgveil.act_for = 'hunter2 typed here'")
			dir.Resume(t)
			refusedBy(t, err, "act_for")
			if err == nil || !strings.Contains(err.Error(), `"hunter2 typed here"`) {
				t.Errorf("the guessed name is not quoted: %v", err)
			}
			if n := proxytest.Count(t, bi.c, "SELECT 1"); n != 1 {
				t.Errorf("session unusable: %d", n)
			}
		})
		t.Run("a reload forgets the directory's answers and reads the acting person's groups again", func(t *testing.T) {
			if err := bi.exec("SET ROLE omar"); err != nil {
				t.Fatal(err)
			}
			before := view(t, bi.c)
			if strings.Contains(before, " 0 scores") {
				t.Fatalf("omar reads no score before: %s", before)
			}
			dir.RemoveMember(t, "central", "omar")
			addMember(t, dir, "admins", "omar")
			if err := rl.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			own := view(t, connect(t, "omar", "omar-pw"))
			if got := view(t, bi.c); got != own || got == before {
				t.Errorf("the session acting for omar before the reload: %s, his own: %s, before: %s", got, own, before)
			}
			if err := bi.exec("RESET ROLE"); err != nil {
				t.Fatal(err)
			}
			if err := bi.exec("SET ROLE omar"); err != nil {
				t.Fatal(err)
			}
			if got := view(t, bi.c); got != own {
				t.Errorf("a switch after the reload: %s, his own: %s", got, own)
			}
			_ = bi.exec("RESET ROLE")
		})
		t.Run("a switch again to the same person applies the groups the directory holds once its answer aged", func(t *testing.T) {
			if err := bi.exec("SET ROLE zoe"); err != nil {
				t.Fatal(err)
			}
			before := view(t, bi.c)
			addMember(t, dir, "admins", "zoe")
			dir.RemoveMember(t, "central", "zoe")
			own := view(t, connect(t, "zoe", "zoe-pw"))
			if own == before {
				t.Fatalf("moving zoe changed nothing: %s", own)
			}
			if err := bi.exec("SET ROLE zoe"); err != nil {
				t.Fatal(err)
			}
			if got := view(t, bi.c); got != before {
				t.Errorf("the answer of the last minute was not used: %s, want %s", got, before)
			}
			proxy.ExpireActLookups(p.Server)
			for _, sw := range []func(string) error{bi.exec, bi.execExtended} {
				if err := sw("SET ROLE zoe"); err != nil {
					t.Fatal(err)
				}
				if got := view(t, bi.c); got != own {
					t.Errorf("acting for zoe after the answer aged: %s, her own session: %s", got, own)
				}
			}
			_ = bi.exec("RESET ROLE")
		})
		t.Run("a switch again refused by a newer answer stops the groups the session acts under", func(t *testing.T) {
			if err := bi.exec("SET ROLE vic"); err != nil {
				t.Fatal(err)
			}
			dir.RemoveMember(t, "central", "vic")
			proxy.ExpireActLookups(p.Server)
			refusedBy(t, bi.exec("SET ROLE vic"), "act_for")
			var n int
			err := bi.c.QueryRow(ctx, "SELECT count(*) FROM responses").Scan(&n)
			refusedBy(t, err, "act_for")
			if err := bi.exec("RESET ROLE"); err != nil {
				t.Fatal(err)
			}
			if n := proxytest.Count(t, bi.c, "SELECT 1"); n != 1 {
				t.Errorf("session unusable: %d", n)
			}
		})
		t.Run("a switch again refused inside a block that switched away still stops her groups after its rollback", func(t *testing.T) {
			if err := bi.exec("SET ROLE una"); err != nil {
				t.Fatal(err)
			}
			for _, q := range []string{"BEGIN", "RESET ROLE"} {
				if err := bi.exec(q); err != nil {
					t.Fatalf("%s: %v", q, err)
				}
			}
			dir.RemoveMember(t, "central", "una")
			proxy.ExpireActLookups(p.Server)
			refusedBy(t, bi.exec("SET ROLE una"), "act_for")
			if err := bi.exec("ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			var n int
			err := bi.c.QueryRow(ctx, "SELECT count(*) FROM responses").Scan(&n)
			refusedBy(t, err, "act_for")
			if err := bi.exec("RESET ROLE"); err != nil {
				t.Fatal(err)
			}
			if n := proxytest.Count(t, bi.c, "SELECT 1"); n != 1 {
				t.Errorf("session unusable: %d", n)
			}
		})
		t.Run("a prepared switch executed after the answer aged reads the directory again", func(t *testing.T) {
			if _, err := bi.c.Prepare(ctx, "to_zoe", "SET ROLE zoe"); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = bi.c.Deallocate(ctx, "to_zoe") }()
			proxy.ExpireActLookups(p.Server)
			if _, err := bi.c.Exec(ctx, "to_zoe"); err != nil {
				t.Fatal(err)
			}
			own := view(t, connect(t, "zoe", "zoe-pw"))
			if got := view(t, bi.c); got != own {
				t.Errorf("acting for zoe: %s, her own session: %s", got, own)
			}
			if err := bi.exec("RESET ROLE"); err != nil {
				t.Fatal(err)
			}
		})
		t.Run("a rolled back switch acts for the person before it with her groups", func(t *testing.T) {
			own := view(t, connect(t, "zoe", "zoe-pw"))
			if err := bi.exec("SET ROLE zoe"); err != nil {
				t.Fatal(err)
			}
			for _, sql := range []string{"BEGIN", "SET ROLE kim"} {
				if err := bi.exec(sql); err != nil {
					t.Fatalf("%s: %v", sql, err)
				}
			}
			if got := view(t, bi.c); got == own {
				t.Errorf("acting for kim shows zoe's view: %s", got)
			}
			if err := bi.exec("ROLLBACK"); err != nil {
				t.Fatal(err)
			}
			if got := view(t, bi.c); got != own {
				t.Errorf("after the rollback: %s, zoe's own: %s", got, own)
			}
			_ = bi.exec("RESET ROLE")
		})
		t.Run("a person removed from the directory is refused at the next statement after a reload", func(t *testing.T) {
			if err := bi.exec("SET ROLE kim"); err != nil {
				t.Fatal(err)
			}
			dir.RemovePerson(t, "kim")
			if err := rl.Reload(ctx); err != nil {
				t.Fatal(err)
			}
			var n int
			err := bi.c.QueryRow(ctx, "SELECT count(*) FROM responses").Scan(&n)
			refusedBy(t, err, "act_for")
			if err := bi.exec("RESET ROLE"); err != nil {
				t.Fatal(err)
			}
			refusedBy(t, bi.exec("SET ROLE kim"), "act_for")
		})
	})
}
