package ldapauth

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// Errors of Authenticate. ErrInvalidCredentials is a wrong password or an
// unknown user (the caller must not tell them apart to the client);
// ErrUnavailable is a directory that could not be reached or answered
// nothing usable in time.
var (
	ErrInvalidCredentials = errors.New("invalid credentials")
	ErrUnavailable        = errors.New("LDAP server unavailable")
	// ErrNotFound is a person Lookup found no entry for.
	ErrNotFound = errors.New("no such person in the directory")
)

// Config says how to reach the directory and find a user in it.
type Config struct {
	// URL is ldap://host[:port] or ldaps://host[:port].
	URL string
	// StartTLS upgrades an ldap:// connection with StartTLS before any
	// bind.
	StartTLS bool
	// RootCAs verify the directory's certificate (LDAPS and StartTLS);
	// nil means the system pool.
	RootCAs *x509.CertPool
	// ServerName is the name the certificate must match; the URL's host
	// when empty.
	ServerName string
	// Timeout bounds the whole exchange: dial, TLS, binds and searches.
	Timeout time.Duration

	// Prefix and Suffix make the bind DN of simple-bind mode:
	// Prefix + login + Suffix. Simple-bind mode is used when BaseDN is
	// empty.
	Prefix, Suffix string

	// BaseDN, when set, selects search+bind mode: the user's entry is
	// searched under BaseDN (bound as BindDN, or anonymously), then bound
	// as with the password.
	BaseDN string
	// BindDN and BindPassword are the service account that searches;
	// empty for an anonymous search.
	BindDN, BindPassword string
	// SearchAttribute is the attribute holding the login; default "uid".
	SearchAttribute string
	// SearchFilter replaces SearchAttribute when set: an LDAP filter in
	// which $username stands for the (escaped) login, as PostgreSQL's
	// ldapsearchfilter.
	SearchFilter string

	// MemberOfAttribute, when set, is an attribute of the user's entry
	// that lists the DNs of its groups (memberOf).
	MemberOfAttribute string
	// GroupBaseDN, when set, is searched for the user's groups with
	// GroupFilter, in which $dn stands for the user's DN and $username for
	// the login (escaped); default "(member=$dn)".
	GroupBaseDN string
	// GroupFilter is the group search filter; see GroupBaseDN.
	GroupFilter string
}

// Result is an authenticated user.
type Result struct {
	// DN is the user's entry.
	DN string
	// Groups are the DNs of the user's groups, sorted and deduplicated,
	// as the directory spells them.
	Groups []string
}

// dnSpecial are the characters PostgreSQL refuses in a login it puts in
// a DN (simple-bind mode); pgveil refuses them in search+bind too, and
// escapes the login in filters.
const dnSpecial = ",+\"\\<>;=*()/\x00#"

// validLogin reports whether login may be put into a DN or a filter: not
// empty, no character that DNs or filters give a meaning, no white space
// at either end.
func validLogin(login string) bool {
	return login != "" && !strings.ContainsAny(login, dnSpecial) && strings.TrimSpace(login) == login
}

// Authenticate checks password for login and returns the user's entry and
// groups. An empty password is refused without asking the directory (an
// LDAP bind with an empty password is an anonymous bind, which succeeds).
func (c *Config) Authenticate(ctx context.Context, login, password string) (*Result, error) {
	if password == "" {
		return nil, fmt.Errorf("empty password: %w", ErrInvalidCredentials)
	}
	if !validLogin(login) {
		return nil, fmt.Errorf("login %q has characters not allowed in an LDAP name: %w", login, ErrInvalidCredentials)
	}
	return c.exchange(ctx, func(conn *ldap.Conn) (*Result, error) { return c.authenticate(conn, login, password) })
}

// CanLookup reports whether Lookup can read a person's groups without
// the person's password: in search+bind mode with a bind DN.
func (c *Config) CanLookup() bool { return c.BaseDN != "" && c.BindDN != "" }

// Lookup reads login's entry and groups as the bind DN, without the
// person's password, as a reload does for running sessions. It needs
// CanLookup; a login without an entry is ErrNotFound, and a directory
// that cannot answer within Config.Timeout (or ctx) ErrUnavailable.
//
// NOTE: the groups are read as the bind DN, not as the person: the bind
// DN must be allowed to read them, or the person seems to have none.
func (c *Config) Lookup(ctx context.Context, login string) (*Result, error) {
	if !c.CanLookup() {
		return nil, fmt.Errorf("%w: reading groups without the password needs base_dn and bind_dn", ErrUnavailable)
	}
	if !validLogin(login) {
		return nil, fmt.Errorf("login %q has characters not allowed in an LDAP name: %w", login, ErrNotFound)
	}
	return c.exchange(ctx, func(conn *ldap.Conn) (*Result, error) { return c.lookup(conn, login) })
}

// exchange runs one exchange with the directory on a new connection, the
// whole of it bounded by Config.Timeout (10 s when unset) and ctx: a
// directory that does not answer in time is ErrUnavailable.
func (c *Config) exchange(ctx context.Context, run func(*ldap.Conn) (*Result, error)) (*Result, error) {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	conn, err := c.dial(ctx)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// NOTE: go-ldap's own timeout bounds each request; closing the
	// connection when ctx ends bounds the exchange as a whole.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	deadline, _ := ctx.Deadline()
	if err := c.startTLS(conn, deadline); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%w: no answer within %s", ErrUnavailable, timeout)
		}
		return nil, err
	}
	conn.SetTimeout(time.Until(deadline))

	res, err := run(conn)
	if err != nil && ctx.Err() != nil {
		return nil, fmt.Errorf("%w: no answer within %s", ErrUnavailable, timeout)
	}
	return res, err
}

// lookup finds login's entry and groups on conn, bound as the bind DN.
func (c *Config) lookup(conn *ldap.Conn, login string) (*Result, error) {
	if err := c.bindService(conn); err != nil {
		return nil, err
	}
	dn, err := c.findUser(conn, login, ErrNotFound)
	if err != nil {
		return nil, err
	}
	groups, err := c.groups(conn, dn, login)
	if err != nil {
		return nil, err
	}
	return &Result{DN: dn, Groups: groups}, nil
}

// findUser searches login's entry under BaseDN; none, several, or one
// that spells the login otherwise, is missing (wrapped).
func (c *Config) findUser(conn *ldap.Conn, login string, missing error) (string, error) {
	filter := c.userFilter(login)
	attrs := []string{"dn"}
	if c.SearchFilter == "" {
		attrs = []string{c.searchAttribute()}
	}
	sr, err := conn.Search(ldap.NewSearchRequest(c.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
		2, 0, false, filter, attrs, nil))
	if err != nil {
		return "", unavailable("searching for the user", err)
	}
	switch len(sr.Entries) {
	case 0:
		return "", fmt.Errorf("no entry matches %s under %q: %w", filter, c.BaseDN, missing)
	case 1:
		e := sr.Entries[0]
		if c.SearchFilter == "" {
			if err := spelledAs(e, c.searchAttribute(), login); err != nil {
				return "", fmt.Errorf("%v: %w", err, missing)
			}
		}
		return e.DN, nil
	default:
		return "", fmt.Errorf("several entries match %s under %q: %w", filter, c.BaseDN, missing)
	}
}

// spelledAs returns an error when the entry e, found or bound for login,
// holds the login attribute attr but none of its values is login exactly.
//
// NOTE: the directory matches logins as their attribute's matching rule
// says, usually ignoring case and repeated spaces (uid=DANA binds dana's
// entry), while pgveil keys users, their settings, their connection
// limits and the audit trail by the login as spelled: a person must log
// in under the one spelling the directory holds. An entry that does not
// show the attribute (not readable) is taken as found; the identities
// then refuse a login spelled like another (Identities.DirectoryUser).
func spelledAs(e *ldap.Entry, attr, login string) error {
	// NOTE: attribute names are case-insensitive (UID is uid); an alias
	// of the attribute (userid) is not recognised, and its entry is
	// taken as not showing it.
	values := e.GetEqualFoldAttributeValues(attr)
	if len(values) == 0 || slices.Contains(values, login) {
		return nil
	}
	return fmt.Errorf("the entry %q spells the login %q otherwise (%s: %q)", e.DN, login, attr, values)
}

// searchAttribute is the attribute holding the login in search+bind mode.
func (c *Config) searchAttribute() string {
	if c.SearchAttribute == "" {
		return "uid"
	}
	return c.SearchAttribute
}

// checkBoundSpelling returns an error wrapping ErrInvalidCredentials when
// dn, the entry a simple bind put login into (Prefix + login + Suffix),
// spells the login otherwise in the attribute of its first RDN; read
// bound as the user. A DN whose first RDN is not the login alone (an
// Active Directory DOMAIN\login) is not checked.
func checkBoundSpelling(conn *ldap.Conn, dn, login string) error {
	parsed, err := ldap.ParseDN(dn)
	if err != nil || len(parsed.RDNs) == 0 || len(parsed.RDNs[0].Attributes) != 1 ||
		parsed.RDNs[0].Attributes[0].Value != login {
		return nil
	}
	attr := parsed.RDNs[0].Attributes[0].Type
	sr, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
		1, 0, false, "(objectClass=*)", []string{attr}, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) || ldap.IsErrorWithCode(err, ldap.LDAPResultInsufficientAccessRights) {
			return nil
		}
		return unavailable("reading the user's entry", err)
	}
	for _, e := range sr.Entries {
		if err := spelledAs(e, attr, login); err != nil {
			return fmt.Errorf("%v: %w", err, ErrInvalidCredentials)
		}
	}
	return nil
}

// authenticate runs the binds and searches on conn.
func (c *Config) authenticate(conn *ldap.Conn, login, password string) (*Result, error) {
	var dn string
	if c.BaseDN == "" {
		dn = c.Prefix + login + c.Suffix
	} else {
		if err := c.bindService(conn); err != nil {
			return nil, err
		}
		var err error
		if dn, err = c.findUser(conn, login, ErrInvalidCredentials); err != nil {
			return nil, err
		}
	}
	if err := conn.Bind(dn, password); err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			return nil, fmt.Errorf("bind as %q refused: %w", dn, ErrInvalidCredentials)
		}
		return nil, unavailable("binding as the user", err)
	}
	if c.BaseDN == "" {
		if err := checkBoundSpelling(conn, dn, login); err != nil {
			return nil, err
		}
	}
	groups, err := c.groups(conn, dn, login)
	if err != nil {
		return nil, err
	}
	return &Result{DN: dn, Groups: groups}, nil
}

// bindService binds as BindDN for searches (or stays anonymous).
func (c *Config) bindService(conn *ldap.Conn) error {
	if c.BindDN == "" {
		return nil
	}
	if err := conn.Bind(c.BindDN, c.BindPassword); err != nil {
		// A refused service bind is a configuration problem, not the
		// user's: it is reported as the directory being unusable.
		return unavailable("binding as "+c.BindDN, err)
	}
	return nil
}

// userFilter is the filter that finds login's entry.
func (c *Config) userFilter(login string) string {
	esc := ldap.EscapeFilter(login)
	if c.SearchFilter != "" {
		return strings.ReplaceAll(c.SearchFilter, "$username", esc)
	}
	return "(" + c.searchAttribute() + "=" + esc + ")"
}

// groups reads the user's groups, bound as the user: the
// MemberOfAttribute of its entry and the groups GroupFilter finds under
// GroupBaseDN.
func (c *Config) groups(conn *ldap.Conn, dn, login string) ([]string, error) {
	var out []string
	if c.MemberOfAttribute != "" {
		sr, err := conn.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			1, 0, false, "(objectClass=*)", []string{c.MemberOfAttribute}, nil))
		if err != nil {
			return nil, unavailable("reading "+c.MemberOfAttribute, err)
		}
		for _, e := range sr.Entries {
			out = append(out, e.GetAttributeValues(c.MemberOfAttribute)...)
		}
	}
	if c.GroupBaseDN != "" {
		f := c.GroupFilter
		if f == "" {
			f = "(member=$dn)"
		}
		// NOTE: one pass: a DN holding the text $username keeps it, as
		// a login holding $dn does; neither is read as a placeholder.
		f = strings.NewReplacer("$dn", ldap.EscapeFilter(dn), "$username", ldap.EscapeFilter(login)).Replace(f)
		sr, err := conn.Search(ldap.NewSearchRequest(c.GroupBaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, f, []string{"dn"}, nil))
		if err != nil {
			return nil, unavailable("searching for groups", err)
		}
		for _, e := range sr.Entries {
			out = append(out, e.DN)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// dial connects to the directory: TCP, and TLS for ldaps://. The
// caller runs startTLS once it bounds the connection by ctx.
// NOTE: ldap:// and ldaps:// are dialled here, under ctx: go-ldap's
// DialURL takes no context, so a directory that does not answer the
// connection or the TLS handshake would hold the caller to the
// timeout, past ctx's end (the server shutting down).
func (c *Config) dial(ctx context.Context) (*ldap.Conn, error) {
	u, err := url.Parse(c.URL)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid URL %q: %v", ErrUnavailable, c.URL, err)
	}
	port := map[string]string{"ldap": ldap.DefaultLdapPort, "ldaps": ldap.DefaultLdapsPort}[u.Scheme]
	if port == "" {
		deadline, _ := ctx.Deadline()
		conn, err := ldap.DialURL(c.URL, ldap.DialWithDialer(&net.Dialer{Deadline: deadline}), ldap.DialWithTLSConfig(c.tlsConfig(u)))
		if err != nil {
			return nil, unavailable("connecting to "+c.URL, err)
		}
		return conn, nil
	}
	if u.Port() != "" {
		port = u.Port()
	}
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(u.Hostname(), port))
	if err != nil {
		return nil, unavailable("connecting to "+c.URL, err)
	}
	if u.Scheme == "ldaps" {
		tc := tls.Client(nc, c.tlsConfig(u))
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, unavailable("connecting to "+c.URL, err)
		}
		nc = tc
	}
	conn := ldap.NewConn(nc, u.Scheme == "ldaps")
	conn.Start()
	return conn, nil
}

// startTLS upgrades conn with StartTLS when configured so, within
// deadline.
func (c *Config) startTLS(conn *ldap.Conn, deadline time.Time) error {
	u, err := url.Parse(c.URL)
	if err != nil || !c.StartTLS || u.Scheme != "ldap" {
		return nil
	}
	conn.SetTimeout(time.Until(deadline))
	if err := conn.StartTLS(c.tlsConfig(u)); err != nil {
		return unavailable("StartTLS with "+c.URL, err)
	}
	return nil
}

// tlsConfig is the TLS configuration for the directory at u.
func (c *Config) tlsConfig(u *url.URL) *tls.Config {
	name := c.ServerName
	if name == "" {
		name = u.Hostname()
	}
	return &tls.Config{RootCAs: c.RootCAs, ServerName: name, MinVersion: tls.VersionTLS12}
}

func unavailable(what string, err error) error {
	return fmt.Errorf("%w: %s: %v", ErrUnavailable, what, err)
}

// SameDN reports whether a and b name the same entry: equal once parsed,
// attribute types and values compared case-insensitively (as the usual
// matching rules of cn, ou, dc and uid do). Unparsable DNs are equal
// only when their texts are.
func SameDN(a, b string) bool {
	da, errA := ldap.ParseDN(a)
	db, errB := ldap.ParseDN(b)
	if errA != nil || errB != nil {
		return a == b
	}
	return da.EqualFold(db)
}
