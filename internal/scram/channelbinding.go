package scram

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/x509"
	"hash"
)

// TLSServerEndPoint returns the tls-server-end-point channel-binding data
// (RFC 5929 section 4.1) of the certificate a server presents: the hash of
// its DER encoding with the hash function of its signature algorithm, where
// MD5 and SHA-1 are replaced by SHA-256.
//
// It returns nil when cert is nil or RFC 5929 does not define the binding
// for its signature algorithm (Ed25519, for instance); the server must
// then not offer SCRAM-SHA-256-PLUS.
func TLSServerEndPoint(cert *x509.Certificate) []byte {
	if cert == nil {
		return nil
	}
	var h hash.Hash
	switch cert.SignatureAlgorithm {
	case x509.MD5WithRSA, x509.SHA1WithRSA, x509.ECDSAWithSHA1,
		x509.SHA256WithRSA, x509.SHA256WithRSAPSS, x509.ECDSAWithSHA256:
		h = sha256.New()
	case x509.SHA384WithRSA, x509.SHA384WithRSAPSS, x509.ECDSAWithSHA384:
		h = sha512.New384()
	case x509.SHA512WithRSA, x509.SHA512WithRSAPSS, x509.ECDSAWithSHA512:
		h = sha512.New()
	default:
		return nil
	}
	h.Write(cert.Raw)
	return h.Sum(nil)
}
