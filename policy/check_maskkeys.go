package policy

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// CheckMaskKeys checks, as the service account srv, that the hash
// masks' keys are installed upstream and are the configured ones (each
// hashes a probe value to what the configured secret gives), that the
// hashing function runs as its owner, and that the service account cannot
// read the keys. Without hash masks it checks nothing.
func (c *Config) CheckMaskKeys(ctx context.Context, srv Server) hcl.Diagnostics {
	keys := c.maskKeys()
	if len(keys) == 0 {
		return nil
	}
	var diags hcl.Diagnostics
	fail := func(summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
			Detail: detail + " Install the keys with `pgveil mask-keys --config …`, run as the database owner (see configs/README.md, mask = \"hash\")."})
	}
	_, rows, err := srv.Query(ctx, `SELECT p.prosecdef,
		pg_catalog.has_table_privilege(CURRENT_USER, $1::pg_catalog.text, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
		c.relowner OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
		JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass
		WHERE n.nspname OPERATOR(pg_catalog.=) $2 AND p.proname OPERATOR(pg_catalog.=) 'mask_hash'
		AND p.proargtypes OPERATOR(pg_catalog.=) '25 25'::pg_catalog.oidvector`,
		maskKeysTable, rewrite.InternalSchema)
	if err != nil || len(rows) != 1 {
		fail("Hash mask keys are not installed", fmt.Sprintf("The function %s(text, text) or the table %s is missing or unreadable for %s (%v).",
			maskHashFunction, maskKeysTable, c.Upstream.User, err))
		return diags
	}
	row := rows[0]
	if string(row[0]) != "t" {
		fail("Hash mask function is not SECURITY DEFINER", fmt.Sprintf("%s must run as the owner of %s, so that the service account need not read the keys.", maskHashFunction, maskKeysTable))
	}
	if string(row[1]) == "t" || string(row[2]) == "t" {
		fail("Service account can read the hash mask keys", fmt.Sprintf("%s owns or has privileges on %s: a statement that got past the firewall could read the secrets. "+
			"Let another role own it and REVOKE ALL ON %s FROM %s.", c.Upstream.User, maskKeysTable, maskKeysTable, quoteIdent(c.Upstream.User)))
	}
	for _, k := range keys {
		want := hex.EncodeToString(hmacWithPads(k.ipad, k.opad, []byte(maskKeyProbe)))
		_, r, err := srv.Query(ctx, `SELECT `+maskHashFunction+`($1, $2)`, maskKeyProbe, k.id)
		got := ""
		if err == nil && len(r) == 1 {
			got = string(r[0][0])
		}
		if err != nil || got != want {
			fail("Hash mask key is not installed", fmt.Sprintf("The key of %s is missing upstream or differs from the configured secret (%v).",
				strings.Join(k.columns, ", "), err))
		}
	}
	return diags
}
