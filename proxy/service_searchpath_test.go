package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/policy"
)

// TestServiceQueriesIgnoreOperatorsBeforePGCatalog: with pg_catalog
// listed after a schema a DBA may create in, an = there of the same
// signature as pg_catalog's wins for a plain a = b. pgveil's own queries
// as the service account (the catalog read, the upstream checks, the
// pinned settings read back on every session) must not run it: they
// spell every operator OPERATOR(pg_catalog.op).
func TestServiceQueriesIgnoreOperatorsBeforePGCatalog(t *testing.T) {
	proxytest.SetupDemo(t)
	proxytest.Direct(t, `CREATE SCHEMA rev22e_dba`)
	t.Cleanup(func() { proxytest.Direct(t, `DROP SCHEMA rev22e_dba CASCADE`) })
	proxytest.Direct(t, `GRANT USAGE ON SCHEMA rev22e_dba TO pgveil_svc`)
	proxytest.Direct(t, `CREATE TABLE rev22e_dba.calls (q text)`)
	for _, typ := range []string{"text", "name", "oid", `"char"`} {
		fn := "rev22e_dba.eq_" + strings.Trim(typ, `"`)
		proxytest.Direct(t, `CREATE FUNCTION `+fn+`(`+typ+`, `+typ+`) RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
			AS $$BEGIN INSERT INTO rev22e_dba.calls VALUES (pg_catalog.current_query()); RETURN $1 OPERATOR(pg_catalog.=) $2; END$$`)
		proxytest.Direct(t, `CREATE OPERATOR rev22e_dba.= (leftarg = `+typ+`, rightarg = `+typ+`, function = `+fn+`)`)
	}
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) { c.Upstream.SearchPath = `rev22e_dba, public, pg_catalog` })
	c := p.Connect(t, "marie")
	if _, err := c.Exec(context.Background(), "SELECT 1"); err != nil {
		t.Fatal(err)
	}
	for _, r := range proxytest.Direct(t, `SELECT DISTINCT q FROM rev22e_dba.calls`) {
		t.Errorf("the DBA's = ran in pgveil's own query: %.300s", r[0])
	}
}
