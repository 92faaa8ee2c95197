package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPolicyInputWrittenThroughAnotherRelationIsReadOnly: a write of a
// relation the policy does not read can write one it reads: a rule
// (CREATE RULE … DO ALSO UPDATE, run with the rule owner's rights) or an
// automatically updatable view. Lea, who may write the first, must not
// move herself to another team through it, which the next identity load
// would give her.
func TestPolicyInputWrittenThroughAnotherRelationIsReadOnly(t *testing.T) {
	proxytest.SetupDemo(t)
	proxytest.Direct(t, "CREATE TABLE public.team_requests (login text, team_id int)")
	t.Cleanup(func() { proxytest.Direct(t, "DROP TABLE public.team_requests") })
	proxytest.Direct(t, "CREATE RULE apply_request AS ON INSERT TO public.team_requests DO ALSO "+
		"UPDATE public.employees SET team_id = NEW.team_id WHERE login = NEW.login")
	proxytest.Direct(t, "GRANT SELECT, INSERT, UPDATE ON public.team_requests TO pgveil_svc")
	t.Cleanup(func() { proxytest.Direct(t, "UPDATE public.employees SET team_id = 11 WHERE login = 'lea'") })
	proxytest.Direct(t, "CREATE VIEW public.staff AS SELECT login, team_id FROM public.employees")
	t.Cleanup(func() { proxytest.Direct(t, "DROP VIEW public.staff") })
	proxytest.Direct(t, "GRANT SELECT, UPDATE ON public.staff TO pgveil_svc")
	path := proxytest.DemoWith(t, `role "team_lead" {
  statements = ["select", "copy_out"]`, `role "team_lead" {
  statements = ["select", "copy_out", "insert", "update"]`,
		`table "public.countries" {`, `table "public.team_requests" {
  reference = true
}
table "public.staff" {
  reference = true
}
rule "requests_and_staff" {
  tables = ["public.team_requests", "public.staff"]
  roles  = ["team_lead"]
  scope  = "all"
}
table "public.countries" {`)
	p, _ := proxytest.StartDemoFrom(t, path)
	for _, tt := range []struct{ name, sql, via string }{
		{"a rule of the table written", "INSERT INTO team_requests VALUES ('lea', 1)", "team_requests"},
		{"an automatically updatable view", "UPDATE staff SET team_id = 1 WHERE login = 'lea'", "staff"},
	} {
		t.Run("lea may not write public.employees through "+tt.name, func(t *testing.T) {
			c := p.Connect(t, "lea")
			_, err := c.Exec(context.Background(), tt.sql)
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "may write public.employees") {
				t.Fatalf("%s: %v, want a policy_input refusal", tt.sql, err)
			}
			if got := proxytest.Direct(t, "SELECT team_id FROM public.employees WHERE login = 'lea'")[0][0]; got != "11" {
				t.Errorf("lea moved to team %s", got)
			}
		})
	}
}
