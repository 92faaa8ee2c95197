package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/pgveil/pgveil/rewrite"
)

// The secret keys of hash masks live upstream, in a table of
// rewrite.InternalSchema that only its owner reads, and a SECURITY
// DEFINER function of that schema hashes with them. Statements name a
// key by its keyID only: PostgreSQL can be made to echo the statements
// pgveil sends (cursors, prepared statements, DEBUG messages), so
// nothing in them may help a user hash a guess. The service account may
// execute the function but not read the table: even a statement that got
// past the firewall could confirm guesses, not recover a key.
const (
	maskKeysTable    = rewrite.InternalSchema + ".mask_keys"
	maskHashFunction = rewrite.InternalSchema + ".mask_hash"
	// maskKeyProbe is the value CheckMaskKeys hashes upstream to prove a
	// key installed there is the configured one.
	maskKeyProbe = "pgveil mask key check"
)

// maskKeyID names a hash key upstream: HMAC-SHA256(secret, "pgveil mask
// key id"), in hex, cut to 128 bits. It reveals nothing of the secret,
// and masks sharing a secret share a key.
func maskKeyID(ipad, opad []byte) string {
	return hex.EncodeToString(hmacWithPads(ipad, opad, []byte("pgveil mask key id"))[:16])
}

// hmacWithPads is HMAC-SHA256 of msg from the padded keys.
func hmacWithPads(ipad, opad, msg []byte) []byte {
	inner := sha256.Sum256(append(append([]byte(nil), ipad...), msg...))
	outer := sha256.Sum256(append(append([]byte(nil), opad...), inner[:]...))
	return outer[:]
}

// maskKey is one secret key of the configuration's hash masks.
type maskKey struct {
	id         string
	ipad, opad []byte
	// columns are the masked columns using it, for messages.
	columns []string
}

// maskKeys returns the keys of the configuration's hash masks, by id.
func (c *Config) maskKeys() []*maskKey {
	byID := map[string]*maskKey{}
	for _, t := range c.Tables {
		for _, col := range t.Columns {
			m := &col.Mask
			if m.Kind != MaskHash || m.keyID == "" {
				continue
			}
			k := byID[m.keyID]
			if k == nil {
				k = &maskKey{id: m.keyID, ipad: m.ipad, opad: m.opad}
				byID[m.keyID] = k
			}
			k.columns = append(k.columns, t.Pattern.String()+"."+col.Name)
		}
	}
	out := make([]*maskKey, 0, len(byID))
	for _, k := range byID {
		sort.Strings(k.columns)
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].id < out[j].id })
	return out
}

// HasHashMasks reports whether a column is masked with mask = "hash".
func (c *Config) HasHashMasks() bool { return len(c.maskKeys()) > 0 }

// MaskKeysSQL returns the script a database owner runs once (and again
// after changing a secret) to install the hash masks' keys upstream: the
// schema, the keys' table readable by its owner only, the function, and
// EXECUTE for the service account. It holds the secrets: pipe it to psql,
// do not keep it.
func (c *Config) MaskKeysSQL() string {
	svc := pgx.Identifier{c.Upstream.User}.Sanitize()
	var b strings.Builder
	b.WriteString("-- pgveil: the secret keys of hash masks. Run as the owner of the database\n")
	b.WriteString("-- (not as the service account), e.g. pgveil mask-keys --config … | psql -v ON_ERROR_STOP=1 …\n")
	b.WriteString("BEGIN;\n")
	fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", rewrite.InternalSchema)
	fmt.Fprintf(&b, "REVOKE ALL ON SCHEMA %s FROM PUBLIC;\n", rewrite.InternalSchema)
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (id text PRIMARY KEY, ipad bytea NOT NULL, opad bytea NOT NULL);\n", maskKeysTable)
	fmt.Fprintf(&b, "REVOKE ALL ON TABLE %s FROM PUBLIC, %s;\n", maskKeysTable, svc)
	for _, k := range c.maskKeys() {
		fmt.Fprintf(&b, "-- %s\n", strings.Join(k.columns, ", "))
		fmt.Fprintf(&b, "INSERT INTO %s VALUES ('%s', '\\x%s', '\\x%s') ON CONFLICT (id) DO UPDATE SET ipad = EXCLUDED.ipad, opad = EXCLUDED.opad;\n",
			maskKeysTable, k.id, hex.EncodeToString(k.ipad), hex.EncodeToString(k.opad))
	}
	fmt.Fprintf(&b, `CREATE OR REPLACE FUNCTION %s(value text, key_id text) RETURNS text
LANGUAGE sql STABLE STRICT PARALLEL SAFE SECURITY DEFINER SET search_path = pg_catalog
AS $pgveil$
  SELECT pg_catalog.encode(pg_catalog.sha256(k.opad OPERATOR(pg_catalog.||)
    pg_catalog.sha256(k.ipad OPERATOR(pg_catalog.||) pg_catalog.convert_to(value, 'UTF8'))), 'hex')
  FROM %s k WHERE k.id OPERATOR(pg_catalog.=) key_id
$pgveil$;
`, maskHashFunction, maskKeysTable)
	fmt.Fprintf(&b, "REVOKE ALL ON FUNCTION %s(text, text) FROM PUBLIC;\n", maskHashFunction)
	fmt.Fprintf(&b, "GRANT USAGE ON SCHEMA %s TO %s;\n", rewrite.InternalSchema, svc)
	fmt.Fprintf(&b, "GRANT EXECUTE ON FUNCTION %s(text, text) TO %s;\n", maskHashFunction, svc)
	b.WriteString("COMMIT;\n")
	return b.String()
}

// CheckMaskKeys checks, as the service account on conn, that the hash
// masks' keys are installed upstream and are the configured ones (each
// hashes a probe value to what the configured secret gives), that the
// hashing function runs as its owner, and that the service account cannot
// read the keys. Without hash masks it checks nothing.
func (c *Config) CheckMaskKeys(ctx context.Context, conn *pgconn.PgConn) hcl.Diagnostics {
	keys := c.maskKeys()
	if len(keys) == 0 {
		return nil
	}
	var diags hcl.Diagnostics
	fail := func(summary, detail string) {
		diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagError, Summary: summary,
			Detail: detail + " Install the keys with `pgveil mask-keys --config …`, run as the database owner (see configs/README.md, mask = \"hash\")."})
	}
	res := conn.ExecParams(ctx, `SELECT p.prosecdef,
		pg_catalog.has_table_privilege(CURRENT_USER, $1::pg_catalog.text, 'SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER'),
		c.relowner OPERATOR(pg_catalog.=) (SELECT oid FROM pg_catalog.pg_roles WHERE rolname OPERATOR(pg_catalog.=) CURRENT_USER)
		FROM pg_catalog.pg_proc p JOIN pg_catalog.pg_namespace n ON n.oid OPERATOR(pg_catalog.=) p.pronamespace
		JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) $1::pg_catalog.regclass
		WHERE n.nspname OPERATOR(pg_catalog.=) $2 AND p.proname OPERATOR(pg_catalog.=) 'mask_hash'
		AND p.proargtypes OPERATOR(pg_catalog.=) '25 25'::pg_catalog.oidvector`,
		[][]byte{[]byte(maskKeysTable), []byte(rewrite.InternalSchema)}, nil, nil, nil).Read()
	if res.Err != nil || len(res.Rows) != 1 {
		fail("Hash mask keys are not installed", fmt.Sprintf("The function %s(text, text) or the table %s is missing or unreadable for %s (%v).",
			maskHashFunction, maskKeysTable, c.Upstream.User, res.Err))
		return diags
	}
	row := res.Rows[0]
	if string(row[0]) != "t" {
		fail("Hash mask function is not SECURITY DEFINER", fmt.Sprintf("%s must run as the owner of %s, so that the service account need not read the keys.", maskHashFunction, maskKeysTable))
	}
	if string(row[1]) == "t" || string(row[2]) == "t" {
		fail("Service account can read the hash mask keys", fmt.Sprintf("%s owns or has privileges on %s: a statement that got past the firewall could read the secrets. "+
			"Let another role own it and REVOKE ALL ON %s FROM %s.", c.Upstream.User, maskKeysTable, maskKeysTable, pgx.Identifier{c.Upstream.User}.Sanitize()))
	}
	for _, k := range keys {
		want := hex.EncodeToString(hmacWithPads(k.ipad, k.opad, []byte(maskKeyProbe)))
		r := conn.ExecParams(ctx, `SELECT `+maskHashFunction+`($1, $2)`, [][]byte{[]byte(maskKeyProbe), []byte(k.id)}, nil, nil, nil).Read()
		got := ""
		if r.Err == nil && len(r.Rows) == 1 {
			got = string(r.Rows[0][0])
		}
		if r.Err != nil || got != want {
			fail("Hash mask key is not installed", fmt.Sprintf("The key of %s is missing upstream or differs from the configured secret (%v).",
				strings.Join(k.columns, ", "), r.Err))
		}
	}
	return diags
}
