package proxy

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/policy"
)

// authenticateCert authenticates u, whose method is policy.AuthCert, by
// the client certificate of the TLS handshake, as PostgreSQL's cert
// method: the certificate must chain to a CA of listen.tls.client_ca_file,
// be valid now for client authentication, not be on the CRL, and its
// name (ListenTLS.ClientName) must be the login. The handshake proved the
// client holds the certificate's key.
func (ss *session) authenticateCert(res *startupResult, u *policy.User) error {
	var peer []*x509.Certificate
	if tc, ok := res.conn.(*tls.Conn); ok {
		peer = tc.ConnectionState().PeerCertificates
	}
	lt := ss.srv.cfg.TLS
	if len(peer) == 0 || lt == nil || lt.ClientCAs == nil {
		return &clientError{
			resp:  fatal(CodeInvalidAuthorization, "connection requires a valid client certificate", ""),
			cause: &authFailure{method: policy.AuthCert, reason: "no client certificate"},
		}
	}
	if reason := checkClientCert(peer, lt, time.Now(), u.Login); reason != "" {
		return &clientError{
			resp:  fatal(CodeInvalidAuthorization, fmt.Sprintf("certificate authentication failed for user %q", u.Login), ""),
			cause: &authFailure{method: policy.AuthCert, reason: reason},
		}
	}
	ss.info.Roles = u.Roles
	return ss.sendClient(&pgproto3.AuthenticationOk{})
}

// checkClientCert returns why the client's certificate chain peer does
// not authenticate login under lt at now, or "" when it does.
func checkClientCert(peer []*x509.Certificate, lt *policy.ListenTLS, now time.Time, login string) string {
	leaf := peer[0]
	inter := x509.NewCertPool()
	for _, c := range peer[1:] {
		inter.AddCert(c)
	}
	chains, err := leaf.Verify(x509.VerifyOptions{
		Roots:         lt.ClientCAs,
		Intermediates: inter,
		CurrentTime:   now,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	if err != nil {
		return "certificate not trusted: " + err.Error()
	}
	if crl := lt.ClientCRL; crl != nil {
		if now.After(crl.NextUpdate) && !crl.NextUpdate.IsZero() {
			return "the client CRL is out of date (next update " + crl.NextUpdate.UTC().Format(time.RFC3339) + ")"
		}
		for _, chain := range chains {
			for _, c := range chain {
				if c.Issuer.String() != crl.Issuer.String() {
					continue
				}
				for _, r := range crl.RevokedCertificateEntries {
					if r.SerialNumber.Cmp(c.SerialNumber) == 0 {
						return fmt.Sprintf("certificate revoked (serial %s)", c.SerialNumber)
					}
				}
			}
		}
	}
	name := leaf.Subject.CommonName
	if lt.ClientName == policy.ClientNameDN {
		name = leaf.Subject.String()
	}
	switch {
	case name == "":
		return "client certificate contains no user name"
	case name != login:
		return fmt.Sprintf("provided user name (%s) and authenticated user name (%s) do not match", login, name)
	}
	return ""
}
