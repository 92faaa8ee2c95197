// Package ldapauth checks a user's password against an LDAP directory and
// reads the user's groups, as PostgreSQL's ldap authentication method
// does: a simple bind to prefix+login+suffix, or a search for the user's
// entry (bound as a service DN) followed by a bind as that entry; over
// LDAPS or StartTLS, or in clear when configured so.
//
// Every exchange with the directory runs under Config.Timeout: a directory
// that is down or hangs yields ErrUnavailable within that time, never a
// hung session.
package ldapauth
