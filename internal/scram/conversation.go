package scram

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
)

// Mechanism names, as sent in AuthenticationSASL and chosen in
// SASLInitialResponse.
const (
	// SCRAMSHA256 is SCRAM-SHA-256 without channel binding.
	SCRAMSHA256 = "SCRAM-SHA-256"
	// SCRAMSHA256Plus is SCRAM-SHA-256 with tls-server-end-point channel
	// binding.
	SCRAMSHA256Plus = "SCRAM-SHA-256-PLUS"
)

// channelBindingType is the only channel-binding type PostgreSQL (and so
// pgveil) supports.
const channelBindingType = "tls-server-end-point"

// serverNonceLen is the number of random bytes in the server's part of the
// nonce, PostgreSQL's SCRAM_RAW_NONCE_LEN.
const serverNonceLen = 18

var (
	// ErrAuthFailed reports a wrong password or an unknown user; the two
	// are indistinguishable on purpose.
	ErrAuthFailed = errors.New("password authentication failed")
	// ErrMalformed is wrapped by every error reporting a client that does
	// not follow the protocol: a malformed message, an unsupported
	// mechanism, a bad GS2 header, a channel-binding mismatch or downgrade,
	// a nonce mismatch, or a message out of order. PostgreSQL answers those
	// with SQLSTATE 08P01 (protocol_violation).
	ErrMalformed = errors.New("malformed SCRAM message")
)

// malformed returns an error wrapping ErrMalformed.
func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
}

// Mechanisms returns the mechanisms to offer in AuthenticationSASL, in
// order of preference: SCRAM-SHA-256-PLUS first when the connection can do
// channel binding (it uses TLS and TLSServerEndPoint returned data), then
// SCRAM-SHA-256, like PostgreSQL.
func Mechanisms(channelBinding bool) []string {
	if channelBinding {
		return []string{SCRAMSHA256Plus, SCRAMSHA256}
	}
	return []string{SCRAMSHA256}
}

// state is where a Conversation stands.
type state int

const (
	// stateStart waits for the client-first-message.
	stateStart state = iota
	// stateFirstSent waits for the client-final-message.
	stateFirstSent
	// stateDone is final: the exchange succeeded or failed.
	stateDone
)

// Conversation is the server side of one SCRAM-SHA-256 exchange. Call
// ServerFirst, then ServerFinal; any error ends the conversation.
//
// A Conversation is not safe for concurrent use.
type Conversation struct {
	// verifier is the user's verifier, or a MockVerifier when !known.
	verifier Verifier
	// known is false for a mock exchange, which must fail at the end.
	known bool
	// cbData is the tls-server-end-point data, nil without TLS.
	cbData []byte

	// state is where the exchange stands.
	state state
	// plus is true when the client chose SCRAM-SHA-256-PLUS.
	plus bool
	// bound is true once an exchange with plus succeeded.
	bound bool
	// gs2Header is the client's GS2 header, e.g. "n,,"; cbind-input starts
	// with it.
	gs2Header []byte
	// clientFirstBare is client-first-message-bare, part of AuthMessage.
	clientFirstBare []byte
	// nonce is the client nonce followed by the server nonce.
	nonce []byte
	// serverFirst is server-first-message, part of AuthMessage.
	serverFirst []byte
	// fixedNonce, when set by a test, replaces the random server nonce so
	// that published test vectors can be replayed.
	fixedNonce []byte
}

// NewConversation starts an exchange. v is the user's verifier; when known
// is false the exchange runs against v (a MockVerifier) and always fails at
// the end, after the same work as a real one. cbData is the
// tls-server-end-point channel-binding data of the client connection (see
// TLSServerEndPoint), or nil without TLS.
//
// NOTE: when cbData is non-nil the caller must have offered
// Mechanisms(true): a client that says it could bind but believes the
// server cannot ("y" flag) is then rejected as a downgrade attack.
func NewConversation(v Verifier, known bool, cbData []byte) *Conversation {
	return &Conversation{verifier: v, known: known, cbData: cbData}
}

// ChannelBound reports whether the exchange succeeded with
// SCRAM-SHA-256-PLUS, binding the authentication to the TLS connection.
func (c *Conversation) ChannelBound() bool {
	return c.bound
}

// ServerFirst handles the mechanism the client chose and its
// client-first-message (the data of SASLInitialResponse), and returns the
// server-first-message to send in AuthenticationSASLContinue.
//
// As in PostgreSQL, the user name inside the message ("n=") is ignored:
// the one that counts came in the startup packet, and clients send an
// empty one.
func (c *Conversation) ServerFirst(mechanism string, clientFirst []byte) ([]byte, error) {
	if c.state != stateStart {
		c.state = stateDone
		return nil, malformed("unexpected client-first-message")
	}
	c.state = stateDone // until proven otherwise
	if err := c.readClientFirst(mechanism, clientFirst); err != nil {
		return nil, err
	}

	if c.fixedNonce != nil {
		c.nonce = append(c.nonce, c.fixedNonce...)
	} else {
		raw := make([]byte, serverNonceLen)
		if _, err := rand.Read(raw); err != nil {
			return nil, fmt.Errorf("generating server nonce: %w", err)
		}
		c.nonce = base64.StdEncoding.AppendEncode(c.nonce, raw)
	}

	msg := make([]byte, 0, 64+len(c.nonce))
	msg = append(msg, "r="...)
	msg = append(msg, c.nonce...)
	msg = append(msg, ",s="...)
	msg = base64.StdEncoding.AppendEncode(msg, c.verifier.Salt)
	msg = append(msg, ",i="...)
	msg = strconv.AppendInt(msg, int64(c.verifier.Iterations), 10)
	c.serverFirst = msg
	c.state = stateFirstSent
	return bytes.Clone(msg), nil
}

// readClientFirst parses the client-first-message (RFC 5802 section 7):
//
//	gs2-header client-first-message-bare
//	gs2-header = ("p=" cb-name / "n" / "y") "," [authzid] ","
//	client-first-message-bare = [reserved-mext ","] username "," nonce ["," extensions]
func (c *Conversation) readClientFirst(mechanism string, msg []byte) error {
	switch {
	case mechanism == SCRAMSHA256:
	case mechanism == SCRAMSHA256Plus && c.cbData != nil:
		c.plus = true
	default:
		return malformed("client selected an unsupported SASL mechanism %s", strconv.QuoteToASCII(mechanism))
	}
	if len(msg) == 0 {
		return malformed("empty client-first-message")
	}
	if bytes.IndexByte(msg, 0) >= 0 {
		return malformed("NUL byte in client-first-message")
	}

	p := &parser{msg: msg}
	switch flag := p.peek(); flag {
	case 'n', 'y':
		if c.plus {
			return malformed("client selected %s, but the SCRAM message does not include channel binding data", SCRAMSHA256Plus)
		}
		if flag == 'y' && c.cbData != nil {
			return malformed("client supports channel binding but thinks the server does not; this server does support it (possible downgrade attack)")
		}
		p.pos++
	case 'p':
		if !c.plus {
			return malformed("client selected %s without channel binding, but the SCRAM message includes channel binding data", SCRAMSHA256)
		}
		p.pos++
		if p.peek() != '=' {
			return malformed("expected '=' after channel-binding flag 'p'")
		}
		p.pos++
		end := bytes.IndexByte(msg[p.pos:], ',')
		if end < 0 {
			return malformed("comma expected after channel-binding flag, got end of message")
		}
		if name := msg[p.pos : p.pos+end]; string(name) != channelBindingType {
			return malformed("unsupported channel-binding type %s", strconv.QuoteToASCII(string(name)))
		}
		p.pos += end
	default:
		return malformed("unexpected channel-binding flag %s", describeByte(p.msg, p.pos))
	}
	if p.peek() != ',' {
		return malformed("comma expected after channel-binding flag, got %s", describeByte(p.msg, p.pos))
	}
	p.pos++
	if p.peek() == 'a' {
		return malformed("client uses an authorization identity, which is not supported")
	}
	if p.peek() != ',' {
		return malformed("unexpected attribute %s in client-first-message", describeByte(p.msg, p.pos))
	}
	p.pos++
	c.gs2Header = bytes.Clone(msg[:p.pos])
	c.clientFirstBare = bytes.Clone(msg[p.pos:])

	if p.peek() == 'm' {
		return malformed("client requires a mandatory SCRAM extension, which is not supported")
	}
	if _, err := p.attr('n'); err != nil {
		return err
	}
	nonce, err := p.attr('r')
	if err != nil {
		return err
	}
	if len(nonce) == 0 {
		return malformed("empty client nonce")
	}
	for _, b := range nonce {
		if b < 0x21 || b > 0x7e {
			return malformed("non-printable character in client nonce")
		}
	}
	// Optional extensions: ignored, like PostgreSQL.
	for !p.done() {
		if _, _, err := p.anyAttr(); err != nil {
			return err
		}
	}
	c.nonce = append(make([]byte, 0, len(nonce)+base64.StdEncoding.EncodedLen(serverNonceLen)), nonce...)
	return nil
}

// ServerFinal handles the client-final-message (the data of SASLResponse)
// and returns the server-final-message ("v=…") to send in
// AuthenticationSASLFinal. It returns ErrAuthFailed when the proof is wrong
// or the conversation runs against a mock verifier, and an error wrapping
// ErrMalformed when the message breaks the protocol; the caller then ends
// the session with an ErrorResponse.
func (c *Conversation) ServerFinal(clientFinal []byte) ([]byte, error) {
	if c.state != stateFirstSent {
		c.state = stateDone
		return nil, malformed("unexpected client-final-message")
	}
	c.state = stateDone
	withoutProof, proof, err := c.readClientFinal(clientFinal)
	if err != nil {
		return nil, err
	}

	authMessage := make([]byte, 0, len(c.clientFirstBare)+len(c.serverFirst)+len(withoutProof)+2)
	authMessage = append(authMessage, c.clientFirstBare...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, c.serverFirst...)
	authMessage = append(authMessage, ',')
	authMessage = append(authMessage, withoutProof...)

	// ClientKey = ClientProof XOR HMAC(StoredKey, AuthMessage); the client
	// knows the password iff H(ClientKey) == StoredKey.
	//
	// NOTE: this runs, and costs the same, for known and unknown users, so
	// that timing does not tell them apart.
	clientKey := hmacSHA256(c.verifier.StoredKey, authMessage)
	subtle.XORBytes(clientKey, clientKey, proof)
	computed := sha256.Sum256(clientKey)
	match := subtle.ConstantTimeCompare(computed[:], c.verifier.StoredKey)
	known := 0
	if c.known {
		known = 1
	}
	if match&known != 1 {
		return nil, ErrAuthFailed
	}

	c.bound = c.plus
	msg := append([]byte("v="), base64.StdEncoding.EncodeToString(hmacSHA256(c.verifier.ServerKey, authMessage))...)
	return msg, nil
}

// readClientFinal parses the client-final-message and checks its channel
// binding and nonce:
//
//	client-final-message = channel-binding "," nonce ["," extensions] "," proof
//
// It returns client-final-message-without-proof and the decoded proof.
func (c *Conversation) readClientFinal(msg []byte) (withoutProof, proof []byte, err error) {
	if len(msg) == 0 {
		return nil, nil, malformed("empty client-final-message")
	}
	if bytes.IndexByte(msg, 0) >= 0 {
		return nil, nil, malformed("NUL byte in client-final-message")
	}
	p := &parser{msg: msg}

	cbind, err := p.attr('c')
	if err != nil {
		return nil, nil, err
	}
	want := c.gs2Header
	if c.plus {
		want = append(bytes.Clone(c.gs2Header), c.cbData...)
	}
	if subtle.ConstantTimeCompare(cbind, []byte(base64.StdEncoding.EncodeToString(want))) != 1 {
		if c.plus {
			return nil, nil, malformed("SCRAM channel binding check failed")
		}
		return nil, nil, malformed("unexpected channel-binding attribute in client-final-message")
	}

	nonce, err := p.attr('r')
	if err != nil {
		return nil, nil, err
	}
	if subtle.ConstantTimeCompare(nonce, c.nonce) != 1 {
		return nil, nil, malformed("nonce mismatch")
	}

	// Optional extensions, ignored, then the proof, which must come last.
	for {
		if p.done() {
			return nil, nil, malformed("client-final-message has no proof")
		}
		start := p.pos
		name, value, err := p.anyAttr()
		if err != nil {
			return nil, nil, err
		}
		if name != 'p' {
			continue
		}
		if !p.done() || msg[len(msg)-1] == ',' {
			return nil, nil, malformed("garbage at end of client-final-message")
		}
		proof, err := base64.StdEncoding.DecodeString(string(value))
		if err != nil || len(proof) != KeyLen {
			return nil, nil, malformed("malformed proof in client-final-message")
		}
		return msg[:start-1], proof, nil
	}
}

// parser walks a comma-separated list of SCRAM attributes ("x=value").
type parser struct {
	// msg is the whole message.
	msg []byte
	// pos is the index of the next unread byte.
	pos int
}

// peek returns the next byte, or 0 at the end (NUL cannot occur: callers
// reject it first).
func (p *parser) peek() byte {
	if p.pos < len(p.msg) {
		return p.msg[p.pos]
	}
	return 0
}

// done reports whether the whole message was read.
func (p *parser) done() bool {
	return p.pos >= len(p.msg)
}

// attr reads the attribute name "=" value, and the comma after it if any.
func (p *parser) attr(name byte) ([]byte, error) {
	if p.peek() != name {
		return nil, malformed("attribute '%c' expected, %s found", name, describeByte(p.msg, p.pos))
	}
	return p.value(name)
}

// anyAttr reads any attribute (ALPHA "=" value) and the comma after it if
// any.
func (p *parser) anyAttr() (byte, []byte, error) {
	name := p.peek()
	if !('A' <= name && name <= 'Z' || 'a' <= name && name <= 'z') {
		return 0, nil, malformed("attribute expected, %s found", describeByte(p.msg, p.pos))
	}
	value, err := p.value(name)
	return name, value, err
}

// value reads "=" value after an attribute name, and the comma after it.
func (p *parser) value(name byte) ([]byte, error) {
	p.pos++
	if p.peek() != '=' {
		return nil, malformed("expected '=' after attribute '%c'", name)
	}
	p.pos++
	start := p.pos
	end := bytes.IndexByte(p.msg[start:], ',')
	if end < 0 {
		p.pos = len(p.msg)
		return p.msg[start:], nil
	}
	p.pos = start + end + 1
	return p.msg[start : start+end], nil
}

// describeByte renders msg[i] for an error message without echoing
// arbitrary bytes from an unauthenticated client: printable ASCII quoted,
// anything else in hex.
func describeByte(msg []byte, i int) string {
	if i >= len(msg) {
		return "end of message"
	}
	if b := msg[i]; b >= 0x21 && b <= 0x7e {
		return fmt.Sprintf("'%c'", b)
	}
	return fmt.Sprintf("0x%02x", msg[i])
}
