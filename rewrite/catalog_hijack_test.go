package rewrite_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestCatalogReadIgnoresOperatorsOnTheSearchPath: the catalog read runs
// on the pinned search_path, where a DBA with CREATE on a schema may
// define an operator that matches the catalog SQL's operands better than
// pg_catalog's (<> over oid and regnamespace has no exact match there).
// Such an operator ran the DBA's function as the service account on
// every catalog read and decided what the snapshot said: one that hid
// public's functions let ORDER BY over a DBA's enum run the DBA's
// default btree class unrefused.
func TestCatalogReadIgnoresOperatorsOnTheSearchPath(t *testing.T) {
	demoCatalog(t)
	ctx := context.Background()
	conn, err := cluster.Connect(ctx, "feedback")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `BEGIN;
CREATE TYPE public.rev22e_mood AS ENUM ('sad', 'ok');
CREATE FUNCTION public.rev22e_cmp(public.rev22e_mood, public.rev22e_mood) RETURNS int LANGUAGE plpgsql IMMUTABLE AS 'BEGIN RETURN 0; END';
CREATE OPERATOR CLASS public.rev22e_ops DEFAULT FOR TYPE public.rev22e_mood USING btree AS
  FUNCTION 1 public.rev22e_cmp(public.rev22e_mood, public.rev22e_mood);
CREATE TABLE public.rev22e_calls (n int);
CREATE FUNCTION public.rev22e_ne(oid, regnamespace) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO public.rev22e_calls VALUES (1);
  RETURN $1 OPERATOR(pg_catalog.<>) $2 AND $1 OPERATOR(pg_catalog.<>) 'public'::pg_catalog.regnamespace;
END$$;
CREATE OPERATOR public.<> (leftarg = oid, rightarg = regnamespace, function = public.rev22e_ne);
CREATE FUNCTION public.rev22e_eq(oid, regclass) RETURNS boolean LANGUAGE plpgsql VOLATILE AS $$
BEGIN
  INSERT INTO public.rev22e_calls VALUES (1);
  RETURN $1 OPERATOR(pg_catalog.=) $2;
END$$;
CREATE OPERATOR public.= (leftarg = oid, rightarg = regclass, function = public.rev22e_eq)`).ReadAll(); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = conn.Exec(ctx, "ROLLBACK").ReadAll() }()
	cat, err := rewrite.LoadCatalog(ctx, conn, []string{"public"})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("no DBA operator runs during the read", func(t *testing.T) {
		rows, err := conn.Exec(ctx, `SELECT pg_catalog.count(*) FROM public.rev22e_calls`).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		if n := string(rows[0].Rows[0][0]); n != "0" {
			t.Errorf("the DBA's operators ran %s times during LoadCatalog", n)
		}
	})
	t.Run("and the DBA's enum class still counts", func(t *testing.T) {
		_, err := rewrite.Rewrite(`SELECT m FROM (VALUES ('ok'::public.rev22e_mood)) v (m) ORDER BY m`, cat, &allowFunctions{fakePolicy: marie(t), allowed: map[string]bool{}})
		var r *rewrite.Refused
		if !errors.As(err, &r) || r.Rule != "function" || !strings.Contains(err.Error(), "rev22e_cmp") {
			t.Errorf("want a refusal by rule function naming rev22e_cmp, got %v", err)
		}
	})
}
