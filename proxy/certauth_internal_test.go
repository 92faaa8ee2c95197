package proxy

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"testing"
)

// TestSubjectName holds subjectName to what OpenSSL 3 prints with
// -nameopt RFC2253,-esc_msb (PostgreSQL's clientname=DN) for the same
// subjects, written by openssl req -subj.
func TestSubjectName(t *testing.T) {
	atv := func(oid asn1.ObjectIdentifier, v string) pkix.AttributeTypeAndValue {
		return pkix.AttributeTypeAndValue{Type: oid, Value: v}
	}
	var (
		cn     = asn1.ObjectIdentifier{2, 5, 4, 3}
		c      = asn1.ObjectIdentifier{2, 5, 4, 6}
		o      = asn1.ObjectIdentifier{2, 5, 4, 10}
		ou     = asn1.ObjectIdentifier{2, 5, 4, 11}
		dc     = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}
		uid    = asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}
		email  = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}
		serial = asn1.ObjectIdentifier{2, 5, 4, 5}
		street = asn1.ObjectIdentifier{2, 5, 4, 9}
		postal = asn1.ObjectIdentifier{2, 5, 4, 17}
	)
	one := func(atvs ...pkix.AttributeTypeAndValue) pkix.RelativeDistinguishedNameSET {
		return pkix.RelativeDistinguishedNameSET(atvs)
	}
	for _, tc := range []struct {
		name   string
		rdns   pkix.RDNSequence
		dn, cn string
	}{
		{"repeated CNs and DCs keep every value, in reverse",
			pkix.RDNSequence{one(atv(dc, "com")), one(atv(dc, "corp")), one(atv(cn, "Users")), one(atv(cn, "marie"))},
			"CN=marie,CN=Users,DC=corp,DC=com", "Users"},
		{"a second CN in another place is not merged",
			pkix.RDNSequence{one(atv(dc, "com")), one(atv(dc, "corp")), one(atv(cn, "Contractors")), one(atv(cn, "marie"))},
			"CN=marie,CN=Contractors,DC=corp,DC=com", "Contractors"},
		{"OUs on both sides of a CN stay where they are",
			pkix.RDNSequence{one(atv(o, "Example")), one(atv(ou, "Eng")), one(atv(cn, "x")), one(atv(ou, "Sales"))},
			"OU=Sales,CN=x,OU=Eng,O=Example", "x"},
		{"special characters are escaped",
			pkix.RDNSequence{one(atv(c, "FR")), one(atv(o, "Ex, Inc.")), one(atv(cn, "#carol ")), one(atv(email, "c@x.fr"))},
			`emailAddress=c@x.fr,CN=\#carol\ ,O=Ex\, Inc.,C=FR`, "#carol "},
		// As openssl req -multivalue-rdn -subj /O=Example/OU=Analysts+CN=carol
		// encodes it: a SET OF in DER order, CN's OID first.
		{"a multi-valued RDN joins with +",
			pkix.RDNSequence{one(atv(o, "Example")), one(atv(cn, "carol"), atv(ou, "Analysts"))},
			"OU=Analysts+CN=carol,O=Example", "carol"},
		{"OpenSSL's short names",
			pkix.RDNSequence{one(atv(uid, "jdoe")), one(atv(serial, "42")), one(atv(street, "1 rue; A")), one(atv(postal, "75001")), one(atv(cn, `a"b<c>`))},
			`CN=a\"b\<c\>,postalCode=75001,street=1 rue\; A,serialNumber=42,UID=jdoe`, `a"b<c>`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := asn1.Marshal(tc.rdns)
			if err != nil {
				t.Fatal(err)
			}
			if got, err := subjectName(raw, true); err != nil || got != tc.dn {
				t.Errorf("DN: %q, %v; want %q", got, err, tc.dn)
			}
			if got, err := subjectName(raw, false); err != nil || got != tc.cn {
				t.Errorf("CN: %q, %v; want %q", got, err, tc.cn)
			}
		})
	}
	t.Run("a common name holding a NUL is refused", func(t *testing.T) {
		raw, _ := asn1.Marshal(pkix.RDNSequence{one(atv(cn, "carol\x00.evil"))})
		if got, err := subjectName(raw, false); err == nil {
			t.Fatalf("got %q", got)
		}
	})
}
