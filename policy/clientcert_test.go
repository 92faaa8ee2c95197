package policy

import (
	"crypto/tls"
	"path/filepath"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/internal/testcert"
)

func TestClientCertificateSettings(t *testing.T) {
	ca := testcert.NewCA(t, "client CA")
	other := testcert.NewCA(t, "other CA")
	serverPEM, keyPEM := testcert.PEM(t, testcert.New(t))
	load := func(t *testing.T, crlPEM []byte) (*Config, string) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "server.crt"), serverPEM)
		writeFile(t, filepath.Join(dir, "server.key"), keyPEM)
		writeFile(t, filepath.Join(dir, "ca.pem"), ca.PEM())
		writeFile(t, filepath.Join(dir, "crl.pem"), crlPEM)
		writeFile(t, filepath.Join(dir, "pgveil.hcl"), []byte(`
listen {
  address = "127.0.0.1:6432"
  tls {
    cert_file       = "server.crt"
    key_file        = "server.key"
    client_ca_file  = "ca.pem"
    client_crl_file = "crl.pem"
  }
}
upstream {
  address  = "127.0.0.1:5432"
  database = "feedback"
  user     = "pgveil_svc"
}
role "analyst" { statements = ["select"] }
user "carol" {
  auth  = "cert"
  roles = ["analyst"]
}
`))
		l := NewLoader()
		cfg, diags := l.Load(filepath.Join(dir, "pgveil.hcl"))
		var b strings.Builder
		for _, d := range diags {
			b.WriteString(d.Summary + ": " + d.Detail + "\n")
		}
		return cfg, b.String()
	}

	t.Run("a CRL signed by the client CA is loaded and certificates are asked for", func(t *testing.T) {
		cfg, diags := load(t, ca.CRL(t))
		if cfg == nil {
			t.Fatal(diags)
		}
		lt := cfg.Listen.TLS
		if lt.ClientCRL == nil || lt.ClientCAs == nil || lt.ClientName != ClientNameCN ||
			lt.Config.ClientAuth != tls.RequestClientCert || lt.Config.ClientCAs == nil {
			t.Errorf("%+v", lt)
		}
		if u, ok := cfg.Users["carol"]; !ok || u.Method() != AuthCert || !u.CanAuthenticate() {
			t.Errorf("carol: %+v", u)
		}
	})
	t.Run("a CRL signed by another CA is an error", func(t *testing.T) {
		cfg, diags := load(t, other.CRL(t))
		if cfg != nil || !strings.Contains(diags, "crl.pem is not signed by a CA of listen.tls.client_ca_file.") {
			t.Errorf("%s", diags)
		}
	})
	t.Run("a file that is no CRL is an error", func(t *testing.T) {
		cfg, diags := load(t, ca.PEM())
		if cfg != nil || !strings.Contains(diags, "Invalid CRL") {
			t.Errorf("%s", diags)
		}
	})
}

func TestCertificateUsersNeedNoPassword(t *testing.T) {
	cfg := &Config{Roles: map[string]*Role{"analyst": {Name: "analyst"}}, Users: map[string]*User{
		"carol": {Login: "carol", Auth: AuthCert, Roles: []string{"analyst"}},
		"dave":  {Login: "dave", Roles: []string{"analyst"}},
	}}
	ids := cfg.HCLIdentities()
	if _, ok := ids.User("carol"); !ok {
		t.Error("a certificate user without password cannot log in")
	}
	if _, ok := ids.User("dave"); ok {
		t.Error("a password user without password can log in")
	}
}
