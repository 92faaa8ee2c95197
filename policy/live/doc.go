// Package live is the upstream database as the policy package queries it
// for identities and for the live checks: it implements policy.Server
// over a pgconn connection. The policy package decides what to ask and
// what the answers mean; this package only asks.
//
// NOTE: it does not import policy (policy.Field is an alias of the
// struct type Field spells out), so that policy's own tests can use it.
package live
