package policy

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"

	"github.com/hashicorp/hcl/v2"
)

// provision loads the resources the configuration names: the listen
// certificate and key, and the upstream CA bundle. Problems are reported
// at the attribute that names the file.
func (d *decoder) provision() {
	if t := d.cfg.Listen.TLS; t != nil {
		t.Config = d.loadKeyPair(t.CertFile, t.KeyFile)
		if t.ClientCAFile != "" {
			var cas []*x509.Certificate
			t.ClientCAs, cas = d.loadCAFile(t.ClientCAFile, "listen.tls.client_ca_file")
			if t.ClientCRLFile != "" && cas != nil {
				t.ClientCRL = d.loadCRL(t.ClientCRLFile, cas)
			}
			if t.Config != nil && t.ClientCAs != nil {
				// NOTE: the handshake only asks for a certificate (and
				// proof of its key); authentication verifies it, so that
				// a bad certificate gets PostgreSQL's 28000 error, not a
				// TLS alert, and only users with auth = "cert" need one.
				t.Config.ClientAuth = tls.RequestClientCert
				t.Config.ClientCAs = t.ClientCAs
			}
		}
	}
	if l := d.cfg.LDAP; l != nil && l.CAFile != "" {
		l.Directory.RootCAs, _ = d.loadCAFile(l.CAFile, "ldap.ca_file")
	}
	if ca := d.cfg.Upstream.TLS.CAFile; ca != "" {
		d.cfg.Upstream.TLS.RootCAs = d.loadCAs(ca)
	}
}

// loadKeyPair returns the listen TLS configuration, or nil after reporting
// why it cannot be built.
func (d *decoder) loadKeyPair(certFile, keyFile string) *tls.Config {
	certAttr, keyAttr := d.attrs["listen.tls.cert_file"], d.attrs["listen.tls.key_file"]
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		d.fileError(certAttr, "Cannot read TLS certificate", certFile, err)
	}
	keyPEM, keyErr := os.ReadFile(keyFile)
	if keyErr != nil {
		d.fileError(keyAttr, "Cannot read TLS key", keyFile, keyErr)
	}
	if err != nil || keyErr != nil {
		return nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		d.errorAt(certAttr, "Invalid TLS certificate or key",
			fmt.Sprintf("The certificate %s and the key %s cannot be used together: %s.", certFile, keyFile, err))
		return nil
	}
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		MinVersion:   tls.VersionTLS12,
	}
}

// loadCAs returns the pool of the PEM bundle caFile, or nil after
// reporting why it cannot be built.
func (d *decoder) loadCAs(caFile string) *x509.CertPool {
	pool, _ := d.loadCAFile(caFile, "upstream.tls.ca_file")
	return pool
}

// loadCAFile returns the pool and the certificates of the PEM bundle
// caFile named by the attribute name, or nils after reporting why it
// cannot be read.
func (d *decoder) loadCAFile(caFile, name string) (*x509.CertPool, []*x509.Certificate) {
	attr := d.attrs[name]
	data, err := os.ReadFile(caFile)
	if err != nil {
		d.fileError(attr, "Cannot read CA bundle", caFile, err)
		return nil, nil
	}
	pool := x509.NewCertPool()
	var certs []*x509.Certificate
	for rest := data; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			d.errorAt(attr, "Invalid CA bundle", fmt.Sprintf("%s holds a certificate that cannot be parsed: %s.", caFile, err))
			return nil, nil
		}
		pool.AddCert(c)
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		d.errorAt(attr, "Invalid CA bundle", fmt.Sprintf("%s holds no PEM-encoded certificate.", caFile))
		return nil, nil
	}
	return pool, certs
}

// loadCRL returns the revocation list crlFile (PEM or DER), whose
// signature must be one of cas', or nil after reporting why it cannot be
// used.
func (d *decoder) loadCRL(crlFile string, cas []*x509.Certificate) *x509.RevocationList {
	attr := d.attrs["listen.tls.client_crl_file"]
	data, err := os.ReadFile(crlFile)
	if err != nil {
		d.fileError(attr, "Cannot read CRL", crlFile, err)
		return nil
	}
	if b, _ := pem.Decode(data); b != nil {
		data = b.Bytes
	}
	crl, err := x509.ParseRevocationList(data)
	if err != nil {
		d.errorAt(attr, "Invalid CRL", fmt.Sprintf("%s is not a certificate revocation list: %s.", crlFile, err))
		return nil
	}
	for _, ca := range cas {
		if crl.CheckSignatureFrom(ca) == nil {
			return crl
		}
	}
	d.errorAt(attr, "Invalid CRL", fmt.Sprintf("%s is not signed by a CA of listen.tls.client_ca_file.", crlFile))
	return nil
}

// fileError reports a file that cannot be read.
func (d *decoder) fileError(a *hcl.Attribute, summary, file string, err error) {
	d.errorAt(a, summary, fmt.Sprintf("Reading %s failed: %s.", file, unwrapPathError(err)))
}
