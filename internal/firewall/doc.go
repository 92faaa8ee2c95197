// Package firewall holds what rewrite and proxy share about refusing a
// statement: the Refusal error a client receives in the statement's
// place, and the registry of firewall rules (Rules), each with its
// SQLSTATE, the hint the client gets and the line that documents it in
// the README's rule table (a test keeps the two equal).
//
// To add a rule, add it to Rules, refuse with its name (Deny, or
// rewrite's deny), and run
//
//	go test ./internal/firewall -run TestReadme -update
//
// to write its line into the README.
package firewall
