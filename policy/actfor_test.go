package policy

import (
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
			refused: `metabase may not act for "survey_admin": neither the login nor its roles or groups are in its act_for`},
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
