// Package ldaptest starts a throwaway OpenLDAP server (Debian's slapd) for
// tests, as internal/pgtest does for PostgreSQL: a configuration and a
// database in a temporary directory, plain LDAP and LDAPS on free loopback
// ports, and a small directory of people and groups.
//
// Under CI=true a missing slapd fails the test; elsewhere it skips it.
package ldaptest
