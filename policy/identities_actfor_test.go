package policy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestMayActFor(t *testing.T) {
	cfg := loadDemoConfig(t)
	ids := cfg.HCLIdentities()
	cases := []struct {
		name, service, target string
		// refused is a substring of the refusal, "" when allowed.
		refused string
	}{
		{name: "a service acts for a login its act_for lists", service: "metabase", target: "hq"},
		{name: "a service acts for a user holding a role its act_for lists", service: "metabase", target: "marie"},
		{name: "a service never acts for a user outside its list", service: "metabase", target: "survey_admin",
			refused: `metabase may not act for survey_admin: neither the login nor its roles or groups are in its act_for`},
		{name: "a service never acts for an unknown login", service: "metabase", target: "nobody",
			refused: `metabase may not act for "nobody": it is defined by no user block and no identity row`},
		{name: "a login without act_for acts for nobody", service: "hq", target: "marie",
			refused: "hq is not a BI service"},
		{name: "a service never acts for another service", service: "metabase", target: "metabase",
			refused: "it is a BI service itself"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := ids.MayActFor(tc.service, tc.target)
			switch {
			case tc.refused == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.refused != "" && (err == nil || !strings.Contains(err.Error(), tc.refused)):
				t.Fatalf("got %v, want a refusal saying %q", err, tc.refused)
			}
		})
	}
}

func TestMayActForGroups(t *testing.T) {
	const verifier = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="
	src := `
listen { address = "127.0.0.1:6432" }
upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
role "analyst" { statements = ["select"] }
user "superset" {
  password = "` + verifier + `"
  roles    = ["analyst"]
  act_for  = ["group:sales"]
}
user "ana" {
  password = "` + verifier + `"
  roles    = ["analyst"]
  groups   = ["sales"]
}
user "bob" {
  password = "` + verifier + `"
  roles    = ["analyst"]
  groups   = ["finance"]
}
`
	path := filepath.Join(t.TempDir(), "groups.hcl")
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PGVEIL_UPSTREAM_PASSWORD", "x")
	l := NewLoader()
	cfg, diags := l.Load(path)
	if diags.HasErrors() {
		t.Fatal(diags)
	}
	ids := cfg.HCLIdentities()
	if err := ids.MayActFor("superset", "ana"); err != nil {
		t.Errorf("a member of a listed group: %v", err)
	}
	if err := ids.MayActFor("superset", "bob"); err == nil {
		t.Error("a user outside the listed group may be acted for")
	}
}
