package scram

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzConversation feeds arbitrary client messages to a conversation. The
// string NONCE in the final message is replaced by the combined nonce, so
// that the fuzzer gets past the nonce check.
func FuzzConversation(f *testing.F) {
	f.Add(SCRAMSHA256, []byte("n,,n=,r=abc"), []byte("c=biws,r=NONCE,p=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), false)
	f.Add(SCRAMSHA256Plus, []byte("p=tls-server-end-point,,n=,r=abc"), []byte("c=cD10bHMtc2VydmVyLWVuZC1wb2ludCwsAQID,r=NONCE,x=y,p=AAAA"), true)
	f.Add(SCRAMSHA256, []byte("y,,n=user,r=rOprNGfwEbeRWgbNEkqO,e=1"), []byte("c=eSws,r=NONCE,p="), false)
	f.Add("", []byte("p=,,"), []byte(",,,"), true)
	f.Add(SCRAMSHA256, []byte("n,a=x,m=1"), []byte("c="), true)

	v, err := ParseVerifier(postgresVerifierPW)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, mechanism string, clientFirst, clientFinal []byte, tls bool) {
		var cbData []byte
		if tls {
			cbData = []byte{1, 2, 3}
		}
		conv := NewConversation(v, true, cbData)
		serverFirst, err := conv.ServerFirst(mechanism, clientFirst)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("ServerFirst: error %v does not wrap ErrMalformed", err)
			}
			return
		}
		nonce, _, _ := bytes.Cut(bytes.TrimPrefix(serverFirst, []byte("r=")), []byte(","))
		clientFinal = bytes.ReplaceAll(clientFinal, []byte("NONCE"), nonce)
		if _, err := conv.ServerFinal(clientFinal); err != nil && !errors.Is(err, ErrMalformed) && !errors.Is(err, ErrAuthFailed) {
			t.Fatalf("ServerFinal: unexpected error %v", err)
		}
	})
}
