package adversarial_test

import (
	"context"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"
)

// TestAdversarialFuncs17 holds the angles of the audit of the allow-lists
// of catalog functions and relations (rewrite/functions.tsv and
// relations.tsv) that found something: views outside pg_catalog that
// show what a refused pg_catalog relation holds.
func TestAdversarialFuncs17(t *testing.T) {
	p := proxytest.StartDemo(t)
	ctx := context.Background()

	t.Run("the upstream account's user mapping options are refused in information_schema as in pg_catalog", func(t *testing.T) {
		// A foreign server the upstream account may use, with its
		// credentials in a user mapping: what postgres_fdw needs for a
		// governed foreign table. information_schema.user_mapping_options
		// shows the options of the current user's mappings, password
		// included, as pg_user_mappings (refused: server_state) does.
		const secret = "pw-of-pgveil-svc-on-zz-srv"
		setup := `CREATE FOREIGN DATA WRAPPER funcs17_fdw;
CREATE SERVER funcs17_srv FOREIGN DATA WRAPPER funcs17_fdw OPTIONS (host 'db.example');
GRANT USAGE ON FOREIGN SERVER funcs17_srv TO pgveil_svc;
CREATE USER MAPPING FOR pgveil_svc SERVER funcs17_srv OPTIONS (user 'remote', password '` + secret + `')`
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, setup); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "DROP SERVER funcs17_srv CASCADE; DROP FOREIGN DATA WRAPPER funcs17_fdw"); err != nil {
				t.Errorf("dropping the foreign server: %v", err)
			}
		})
		a := newAdvClient(t, p, "marie")
		for _, q := range []string{
			"SELECT * FROM information_schema.user_mapping_options",
			"SELECT option_value FROM information_schema.user_mapping_options WHERE option_name = 'password'",
			"SELECT * FROM INFORMATION_SCHEMA.USER_MAPPING_OPTIONS",
			"SELECT (u).option_value FROM information_schema.user_mapping_options u",
			"SELECT * FROM information_schema._pg_user_mappings",
			"SELECT * FROM pg_user_mappings",
		} {
			for _, r := range []advResult{a.simple(q), a.extended(q)} {
				if r.err == nil {
					t.Errorf("not refused: %s\n    -> %s", q, r)
				} else if !strings.Contains(r.err.Error(), "server_state") {
					t.Errorf("%s: refused by the wrong rule: %v", q, r.err)
				}
				if strings.Contains(r.String(), secret) {
					t.Errorf("%s shows the upstream account's password: %s", q, r)
				}
			}
		}
		// The servers and the mappings' names stay readable: clients list them.
		a.noError("SELECT * FROM information_schema.user_mappings")
		a.noError("SELECT * FROM information_schema.foreign_server_options")
	})

	t.Run("a relation's file node is hidden in pg_class as pg_relation_filenode hides it", func(t *testing.T) {
		// The file node changes when another session rewrites the table
		// (TRUNCATE, VACUUM FULL, CLUSTER), and with pg_database's oid it
		// is the file path pg_relation_filepath is refused for (files).
		if err := proxytest.Cluster.Exec(ctx, proxytest.DemoDB, "VACUUM FULL countries"); err != nil {
			t.Fatal(err)
		}
		node := proxytest.Direct(t, "SELECT pg_relation_filenode('countries')::text")[0][0]
		a := newAdvClient(t, p, "marie")
		a.refuse("SELECT pg_relation_filenode('countries')")
		for _, q := range []string{
			"SELECT relfilenode FROM pg_class WHERE relname = 'countries'",
			"SELECT c.relfilenode FROM pg_catalog.pg_class c WHERE c.relname = 'countries'",
			"SELECT (to_jsonb(c) ->> 'relfilenode') FROM pg_class c WHERE relname = 'countries'",
			"SELECT relname FROM pg_class WHERE relfilenode = " + node,
		} {
			for _, r := range []advResult{a.simple(q), a.extended(q)} {
				if r.err != nil {
					t.Errorf("%s: %v", q, r.err)
				} else if len(r.rows) > 0 && (r.first() == node || r.first() == "countries") {
					t.Errorf("%s shows the file node %s of countries: %s", q, node, r)
				}
			}
		}
		// Clients still tell mapped catalogs and views by it.
		a.expect("SELECT relfilenode FROM pg_class WHERE relname = 'pg_class'", "0")
		a.expect("SELECT relfilenode FROM pg_class WHERE relname = 'pg_tables'", "0")
	})
}
