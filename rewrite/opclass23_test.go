package rewrite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestOperatorClassRefusalQuotesNames: the refusal of a DBA's operator
// class in a schema whose name needs quotes names the schema, the class
// and its function as PostgreSQL quotes them, so that a DBA can paste
// them into a policy or a psql \df.
func TestOperatorClassRefusalQuotesNames(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE SCHEMA "My Ops";
CREATE TYPE "My Ops".mood AS ENUM ('calm', 'cross');
CREATE FUNCTION "My Ops"."Cmp"("My Ops".mood, "My Ops".mood) RETURNS int LANGUAGE sql AS 'SELECT 0';
CREATE OPERATOR CLASS "My Ops"."Mood Btree" DEFAULT FOR TYPE "My Ops".mood USING btree AS
  FUNCTION 1 "My Ops"."Cmp"("My Ops".mood, "My Ops".mood);
ALTER TABLE public.countries ADD COLUMN rev23_m "My Ops".mood DEFAULT 'calm'`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	p := &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}}
	_, err = rewrite.Rewrite("SELECT rev23_m FROM countries ORDER BY rev23_m", cat, p)
	if err == nil {
		t.Fatal("rewritten")
	}
	for _, want := range []string{`"My Ops"."Mood Btree"`, `"My Ops"."Cmp"`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("the refusal does not name %s: %v", want, err)
		}
	}
}
