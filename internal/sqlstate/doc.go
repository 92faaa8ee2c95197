// Package sqlstate names the SQLSTATE codes pgveil sends clients itself,
// defined once for the packages that build error responses (proxy,
// rewrite, the firewall rule registry).
package sqlstate
