package policy

import (
	"context"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// CheckMaskKeys checks, as the service account srv, that the hash
// masks' keys are installed upstream and are the configured ones (each
// hashes a probe value to what the configured secret gives), that the
// hashing function runs as its owner, and that the service account cannot
// read the keys, naming the roles through which it can. Diagnostics about
// one key are at the secret of the first column using it, the others at
// the first hash mask's. Without hash masks it checks nothing.
func (c *Config) CheckMaskKeys(ctx context.Context, srv Server) hcl.Diagnostics {
	keys := c.maskKeys()
	if len(keys) == 0 {
		return nil
	}
	var diags hcl.Diagnostics
	install := fmt.Sprintf(" Install the keys with `pgveil mask-keys --config %s`, run as the database owner (see configs/README.md, mask = \"hash\").",
		c.configArg())
	fail := func(at *hcl.Range, summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary, Detail: detail, Subject: at})
	}
	first := keys[0].at
	for _, k := range keys[1:] {
		if k.at != nil && (first == nil || k.at.Filename == first.Filename && k.at.Start.Byte < first.Start.Byte) {
			first = k.at
		}
	}
	_, rows, err := srv.Query(ctx, `SELECT p.prosecdef,
		pg_catalog.has_table_privilege(CURRENT_USER, $1::pg_catalog.text, '`+maskKeysPrivileges+`')
		OR pg_catalog.has_any_column_privilege(CURRENT_USER, $1::pg_catalog.text, '`+maskKeysColumnPrivileges+`'),
		c.relowner OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
		JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass
		WHERE n.nspname OPERATOR(pg_catalog.=) $2 AND p.proname OPERATOR(pg_catalog.=) 'mask_hash'
		AND p.proargtypes OPERATOR(pg_catalog.=) '25 25'::pg_catalog.oidvector`,
		maskKeysTable, rewrite.InternalSchema)
	switch {
	case err != nil:
		fail(first, "Hash mask keys are not installed", fmt.Sprintf("Looking for the function %s(text, text) and the table %s as %s failed: %s.",
			maskHashFunction, maskKeysTable, c.Upstream.User, err)+install)
		return diags
	case len(rows) != 1:
		fail(first, "Hash mask keys are not installed", fmt.Sprintf("The function %s(text, text) or the table %s is missing or not visible to %s.",
			maskHashFunction, maskKeysTable, c.Upstream.User)+install)
		return diags
	}
	row := rows[0]
	if string(row[0]) != "t" {
		fail(first, "Hash mask function is not SECURITY DEFINER", fmt.Sprintf("%s must run as the owner of %s, so that the service account need not read the keys.",
			maskHashFunction, maskKeysTable)+install)
	}
	if owns := string(row[2]) == "t"; owns || string(row[1]) == "t" {
		fail(first, "Service account can read the hash mask keys", c.keyReaders(ctx, srv, owns))
	}
	for _, k := range keys {
		want := hex.EncodeToString(hmacWithPads(k.ipad, k.opad, []byte(maskKeyProbe)))
		_, r, err := srv.Query(ctx, `SELECT `+maskHashFunction+`($1, $2)`, maskKeyProbe, k.id)
		var problem string
		switch {
		case err != nil:
			problem = fmt.Sprintf("hashing a probe value with it upstream failed: %s", err)
		case len(r) != 1 || r[0][0] == nil:
			problem = fmt.Sprintf("%s has no key of its id (%s): the masked values would be NULL", maskKeysTable, k.id)
		case string(r[0][0]) != want:
			problem = "the key installed under its id hashes a probe value to another digest than the configured secret does " +
				"(the secret was changed, or the keys were installed from another configuration)"
		default:
			continue
		}
		fail(k.at, "Hash mask key is not installed", fmt.Sprintf("The key of %s is not the configured one: %s.",
			strings.Join(k.columns, ", "), problem)+install)
	}
	return diags
}

// maskKeysPrivileges are the privileges on the keys' table that let a
// role read or change the keys.
const maskKeysPrivileges = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"

// maskKeysColumnPrivileges are those of maskKeysPrivileges a grant of
// columns gives: has_table_privilege does not see them, and REVOKE ALL ON
// the table takes them too.
const maskKeysColumnPrivileges = "SELECT, INSERT, UPDATE, REFERENCES"

// keyReaders explains how the service account can read the keys' table
// and how to take it away: owning it (owns), a grant to it or to PUBLIC,
// or the roles it is a member of that can (pg_read_all_data, or a role
// granted the table), which REVOKE ALL ON the table does not touch.
func (c *Config) keyReaders(ctx context.Context, srv Server, owns bool) string {
	svc := quoteIdent(c.Upstream.User)
	detail := fmt.Sprintf("%s owns or has privileges on %s: a statement that got past the firewall could read the secrets.",
		c.Upstream.User, maskKeysTable)
	var fixes []string
	if owns {
		fixes = append(fixes, fmt.Sprintf("let another role own %s", maskKeysTable))
	}
	// NOTE: the catalogs are readable by every role; should a query fail
	// anyway, the advice is what can be said without it.
	svcOID := `(SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)`
	_, rows, err := srv.Query(ctx, `SELECT a.grantee OPERATOR(pg_catalog.=) 0
		FROM pg_catalog.pg_class c, pg_catalog.aclexplode(c.relacl) a
		WHERE c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass
		AND a.grantee OPERATOR(pg_catalog.=) ANY(ARRAY[0, `+svcOID+`])`, maskKeysTable)
	if err == nil {
		direct, public := false, false
		for _, r := range rows {
			if string(r[0]) == "t" {
				public = true
			} else {
				direct = true
			}
		}
		if direct {
			fixes = append(fixes, fmt.Sprintf("REVOKE ALL ON %s FROM %s", maskKeysTable, svc))
		}
		if public {
			fixes = append(fixes, fmt.Sprintf("REVOKE ALL ON %s FROM PUBLIC", maskKeysTable))
		}
	}
	_, rows, err = srv.Query(ctx, `SELECT r.rolname FROM pg_catalog.pg_auth_members m
		JOIN pg_catalog.pg_roles r ON r.oid OPERATOR(pg_catalog.=) m.roleid
		WHERE m.member OPERATOR(pg_catalog.=) `+svcOID+`
		AND (pg_catalog.has_table_privilege(r.oid, $1::pg_catalog.text, '`+maskKeysPrivileges+`')
		OR pg_catalog.has_any_column_privilege(r.oid, $1::pg_catalog.text, '`+maskKeysColumnPrivileges+`'))
		ORDER BY r.rolname`, maskKeysTable)
	if err == nil {
		for _, r := range rows {
			role := string(r[0])
			detail += fmt.Sprintf(" It is a member of %s, which can read it.", role)
			fixes = append(fixes, fmt.Sprintf("REVOKE %s FROM %s", quoteIdent(role), svc))
		}
	}
	if len(fixes) == 0 {
		fixes = append(fixes, fmt.Sprintf("REVOKE ALL ON %s FROM %s", maskKeysTable, svc))
	}
	fix := strings.Join(fixes, "; ")
	return detail + " " + strings.ToUpper(fix[:1]) + fix[1:] + "."
}

// configArg returns what to pass to --config to load this configuration
// again: its one file, or the directory holding its files; "…" when it
// was not read from files.
func (c *Config) configArg() string {
	if len(c.Files) == 0 {
		return "…"
	}
	if len(c.Files) == 1 {
		return c.Files[0]
	}
	dir := filepath.Dir(c.Files[0])
	for _, f := range c.Files[1:] {
		if filepath.Dir(f) != dir {
			return "…"
		}
	}
	return dir
}
