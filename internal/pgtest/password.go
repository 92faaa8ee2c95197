package pgtest

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
)

// randomPassword returns a fresh random password made of hex digits, so that
// it needs no escaping in URLs or SQL literals.
func randomPassword() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("pgtest: random password: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}
