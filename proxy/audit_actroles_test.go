package proxy_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/audit"
	"github.com/pgveil/pgveil/internal/ldaptest"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
	"github.com/pgveil/pgveil/proxy/server"
)

// TestAuditActingRoles: the record of a statement a BI service ran for
// a person says which roles were in force (acting_roles: hers, as her
// directory groups gave them to that statement's rewrite) next to the
// service's own (roles); a switch pipelined after it or a reload does
// not relabel it; a statement refused because the service may no longer
// act for her has its kind and the tables it names; the Execute of one
// refused at its Parse is told from the Parse.
func TestAuditActingRoles(t *testing.T) {
	proxytest.OnEveryRelay(t, func(t *testing.T, relay string) {
		dir := ldaptest.Start(t,
			map[string]string{"zoe": "zoe-pw", "ali": "ali-pw", "kim": "kim-pw"},
			map[string][]string{"central": {"zoe", "ali", "kim"}, "admins": {"ali"}})
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
		path := t.TempDir() + "/audit.log"
		alog, err := audit.Open(audit.Options{File: path, Key: proxytest.AuditKey})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = alog.Close() })
		p, pols := proxytest.StartDemoWith(t, cfgDir, func(c *policy.Config) { c.Listen.Relay = relay },
			func(po *proxy.Options) { po.Audit = alog })
		rl := &server.Reloader{Path: cfgDir, Base: p.Config, Policies: pols, Server: p.Server, Logger: zap.NewNop()}
		ctx := context.Background()
		c, err := pgx.Connect(ctx, p.URL("bi", "demo-metabase", nil))
		if err != nil {
			t.Fatal(err)
		}
		bi := actConn{c: c}

		// The statements, each marked by its first column's constant.
		must(t, bi.exec("SET ROLE zoe"))
		must(t, bi.exec("SELECT 'as zoe' FROM responses LIMIT 1"))
		must(t, bi.execExtended("SELECT 'as zoe, extended' FROM responses LIMIT 1"))
		// A named statement Parsed for zoe, Executed for her, then
		// for ali after a switch (pgveil prepares it again for her);
		// and one prepared with SQL PREPARE, EXECUTEd for zoe.
		if _, err := c.PgConn().Prepare(ctx, "audit_named", "SELECT 'named' FROM responses LIMIT 1", nil); err != nil {
			t.Fatal(err)
		}
		must(t, c.PgConn().ExecPrepared(ctx, "audit_named", nil, nil, nil).Read().Err)
		must(t, bi.exec("PREPARE audit_sql AS SELECT 'sql prepared' FROM responses LIMIT 1"))
		must(t, bi.exec("EXECUTE audit_sql"))
		must(t, bi.exec("SET ROLE ali"))
		must(t, c.PgConn().ExecPrepared(ctx, "audit_named", nil, nil, nil).Read().Err)
		refusedBy(t, bi.exec("EXECUTE audit_sql"), "policy_changed")
		must(t, bi.exec("SET ROLE zoe"))
		// Pipelined: the first statement's answer may come after the
		// switches were read and made; or they are refused, for being
		// pipelined after it, and the last runs for zoe still.
		_, codes, errs := proxytest.PipelineBatches(t, bi.c, 4,
			&pgproto3.Query{String: "SELECT 'as zoe, pipelined' FROM responses LIMIT 1"},
			&pgproto3.Query{String: "RESET ROLE"},
			&pgproto3.Query{String: "SET ROLE ali"},
			&pgproto3.Query{String: "SELECT 'as ali, pipelined' FROM responses LIMIT 1"})
		if codes[0] != "" {
			t.Fatalf("pipeline failed: %q %q", codes, errs)
		}
		// NOTE: the switches pipelined may be refused, each or both,
		// and the last statement with them: what it ran as decides
		// what its record must say.
		// RESET ROLE may pass and SET ROLE ali be refused: the last
		// then runs as the service itself, with no acting roles.
		last := map[string][]string{"zoe": {"central_analyst"}, "ali": {"central_analyst", "survey_admin"}, "": nil}
		must(t, bi.exec("RESET ROLE"))
		must(t, bi.exec("SELECT 'as bi' FROM responses LIMIT 1"))
		must(t, bi.exec("SET ROLE zoe"))
		must(t, bi.exec("SELECT 'as zoe, before the reload' FROM responses LIMIT 1"))
		addMember(t, dir, "admins", "zoe")
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		must(t, bi.exec("SELECT 'as zoe, after the reload' FROM responses LIMIT 1"))
		must(t, bi.exec("RESET ROLE"))
		must(t, bi.exec("SET ROLE kim"))
		dir.RemoveMember(t, "central", "kim")
		if err := rl.Reload(ctx); err != nil {
			t.Fatal(err)
		}
		refusedBy(t, bi.exec("SELECT 'kim removed' FROM responses r JOIN countries c ON true"), "act_for")
		refusedBy(t, bi.execExtended("DELETE FROM responses WHERE 'kim removed' = ''"), "act_for")
		must(t, bi.exec("RESET ROLE"))
		c.Close(ctx)
		proxytest.WaitSessions(t, p, 0)

		recs := map[string]*audit.Entry{}
		var deletes, named, executes []*audit.Entry
		for _, e := range proxytest.ReadAudit(t, alog, path) {
			if e.Event == audit.EventStatement {
				recs[e.SQL] = e
				switch {
				case strings.HasPrefix(e.SQL, "SELECT 'named'"):
					named = append(named, e)
				case e.SQL == "EXECUTE audit_sql":
					executes = append(executes, e)
				}
				if strings.HasPrefix(e.SQL, "DELETE FROM responses WHERE 'kim removed'") {
					deletes = append(deletes, e)
				}
			}
		}
		t.Run("the Execute of a statement refused at its Parse says so, the Parse's record does not", func(t *testing.T) {
			if len(deletes) != 2 || strings.HasPrefix(deletes[0].Message, proxy.ExecuteOfRefusedParse) ||
				!strings.HasPrefix(deletes[1].Message, proxy.ExecuteOfRefusedParse) || deletes[1].Kind != "delete" {
				for _, e := range deletes {
					t.Logf("%s %s %q", e.Decision, e.Kind, e.Message)
				}
				t.Errorf("%d records of the refused DELETE, want the Parse's then the Execute's", len(deletes))
			}
		})
		t.Run("a named statement prepared for one person and run for another carries the roles of each run's own check", func(t *testing.T) {
			want := []struct {
				acting string
				roles  []string
			}{{"zoe", []string{"central_analyst"}}, {"ali", []string{"central_analyst", "survey_admin"}}}
			if len(named) != len(want) {
				t.Fatalf("%d records of the named statement, want %d", len(named), len(want))
			}
			for i, e := range named {
				got := slices.Clone(e.ActingRoles)
				slices.Sort(got)
				if e.Decision == audit.DecisionDenied || e.ActingFor != want[i].acting || !slices.Equal(got, want[i].roles) {
					t.Errorf("run %d: %s acting_for %q acting_roles %q, want %q %q", i, e.Decision, e.ActingFor, e.ActingRoles, want[i].acting, want[i].roles)
				}
			}
		})
		t.Run("an EXECUTE of a statement prepared with SQL carries the roles of its check", func(t *testing.T) {
			for _, e := range executes {
				t.Logf("%s %s acting_for %q acting_roles %q", e.Decision, e.Reason, e.ActingFor, e.ActingRoles)
			}
			if len(executes) != 2 || executes[0].ActingFor != "zoe" || !slices.Equal(executes[0].ActingRoles, []string{"central_analyst"}) {
				t.Errorf("the EXECUTE for zoe: want acting_for zoe, acting_roles [central_analyst]")
			}
		})
		of := func(t *testing.T, marker string) *audit.Entry {
			t.Helper()
			for sql, e := range recs {
				if strings.HasPrefix(sql, "SELECT '"+marker+"'") {
					return e
				}
			}
			t.Fatalf("no record of the statement %q", marker)
			return nil
		}
		central, both := []string{"central_analyst"}, []string{"central_analyst", "survey_admin"}
		if codes[3] == "" {
			t.Run("the statement pipelined after switches carries the roles of the user it ran for", func(t *testing.T) {
				e := of(t, "as ali, pipelined")
				got := slices.Clone(e.ActingRoles)
				slices.Sort(got)
				if want, ok := last[e.ActingFor]; !ok || !slices.Equal(got, want) {
					t.Errorf("acting_for %q acting_roles %q", e.ActingFor, e.ActingRoles)
				}
			})
		}
		for _, tt := range []struct {
			marker, acting string
			roles          []string
		}{
			{"as zoe", "zoe", central},
			{"as zoe, extended", "zoe", central},
			{"as zoe, pipelined", "zoe", central},
			{"as bi", "", nil},
			{"as zoe, before the reload", "zoe", central},
			{"as zoe, after the reload", "zoe", both},
		} {
			t.Run("the statement "+tt.marker+" carries the roles its rewrite used", func(t *testing.T) {
				e := of(t, tt.marker)
				got := slices.Clone(e.ActingRoles)
				slices.Sort(got)
				if e.ActingFor != tt.acting || !slices.Equal(got, tt.roles) {
					t.Errorf("acting_for %q acting_roles %q, want %q %q", e.ActingFor, e.ActingRoles, tt.acting, tt.roles)
				}
				if !slices.Equal(e.Roles, []string{"bi_service"}) {
					t.Errorf("roles %q, want the service's", e.Roles)
				}
			})
		}
		t.Run("a statement refused because the service may no longer act for the person has its kind and tables", func(t *testing.T) {
			for marker, kind := range map[string]string{"kim removed": "select"} {
				e := of(t, marker)
				if e.Decision != audit.DecisionDenied || e.Reason != "act_for" || e.Kind != kind ||
					!slices.Contains(e.Tables, "public.responses") || !slices.Contains(e.Tables, "public.countries") {
					t.Errorf("%s: decision %s reason %s kind %q tables %q", marker, e.Decision, e.Reason, e.Kind, e.Tables)
				}
			}
			var del *audit.Entry
			for sql, e := range recs {
				if strings.HasPrefix(sql, "DELETE FROM responses WHERE 'kim removed'") && e.Decision == audit.DecisionDenied {
					del = e
				}
			}
			if del == nil || del.Kind != "delete" || !slices.Contains(del.Tables, "public.responses") {
				t.Errorf("the refused DELETE: %+v", del)
			}
		})
	})
}
