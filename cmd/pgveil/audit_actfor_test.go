package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/internal/audit"
)

func TestAuditSearchFindsTheEndUserBehindAService(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	l, err := audit.Open(audit.Options{File: path, Key: []byte(auditKey)})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	for i, r := range []*audit.Record{
		{User: "metabase", SQL: "SELECT 'as the service'"},
		{User: "metabase", Roles: []string{"bi_service"}, ActingFor: "marie", ActingRoles: []string{"country_analyst", "pii"}, SQL: "SELECT 'for marie'"},
		{User: "marie", Roles: []string{"country_analyst"}, SQL: "SELECT 'marie herself'"},
		{User: "metabase", ActingForBefore: "marie", Event: audit.EventActFor, Reason: "reset role", Message: "no longer for marie"},
	} {
		r.Time = now.Add(time.Duration(i) * time.Second)
		if r.Event == "" {
			r.Event, r.Decision = audit.EventStatement, audit.DecisionAllowed
		}
		l.Write(r)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, flag, user string
		want             []string
	}{
		{"--role names a role of the end user a service acted for (acting_roles)", "--role", "pii", []string{"for marie"}},
		{"--role names a role of the login too", "--role", "country_analyst", []string{"for marie", "marie herself"}},
		{"--role names the service's own roles", "--role", "bi_service", []string{"for marie"}},
		{"--user names the end user a service acted for, or the login, and the end of acting for her", "--user", "marie",
			[]string{"for marie", "marie herself", `"acting_for_before":"marie"`}},
		{"--user names the service's login, acting or not", "--user", "metabase", []string{"as the service", "for marie", "reset role"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI("", "audit", "search", "--format", "json", tt.flag, tt.user, path)
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if code != 0 || errOut != "" || len(lines) != len(tt.want) {
				t.Fatalf("%d %q %q", code, out, errOut)
			}
			for i, w := range tt.want {
				if !strings.Contains(lines[i], w) {
					t.Errorf("line %d %q, want %q", i, lines[i], w)
				}
			}
		})
	}
	t.Run("the table format shows the service and the end user", func(t *testing.T) {
		_, out, _ := runCLI("", "audit", "search", "--user", "marie", path)
		if !strings.Contains(out, "metabase as marie") {
			t.Fatalf("%q", out)
		}
	})
}
