package proxy_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/pgveil/pgveil/internal/testcert"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// certFiles are a client certificate and its key written for libpq and
// PgJDBC.
type certFiles struct {
	cert, keyPEM, keyDER string
}

// writeClientCert writes c for clients: the certificate in PEM, its key
// in PEM (libpq) and in PKCS#8 DER (PgJDBC), readable by the owner only.
func writeClientCert(t *testing.T, c tls.Certificate) certFiles {
	t.Helper()
	dir := t.TempDir()
	certPEM, keyPEM := testcert.PEM(t, c)
	f := certFiles{
		cert:   filepath.Join(dir, "client.crt"),
		keyPEM: filepath.Join(dir, "client.key"),
		keyDER: filepath.Join(dir, "client.pk8"),
	}
	for path, b := range map[string][]byte{f.cert: certPEM, f.keyPEM: keyPEM, f.keyDER: testcert.PKCS8DER(t, c)} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// withClientCerts turns TLS on with client certificates signed by ca
// trusted (and those of crl revoked), as policy.Load provisions
// listen.tls { client_ca_file, client_crl_file }, and adds carol, who
// logs in with a certificate.
func withClientCerts(t testing.TB, ca *testcert.CA, crlPEM []byte, name string) proxytest.Option {
	return func(c *policy.Config, _ *proxy.Options) {
		cert, _ := proxytest.SelfSigned(t)
		pool := x509.NewCertPool()
		pool.AddCert(ca.Cert)
		b, _ := pem.Decode(crlPEM)
		crl, err := x509.ParseRevocationList(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		c.Listen.TLS = &policy.ListenTLS{
			Require: true, ClientCAs: pool, ClientCRL: crl, ClientName: name,
			Config: &tls.Config{
				Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12,
				ClientAuth: tls.RequestClientCert, ClientCAs: pool,
			},
		}
		c.Users["carol"] = &policy.User{Login: "carol", Auth: policy.AuthCert}
		c.Users["CN=carol,OU=Analysts,O=Example"] = &policy.User{Login: "CN=carol,OU=Analysts,O=Example", Auth: policy.AuthCert}
	}
}

func TestClientCertificateAuthentication(t *testing.T) {
	ca := testcert.NewCA(t, "pgveil test client CA")
	other := testcert.NewCA(t, "someone else's CA")
	now := time.Now()
	carolSubject := pkix.Name{CommonName: "carol", OrganizationalUnit: []string{"Analysts"}, Organization: []string{"Example"}}
	good := writeClientCert(t, ca.Client(t, carolSubject, now.Add(-time.Hour), now.Add(time.Hour)))
	bob := writeClientCert(t, ca.Client(t, pkix.Name{CommonName: "bob"}, now.Add(-time.Hour), now.Add(time.Hour)))
	foreign := writeClientCert(t, other.Client(t, pkix.Name{CommonName: "carol"}, now.Add(-time.Hour), now.Add(time.Hour)))
	expired := writeClientCert(t, ca.Client(t, pkix.Name{CommonName: "carol"}, now.Add(-3*time.Hour), now.Add(-2*time.Hour)))
	revokedCert := ca.Client(t, pkix.Name{CommonName: "carol"}, now.Add(-time.Hour), now.Add(time.Hour))
	revoked := writeClientCert(t, revokedCert)
	crl := ca.CRL(t, revokedCert.Leaf)

	rec := &recordingAuditor{}
	p := proxytest.StartProxy(t, withClientCerts(t, ca, crl, policy.ClientNameCN), func(_ *policy.Config, o *proxy.Options) { o.Audit = rec })
	dnProxy := proxytest.StartProxy(t, withClientCerts(t, ca, crl, policy.ClientNameDN))

	tlsURL := func(p *proxytest.Proxy, user, password string, f *certFiles) string {
		q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {p.CertFile}, "host": {"localhost"}}
		if f != nil {
			q["sslcert"], q["sslkey"] = []string{f.cert}, []string{f.keyPEM}
		}
		return p.URL(user, password, q)
	}
	const query = "SELECT 'cert-' || count(*) FROM items"

	t.Run("psql logs in with a certificate whose CN is the user", func(t *testing.T) {
		out, err := psql(t, tlsURL(p, "carol", "", &good), "-c", query)
		if err != nil || strings.TrimSpace(out) != "cert-100" {
			t.Fatalf("%v: %s", err, out)
		}
	})
	t.Run("with client_name dn the whole subject is the user", func(t *testing.T) {
		out, err := psql(t, tlsURL(dnProxy, "CN=carol,OU=Analysts,O=Example", "", &good), "-c", query)
		if err != nil || strings.TrimSpace(out) != "cert-100" {
			t.Fatalf("%v: %s", err, out)
		}
		out, err = psql(t, tlsURL(dnProxy, "carol", "", &good), "-c", query)
		if err == nil || !strings.Contains(out, `certificate authentication failed for user "carol"`) {
			t.Fatalf("a CN matched under client_name dn: %v: %s", err, out)
		}
	})
	refusals := []struct {
		name, user string
		files      *certFiles
		want       string
		reason     string
	}{
		{"a certificate for another name is refused", "carol", &bob, `certificate authentication failed for user "carol"`,
			"provided user name (carol) and authenticated user name (bob) do not match"},
		{"a certificate from an untrusted CA is refused", "carol", &foreign, `certificate authentication failed for user "carol"`,
			"certificate not trusted"},
		{"an expired certificate is refused", "carol", &expired, `certificate authentication failed for user "carol"`,
			"certificate not trusted"},
		{"a revoked certificate is refused", "carol", &revoked, `certificate authentication failed for user "carol"`,
			"certificate revoked"},
		{"no certificate is refused", "carol", nil, "connection requires a valid client certificate", "no client certificate"},
	}
	for _, r := range refusals {
		t.Run(r.name+" with 28000, logged and audited", func(t *testing.T) {
			before := len(rec.events("auth_failure"))
			out, err := psql(t, tlsURL(p, r.user, "", r.files), "-c", query)
			if err == nil || !strings.Contains(out, r.want) {
				t.Fatalf("%v: %s", err, out)
			}
			var events []string
			proxytest.Poll(5*time.Second, func() bool {
				events = events[:0]
				for _, e := range rec.events("auth_failure") {
					events = append(events, e.Reason)
				}
				return len(events) > before
			})
			if len(events) <= before || !strings.Contains(events[len(events)-1], r.reason) {
				t.Fatalf("audit reasons %q, want one with %q", events, r.reason)
			}
		})
	}
	t.Run("a password user is not asked for a certificate and may present one", func(t *testing.T) {
		for _, f := range []*certFiles{nil, &foreign} {
			out, err := psql(t, tlsURL(p, "alice", proxytest.Users["alice"], f), "-c", query)
			if err != nil || strings.TrimSpace(out) != "cert-100" {
				t.Fatalf("%v: %s", err, out)
			}
		}
	})
	t.Run("a certificate does not replace the password of a password user", func(t *testing.T) {
		aliceCert := writeClientCert(t, ca.Client(t, pkix.Name{CommonName: "alice"}, now.Add(-time.Hour), now.Add(time.Hour)))
		out, err := psql(t, tlsURL(p, "alice", "wrong", &aliceCert), "-c", query)
		if err == nil || !strings.Contains(out, `password authentication failed for user "alice"`) {
			t.Fatalf("%v: %s", err, out)
		}
	})

	t.Run("PgJDBC logs in with sslcert and a PKCS#8 sslkey", func(t *testing.T) {
		javac, err1 := exec.LookPath("javac")
		java, err2 := exec.LookPath("java")
		_, err3 := os.Stat(jdbcJar)
		if err1 != nil || err2 != nil || err3 != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("needs javac, java and %s: %v %v %v", jdbcJar, err1, err2, err3)
			}
			t.Skip("javac, java or PgJDBC missing")
		}
		dir := t.TempDir()
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		defer cancel()
		if out, err := exec.CommandContext(ctx, javac, "-cp", jdbcJar, "-d", dir, filepath.Join("testdata", "jdbc", "JdbcCert.java")).CombinedOutput(); err != nil {
			t.Fatalf("javac: %v\n%s", err, out)
		}
		_, port, _ := strings.Cut(p.Addr, ":")
		run := func(user string, f certFiles) string {
			q := url.Values{"sslmode": {"verify-full"}, "sslrootcert": {p.CertFile}, "sslcert": {f.cert}, "sslkey": {f.keyDER}}
			jurl := "jdbc:postgresql://localhost:" + port + "/" + proxytest.TestDB + "?" + q.Encode()
			out, err := exec.CommandContext(ctx, java, "-cp", dir+string(os.PathListSeparator)+jdbcJar, "JdbcCert", jurl, user).CombinedOutput()
			if err != nil {
				t.Fatalf("java: %v\n%s", err, out)
			}
			return string(out)
		}
		if out := run("carol", good); !strings.Contains(out, "ok cert-100") {
			t.Errorf("good certificate: %s", out)
		}
		if out := run("carol", bob); !strings.Contains(out, `refused: 28000`) || !strings.Contains(out, `certificate authentication failed for user "carol"`) {
			t.Errorf("certificate for bob: %s", out)
		}
	})
}
