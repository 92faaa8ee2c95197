package scram

import (
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// Sizes and defaults of PostgreSQL's SCRAM-SHA-256 implementation.
const (
	// KeyLen is the length of StoredKey, ServerKey and a client proof: the
	// size of a SHA-256 digest.
	KeyLen = sha256.Size
	// SaltLen is the length of the salt NewVerifier and MockVerifier make,
	// PostgreSQL's SCRAM_DEFAULT_SALT_LEN.
	SaltLen = 16
	// DefaultIterations is PostgreSQL's default scram_iterations.
	DefaultIterations = 4096
)

// verifierPrefix starts every verifier in PostgreSQL's pg_authid format.
const verifierPrefix = "SCRAM-SHA-256$"

// Verifier is what a server stores for a SCRAM-SHA-256 user: never the
// password itself.
//
// NOTE: a Verifier returned by ParseVerifier, NewVerifier or MockVerifier
// always has Iterations > 0, a non-empty Salt, and KeyLen-byte StoredKey and
// ServerKey. A Conversation against any other Verifier cannot succeed.
type Verifier struct {
	// Iterations is the PBKDF2 iteration count the client must use.
	Iterations int
	// Salt is the raw (decoded) salt sent to the client.
	Salt []byte
	// StoredKey is H(ClientKey): what the client proof is checked against.
	StoredKey []byte
	// ServerKey is the key the server signs the exchange with, proving to
	// the client that it knows the verifier.
	ServerKey []byte
}

// ParseVerifier parses a verifier in PostgreSQL's pg_authid format:
//
//	SCRAM-SHA-256$<iterations>:<base64 salt>$<base64 StoredKey>:<base64 ServerKey>
func ParseVerifier(s string) (Verifier, error) {
	rest, ok := strings.CutPrefix(s, verifierPrefix)
	if !ok {
		return Verifier{}, fmt.Errorf("parsing verifier: does not start with %q", verifierPrefix)
	}
	params, keys, ok := strings.Cut(rest, "$")
	if !ok {
		return Verifier{}, errors.New(`parsing verifier: missing "$" between <iterations>:<salt> and <StoredKey>:<ServerKey>`)
	}
	iterText, saltText, ok := strings.Cut(params, ":")
	if !ok {
		return Verifier{}, errors.New(`parsing verifier: missing ":" between iterations and salt`)
	}
	storedText, serverText, ok := strings.Cut(keys, ":")
	if !ok {
		return Verifier{}, errors.New(`parsing verifier: missing ":" between StoredKey and ServerKey`)
	}

	iterations, err := parseIterations(iterText)
	if err != nil {
		return Verifier{}, fmt.Errorf("parsing verifier: %w", err)
	}
	salt, err := base64.StdEncoding.DecodeString(saltText)
	if err != nil {
		return Verifier{}, fmt.Errorf("parsing verifier: salt is not valid base64: %w", err)
	}
	if len(salt) == 0 {
		return Verifier{}, errors.New("parsing verifier: salt is empty")
	}
	storedKey, err := parseKey("StoredKey", storedText)
	if err != nil {
		return Verifier{}, fmt.Errorf("parsing verifier: %w", err)
	}
	serverKey, err := parseKey("ServerKey", serverText)
	if err != nil {
		return Verifier{}, fmt.Errorf("parsing verifier: %w", err)
	}
	return Verifier{Iterations: iterations, Salt: salt, StoredKey: storedKey, ServerKey: serverKey}, nil
}

// parseIterations accepts a positive decimal that fits PostgreSQL's int.
func parseIterations(s string) (int, error) {
	if s == "" || strings.Trim(s, "0123456789") != "" {
		return 0, fmt.Errorf("iteration count %q is not a positive integer", s)
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil || n <= 0 {
		return 0, fmt.Errorf("iteration count %q is not a positive integer below 2^31", s)
	}
	return int(n), nil
}

// parseKey decodes one base64 key of a verifier and checks its length.
func parseKey(name, s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%s is not valid base64: %w", name, err)
	}
	if len(key) != KeyLen {
		return nil, fmt.Errorf("%s is %d bytes long, want %d", name, len(key), KeyLen)
	}
	return key, nil
}

// String renders v in the format ParseVerifier reads, the one PostgreSQL
// stores in pg_authid.rolpassword.
func (v Verifier) String() string {
	var b strings.Builder
	b.WriteString(verifierPrefix)
	b.WriteString(strconv.Itoa(v.Iterations))
	b.WriteByte(':')
	b.WriteString(base64.StdEncoding.EncodeToString(v.Salt))
	b.WriteByte('$')
	b.WriteString(base64.StdEncoding.EncodeToString(v.StoredKey))
	b.WriteByte(':')
	b.WriteString(base64.StdEncoding.EncodeToString(v.ServerKey))
	return b.String()
}

// NewVerifier derives a verifier for password with a random SaltLen-byte
// salt and the given PBKDF2 iteration count (DefaultIterations is what
// PostgreSQL uses).
//
// The password is normalised as PostgreSQL does: with SASLprep (RFC 4013)
// when it is valid UTF-8 that SASLprep accepts, otherwise as its raw bytes.
// An empty password is refused, as PostgreSQL refuses it.
func NewVerifier(password string, iterations int) (Verifier, error) {
	if password == "" {
		return Verifier{}, errors.New("creating verifier: empty password")
	}
	if iterations <= 0 {
		return Verifier{}, fmt.Errorf("creating verifier: iteration count %d is not positive", iterations)
	}
	salt := make([]byte, SaltLen)
	if _, err := rand.Read(salt); err != nil {
		return Verifier{}, fmt.Errorf("creating verifier: reading random salt: %w", err)
	}
	v, err := deriveVerifier(normalizePassword(password), salt, iterations)
	if err != nil {
		return Verifier{}, fmt.Errorf("creating verifier: %w", err)
	}
	return v, nil
}

// deriveVerifier computes StoredKey and ServerKey from an already
// normalised password (RFC 5802 section 3).
func deriveVerifier(password string, salt []byte, iterations int) (Verifier, error) {
	salted, err := pbkdf2.Key(sha256.New, password, salt, iterations, KeyLen)
	if err != nil {
		return Verifier{}, fmt.Errorf("deriving salted password: %w", err)
	}
	clientKey := hmacSHA256(salted, []byte("Client Key"))
	storedKey := sha256.Sum256(clientKey)
	return Verifier{
		Iterations: iterations,
		Salt:       salt,
		StoredKey:  storedKey[:],
		ServerKey:  hmacSHA256(salted, []byte("Server Key")),
	}, nil
}

// MockVerifier returns the verifier a Conversation runs against when
// username is unknown, so that the exchange looks like a real one: the salt
// is the first SaltLen bytes of HMAC-SHA-256(secret, username), the
// iteration count is DefaultIterations, and the keys are derived from
// secret and username too. An exchange against it always fails: pass
// known=false to NewConversation.
//
// NOTE: secret must be random (at least 32 bytes) and stable for as long as
// possible (ideally across restarts): a salt that changes between two
// attempts for the same name tells an attacker the user does not exist.
// This is PostgreSQL's scram_mock_salt with a keyed hash.
func MockVerifier(username string, secret []byte) Verifier {
	return Verifier{
		Iterations: DefaultIterations,
		Salt:       hmacSHA256(secret, []byte(username))[:SaltLen],
		StoredKey:  hmacSHA256(secret, []byte("pgveil mock StoredKey\x00"+username)),
		ServerKey:  hmacSHA256(secret, []byte("pgveil mock ServerKey\x00"+username)),
	}
}

// hmacSHA256 returns HMAC-SHA-256(key, msg).
func hmacSHA256(key, msg []byte) []byte {
	mac := hmac.New(sha256.New, key)
	mac.Write(msg)
	return mac.Sum(nil)
}
