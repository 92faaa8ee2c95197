// Package policy loads and validates pgveil's HCL configuration: where the
// proxy listens, how it reaches the upstream PostgreSQL, and the users it
// authenticates.
//
// Loading follows a Provision → Validate lifecycle: files are decoded into
// Go values, then resources they name (certificates, CA bundles) are
// provisioned, then the whole configuration is validated. Every mistake a
// configuration author can make is reported as an hcl.Diagnostic with its
// file:line:col; a program bug is a panic.
package policy
