package scram

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// testClient is a minimal SCRAM-SHA-256 client (RFC 5802 section 3), kept
// independent of the server code under test except for the password
// normalisation.
type testClient struct {
	// user goes in "n="; PostgreSQL clients leave it empty.
	user string
	// password is the plaintext password; it is normalised like libpq
	// does before use.
	password string
	// nonce is the client nonce; a fixed one when empty.
	nonce string
	// gs2 is the GS2 header: "n,,", "y,," or "p=tls-server-end-point,,".
	gs2 string
	// cbData is appended to gs2 in the channel-binding attribute.
	cbData []byte

	// clientFirstBare, salted and authMessage are remembered between
	// steps.
	clientFirstBare string
	salted          []byte
	authMessage     string
}

// first returns the client-first-message.
func (c *testClient) first() []byte {
	if c.nonce == "" {
		c.nonce = "fyko+d2lbbFgONRv9qkxdawL"
	}
	if c.gs2 == "" {
		c.gs2 = "n,,"
	}
	c.clientFirstBare = "n=" + c.user + ",r=" + c.nonce
	return []byte(c.gs2 + c.clientFirstBare)
}

// final reads the server-first-message and returns the
// client-final-message.
func (c *testClient) final(serverFirst []byte) ([]byte, error) {
	fields := strings.Split(string(serverFirst), ",")
	if len(fields) != 3 || !strings.HasPrefix(fields[0], "r=") || !strings.HasPrefix(fields[1], "s=") || !strings.HasPrefix(fields[2], "i=") {
		return nil, fmt.Errorf("bad server-first-message %q", serverFirst)
	}
	nonce := fields[0][2:]
	if !strings.HasPrefix(nonce, c.nonce) || len(nonce) == len(c.nonce) {
		return nil, fmt.Errorf("bad nonce %q", nonce)
	}
	salt, err := base64.StdEncoding.DecodeString(fields[1][2:])
	if err != nil {
		return nil, fmt.Errorf("bad salt: %w", err)
	}
	iterations, err := strconv.Atoi(fields[2][2:])
	if err != nil {
		return nil, fmt.Errorf("bad iteration count: %w", err)
	}
	c.salted, err = pbkdf2.Key(sha256.New, normalizePassword(c.password), salt, iterations, sha256.Size)
	if err != nil {
		return nil, err
	}
	cbind := base64.StdEncoding.EncodeToString(append([]byte(c.gs2), c.cbData...))
	withoutProof := "c=" + cbind + ",r=" + nonce
	c.authMessage = c.clientFirstBare + "," + string(serverFirst) + "," + withoutProof

	clientKey := testHMAC(c.salted, "Client Key")
	storedKey := sha256.Sum256(clientKey)
	signature := testHMAC(storedKey[:], c.authMessage)
	proof := make([]byte, len(clientKey))
	for i := range proof {
		proof[i] = clientKey[i] ^ signature[i]
	}
	return []byte(withoutProof + ",p=" + base64.StdEncoding.EncodeToString(proof)), nil
}

// verify checks the server-final-message.
func (c *testClient) verify(serverFinal []byte) error {
	want := "v=" + base64.StdEncoding.EncodeToString(testHMAC(testHMAC(c.salted, "Server Key"), c.authMessage))
	if !bytes.Equal(serverFinal, []byte(want)) {
		return fmt.Errorf("server signature %q, want %q", serverFinal, want)
	}
	return nil
}

// testHMAC returns HMAC-SHA-256(key, msg).
func testHMAC(key []byte, msg string) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(msg))
	return mac.Sum(nil)
}

// exchange runs a whole conversation between conv and client, checking the
// server's signature on success.
func exchange(t *testing.T, conv *Conversation, mechanism string, client *testClient) error {
	t.Helper()
	serverFirst, err := conv.ServerFirst(mechanism, client.first())
	if err != nil {
		return err
	}
	clientFinal, err := client.final(serverFirst)
	if err != nil {
		t.Fatalf("client rejected server-first-message: %v", err)
	}
	serverFinal, err := conv.ServerFinal(clientFinal)
	if err != nil {
		return err
	}
	if err := client.verify(serverFinal); err != nil {
		t.Fatalf("client rejected server-final-message: %v", err)
	}
	return nil
}
