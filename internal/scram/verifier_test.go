package scram

import (
	"bytes"
	"errors"
	"strings"
	"testing"
)

// postgresVerifierPW was produced by PostgreSQL 15 itself:
//
//	SET password_encryption = 'scram-sha-256';
//	CREATE ROLE x PASSWORD 'pw';
//	SELECT rolpassword FROM pg_authid WHERE rolname = 'x';
const postgresVerifierPW = "SCRAM-SHA-256$4096:tM3638kbvBaqewmnHMUitg==$4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To=:8cxO8EiIgGIgTqPIaffUPnTmo2uupikXWXNH6jLBLFs="

// postgresVerifiers were produced by PostgreSQL 15 (CREATE ROLE … PASSWORD
// E'…' with password_encryption = 'scram-sha-256') for passwords that
// exercise each step of its SASLprep, and record what PostgreSQL derived
// its keys from.
var postgresVerifiers = []struct {
	name     string
	password string
	verifier string
}{
	{"an ASCII password is used as is", "pw",
		"SCRAM-SHA-256$4096:DGL9f/NOD5LAze6pwkXRtA==$S2Dk4JiLOOEr9PIm5FrTKjNlIwxrC0sbP/7wrpSPhIg=:4tYSuagG1rodp35nRQB8PMq5VIziZ6kt6/hL6SST0xM="},
	{"a ligature is decomposed by NFKC", "\ufb01x",
		"SCRAM-SHA-256$4096:dMqty2r+QY1ZgtvKENVKzg==$zLPV7Ier4LHwLdMZFVf91pcXmSVRKLt9Tf0PaRkkHBA=:OlWZAABv+X2hNEDf6iJAo9ShBayY8Px1hMNe6xlEATw="},
	{"a soft hyphen is mapped to nothing", "a\u00adb",
		"SCRAM-SHA-256$4096:vY5oz70pDt7vZguhQAN2rA==$drhmGEzMabiNQ3OrPVkaD5y3K0AxhJ99SNzR+qdU9lY=:UVbs60WPCPAdWIxACUMIjZMo/ygqvYpwgbzxh8NVDds="},
	{"a no-break space is mapped to a space", "a\u00a0b",
		"SCRAM-SHA-256$4096:yJUGZg34Qn6cKudjf4qYOQ==$TqOfRmlz2s4zWVBpbbU8mP8pfxtkqLGAJZh9xfTvIQo=:tINW9bzF2Lqf/E+yUGAlEq04zURGnOsgU+EeJexVrA4="},
	{"a roman numeral is decomposed by NFKC", "I\u2168",
		"SCRAM-SHA-256$4096:29aH4/MOtvSHeTyL4JNgIg==$4WgyB27Py+YrDt9qTzJQZXskL2rX9uevbXMxUjdJEcA=:RLdcTocmHS0ObrvnzzL6OP75cKIndKSKhegTRMYE86A="},
	{"a code point unassigned in Unicode 3.2 keeps the raw bytes", "\u0221x",
		"SCRAM-SHA-256$4096:VS4lq4doIRJ1m3e6TsoiLw==$SgKF5t6Jg+Hb+vlN0j1yWR7WVwhxSDPBSwb/vIjMdEA=:IOc96blgtAqr0oGkprlkU/Hd/y+sQrmmstyBF7cLtNk="},
	{"a combining accent is composed", "e\u0301t\u00e9",
		"SCRAM-SHA-256$4096:KhFZz5MRvucK5wijXQL2tA==$20RtsX08456sKbSJbt+oMV8MfB2npnNeEcnI9woQSWE=:oty9mjdVmTyRzyJbPeTfM7/5ryyA5l8XstQplk8OiXE="},
	{"a line separator is prohibited so the raw bytes are used", "a\u2028b",
		"SCRAM-SHA-256$4096:kdozv3wVIKnoq8w7P7nZVg==$+WmMWgEkYib2yaVFGtIUrPzyNVHyMWMRbrM9CLnTwsw=:8Kon1RY/5ARKiokH4Z6z430ZoHXrx+in/NC5LyIuh9s="},
	{"right-to-left mixed with left-to-right keeps the raw bytes", "\u05d0a",
		"SCRAM-SHA-256$4096:6q3CUrHTHT/zbplKDaGyDA==$WLgLtIjGNRSFgOkODJwbNtBWT13KvSzuxfhaWRzc3O0=:pSDCa0UEDXfTuqkDlEceKVG6I0gs6ghhd+h55j6m5W8="},
	{"right-to-left text alone is accepted", "\u05d0\u05d1",
		"SCRAM-SHA-256$4096:XcTSpvhXba33WqtAsIwvRg==$WkV4x7LlbBEMiy83+4wKZJuKpeVeCfzxRX/dzGAP0Ro=:4fdxi1B3+Kb4mnx75VI267Wfz6sQOimCF+QTj5Qm4Ms="},
	{"the bidi check looks at the string before normalisation", "\u05d0\u2100\u05d1",
		"SCRAM-SHA-256$4096:jehLezxp5nfEIMSuDb4y2Q==$WSzabbbWjRUky+B5qDc0UYJ4w1ZYcJqQIA0pkiOT6Sc=:p7nkEbS/XllSCcJiz7EcpZN1qksi/qmehqdFKdumIjU="},
	{"an ideographic space is mapped to a space", "\u3000x",
		"SCRAM-SHA-256$4096:zkOihJdoXgaCOZfkq22yFg==$FU6oB5BEYz+PGZTKJ6OKMenSS4VXnLbxGbXq4SpA0Yc=:uiVVJL5iI1urLvhcYk3OpXyZkVtVoa3VfXwv8dK9tyo="},
	{"a zero-width space is a space before it is nothing", "\u200bx",
		"SCRAM-SHA-256$4096:/4RU2/eOkwtfZIA/b8bKZA==$dArbO4h8KMAmxbyMvtSrhumWgWXOwPMAmh90LCg+VJM=:z5cEogbEzJFWlJVa2LKsyHov+KHZfjTN520EqCrS8sc="},
	{"a byte order mark is mapped to nothing", "\ufeffpw",
		"SCRAM-SHA-256$4096:/LcYqvBRTf7r24aTUzi6aA==$O8HCXE1yZhMOXJbZ5PVW8T0WTxXOUYkVjBRHKFT7x5c=:HLVrwHSTRcwvFrtGrmWG+njUOyxmYd4Vwt8JjO6VGW0="},
	{"a private-use character keeps the raw bytes", "\ue000",
		"SCRAM-SHA-256$4096:J34F/+fovwuVM0X3dMFvWQ==$jZwmM++Isuo9Z4UTmsNBucGgy+pnxApgUF50SZ+Xn90=:Y9OiU+lwMOWMWGZg/nAW8qd9kUgmP4mh8IQ0vwHKWPM="},
	{"a mathematical letter outside the BMP is decomposed", "\U0001d400b",
		"SCRAM-SHA-256$4096:l35ViDr0u3gIrdTjgK7tgA==$YI4cEJLPYVnvP09/zqtJ0uzgYmfq9zYk4xO9xKeA7iQ=:pP2S5GcadZizSOyJQkF70YslgG4pJ/MZGFC2Kr+4X/E="},
	{"a deprecated character is prohibited before normalisation", "\u0340a",
		"SCRAM-SHA-256$4096:KQbxgXN+3rEB8KcNlmEggQ==$yL2PaaIfXhxDwh+4reLx8herOjDBBrsLHSwAYlZ/b8o=:zI3WaPvvp68kYQMuWQ5n5Z9mJS2h5gwSs/K333NpJLw="},
	{"an angstrom sign is normalised to a letter", "\u00c5ngstr\u00f6m\u212b",
		"SCRAM-SHA-256$4096:a+lGt8gGR540S4bZ4lh0Mw==$gvpF/BckrldHoM9yqjiuGZRZhrxZy/iJ0K03niNfT5o=:fn3RLfm4SAlQKRUGrmAuaECcnbyOJMyncWd8kInUV2Q="},
	{"a password mapped to nothing keeps the raw bytes", "\u00ad",
		"SCRAM-SHA-256$4096:RxZU+VE6Jq9EcDrUUF61DA==$t8pjFAr0F0uC2JSUa7EhHvirpLlF4soyye298FS/EeU=:07xcAhzWLqHRuFMldsau1NEFf3SytRKrad5o+uG/meM="},
	{"right-to-left text must start with a right-to-left character", "\u0660\u05d0",
		"SCRAM-SHA-256$4096:X6NVQPqAY9MIRPrDjeuFJg==$fqv9f4sopVEIN5Cu43tM/BLaVufLOk/K05phblsxBJw=:UzOrQbQm9PDar74Pg7RPxuRAFOKhS4zs/3aYXFUMDh8="},
	{"a title-case digraph is decomposed", "\u01c5",
		"SCRAM-SHA-256$4096:qQMbLZ5+Lsmuii4TjSnYZg==$4a4mAnIVeoJZS0gvh7HbuS88YmEc0NIp0A3Uy62JAro=:OxkeAf8SEAjN1haVpq49aTUEtUOqXq9q6/sgkOVDqo0="},
	{"a parenthesised digit is decomposed", "\u2474x",
		"SCRAM-SHA-256$4096:18BO697VAc7vl8CkYcvPfg==$NAb2bdSGbRH7M0KSLjlnRNt6pMcGE8qQspnkoGXu8Xo=:VvTekJ6fEb9IF7IQX7PnkH/seF4MSqbMfiEttw4ne6Q="},
}

func TestParseVerifier(t *testing.T) {
	t.Run("a PostgreSQL verifier round-trips through String", func(t *testing.T) {
		v, err := ParseVerifier(postgresVerifierPW)
		if err != nil {
			t.Fatal(err)
		}
		if v.Iterations != 4096 || len(v.Salt) != 16 || len(v.StoredKey) != KeyLen || len(v.ServerKey) != KeyLen {
			t.Errorf("parsed %+v", v)
		}
		if got := v.String(); got != postgresVerifierPW {
			t.Errorf("String() = %q, want %q", got, postgresVerifierPW)
		}
	})

	key := "4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1To="
	short := "4wgDS+lH1sZ4reFIqXqIg9KxgnZdH1swCujYLzee1A=="
	tests := []struct {
		name  string
		input string
		want  string
	}{
		{"an empty string is refused", "", "does not start with"},
		{"an MD5 hash is refused", "md5" + strings.Repeat("0", 32), "does not start with"},
		{"a plaintext password is refused", "hunter2", "does not start with"},
		{"the prefix is case-sensitive", "scram-sha-256$4096:c2FsdA==$" + key + ":" + key, "does not start with"},
		{"a missing key part is refused", "SCRAM-SHA-256$4096:c2FsdA==", `missing "$"`},
		{"a missing salt separator is refused", "SCRAM-SHA-256$4096$" + key + ":" + key, `missing ":" between iterations and salt`},
		{"a missing key separator is refused", "SCRAM-SHA-256$4096:c2FsdA==$" + key, `missing ":" between StoredKey and ServerKey`},
		{"zero iterations are refused", "SCRAM-SHA-256$0:c2FsdA==$" + key + ":" + key, "not a positive integer"},
		{"negative iterations are refused", "SCRAM-SHA-256$-1:c2FsdA==$" + key + ":" + key, "not a positive integer"},
		{"a signed iteration count is refused", "SCRAM-SHA-256$+4096:c2FsdA==$" + key + ":" + key, "not a positive integer"},
		{"a non-numeric iteration count is refused", "SCRAM-SHA-256$many:c2FsdA==$" + key + ":" + key, "not a positive integer"},
		{"an empty iteration count is refused", "SCRAM-SHA-256$:c2FsdA==$" + key + ":" + key, "not a positive integer"},
		{"an iteration count beyond int32 is refused", "SCRAM-SHA-256$2147483648:c2FsdA==$" + key + ":" + key, "below 2^31"},
		{"a salt that is not base64 is refused", "SCRAM-SHA-256$4096:c2F*dA==$" + key + ":" + key, "salt is not valid base64"},
		{"an empty salt is refused", "SCRAM-SHA-256$4096:$" + key + ":" + key, "salt is empty"},
		{"a StoredKey that is not base64 is refused", "SCRAM-SHA-256$4096:c2FsdA==$!!!!:" + key, "StoredKey is not valid base64"},
		{"a short StoredKey is refused", "SCRAM-SHA-256$4096:c2FsdA==$" + short + ":" + key, "StoredKey is 31 bytes long, want 32"},
		{"a short ServerKey is refused", "SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + short, "ServerKey is 31 bytes long, want 32"},
		{"a ServerKey that is not base64 is refused", "SCRAM-SHA-256$4096:c2FsdA==$" + key + ":" + key + "$", "ServerKey is not valid base64"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseVerifier(tt.input)
			if err == nil {
				t.Fatalf("ParseVerifier(%q) succeeded", tt.input)
			}
			if !strings.HasPrefix(err.Error(), "parsing verifier: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestNewVerifier(t *testing.T) {
	t.Run("a new verifier round-trips and checks the password", func(t *testing.T) {
		v, err := NewVerifier("correct horse", DefaultIterations)
		if err != nil {
			t.Fatal(err)
		}
		if len(v.Salt) != SaltLen || v.Iterations != DefaultIterations {
			t.Errorf("salt %d bytes, %d iterations", len(v.Salt), v.Iterations)
		}
		parsed, err := ParseVerifier(v.String())
		if err != nil {
			t.Fatal(err)
		}
		if parsed.String() != v.String() {
			t.Errorf("round trip changed %q into %q", v, parsed)
		}
		if err := exchange(t, NewConversation(parsed, true, nil), SCRAMSHA256, &testClient{password: "correct horse"}); err != nil {
			t.Errorf("right password: %v", err)
		}
		if err := exchange(t, NewConversation(parsed, true, nil), SCRAMSHA256, &testClient{password: "correct horsE"}); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("wrong password: got %v, want ErrAuthFailed", err)
		}
	})
	t.Run("two verifiers of one password have different salts", func(t *testing.T) {
		a, errA := NewVerifier("pw", 1)
		b, errB := NewVerifier("pw", 1)
		if errA != nil || errB != nil {
			t.Fatal(errA, errB)
		}
		if bytes.Equal(a.Salt, b.Salt) || bytes.Equal(a.StoredKey, b.StoredKey) {
			t.Error("salts or keys repeat")
		}
	})
	t.Run("an empty password is refused", func(t *testing.T) {
		if _, err := NewVerifier("", DefaultIterations); err == nil {
			t.Error("NewVerifier succeeded")
		}
	})
	t.Run("a non-positive iteration count is refused", func(t *testing.T) {
		if _, err := NewVerifier("pw", 0); err == nil {
			t.Error("NewVerifier succeeded")
		}
	})
}

func TestDerivationMatchesPostgreSQL(t *testing.T) {
	for _, tt := range postgresVerifiers {
		t.Run(tt.name, func(t *testing.T) {
			want, err := ParseVerifier(tt.verifier)
			if err != nil {
				t.Fatal(err)
			}
			got, err := deriveVerifier(normalizePassword(tt.password), want.Salt, want.Iterations)
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("derived %q, PostgreSQL stored %q", got, want)
			}
		})
	}
}

func TestMockVerifier(t *testing.T) {
	secret := []byte("0123456789abcdef0123456789abcdef")
	t.Run("a mock verifier is deterministic", func(t *testing.T) {
		if a, b := MockVerifier("nobody", secret), MockVerifier("nobody", secret); a.String() != b.String() {
			t.Errorf("%q != %q", a, b)
		}
	})
	t.Run("a mock verifier looks like a real one", func(t *testing.T) {
		v := MockVerifier("nobody", secret)
		if v.Iterations != DefaultIterations {
			t.Errorf("iterations %d", v.Iterations)
		}
		if !bytes.Equal(v.Salt, hmacSHA256(secret, []byte("nobody"))[:SaltLen]) {
			t.Errorf("salt %x is not the HMAC of the user name", v.Salt)
		}
		if _, err := ParseVerifier(v.String()); err != nil {
			t.Error(err)
		}
	})
	t.Run("users and secrets change the mock verifier", func(t *testing.T) {
		a := MockVerifier("nobody", secret)
		for _, b := range []Verifier{MockVerifier("somebody", secret), MockVerifier("nobody", []byte("other"))} {
			if bytes.Equal(a.Salt, b.Salt) || bytes.Equal(a.StoredKey, b.StoredKey) || bytes.Equal(a.ServerKey, b.ServerKey) {
				t.Errorf("%q and %q share parts", a, b)
			}
		}
	})
}
