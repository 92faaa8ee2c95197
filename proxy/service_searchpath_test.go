package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/policy"
)

// TestServiceQueriesIgnoreOperatorsBeforePGCatalog: with pg_catalog
// listed after a schema a DBA may create in, an = there of the same
// signature as pg_catalog's wins for a plain a = b. pgveil's own queries
// as the service account (the catalog read, the upstream checks, the
// pinned settings read back on every session) must not run it: they
// spell every operator OPERATOR(pg_catalog.op).
func TestServiceQueriesIgnoreOperatorsBeforePGCatalog(t *testing.T) {
	setupDemo(t)
	direct(t, `CREATE SCHEMA rev22e_dba`)
	t.Cleanup(func() { direct(t, `DROP SCHEMA rev22e_dba CASCADE`) })
	direct(t, `GRANT USAGE ON SCHEMA rev22e_dba TO pgveil_svc`)
	direct(t, `CREATE TABLE rev22e_dba.calls (q text)`)
	for _, typ := range []string{"text", "name", "oid", `"char"`} {
		fn := "rev22e_dba.eq_" + strings.Trim(typ, `"`)
		direct(t, `CREATE FUNCTION `+fn+`(`+typ+`, `+typ+`) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
			AS $$BEGIN INSERT INTO rev22e_dba.calls VALUES (pg_catalog.current_query()); RETURN $1 OPERATOR(pg_catalog.=) $2; END$$`)
		direct(t, `CREATE OPERATOR rev22e_dba.= (leftarg = `+typ+`, rightarg = `+typ+`, function = `+fn+`)`)
	}
	p, _ := startDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.SearchPath = `rev22e_dba, public, pg_catalog` })
	c := p.connect(t, "marie")
	if _, err := c.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	for _, r := range direct(t, `SELECT DISTINCT q FROM rev22e_dba.calls`) {
		t.Errorf("the DBA's = ran in pgveil's own query: %.300s", r[0])
	}
}
