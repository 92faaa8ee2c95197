package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/policy"
)

// authenticateLDAP authenticates the client as PostgreSQL's ldap method
// does: it asks for the password in clear (AuthenticationCleartextPassword)
// and binds to the directory l with it. The password travels readable,
// so a connection without TLS is refused before it is asked for, unless
// l allows cleartext. The user's directory groups, mapped by the ldap
// group blocks, give its roles and groups; a login the mapping gives no
// role is refused like a wrong password.
func (ss *session) authenticateLDAP(res *startupResult, l *policy.LDAP) error {
	user := res.params.user
	failed := func(reason, hint string) error {
		return &clientError{
			resp:  fatal(CodeInvalidAuthorization, fmt.Sprintf("LDAP authentication failed for user %q", user), hint),
			cause: &authFailure{method: policy.AuthLDAP, reason: reason},
		}
	}
	if !res.tls && !l.AllowCleartext {
		return &clientError{
			resp: fatal(CodeInvalidAuthorization, "LDAP authentication requires an encrypted connection",
				"The password would be sent in clear: connect with sslmode=require (or stronger)."),
			cause: &authFailure{method: policy.AuthLDAP, reason: "no TLS on the client connection"},
		}
	}
	if err := ss.sendClient(&pgproto3.AuthenticationCleartextPassword{}); err != nil {
		return err
	}
	body, err := ss.readAuthMessage("password")
	if err != nil {
		return err
	}
	var pm pgproto3.PasswordMessage
	if err := pm.Decode(body); err != nil {
		return fatalErr(CodeProtocolViolation, "malformed password packet", "", err)
	}
	r, err := l.Directory.Authenticate(ss.ctx, user, pm.Password)
	if errors.Is(err, ldapauth.ErrUnavailable) {
		if ce := ss.startCut(err); ce != nil {
			return ce
		}
	}
	switch {
	case errors.Is(err, ldapauth.ErrUnavailable):
		return failed(err.Error(), "pgveil could not reach the LDAP directory; try again later.")
	case err != nil:
		return failed(err.Error(), "")
	}
	u, ok := ss.srv.directory.DirectoryUser(user, r.Groups)
	if !ok {
		return failed(fmt.Sprintf("the directory groups of %s give no role", r.DN), "")
	}
	ss.info.Roles = u.Roles
	ss.info.Directory = true
	ss.info.DirectoryGroups = r.Groups
	return ss.sendClient(&pgproto3.AuthenticationOk{})
}
