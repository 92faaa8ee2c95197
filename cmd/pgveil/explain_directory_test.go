package main

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/ldaptest"
	"github.com/pgveil/pgveil/internal/pgtest"
	"github.com/pgveil/pgveil/internal/scram"
)

// explainDirectoryHCL is a configuration whose ldap block at dirURL maps
// the directory group managers to the role manager, which reads the
// rows of team 7 of team_docs; dana logs in with a password.
func explainDirectoryHCL(t *testing.T, dirURL string) string {
	v, _ := scram.NewVerifier("pw", 4096)
	su, supw := cluster.SuperUser()
	t.Setenv("PGVEIL_TEST_UPSTREAM_PW", supw)
	t.Setenv("PGVEIL_TEST_LDAP_PW", ldaptest.ReaderPassword)
	return fmt.Sprintf(`
listen {
  address  = "127.0.0.1:6432"
  database = "postgres"
}
upstream {
  address  = %q
  database = "postgres"
  user     = %q
  password = env("PGVEIL_TEST_UPSTREAM_PW")
}
ldap {
  url                 = %q
  base_dn             = %q
  bind_dn             = %q
  bind_password       = env("PGVEIL_TEST_LDAP_PW")
  member_of_attribute = "memberOf"
  timeout             = "2s"
  allow_cleartext     = true
  group %q { roles = ["manager"] }
}
role "manager" {
  statements = ["select"]
}
table "public.team_docs" {}
table "public.my_docs" {
  owner_column = "owner"
}
rule "own_docs" {
  tables = ["public.my_docs"]
  roles  = ["manager"]
  scope  = "self"
}
rule "managers_read_team_7" {
  tables = ["public.team_docs"]
  roles  = ["manager"]
  where  = "team_id = 7"
}
user "dana" {
  password = %[7]q
  roles    = ["manager"]
}
role "bi_service" {
  statements = ["select"]
}
user "bi" {
  password = %[7]q
  roles    = ["bi_service"]
  act_for  = ["role:manager"]
}
`, cluster.Addr(), su, dirURL, ldaptest.PeopleDN, ldaptest.ReaderDN, ldaptest.GroupDN("managers"), v.String())
}

// NOTE: dana and bi share one verifier (%[7]q).
func TestExplainDirectoryPerson(t *testing.T) {
	pgtest.Require(t, cluster)
	if err := cluster.Exec(context.Background(), "postgres",
		"DROP TABLE IF EXISTS team_docs, my_docs; CREATE TABLE team_docs (id int, team_id int); CREATE TABLE my_docs (id int, owner text)"); err != nil {
		t.Fatal(err)
	}
	dir := ldaptest.Start(t, map[string]string{"erik": "erik-pw", "olga": "olga-pw"}, map[string][]string{"managers": {"erik"}, "others": {"olga"}})
	path := writeConfig(t, explainDirectoryHCL(t, dir.URL))
	down := writeConfig(t, explainDirectoryHCL(t, ldaptest.DownURL(t)))
	noBind := writeConfig(t, strings.Replace(explainDirectoryHCL(t, dir.URL), "bind_dn ", "# bind_dn ", 1))
	managers := ldaptest.GroupDN("managers")
	const sql = "SELECT id FROM team_docs"

	t.Run("a person whose roles only a directory group gives is explained with the groups the directory holds", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "erik", sql)
		for _, want := range []string{"directory groups (" + dir.URL + "): " + managers, "directory group " + managers + " gives roles: manager",
			"rules applied: managers_read_team_7", "team_id OPERATOR(pg_catalog.=) 7"} {
			if code != 0 || !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
				t.Fatalf("%d, missing %q in:\n%s%s", code, want, out, errOut)
			}
		}
	})
	t.Run("a directory person's own rows are hers by her login", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "erik", "SELECT id FROM my_docs")
		if code != 0 || !strings.Contains(out, "owner OPERATOR(pg_catalog.=) 'erik'") {
			t.Fatalf("%d\n%s%s", code, out, errOut)
		}
	})
	t.Run("a person whose groups map to no role has no access, and is told which groups she is in", func(t *testing.T) {
		code, out, _ := runCLI("", "explain", "--config", path, "--user", "olga", sql)
		if code != 1 || !strings.Contains(out, "directory groups give roles: none") || !strings.Contains(out, "user olga: no access") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
	t.Run("a person the directory does not hold is refused, naming the directory", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "nobody", sql)
		want := "could not look up nobody in the directory at " + dir.URL + ": "
		if code != 1 || !strings.Contains(errOut, want) || strings.Contains(out, "no access") {
			t.Fatalf("%d, want %q:\n%s%s", code, want, out, errOut)
		}
	})
	t.Run("a directory that is down is an error, not no access", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", down, "--user", "erik", sql)
		if code != 1 || !strings.Contains(errOut, "could not look up erik in the directory at ldap://") || strings.Contains(out, "no access") {
			t.Fatalf("%d\n%s%s", code, out, errOut)
		}
	})
	t.Run("without a bind_dn, explain says it did not read the groups and points at --groups", func(t *testing.T) {
		code, out, _ := runCLI("", "explain", "--config", noBind, "--user", "erik", sql)
		if code != 1 || !strings.Contains(out, "directory groups: not read") || !strings.Contains(out, "pass --groups") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
	t.Run("--groups explains without the directory", func(t *testing.T) {
		for _, args := range [][]string{{"--groups", "cn=elsewhere;" + managers}, {"--group", managers}} {
			code, out, errOut := runCLI("", append(append([]string{"explain", "--config", down, "--user", "erik"}, args...), sql)...)
			if code != 0 || !strings.Contains(out, "directory groups (--groups)") || !strings.Contains(out, "rules applied: managers_read_team_7") {
				t.Fatalf("%v: %d\n%s%s", args, code, out, errOut)
			}
		}
	})
	t.Run("--groups with no group gives erik no access", func(t *testing.T) {
		code, out, _ := runCLI("", "explain", "--config", down, "--user", "erik", "--groups", "", sql)
		if code != 1 || !strings.Contains(out, "directory groups (--groups): none") || !strings.Contains(out, "no access") {
			t.Fatalf("%d\n%s", code, out)
		}
	})
	t.Run("--groups for a login with a password is refused", func(t *testing.T) {
		code, _, errOut := runCLI("", "explain", "--config", down, "--user", "dana", "--group", managers, sql)
		if code != 1 || !strings.Contains(errOut, "dana does not log in through the directory") {
			t.Fatalf("%d\n%s", code, errOut)
		}
	})
	t.Run("a login with a password is explained as before, without the directory", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", down, "--user", "dana", sql)
		if code != 0 || strings.Contains(out, "directory") || !strings.Contains(out, "rules applied: managers_read_team_7") {
			t.Fatalf("%d\n%s%s", code, out, errOut)
		}
	})
	t.Run("--as explains what a BI service sees acting for a directory person", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "bi", "--as", "erik", sql)
		for _, want := range []string{"directory group " + managers + " gives roles: manager", "acting: bi acts for erik",
			"user: erik (as bi acting for erik)", "rules applied: managers_read_team_7"} {
			if code != 0 || !strings.Contains(strings.ToLower(out), strings.ToLower(want)) {
				t.Fatalf("%d, missing %q in:\n%s%s", code, want, out, errOut)
			}
		}
	})
	t.Run("--as refuses a person the service may not act for, as the proxy would", func(t *testing.T) {
		for _, c := range []struct{ service, target, want string }{
			{"bi", "olga", "bi may not act for olga"},
			{"dana", "erik", "dana"},
		} {
			code, out, errOut := runCLI("", "explain", "--config", path, "--user", c.service, "--as", c.target, sql)
			if code != 1 || !strings.Contains(out, c.want) || strings.Contains(out, "rewritten SQL") {
				t.Fatalf("%s as %s: %d\n%s%s", c.service, c.target, code, out, errOut)
			}
		}
	})
	t.Run("--as the service's own login explains the service, as SET ROLE to it acts as the service", func(t *testing.T) {
		code, out, errOut := runCLI("", "explain", "--config", path, "--user", "bi", "--as", "bi", sql)
		if code != 0 || !strings.Contains(out, "user: bi\n") || strings.Contains(out, "may not act") {
			t.Fatalf("%d\n%s%s", code, out, errOut)
		}
		code, out, errOut = runCLI("", "explain", "--config", path, "--user", "dana", "--as", "dana", sql)
		if code != 1 || !strings.Contains(out, "dana is not a BI service") || strings.Contains(out, "rewritten SQL") {
			t.Fatalf("a login that is no service: %d\n%s%s", code, out, errOut)
		}
	})
	t.Run("--as with --groups takes the groups only where the proxy reads them", func(t *testing.T) {
		// NOTE: without a bind_dn the proxy does not look erik up when bi
		// acts for him: his user block's roles decide, as explain says
		// without --groups.
		ldapErik := writeConfig(t, strings.Replace(explainDirectoryHCL(t, dir.URL), "bind_dn ", "# bind_dn ", 1)+`
user "erik" {
  auth  = "ldap"
  roles = ["manager"]
}
`)
		code, out, errOut := runCLI("", "explain", "--config", ldapErik, "--user", "bi", "--as", "erik", sql)
		if code != 0 || !strings.Contains(out, "acting: bi acts for erik") {
			t.Fatalf("without --groups: %d\n%s%s", code, out, errOut)
		}
		code, out, errOut = runCLI("", "explain", "--config", ldapErik, "--user", "bi", "--as", "erik", "--group", managers, sql)
		if code != 1 || !strings.Contains(errOut, "pgveil explain: --groups: ") || strings.Contains(out, "may not act") || strings.Contains(out, "rewritten SQL") {
			t.Fatalf("with --groups: %d\n%s%s", code, out, errOut)
		}
	})
}
