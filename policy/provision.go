package policy

import (
	"crypto/tls"
	"crypto/x509"
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
	attr := d.attrs["upstream.tls.ca_file"]
	pem, err := os.ReadFile(caFile)
	if err != nil {
		d.fileError(attr, "Cannot read CA bundle", caFile, err)
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		d.errorAt(attr, "Invalid CA bundle", fmt.Sprintf("%s holds no PEM-encoded certificate.", caFile))
		return nil
	}
	return pool
}

// fileError reports a file that cannot be read.
func (d *decoder) fileError(a *hcl.Attribute, summary, file string, err error) {
	d.errorAt(a, summary, fmt.Sprintf("Reading %s failed: %s.", file, unwrapPathError(err)))
}
