package audit

import (
	"time"
)

// Events a Record may describe.
const (
	EventStatement    = "statement"
	EventConnect      = "connect"
	EventAuthFailure  = "auth_failure"
	EventDisconnect   = "disconnect"
	EventReload       = "reload"
	EventReloadFailed = "reload_failed"
	EventStart        = "start"
	EventStop         = "stop"
	// EventCatalog is a new catalog snapshot put in force without a
	// reload (a DBA's DDL): from it on, statements are rewritten against
	// the relations and columns it holds; Message says how many.
	EventCatalog = "catalog"
	// EventActFor is a change of whom a BI service's session acts for
	// (SET ROLE, RESET ROLE, SET pgveil.act_for, RESET ALL, DISCARD ALL,
	// a rollback undoing one): ActingFor is the end user from then on,
	// "" for the session's login; Reason says what changed it.
	EventActFor = "act_for"
	// EventPanic is a session ended by an internal error in pgveil; the
	// other sessions went on.
	EventPanic = "panic"
	// EventDropped is written by the Log itself, in drop mode, after
	// records were dropped because the queue was full; Count says how
	// many.
	EventDropped = "dropped"
)

// Decisions of statement records.
const (
	DecisionAllowed   = "allowed"
	DecisionRewritten = "rewritten"
	DecisionDenied    = "denied"
)

// Record is one audit event. Fields left zero are omitted from the JSON
// line.
//
// NOTE: a Record handed to Log.Write belongs to the Log from then on; the
// caller must not modify it (the writer goroutine reads it later).
type Record struct {
	// Time is when the event happened; Write sets it to the current time
	// when it is zero. Written in UTC, RFC 3339 with nanoseconds.
	Time time.Time
	// Event is one of the Event* constants.
	Event string
	// Session identifies the client session the event belongs to.
	Session string
	// User is the login of the session's user.
	User string
	// ActingFor is, for a statement a BI service's session ran for an end
	// user (SET ROLE, SET pgveil.act_for), that end user: the one whose
	// policy decided. User is then the service's login. For an
	// EventActFor record, the end user from then on; for a disconnect
	// (or pool_refused) record, the one the session was acting for.
	ActingFor string
	// ActingForBefore is, for an EventActFor record, the end user the
	// session acted for until the change ("" for its login): with
	// ActingFor, both ends of the change, so that a search for either
	// user finds it.
	ActingForBefore string
	// Roles are the roles of User, the session's login (for a BI
	// service acting for someone, the service's).
	Roles []string
	// ActingRoles are, for a statement run for ActingFor, the roles of
	// that end user under which its rewrite was decided (written as
	// "acting_roles"): those of the statement's own policy version and
	// directory groups, not the session's state when the record is
	// written. What the statement could read follows them, not Roles.
	// NOTE: left out when the session acts as its login, and in trails
	// written before it existed; an act_for refusal has none (no
	// policy of the end user decided).
	ActingRoles []string
	// Client is the client's address.
	Client string
	// ApplicationName is the client's application_name.
	ApplicationName string
	// Database is the database the client asked for.
	Database string
	// BackendPID is the process id of the upstream backend that ran the
	// statement (written as "backend_pid"), to find it in PostgreSQL's
	// own log (%p) and pg_stat_activity: in transaction-pool mode, a
	// session's statements run on backends shared with other sessions.
	// 0 for a statement no backend answered (a refusal).
	BackendPID uint32
	// Kind is the statement kind(s), e.g. "select" or "select,set".
	Kind string
	// SQL is the original statement text as the client sent it. The line
	// also carries its pg_query fingerprint ("fingerprint") when it
	// parses.
	SQL string
	// Params are the parameter values the statement ran with, when it ran
	// through a Bind and the proxy records them (audit.log_parameters),
	// as PostgreSQL logs them: $1 = 'FR', $2 = NULL. Write drops them
	// when Options.RedactLiterals, and withholds them when SQL may hold a
	// secret.
	Params string
	// Fingerprint is the pg_query fingerprint of SQL, "" when SQL does
	// not parse. A caller that knows it sets it (see
	// rewrite.Result.Fingerprint); the writer computes it otherwise.
	Fingerprint string
	// Rewritten is the SQL forwarded upstream, when it differs from SQL.
	// Options.RewrittenSQL decides whether the line holds it, its SHA-256
	// ("rewritten_sha256") or nothing.
	Rewritten string
	// Tables are the governed tables the statement touched, as
	// "schema.table"; for a denied statement, the tables (and views) it
	// named that pgveil had resolved when it refused it, governed or not.
	Tables []string
	// Rules are the policy rules that fired.
	Rules []string
	// Columns are the governed columns the statement could read unmasked,
	// as "schema.table.column".
	Columns []string
	// Masked are the masked columns, as "schema.table.column".
	Masked []string
	// Decision is one of the Decision* constants for statements, "" for
	// session events.
	Decision string
	// Reason is the firewall rule behind a denial, or an event's reason.
	Reason string
	// SQLState is the SQLSTATE of a denial or of an upstream error.
	SQLState string
	// Message is the message of a denial or a failure.
	Message string
	// Rows counts the DataRow messages returned (the CopyData of a COPY
	// TO STDOUT): what the client read.
	Rows int64
	// Affected is, for a statement record of a write, the rows it
	// changed as its CommandComplete tags say (INSERT 0 n, UPDATE n,
	// DELETE n, MERGE n, COPY n of a COPY FROM STDIN), summed over the
	// writes of a Query's text: what an EXECUTE of a prepared write did
	// too. An INSERT, UPDATE or DELETE whose RETURNING rows the client
	// reads in chunks (Execute with a row limit) has a record per chunk,
	// each counting the rows it returned: PostgreSQL's last tag counts
	// its own chunk's. Written as "affected", left out when 0: a write's record
	// without it changed no row, or failed before its tag.
	// NOTE: what the statement did, not whether it lasted: a write
	// rolled back later (its transaction block's ROLLBACK, a failed
	// COMMIT) keeps its count; only a write its own batch rolled back
	// says so (Message "rolled back…").
	Affected int64
	// Bytes counts the bytes sent to the client for the statement.
	Bytes int64
	// Duration is how long the statement took; written as "duration_ms",
	// milliseconds with up to six decimals (exactly the nanoseconds).
	Duration time.Duration
	// UpstreamError is "SQLSTATE: message" of an upstream error, if any.
	UpstreamError string
	// PolicyVersion is the version of the policy in force.
	PolicyVersion string
	// OldPolicyVersion is the version a reload replaced.
	OldPolicyVersion string
	// Count is how many records were dropped (EventDropped).
	Count int64

	// What Write made of the record (capTexts, recordSize): the writer
	// takes SQL and Rewritten as they are when sqlFinal and
	// rewrittenFinal are set (cut to Options.MaxText, redacted as the
	// options say, the marker added), and keeps rewrittenSHA256, the
	// SHA-256 of a long rewritten SQL kept as its hash only. size is what
	// the record counts for in Options.QueueBytes.
	sqlFinal, rewrittenFinal bool
	rewrittenSHA256          string
	size                     int64
}

// Entry is one line of the audit trail: a Record and what the writer
// added to it.
type Entry struct {
	// Seq is the record's position in the chain, from 1.
	Seq uint64
	// Chain names the chain: chosen at random when its first record is
	// written, kept across restarts and rotations. Several pgveil
	// instances sharing one configuration each write a chain of their
	// own, and VerifyChains tells their files apart by it. "" in chains
	// begun before it was written.
	Chain string
	// Record is the event as written: SQL and Rewritten are redacted or
	// hashed as the Log's Options said.
	Record
	// RewrittenSHA256 is the SHA-256 (hex) of the rewritten SQL when
	// Options.RewrittenSQL is "hash".
	RewrittenSHA256 string
	// Prev is the MAC of the previous record (hex), 64 zeros for the
	// first record of a chain.
	Prev string
	// MAC is the record's MAC (hex): see the package documentation.
	MAC string
}

// zeroMAC is the prev of the first record of a chain.
const zeroMAC = "0000000000000000000000000000000000000000000000000000000000000000"
