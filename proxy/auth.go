package proxy

import (
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/scram"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/wire"
)

// maxAuthMessage caps SASL messages, like PostgreSQL's
// PG_MAX_AUTH_TOKEN_LENGTH.
const maxAuthMessage = 65535

// authFailure marks a failed authentication: a wrong password or an
// unknown user for SCRAM (the client is told 28P01 either way; only the
// log says which), a refused certificate for cert, a refused password, a
// login without mapped role or an unreachable directory for ldap.
type authFailure struct {
	// method is the user's authentication method; "" is SCRAM.
	method string
	// reason is what the log and the audit trail say.
	reason string
	// throttles reports that this failure started the login's throttle
	// (throttle.go).
	throttles bool
}

// Error implements error.
func (a *authFailure) Error() string {
	switch a.method {
	case policy.AuthCert:
		return "certificate authentication failed: " + a.reason
	case policy.AuthLDAP:
		return "LDAP authentication failed: " + a.reason
	}
	return "password authentication failed: " + a.reason
}

// methodName names the method for the log.
func (a *authFailure) methodName() string {
	if a.method == "" {
		return policy.AuthSCRAM
	}
	return a.method
}

// authenticate authenticates the client as its startup user, by the
// user's method: a client certificate for users with auth = "cert", the
// LDAP directory for users with auth = "ldap" and, when an ldap block
// exists, for logins the configuration does not know; SCRAM-SHA-256
// otherwise.
//
// SCRAM runs against the verifier configured for user. An unknown user
// runs the same exchange against a mock verifier and fails at the same
// point with the same error, so the response neither says nor times
// whether the user exists.
func (ss *session) authenticate(res *startupResult) error {
	user := res.params.user
	u, known := ss.srv.users(user)
	if known && u.Method() == policy.AuthCert {
		return ss.authenticateCert(res, u)
	}
	if l := ss.srv.directory.LDAP(); l != nil && (!known || u.Method() == policy.AuthLDAP) {
		return ss.authenticateLDAP(res, l)
	}
	v := scram.MockVerifier(user, ss.srv.mockSecret)
	if f := ss.srv.mockIterations; f != nil {
		// NOTE: the mock's keys do not depend on the count; only what
		// the server-first-message says does.
		if n := f(); n > 0 {
			v.Iterations = n
		}
	}
	if known {
		v = u.Verifier
	}
	// Channel binding (SCRAM-SHA-256-PLUS) is offered on TLS connections:
	// tls-server-end-point binds the exchange to pgveil's certificate.
	var cbData []byte
	if res.tls {
		cbData = ss.srv.cbData
	}
	mechs := scram.Mechanisms(cbData != nil)
	if err := ss.sendClient(&pgproto3.AuthenticationSASL{AuthMechanisms: mechs}); err != nil {
		return err
	}

	body, err := ss.readAuthMessage("SASL")
	if err != nil {
		return err
	}
	var init pgproto3.SASLInitialResponse
	if err := init.Decode(body); err != nil {
		return fatalErr(CodeProtocolViolation, "malformed SASLInitialResponse message", "", err)
	}
	offered := false
	for _, m := range mechs {
		offered = offered || m == init.AuthMechanism
	}
	if !offered {
		return fatalErr(CodeProtocolViolation, "client selected an invalid SASL authentication mechanism", "", nil)
	}
	conv := scram.NewConversation(v, known, cbData)
	first, err := conv.ServerFirst(init.AuthMechanism, init.Data)
	if err != nil {
		return fatalErr(CodeProtocolViolation, "malformed SCRAM message", "", err)
	}
	if err := ss.sendClient(&pgproto3.AuthenticationSASLContinue{Data: first}); err != nil {
		return err
	}

	body, err = ss.readAuthMessage("SASL")
	if err != nil {
		return err
	}
	var resp pgproto3.SASLResponse
	if err := resp.Decode(body); err != nil {
		return fatalErr(CodeProtocolViolation, "malformed SASLResponse message", "", err)
	}
	final, err := conv.ServerFinal(resp.Data)
	switch {
	case errors.Is(err, scram.ErrAuthFailed):
		reason := "wrong password"
		if !known {
			reason = "unknown user"
		}
		return &clientError{
			resp:  fatal(CodeInvalidPassword, fmt.Sprintf("password authentication failed for user %q", user), ""),
			cause: &authFailure{reason: reason},
		}
	case err != nil:
		return fatalErr(CodeProtocolViolation, "malformed SCRAM message", "", err)
	}
	if known {
		ss.info.Roles = u.Roles
	}
	return ss.sendClient(&pgproto3.AuthenticationSASLFinal{Data: final}, &pgproto3.AuthenticationOk{})
}

// readAuthMessage reads one PasswordMessage-family ('p') message, a
// response of kind what ("SASL", "password"), and returns its body.
func (ss *session) readAuthMessage(what string) ([]byte, error) {
	typ, total, err := ss.cin.Header()
	if err != nil {
		return nil, err
	}
	if typ != 'p' {
		return nil, fatalErr(CodeProtocolViolation,
			fmt.Sprintf("expected %s response, got message type %q", what, typ), "", nil)
	}
	if total > maxAuthMessage {
		return nil, fatalErr(CodeProtocolViolation, what+" message too large", "", nil)
	}
	msg, err := ss.cin.Message(total)
	if err != nil {
		return nil, err
	}
	return msg[wire.HeaderLen:], nil
}
