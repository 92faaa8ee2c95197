package proxy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// TestAdversarial19InheritanceLines: a table inheriting from governed
// tables by more than one line holds rows each line's scan reads, under
// the block nearest on that line. The blocks that disagree need not be
// equally near: a parent's own block (everything visible) and a
// grandparent's (salary masked, marie's country only) reached through
// the other, ungoverned, parent, or through both parents (a diamond).
// Governed by the nearer block, the child showed marie, by name, the real
// salary of a USA row the other line's block masks and filters.
func TestAdversarial19InheritanceLines(t *testing.T) {
	ctx := context.Background()
	p := adv19Schema(t, `
table "public.adv19_k" {
}
table "public.adv19_d1" {
}
rule "adv19_k_all" {
  tables = ["public.adv19_k", "public.adv19_d1"]
  roles  = ["country_analyst"]
  scope  = "all"
}
`, `CREATE TABLE public.adv19_k (id int, country text, grade int, salary int, note text)`,
		`CREATE TABLE public.adv19_q () INHERITS (public.adv19_i)`,
		`CREATE TABLE public.adv19_k2 () INHERITS (public.adv19_k, public.adv19_q)`,
		`CREATE TABLE public.adv19_d1 () INHERITS (public.adv19_i)`,
		`CREATE TABLE public.adv19_d2 () INHERITS (public.adv19_i)`,
		`CREATE TABLE public.adv19_k3 () INHERITS (public.adv19_d1, public.adv19_d2)`,
		`INSERT INTO public.adv19_k2 VALUES (5, 'USA', 1, 5555, 'q')`,
		`INSERT INTO public.adv19_k3 VALUES (6, 'USA', 1, 6666, 'q')`,
		`GRANT ALL ON public.adv19_k, public.adv19_q, public.adv19_k2, public.adv19_d1, public.adv19_d2, public.adv19_k3 TO pgveil_svc`)
	marie := p.connect(t, "marie")
	for _, tc := range []struct{ name, table string }{
		{"a child of a governed parent and of an ungoverned one whose parent is governed otherwise is refused by name", "adv19_k2"},
		{"a child of a diamond whose side and top are governed otherwise is refused by name", "adv19_k3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var salary any
			err := marie.QueryRow(ctx, "SELECT salary FROM "+tc.table+" LIMIT 1").Scan(&salary)
			var pe *pgconn.PgError
			if !errors.As(err, &pe) || pe.Code != "42501" {
				t.Fatalf("want a refusal (42501), got salary %v, %v: the row is adv19_i's too, whose policy masks and filters it", salary, err)
			}
		})
	}
}
