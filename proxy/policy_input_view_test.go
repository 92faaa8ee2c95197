package proxy_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestPolicyInputReadThroughAViewIsReadOnly: a table the policy reads
// through a view (the identity query names public.employees_v, a view of
// public.employees) is a policy input as much as one it names: a user
// who may update her own employees row must not move herself to another
// team, which the next identity load would give her.
func TestPolicyInputReadThroughAViewIsReadOnly(t *testing.T) {
	proxytest.SetupDemo(t)
	proxytest.Direct(t, "CREATE VIEW public.employees_v AS SELECT * FROM public.employees")
	t.Cleanup(func() { proxytest.Direct(t, "DROP VIEW public.employees_v") })
	proxytest.Direct(t, "GRANT SELECT ON public.employees_v TO pgveil_svc")
	const grant = `role "team_lead" {
  statements = ["select", "copy_out"]`
	writable := `role "team_lead" {
  statements = ["select", "copy_out", "update"]`
	extra := `
table "public.employees" {
  owner_column = "login"
}
rule "own_employee_row" {
  tables = ["public.employees"]
  roles  = ["team_lead"]
  scope  = "self"
}
`
	for _, tt := range []struct{ name, query string }{
		{"the identity query names the table", "FROM public.employees\""},
		{"the identity query reads the table through a view", "FROM public.employees_v\""},
	} {
		t.Run(tt.name+": lea may not update her own employees row", func(t *testing.T) {
			path := proxytest.DemoWith(t, grant, writable, "FROM public.employees\"", tt.query,
				`table "public.countries" {`, extra+`table "public.countries" {`)
			p, _ := proxytest.StartDemoFrom(t, path)
			c := p.Connect(t, "lea")
			_, err := c.Exec(context.Background(), "UPDATE employees SET team_id = team_id WHERE login = 'lea'")
			var pgErr *pgconn.PgError
			if !errors.As(err, &pgErr) || pgErr.Code != "42501" || !strings.Contains(pgErr.Message, "read by the policy") {
				t.Fatalf("lea updates her employees row: %v, want a policy_input refusal", err)
			}
		})
	}
}
