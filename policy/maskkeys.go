package policy

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"sort"
	"strings"

	"github.com/hashicorp/hcl/v2"

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
	maskKeysTable = rewrite.InternalSchema + ".mask_keys"
	// maskKeysLoad stages the keys MaskKeysSQL installs, within its
	// transaction.
	maskKeysLoad     = rewrite.InternalSchema + ".mask_keys_load"
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
	// at is the secret attribute of the first of columns' blocks (the
	// column block when there is none), for diagnostics.
	at *hcl.Range
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
			name := t.Pattern.String() + "." + col.Name
			if len(k.columns) == 0 || name < k.columns[0] {
				k.at = col.DeclRange.Ptr()
				if a := c.attrs["table."+t.Pattern.String()+".column."+col.Name+".secret"]; a != nil {
					k.at = a.Expr.Range().Ptr()
				}
			}
			k.columns = append(k.columns, name)
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
// EXECUTE for the service account. It holds the secrets, as the data of a
// COPY FROM STDIN (psql reads it from the script), never in a statement:
// pipe it to psql, do not keep it.
func (c *Config) MaskKeysSQL() string {
	svc := quoteIdent(c.Upstream.User)
	var b strings.Builder
	b.WriteString("-- pgveil: the secret keys of hash masks. Run as the owner of the database\n")
	b.WriteString("-- (not as the service account), e.g. pgveil mask-keys --config … | psql -v ON_ERROR_STOP=1 …\n")
	b.WriteString("BEGIN;\n")
	fmt.Fprintf(&b, "CREATE SCHEMA IF NOT EXISTS %s;\n", rewrite.InternalSchema)
	fmt.Fprintf(&b, "REVOKE ALL ON SCHEMA %s FROM PUBLIC;\n", rewrite.InternalSchema)
	fmt.Fprintf(&b, "CREATE TABLE IF NOT EXISTS %s (id text PRIMARY KEY, ipad bytea NOT NULL, opad bytea NOT NULL);\n", maskKeysTable)
	fmt.Fprintf(&b, "REVOKE ALL ON TABLE %s FROM PUBLIC, %s;\n", maskKeysTable, svc)
	// The keys travel as COPY data, never in a statement's text: the
	// server logs statements (log_statement = 'mod' or 'all', and any
	// failing one by default, log_min_error_statement), and shows them in
	// pg_stat_activity, but not the rows a COPY reads. A table of the
	// transaction's own, dropped before COMMIT, stages them for the
	// upsert.
	keys := c.maskKeys()
	for _, k := range keys {
		fmt.Fprintf(&b, "-- key %s: %s\n", k.id, strings.Join(k.columns, ", "))
	}
	fmt.Fprintf(&b, "CREATE TABLE %s (id text NOT NULL, ipad bytea NOT NULL, opad bytea NOT NULL);\n", maskKeysLoad)
	fmt.Fprintf(&b, "COPY %s (id, ipad, opad) FROM STDIN;\n", maskKeysLoad)
	for _, k := range keys {
		// NOTE: COPY's text format reads a backslash as an escape:
		// \\x is bytea's hex input \x. The id and the pads are hex.
		fmt.Fprintf(&b, "%s\t\\\\x%s\t\\\\x%s\n", k.id, hex.EncodeToString(k.ipad), hex.EncodeToString(k.opad))
	}
	b.WriteString("\\.\n")
	fmt.Fprintf(&b, "INSERT INTO %s SELECT id, ipad, opad FROM %s ON CONFLICT (id) DO UPDATE SET ipad = EXCLUDED.ipad, opad = EXCLUDED.opad;\n",
		maskKeysTable, maskKeysLoad)
	fmt.Fprintf(&b, "DROP TABLE %s;\n", maskKeysLoad)
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

// quoteIdent quotes an identifier for SQL text, as pgx.Identifier's
// Sanitize does: NUL bytes dropped, double quotes doubled.
func quoteIdent(name string) string {
	return `"` + strings.ReplaceAll(strings.ReplaceAll(name, "\x00", ""), `"`, `""`) + `"`
}
