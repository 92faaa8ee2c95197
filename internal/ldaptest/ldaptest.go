package ldaptest

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/pgveil/pgveil/internal/testcert"
)

// Slapd is the path of Debian's slapd.
const Slapd = "/usr/sbin/slapd"

// The directory every Server starts with.
const (
	// BaseDN is the suffix of the database.
	BaseDN = "dc=example,dc=org"
	// PeopleDN holds the people, uid=<login>,PeopleDN.
	PeopleDN = "ou=people," + BaseDN
	// GroupsDN holds the groups (groupOfNames), cn=<name>,GroupsDN.
	GroupsDN = "ou=groups," + BaseDN
	// AdminDN is the root DN; AdminPassword its password.
	AdminDN       = "cn=admin," + BaseDN
	AdminPassword = "admin-secret"
	// ReaderDN is a service account that may search, for search+bind;
	// ReaderPassword its password.
	ReaderDN       = "cn=reader," + BaseDN
	ReaderPassword = "reader-secret"
)

// Server is a running slapd.
type Server struct {
	// URL is the plain LDAP address, ldap://127.0.0.1:<port> (StartTLS
	// is offered there).
	URL string
	// LDAPSURL is the LDAPS address, ldaps://127.0.0.1:<port>.
	LDAPSURL string
	// CAFile is the PEM certificate the server presents (self-signed, for
	// localhost and 127.0.0.1): the CA clients trust.
	CAFile string
	// Cert is that certificate.
	Cert tls.Certificate

	cmd *exec.Cmd
}

// Start starts a slapd holding the people and groups given (people:
// login → password; groups: name → member logins). It is stopped when the
// test ends.
func Start(t testing.TB, people map[string]string, groups map[string][]string) *Server {
	t.Helper()
	if _, err := os.Stat(Slapd); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("ldaptest: CI=true: slapd is missing (apt-get install slapd ldap-utils): %v", err)
		}
		t.Skip("slapd not installed (apt-get install slapd ldap-utils)")
	}
	dir := t.TempDir()
	db := filepath.Join(dir, "db")
	if err := os.Mkdir(db, 0o700); err != nil {
		t.Fatal(err)
	}
	cert := testcert.New(t)
	certPEM, keyPEM := testcert.PEM(t, cert)
	s := &Server{CAFile: filepath.Join(dir, "server.crt"), Cert: cert}
	keyFile := filepath.Join(dir, "server.key")
	write(t, s.CAFile, certPEM)
	write(t, keyFile, keyPEM)
	conf := filepath.Join(dir, "slapd.conf")
	write(t, conf, []byte(fmt.Sprintf(`include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
moduleload memberof
pidfile %[1]s/slapd.pid
argsfile %[1]s/slapd.args
TLSCertificateFile %[2]s
TLSCertificateKeyFile %[3]s
database mdb
maxsize 10485760
suffix "%[4]s"
rootdn "%[5]s"
rootpw %[6]s
directory %[7]s
overlay memberof
access to attrs=userPassword by anonymous auth by self read by * none
access to * by * read
`, dir, s.CAFile, keyFile, BaseDN, AdminDN, AdminPassword, db)))

	// NOTE: a port freePort found free may be taken again (by another
	// test package's server) before slapd binds it; slapd then exits
	// at once, and is started again on other ports.
	for attempt := 1; ; attempt++ {
		out, up := s.start(t, conf)
		if up {
			break
		}
		if attempt == 3 {
			t.Fatalf("ldaptest: slapd exited %d times before it listened: %s", attempt, out)
		}
	}
	s.seed(t, people, groups)
	return s
}

// start starts slapd with conf on two free ports and waits until it
// listens. It reports false, with slapd's output, when slapd exited
// first; it fails t when slapd is still not up after 15 s.
func (s *Server) start(t testing.TB, conf string) (string, bool) {
	t.Helper()
	ldapPort, ldapsPort := freePort(t), freePort(t)
	s.URL = "ldap://127.0.0.1:" + strconv.Itoa(ldapPort)
	s.LDAPSURL = "ldaps://127.0.0.1:" + strconv.Itoa(ldapsPort)
	var out bytes.Buffer
	cmd := exec.Command(Slapd, "-d", "0", "-f", conf, "-h", s.URL+"/ "+s.LDAPSURL+"/")
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatalf("ldaptest: starting slapd: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	deadline := time.Now().Add(15 * time.Second)
	for {
		c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err == nil {
			c.Close()
			break
		}
		select {
		case <-done:
			return out.String(), false
		default:
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("ldaptest: slapd did not come up: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	s.cmd = cmd
	t.Cleanup(func() {
		_ = resume(cmd.Process)
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	})
	return "", true
}

// seed adds the base entries, the reader account, people and groups.
func (s *Server) seed(t testing.TB, people map[string]string, groups map[string][]string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	add := func(dn string, attrs map[string][]string) {
		r := ldap.NewAddRequest(dn, nil)
		for k, v := range attrs {
			r.Attribute(k, v)
		}
		if err := c.Add(r); err != nil {
			t.Fatalf("ldaptest: adding %s: %v", dn, err)
		}
	}
	add(BaseDN, map[string][]string{"objectClass": {"dcObject", "organization"}, "dc": {"example"}, "o": {"Example"}})
	add(PeopleDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"people"}})
	add(GroupsDN, map[string][]string{"objectClass": {"organizationalUnit"}, "ou": {"groups"}})
	add(ReaderDN, map[string][]string{"objectClass": {"organizationalRole", "simpleSecurityObject"}, "cn": {"reader"}, "userPassword": {ReaderPassword}})
	for login, pw := range people {
		add(PersonDN(login), map[string][]string{
			"objectClass": {"inetOrgPerson"}, "uid": {login}, "cn": {login}, "sn": {login}, "userPassword": {pw},
		})
	}
	for name, members := range groups {
		dns := make([]string, 0, len(members))
		for _, m := range members {
			dns = append(dns, PersonDN(m))
		}
		add(GroupDN(name), map[string][]string{"objectClass": {"groupOfNames"}, "cn": {name}, "member": dns})
	}
}

// PersonDN is the DN of the person login.
func PersonDN(login string) string { return "uid=" + ldap.EscapeDN(login) + "," + PeopleDN }

// GroupDN is the DN of the group name.
func GroupDN(name string) string { return "cn=" + ldap.EscapeDN(name) + "," + GroupsDN }

// Admin returns a connection bound as the root DN; the caller closes it.
func (s *Server) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	c, err := ldap.DialURL(s.URL)
	if err != nil {
		t.Fatalf("ldaptest: dialing %s: %v", s.URL, err)
	}
	if err := c.Bind(AdminDN, AdminPassword); err != nil {
		c.Close()
		t.Fatalf("ldaptest: binding as %s: %v", AdminDN, err)
	}
	return c
}

// RemoveMember removes login from the group name.
func (s *Server) RemoveMember(t testing.TB, name, login string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	r := ldap.NewModifyRequest(GroupDN(name), nil)
	r.Delete("member", []string{PersonDN(login)})
	if err := c.Modify(r); err != nil {
		t.Fatalf("ldaptest: removing %s from %s: %v", login, name, err)
	}
}

// RemovePerson deletes login's entry (and, through memberof, its
// memberships).
func (s *Server) RemovePerson(t testing.TB, login string) {
	t.Helper()
	c := s.Admin(t)
	defer c.Close()
	if err := c.Del(ldap.NewDelRequest(PersonDN(login), nil)); err != nil {
		t.Fatalf("ldaptest: removing %s: %v", login, err)
	}
}

// Pause stops slapd (SIGSTOP): connections are accepted by the kernel
// but never answered, as with a directory that hangs. Resume undoes it;
// the test's end does too.
func (s *Server) Pause(t testing.TB) {
	t.Helper()
	if err := pause(s.cmd.Process); err != nil {
		t.Fatal(err)
	}
}

// Resume continues a paused slapd.
func (s *Server) Resume(t testing.TB) {
	t.Helper()
	if err := resume(s.cmd.Process); err != nil {
		t.Fatal(err)
	}
}

// DownURL returns an ldap:// URL on a loopback port nothing listens on.
func DownURL(t testing.TB) string {
	t.Helper()
	return "ldap://127.0.0.1:" + strconv.Itoa(freePort(t))
}

// freePort returns a loopback TCP port that was free a moment ago.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// write writes b to path, readable by its owner only.
func write(t testing.TB, path string, b []byte) {
	t.Helper()
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
