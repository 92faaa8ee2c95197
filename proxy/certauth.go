package proxy

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/hex"
	"fmt"
	"strings"
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

// subjectName returns what of the certificate subject raw (its DER) the
// login must equal, as PostgreSQL's clientname: with dn, the whole
// subject as OpenSSL writes it in RFC 2253 form for PostgreSQL
// (X509_NAME_print_ex with XN_FLAG_RFC2253 less ASN1_STRFLGS_ESC_MSB):
// the RDNs last first, joined by commas, the values of a multi-valued RDN
// by "+", OpenSSL's short names; without it, the first common name, as
// X509_NAME_get_text_by_NID finds it. It is an error for a subject it
// cannot read, or a common name holding a NUL.
//
// NOTE: not pkix.Name's String, which keeps one value of an attribute
// that appears twice (CN=marie,CN=Users and CN=marie,CN=Contractors
// print alike), merges RDNs, and names DC and UID by their OIDs.
func subjectName(raw []byte, dn bool) (string, error) {
	var rdns pkix.RDNSequence
	if rest, err := asn1.Unmarshal(raw, &rdns); err != nil || len(rest) > 0 {
		return "", fmt.Errorf("not a distinguished name")
	}
	if !dn {
		for _, rdn := range rdns {
			for _, atv := range rdn {
				if atv.Type.Equal(oidCommonName) {
					s, ok := atv.Value.(string)
					if !ok || strings.IndexByte(s, 0) >= 0 {
						return "", fmt.Errorf("the common name is not a string without NUL")
					}
					return s, nil
				}
			}
		}
		return "", nil
	}
	var b strings.Builder
	for i := len(rdns) - 1; i >= 0; i-- {
		if i < len(rdns)-1 {
			b.WriteByte(',')
		}
		// NOTE: OpenSSL reverses the list of every value, so those of a
		// multi-valued RDN come last first too.
		for j := len(rdns[i]) - 1; j >= 0; j-- {
			atv := rdns[i][j]
			if j < len(rdns[i])-1 {
				b.WriteByte('+')
			}
			name, known := openSSLShortNames[atv.Type.String()]
			if !known {
				name = atv.Type.String()
			}
			b.WriteString(name)
			b.WriteByte('=')
			s, ok := atv.Value.(string)
			if !known || !ok {
				// OpenSSL dumps these as # and the value's DER.
				der, err := asn1.Marshal(atv.Value)
				if err != nil {
					return "", fmt.Errorf("attribute %s: %v", atv.Type, err)
				}
				b.WriteByte('#')
				b.WriteString(strings.ToUpper(hex.EncodeToString(der)))
				continue
			}
			escapeRFC2253(&b, s)
		}
	}
	return b.String(), nil
}

// escapeRFC2253 writes s as OpenSSL's RFC 2253 escaping does, bytes of
// 0x80 and above as they are: a backslash before , + " \ < > ;, before
// a leading # or space and a trailing space, and \XX for a control byte.
func escapeRFC2253(b *strings.Builder, s string) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ',' || c == '+' || c == '"' || c == '\\' || c == '<' || c == '>' || c == ';',
			i == 0 && (c == '#' || c == ' '), i == len(s)-1 && c == ' ':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < 0x20 || c == 0x7f:
			fmt.Fprintf(b, "\\%02X", c)
		default:
			b.WriteByte(c)
		}
	}
}

// oidCommonName is the common name's attribute type.
var oidCommonName = asn1.ObjectIdentifier{2, 5, 4, 3}

// openSSLShortNames are OpenSSL's short names of the attribute types a
// subject commonly holds, by OID.
var openSSLShortNames = map[string]string{
	"2.5.4.3":                    "CN",
	"2.5.4.4":                    "SN",
	"2.5.4.5":                    "serialNumber",
	"2.5.4.6":                    "C",
	"2.5.4.7":                    "L",
	"2.5.4.8":                    "ST",
	"2.5.4.9":                    "street",
	"2.5.4.10":                   "O",
	"2.5.4.11":                   "OU",
	"2.5.4.12":                   "title",
	"2.5.4.17":                   "postalCode",
	"2.5.4.42":                   "GN",
	"2.5.4.43":                   "initials",
	"2.5.4.44":                   "generationQualifier",
	"2.5.4.46":                   "dnQualifier",
	"2.5.4.65":                   "pseudonym",
	"0.9.2342.19200300.100.1.1":  "UID",
	"0.9.2342.19200300.100.1.25": "DC",
	"1.2.840.113549.1.9.1":       "emailAddress",
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
				// NOTE: the DER of the names: Name.String drops repeated
				// attributes, so two issuers may print alike.
				if !bytes.Equal(c.RawIssuer, crl.RawIssuer) {
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
	name, err := subjectName(leaf.RawSubject, lt.ClientName == policy.ClientNameDN)
	switch {
	case err != nil:
		return "client certificate subject: " + err.Error()
	case name == "":
		return "client certificate contains no user name"
	case name != login:
		return fmt.Sprintf("provided user name (%s) and authenticated user name (%s) do not match", login, name)
	}
	return ""
}
