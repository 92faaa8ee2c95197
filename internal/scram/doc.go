// Package scram implements the server side of SCRAM-SHA-256 (RFC 5802,
// RFC 7677) as PostgreSQL speaks it, including tls-server-end-point channel
// binding (SCRAM-SHA-256-PLUS), and the verifier format PostgreSQL stores
// in pg_authid: SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>.
package scram
