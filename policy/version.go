package policy

import (
	"crypto/sha256"
	"encoding/hex"

	"github.com/hashicorp/hcl/v2"
)

// filesDigest hashes the configuration files' names and bytes, in the
// order they were read.
func filesDigest(paths []string, files []*hcl.File) [32]byte {
	h := sha256.New()
	writeField(h, "pgveil configuration v1")
	for i, f := range files {
		writeField(h, paths[i])
		writeField(h, string(f.Bytes))
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// Version returns the policy version: the hex SHA-256 of the
// configuration files (names and bytes) and of the identity rows of ids.
// Two loads of the same files with the same identity rows have the same
// version. ids may be nil for the files alone.
//
// NOTE: values read with env() are not part of Version (they may be
// secrets); they are part of every policy key (UserPolicy.Key).
func (c *Config) Version(ids *Identities) string {
	h := sha256.New()
	writeField(h, "pgveil policy version v1")
	h.Write(c.digest[:])
	if ids != nil {
		h.Write(ids.digest[:])
	}
	return hex.EncodeToString(h.Sum(nil))
}

// policyKey returns the key of login's compiled policy: it changes with
// the version, the environment variables the configuration read, and the
// login.
func (c *Config) policyKey(ids *Identities, login string) string {
	h := sha256.New()
	writeField(h, "pgveil policy key v1")
	writeField(h, c.Version(ids))
	h.Write(c.envDigest[:])
	writeField(h, login)
	return hex.EncodeToString(h.Sum(nil))
}
