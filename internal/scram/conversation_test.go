package scram

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"slices"
	"strings"
	"testing"
)

// mustParse parses a verifier or fails the test.
func mustParse(t *testing.T, s string) Verifier {
	t.Helper()
	v, err := ParseVerifier(s)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func TestRFC7677TestVector(t *testing.T) {
	// RFC 7677 section 3, user "user", password "pencil".
	salt, _ := base64.StdEncoding.DecodeString("W22ZaJ0SNY7soEsUEjb6gQ==")
	v, err := deriveVerifier("pencil", salt, 4096)
	if err != nil {
		t.Fatal(err)
	}
	conv := NewConversation(v, true, nil)
	conv.fixedNonce = []byte("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")

	serverFirst, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=user,r=rOprNGfwEbeRWgbNEkqO"))
	if err != nil {
		t.Fatal(err)
	}
	if want := "r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"; string(serverFirst) != want {
		t.Fatalf("server-first-message %q, want %q", serverFirst, want)
	}
	serverFinal, err := conv.ServerFinal([]byte("c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="))
	if err != nil {
		t.Fatal(err)
	}
	if want := "v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4="; string(serverFinal) != want {
		t.Fatalf("server-final-message %q, want %q", serverFinal, want)
	}

	t.Run("the in-test client reproduces the vector", func(t *testing.T) {
		conv := NewConversation(v, true, nil)
		conv.fixedNonce = []byte("%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0")
		client := &testClient{user: "user", password: "pencil", nonce: "rOprNGfwEbeRWgbNEkqO"}
		if err := exchange(t, conv, SCRAMSHA256, client); err != nil {
			t.Fatal(err)
		}
	})
}

func TestConversation(t *testing.T) {
	pg := mustParse(t, postgresVerifierPW)
	secret := []byte("mock secret")
	cbData := bytes.Repeat([]byte{0xcb}, 32)
	tests := []struct {
		name      string
		verifier  Verifier
		known     bool
		cbData    []byte
		mechanism string
		client    testClient
		wantErr   error
	}{
		{"the right password against a PostgreSQL verifier succeeds", pg, true, nil, SCRAMSHA256,
			testClient{password: "pw"}, nil},
		{"a wrong password against a PostgreSQL verifier fails", pg, true, nil, SCRAMSHA256,
			testClient{password: "px"}, ErrAuthFailed},
		{"the user name in the message is ignored", pg, true, nil, SCRAMSHA256,
			testClient{user: "someone else", password: "pw"}, nil},
		{"an unknown user fails with a mock verifier", MockVerifier("ghost", secret), false, nil, SCRAMSHA256,
			testClient{password: "pw"}, ErrAuthFailed},
		{"an unknown user fails even with a proof that matches", pg, false, nil, SCRAMSHA256,
			testClient{password: "pw"}, ErrAuthFailed},
		{"a client that cannot bind may authenticate over TLS", pg, true, cbData, SCRAMSHA256,
			testClient{password: "pw", gs2: "n,,"}, nil},
		{"a client that thinks the server cannot bind may authenticate without TLS", pg, true, nil, SCRAMSHA256,
			testClient{password: "pw", gs2: "y,,"}, nil},
		{"PLUS with matching channel binding data succeeds", pg, true, cbData, SCRAMSHA256Plus,
			testClient{password: "pw", gs2: "p=tls-server-end-point,,", cbData: cbData}, nil},
		{"PLUS with a wrong password fails", pg, true, cbData, SCRAMSHA256Plus,
			testClient{password: "px", gs2: "p=tls-server-end-point,,", cbData: cbData}, ErrAuthFailed},
		{"PLUS with mismatching channel binding data is refused", pg, true, cbData, SCRAMSHA256Plus,
			testClient{password: "pw", gs2: "p=tls-server-end-point,,", cbData: bytes.Repeat([]byte{0xcc}, 32)}, ErrMalformed},
		{"PLUS without channel binding data is refused", pg, true, cbData, SCRAMSHA256Plus,
			testClient{password: "pw", gs2: "p=tls-server-end-point,,"}, ErrMalformed},
		{"PLUS without TLS is refused", pg, true, nil, SCRAMSHA256Plus,
			testClient{password: "pw", gs2: "p=tls-server-end-point,,"}, ErrMalformed},
		{"PLUS with an n flag is refused", pg, true, cbData, SCRAMSHA256Plus,
			testClient{password: "pw", gs2: "n,,"}, ErrMalformed},
		{"a y flag when the server can bind is refused as a downgrade", pg, true, cbData, SCRAMSHA256,
			testClient{password: "pw", gs2: "y,,"}, ErrMalformed},
		{"a p flag with plain SCRAM-SHA-256 is refused", pg, true, cbData, SCRAMSHA256,
			testClient{password: "pw", gs2: "p=tls-server-end-point,,", cbData: cbData}, ErrMalformed},
		{"an unsupported channel binding type is refused", pg, true, cbData, SCRAMSHA256Plus,
			testClient{password: "pw", gs2: "p=tls-unique,,", cbData: cbData}, ErrMalformed},
		{"an unsupported mechanism is refused", pg, true, nil, "SCRAM-SHA-1",
			testClient{password: "pw"}, ErrMalformed},
		{"a c attribute that does not match the y flag is refused", pg, true, nil, SCRAMSHA256,
			testClient{password: "pw", gs2: "y,,", cbData: []byte("x")}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv := NewConversation(tt.verifier, tt.known, tt.cbData)
			err := exchange(t, conv, tt.mechanism, &tt.client)
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("got error %v, want %v", err, tt.wantErr)
			}
			if wantPlus := tt.mechanism == SCRAMSHA256Plus && err == nil; conv.ChannelBound() != wantPlus {
				t.Errorf("ChannelBound() = %v, want %v", conv.ChannelBound(), wantPlus)
			}
		})
	}
}

func TestMalformedClientFirst(t *testing.T) {
	pg := mustParse(t, postgresVerifierPW)
	cbData := []byte("binding")
	tests := []struct {
		name    string
		message string
	}{
		{"an empty message is refused", ""},
		{"a NUL byte is refused", "n,,n=,r=abc\x00"},
		{"an unknown channel-binding flag is refused", "x,,n=,r=abc"},
		{"a missing comma after the flag is refused", "n;,n=,r=abc"},
		{"an authorization identity is refused", "n,a=admin,n=,r=abc"},
		{"a junk authorization field is refused", "n,zz,n=,r=abc"},
		{"a p flag without a name is refused", "p,,n=,r=abc"},
		{"a p flag without a comma is refused", "p=tls-server-end-point"},
		{"a mandatory extension is refused", "n,,m=ext,n=,r=abc"},
		{"a missing user name is refused", "n,,r=abc"},
		{"a missing nonce is refused", "n,,n="},
		{"an empty nonce is refused", "n,,n=,r="},
		{"a non-printable nonce is refused", "n,,n=,r=a\x7fb"},
		{"a non-ASCII nonce is refused", "n,,n=,r=caf\xc3\xa9"},
		{"an attribute without = is refused", "n,,n,r=abc"},
		{"a broken extension is refused", "n,,n=,r=abc,1=x"},
		{"an extension without a value separator is refused", "n,,n=,r=abc,x"},
		{"a lone flag is refused", "n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, mech := range []string{SCRAMSHA256, SCRAMSHA256Plus} {
				conv := NewConversation(pg, true, cbData)
				if _, err := conv.ServerFirst(mech, []byte(tt.message)); !errors.Is(err, ErrMalformed) {
					t.Errorf("%s: got %v, want ErrMalformed", mech, err)
				}
			}
		})
	}

	t.Run("extensions after the nonce are ignored", func(t *testing.T) {
		conv := NewConversation(pg, true, nil)
		if _, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=,r=abc,x=1,y=")); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMalformedClientFinal(t *testing.T) {
	pg := mustParse(t, postgresVerifierPW)
	proof := base64.StdEncoding.EncodeToString(make([]byte, KeyLen))
	tests := []struct {
		name    string
		message string // NONCE stands for the combined nonce
		wantErr error
	}{
		{"an empty message is refused", "", ErrMalformed},
		{"a NUL byte is refused", "c=biws,r=NONCE,p=" + proof + "\x00", ErrMalformed},
		{"a missing channel binding is refused", "r=NONCE,p=" + proof, ErrMalformed},
		{"a channel binding for another header is refused", "c=eSws,r=NONCE,p=" + proof, ErrMalformed},
		{"a missing nonce is refused", "c=biws,p=" + proof, ErrMalformed},
		{"a wrong nonce is refused", "c=biws,r=abcdef,p=" + proof, ErrMalformed},
		{"the client nonce alone is refused", "c=biws,r=abc,p=" + proof, ErrMalformed},
		{"a missing proof is refused", "c=biws,r=NONCE", ErrMalformed},
		{"a missing proof after an extension is refused", "c=biws,r=NONCE,x=1", ErrMalformed},
		{"a proof that is not base64 is refused", "c=biws,r=NONCE,p=!!!", ErrMalformed},
		{"a short proof is refused", "c=biws,r=NONCE,p=AAAA", ErrMalformed},
		{"garbage after the proof is refused", "c=biws,r=NONCE,p=" + proof + ",x=1", ErrMalformed},
		{"a trailing comma is refused", "c=biws,r=NONCE,p=" + proof + ",", ErrMalformed},
		{"a broken extension is refused", "c=biws,r=NONCE,?=1,p=" + proof, ErrMalformed},
		{"a well-formed message with a zero proof fails authentication", "c=biws,r=NONCE,p=" + proof, ErrAuthFailed},
		{"extensions before the proof are ignored", "c=biws,r=NONCE,x=1,p=" + proof, ErrAuthFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conv := NewConversation(pg, true, nil)
			serverFirst, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=,r=abc"))
			if err != nil {
				t.Fatal(err)
			}
			nonce, _, _ := strings.Cut(strings.TrimPrefix(string(serverFirst), "r="), ",")
			msg := strings.ReplaceAll(tt.message, "NONCE", nonce)
			if _, err := conv.ServerFinal([]byte(msg)); !errors.Is(err, tt.wantErr) {
				t.Errorf("got %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestConversationOrder(t *testing.T) {
	pg := mustParse(t, postgresVerifierPW)
	t.Run("a final message before the first is refused", func(t *testing.T) {
		conv := NewConversation(pg, true, nil)
		if _, err := conv.ServerFinal([]byte("c=biws,r=abc,p=AAAA")); !errors.Is(err, ErrMalformed) {
			t.Errorf("got %v, want ErrMalformed", err)
		}
	})
	t.Run("a second first message is refused", func(t *testing.T) {
		conv := NewConversation(pg, true, nil)
		if _, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=,r=abc")); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=,r=abc")); !errors.Is(err, ErrMalformed) {
			t.Errorf("got %v, want ErrMalformed", err)
		}
	})
	t.Run("a finished conversation refuses more messages", func(t *testing.T) {
		conv := NewConversation(pg, true, nil)
		client := &testClient{password: "pw"}
		if err := exchange(t, conv, SCRAMSHA256, client); err != nil {
			t.Fatal(err)
		}
		if _, err := conv.ServerFinal([]byte("c=biws")); !errors.Is(err, ErrMalformed) {
			t.Errorf("got %v, want ErrMalformed", err)
		}
	})
	t.Run("a failed first message ends the conversation", func(t *testing.T) {
		conv := NewConversation(pg, true, nil)
		if _, err := conv.ServerFirst(SCRAMSHA256, []byte("bogus")); err == nil {
			t.Fatal("bogus message accepted")
		}
		if _, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=,r=abc")); !errors.Is(err, ErrMalformed) {
			t.Errorf("got %v, want ErrMalformed", err)
		}
	})
}

func TestServerNonce(t *testing.T) {
	pg := mustParse(t, postgresVerifierPW)
	first := func() string {
		conv := NewConversation(pg, true, nil)
		msg, err := conv.ServerFirst(SCRAMSHA256, []byte("n,,n=,r=abc"))
		if err != nil {
			t.Fatal(err)
		}
		nonce, _, _ := strings.Cut(strings.TrimPrefix(string(msg), "r=abc"), ",")
		return nonce
	}
	a, b := first(), first()
	if raw, err := base64.StdEncoding.DecodeString(a); err != nil || len(raw) != serverNonceLen {
		t.Errorf("server nonce %q is not %d base64-encoded bytes", a, serverNonceLen)
	}
	if a == b {
		t.Errorf("server nonce %q repeats", a)
	}
}

func TestMechanisms(t *testing.T) {
	if got := Mechanisms(true); !slices.Equal(got, []string{SCRAMSHA256Plus, SCRAMSHA256}) {
		t.Errorf("Mechanisms(true) = %q", got)
	}
	if got := Mechanisms(false); !slices.Equal(got, []string{SCRAMSHA256}) {
		t.Errorf("Mechanisms(false) = %q", got)
	}
}

func TestTLSServerEndPoint(t *testing.T) {
	raw := []byte("DER bytes of a certificate")
	sum256 := sha256.Sum256(raw)
	sum384 := sha512.Sum384(raw)
	sum512 := sha512.Sum512(raw)
	tests := []struct {
		name      string
		algorithm x509.SignatureAlgorithm
		want      []byte
	}{
		{"MD5 is replaced by SHA-256", x509.MD5WithRSA, sum256[:]},
		{"SHA-1 is replaced by SHA-256", x509.SHA1WithRSA, sum256[:]},
		{"ECDSA with SHA-1 is replaced by SHA-256", x509.ECDSAWithSHA1, sum256[:]},
		{"RSA with SHA-256 uses SHA-256", x509.SHA256WithRSA, sum256[:]},
		{"ECDSA with SHA-384 uses SHA-384", x509.ECDSAWithSHA384, sum384[:]},
		{"RSA-PSS with SHA-512 uses SHA-512", x509.SHA512WithRSAPSS, sum512[:]},
		{"Ed25519 has no defined binding", x509.PureEd25519, nil},
		{"an unknown algorithm has no defined binding", x509.UnknownSignatureAlgorithm, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := TLSServerEndPoint(&x509.Certificate{Raw: raw, SignatureAlgorithm: tt.algorithm})
			if !bytes.Equal(got, tt.want) {
				t.Errorf("got %x, want %x", got, tt.want)
			}
		})
	}
	t.Run("a nil certificate has no binding", func(t *testing.T) {
		if got := TLSServerEndPoint(nil); got != nil {
			t.Errorf("got %x", got)
		}
	})
}
