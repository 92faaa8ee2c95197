package audit

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"hash"
)

// chain computes the MACs of a chain's lines.
type chain struct {
	// h is HMAC-SHA256 under the key, or SHA-256 without one.
	h hash.Hash
	// sum is scratch space for the digest.
	sum []byte
}

// newChain returns the MAC of key; an empty key gives plain SHA-256,
// which shows accidents but not forgeries.
func newChain(key []byte) *chain {
	c := &chain{h: sha256.New(), sum: make([]byte, 0, sha256.Size)}
	if len(key) > 0 {
		c.h = hmac.New(sha256.New, key)
	}
	return c
}

// mac returns the hex MAC of a line's signed bytes.
func (c *chain) mac(signed []byte) string {
	c.h.Reset()
	c.h.Write(signed)
	c.sum = c.h.Sum(c.sum[:0])
	return hex.EncodeToString(c.sum)
}

// macInto writes the hex MAC of a line's signed bytes into dst: mac
// without the allocation of its string, for the writer's every record.
func (c *chain) macInto(dst *[2 * sha256.Size]byte, signed []byte) {
	c.h.Reset()
	c.h.Write(signed)
	c.sum = c.h.Sum(c.sum[:0])
	hex.Encode(dst[:], c.sum)
}

// isHexMAC reports whether s is 64 lower-case hex digits.
func isHexMAC(s string) bool {
	if len(s) != 2*sha256.Size {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
