// Package policy loads and validates pgveil's HCL configuration — where
// the proxy listens, how it reaches the upstream PostgreSQL, the users it
// authenticates — and compiles each user's data policy: which relations
// they may read, which rows (a filter) and which column values (masks).
//
// Loading follows a Provision → Validate lifecycle: files are decoded into
// Go values, then resources they name (certificates, CA bundles) are
// provisioned, then the whole configuration is validated. Every mistake a
// configuration author can make is reported as an hcl.Diagnostic with its
// file:line:col — inside SQL strings too, which are parsed with pg_query
// at load time; a program bug is a panic.
//
// At run time, Config.LoadIdentities (or HCLIdentities) resolves who the
// users are — user blocks merged with identity rows read upstream — and
// Config.Compile turns one login into its rewrite.Policy, the UserPolicy
// the rewriter consults. User attributes enter SQL only as literal AST
// nodes, never as text.
//
// What the package asks the upstream database — identity queries, and
// the checks of the configuration against the live catalog
// (CheckCatalog, CheckServiceAccount, CheckMaskKeys) — goes through the
// Server interface, which policy/live implements over a connection: the
// package decides what to ask and what the answers mean, and does no
// database I/O itself.
//
// The files are named by their job: load.go, decode*.go, provision.go and
// validate*.go read the HCL into a Config; identities*.go resolve the
// users; compile*.go build a user's policy; check*.go check a Config
// against the live database; reload.go says what a reload may change.
// config.go holds the Config types, and value.go, pattern.go, nodes.go,
// maskkeys.go, version.go and diagnostics.go what several jobs share.
//
// Everything fails closed: what is unclear gives no row or a denial.
package policy
