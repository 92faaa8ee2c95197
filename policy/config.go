package policy

import (
	"crypto/tls"
	"crypto/x509"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/internal/scram"

	"github.com/pgveil/pgveil/rewrite"
)

// Config is a loaded, provisioned and validated pgveil configuration.
//
// NOTE: a *Config is immutable once Load returns it; the proxy shares one
// value between all sessions.
type Config struct {
	// Files lists the HCL files the configuration was read from, in the
	// order they were read.
	Files []string `reload:"files,apply"`
	// Listen describes the client-facing side.
	Listen Listen `reload:"listen,restart"`
	// Upstream describes the PostgreSQL server pgveil forwards to.
	Upstream Upstream `reload:"upstream,refuse"`
	// Users maps a login name to its `user` block. Users whose rows come
	// from identity queries are not here: see Identities.User, which also
	// merges identity rows into these.
	Users map[string]*User `reload:"user,apply"`
	// Roles maps a role name to its `role` block.
	Roles map[string]*Role `reload:"role,apply"`
	// Tables are the `table` blocks, in the order they were read.
	Tables []*Table `reload:"table,apply"`
	// Schemas maps a schema name to its `schema` block.
	Schemas map[string]*Schema `reload:"schema,apply"`
	// Rules are the `rule` blocks, in the order they were read.
	Rules []*Rule `reload:"rule,apply"`
	// IdentitySources are the `identity` blocks, in the order they were
	// read.
	IdentitySources []*IdentitySource `reload:"identity,apply"`
	// Teams is the team tree, from a `teams` block or `team` blocks; nil
	// when the configuration declares neither.
	Teams *Teams `reload:"teams,apply"`
	// Tests are the `test` blocks (policy tests run by `pgveil test`), in
	// the order they were read.
	Tests []*Test `reload:"test,apply"`
	// Audit is the `audit` block: where the audit trail goes; nil when
	// there is none (no audit trail).
	Audit *Audit `reload:"audit,restart"`
	// Admin is the `admin` block: the HTTP endpoint of metrics and health
	// checks; nil when there is none (no endpoint).
	Admin *Admin `reload:"admin,restart"`
	// LDAP is the `ldap` block: the directory checking LDAP logins; nil
	// when there is none.
	LDAP *LDAP `reload:"ldap,apply"`

	// digest is the SHA-256 of the configuration files' names and bytes.
	digest [32]byte `reload:"-"`
	// envDigest covers the environment variables env() read (see
	// envRecorder); it enters policy keys, not Version.
	envDigest [32]byte `reload:"-"`
	// attrs are the attributes behind the settings, keyed by their dotted
	// names ("rule.france_only.where"), for diagnostics made after loading
	// (CheckCatalog).
	attrs map[string]*hcl.Attribute `reload:"-"`
	// inputs are the relations the policy itself reads (policyInput),
	// listed once.
	inputsOnce sync.Once              `reload:"-"`
	inputs     map[rewrite.QName]bool `reload:"-"`
	// inherited caches inheritedOtherwise by relation OID.
	inherited sync.Map `reload:"-"`
}

// Listen is the `listen` block: where clients connect.
type Listen struct {
	// Address is host:port to listen on, e.g. "127.0.0.1:6432".
	Address string `reload:"address"`
	// Database is the only database name clients may ask for. It defaults
	// to Upstream.Database.
	Database string `reload:"database"`
	// StartupTimeout bounds TLS negotiation, the startup packet and
	// authentication together. Default 10s.
	StartupTimeout time.Duration `reload:"startup_timeout"`
	// ShutdownTimeout bounds how long a graceful shutdown waits for running
	// statements before closing sessions. Default 30s.
	ShutdownTimeout time.Duration `reload:"shutdown_timeout"`
	// MaxMessageSize caps the size of any message a client sends, in bytes
	// (header included). Default 64 MiB.
	MaxMessageSize int `reload:"max_message_size"`
	// MaxConnections caps the client connections open at once, those
	// still in their startup included. Default 10000.
	MaxConnections int `reload:"max_connections"`
	// MaxUserConnections caps the sessions of any one login at once; 0
	// (the default) sets no cap. A user block's MaxConnections overrides
	// it for its user.
	MaxUserConnections int `reload:"max_user_connections"`
	// MaxStartupPerAddress caps the connections of one client address
	// still in their startup (TLS, startup packet, authentication); 0
	// sets no cap. Default 128.
	MaxStartupPerAddress int `reload:"max_startup_per_address"`
	// MaxAuthFailures is how many login attempts of one login from one
	// address may fail within a minute before its next are refused
	// unchecked; 0 turns the throttle off. Default 10.
	MaxAuthFailures int `reload:"max_auth_failures"`
	// Relay is how plaintext sessions are relayed: RelayEventLoop
	// (default) or RelayGoroutines. TLS sessions always relay on
	// goroutines.
	Relay string `reload:"relay"`
	// TLS is nil when no `tls` block is present: clients asking for TLS are
	// told 'N'.
	TLS *ListenTLS `reload:"tls"`
}

// The values of Listen.Relay.
const (
	// RelayEventLoop relays plaintext sessions on a few event loops (on
	// Linux; elsewhere on goroutines).
	RelayEventLoop = "event_loop"
	// RelayGoroutines relays each session on two goroutines of its own.
	RelayGoroutines = "goroutines"
)

// ListenTLS is the `listen { tls { … } }` block.
type ListenTLS struct {
	// CertFile is the PEM certificate chain presented to clients, resolved
	// against the directory of the configuration file that names it.
	CertFile string `reload:"cert_file"`
	// KeyFile is the PEM private key of CertFile, resolved the same way.
	KeyFile string `reload:"key_file"`
	// Require rejects clients that do not negotiate TLS.
	Require bool `reload:"require"`
	// ClientCAFile is the PEM bundle of the CAs trusted to sign client
	// certificates, resolved like CertFile; empty when no user logs in
	// with a certificate. Setting it makes pgveil ask clients for a
	// certificate, which it verifies only for users with auth = "cert".
	ClientCAFile string `reload:"client_ca_file"`
	// ClientCRLFile is a PEM or DER certificate revocation list issued by
	// one of the client CAs; empty for none.
	ClientCRLFile string `reload:"client_crl_file"`
	// ClientName is the part of a client certificate compared with the
	// login: ClientNameCN (default) or ClientNameDN.
	ClientName string `reload:"client_name"`
	// Config is provisioned from CertFile and KeyFile (and ClientCAs).
	Config *tls.Config `reload:"-"`
	// ClientCAs is provisioned from ClientCAFile; nil without it.
	ClientCAs *x509.CertPool `reload:"-"`
	// ClientCRL is provisioned from ClientCRLFile, its signature checked;
	// nil without it.
	ClientCRL *x509.RevocationList `reload:"-"`
}

// Values of ListenTLS.ClientName: what of a client certificate must equal
// the login, as PostgreSQL's clientname=CN and clientname=DN.
const (
	// ClientNameCN is the subject's common name.
	ClientNameCN = "cn"
	// ClientNameDN is the whole subject distinguished name in RFC 2253
	// form, e.g. "CN=marie,OU=Analysts,O=Example".
	ClientNameDN = "dn"
)

// Authentication methods of a user (User.Auth).
const (
	// AuthSCRAM is SCRAM-SHA-256 against the user's verifier (default).
	AuthSCRAM = "scram"
	// AuthCert is a TLS client certificate signed by a client CA whose
	// name (ListenTLS.ClientName) is the login.
	AuthCert = "cert"
	// AuthLDAP is a password checked by binding to an LDAP directory
	// (the `ldap` block), as PostgreSQL's ldap method.
	AuthLDAP = "ldap"
)

// Upstream is the `upstream` block: the PostgreSQL server and the service
// account pgveil uses for every session.
type Upstream struct {
	// Address is host:port of the PostgreSQL server.
	Address string `reload:"address"`
	// Database is the database every session connects to.
	Database string `reload:"database"`
	// User is the service account every session logs in as.
	User string `reload:"user"`
	// Password of the service account; usually env("NAME").
	Password string `reload:"password,restart"`
	// SearchPath is pinned on every upstream session. Default "public".
	SearchPath string `reload:"search_path"`
	// ConnectTimeout bounds dialing and authenticating upstream. Default 5s.
	ConnectTimeout time.Duration `reload:"connect_timeout,restart"`
	// ClientConnectionCheckInterval is pinned as PostgreSQL's
	// client_connection_check_interval on the sessions' upstream
	// connections (PostgreSQL 14 and later): a statement a session left
	// running when it ended, whose cancel request was ignored or never
	// delivered, stops within it once pgveil closed its connection.
	// Default 10s; 0 pins nothing.
	ClientConnectionCheckInterval time.Duration `reload:"client_connection_check_interval,restart"`
	// CatalogRefresh is how often pgveil reads the upstream catalog
	// again, to follow a DBA's DDL without a reload. Default 1m.
	CatalogRefresh time.Duration `reload:"catalog_refresh,apply"`
	// TLS is how the upstream connection is encrypted and verified.
	TLS UpstreamTLS `reload:"tls"`
	// Pool is how upstream backends are shared between client sessions.
	Pool Pool `reload:"pool,restart"`
}

// Pool is the `upstream { pool { … } }` block.
type Pool struct {
	// Mode is PoolSession (default: each client session holds its own
	// backend for its whole life) or PoolTransaction (sessions share a
	// pool of backends, each held only for a transaction).
	Mode string `reload:"mode"`
	// Size caps the upstream backends the pool opens in transaction mode.
	// Default 20.
	Size int `reload:"size"`
	// WaitTimeout bounds how long a client waits for a free backend before
	// it gets SQLSTATE 53300. Default 5s.
	WaitTimeout time.Duration `reload:"wait_timeout"`
	// IdleTimeout closes a backend left idle in the pool this long.
	// Default 10m.
	IdleTimeout time.Duration `reload:"idle_timeout"`
	// IdleTransactionTimeout ends, in transaction mode, a session that
	// holds a backend this long while neither it nor the backend has
	// anything under way: a transaction block left open, a batch not
	// closed by a Sync, a COPY FROM STDIN waiting for data. Default 10m.
	IdleTransactionTimeout time.Duration `reload:"idle_transaction_timeout"`
	// KeepIdle caps, in session mode, the backends of ended sessions kept
	// open for a later session of the same user, application and startup
	// parameters: a client that ended cleanly leaves its backend, reset
	// with DISCARD ALL, rather than closing it. 0 closes every backend
	// with its session. Default 100, PostgreSQL's default max_connections.
	// Kept backends idle longer than IdleTimeout are closed.
	KeepIdle int `reload:"keep_idle"`
	// MaxPerUser caps, in transaction mode, the backends the sessions of
	// one login hold at once (a backend held for a transaction, a pinned
	// session's, one being dialled for it); a session of a login at its
	// cap waits as for a full pool. 0, the default, sets no cap.
	// NOTE: at most Size; a service account acting for users counts
	// under its own login, as for listen.max_user_connections.
	MaxPerUser int `reload:"max_per_user"`
}

// The values of Pool.Mode.
const (
	// PoolSession gives each client session a backend of its own for its
	// whole life.
	PoolSession = "session"
	// PoolTransaction shares a pool of backends between sessions, each
	// backend held by a session only for a transaction.
	PoolTransaction = "transaction"
)

// Audit is the `audit` block: the tamper-evident audit trail (see
// internal/audit, whose Options it fills).
type Audit struct {
	// File is the current audit log, resolved against the directory of
	// the configuration file that names it; "-" is standard output.
	File string `reload:"file"`
	// MaxSize rotates the file when a record would take it past this many
	// bytes; 0 never rotates. Default 100 MiB.
	MaxSize int64 `reload:"max_size"`
	// QueueSize is the length of the queue between sessions and the
	// writer. Default 10000.
	QueueSize int `reload:"queue_size"`
	// QueueBytes bounds what the queued records hold, their texts
	// included, as QueueSize bounds their number. Default 64 MiB.
	QueueBytes int64 `reload:"queue_bytes"`
	// MaxText is the longest statement text, and rewritten SQL, a record
	// keeps: a longer one keeps its head, its length and (unredacted) its
	// SHA-256. Default 64 KiB.
	MaxText int `reload:"max_text"`
	// SyncInterval is the longest written records wait for fsync while
	// records keep coming; the writer syncs as soon as they stop. Default
	// 200ms.
	SyncInterval time.Duration `reload:"sync_interval"`
	// OnFull is AuditBlock (default: sessions wait for room) or AuditDrop
	// (records are dropped and counted).
	OnFull string `reload:"on_full"`
	// Key is the HMAC-SHA256 key of the chain; empty (with a warning) for
	// a plain SHA-256 chain.
	Key []byte `reload:"key"`
	// RewrittenSQL is how the SQL forwarded upstream is kept: AuditFull
	// (default), AuditHash or AuditNone.
	RewrittenSQL string `reload:"rewritten_sql"`
	// RedactLiterals replaces the literals of logged statements with $n.
	RedactLiterals bool `reload:"redact_literals"`
	// LogParameters records the parameter values each execution of the
	// extended protocol ran with (a Bind's), each cut to
	// ParameterMaxLength bytes. Off by default: the values may be
	// personal data.
	LogParameters bool `reload:"log_parameters"`
	// ParameterMaxLength is the longest value LogParameters keeps, in
	// bytes; longer ones keep their head and "...". Default 256.
	ParameterMaxLength int `reload:"parameter_max_length"`
	// OnError is what statements do while the trail cannot be written
	// (a write or fsync failed): AuditContinue (default: they run, their
	// records wait in the queue) or AuditRefuse (they are refused until
	// the trail is written again).
	OnError string `reload:"on_error"`
}

// Values of Audit.OnFull and Audit.RewrittenSQL.
const (
	AuditBlock = "block"
	AuditDrop  = "drop"
	AuditFull  = "full"
	AuditHash  = "hash"
	AuditNone  = "none"
	// Values of Audit.OnError.
	AuditContinue = "continue"
	AuditRefuse   = "refuse"
)

// Admin is the `admin` block: the HTTP endpoint serving Prometheus
// metrics (/metrics) and health checks (/healthz, /readyz).
type Admin struct {
	// Address is host:port to listen on, e.g. "127.0.0.1:9187".
	Address string `reload:"address"`
}

// TLS modes for the upstream connection.
const (
	TLSDisable    = "disable"
	TLSRequire    = "require"
	TLSVerifyFull = "verify-full"
)

// UpstreamTLS is the `upstream { tls { … } }` block.
type UpstreamTLS struct {
	// Mode is one of TLSDisable, TLSRequire, TLSVerifyFull. Default
	// TLSDisable when no tls block is given.
	Mode string `reload:"mode"`
	// CAFile is a PEM bundle used to verify the server with verify-full,
	// resolved against the directory of the configuration file that names
	// it; the system pool is used when empty.
	CAFile string `reload:"ca_file"`
	// ServerName overrides the host name checked by verify-full.
	ServerName string `reload:"server_name"`
	// RootCAs is provisioned from CAFile (nil means the system pool).
	RootCAs *x509.CertPool `reload:"-"`
}

// User is a `user "login" { … }` block, or a user merged from such a block
// and identity rows (see Identities).
//
// NOTE: Users are shared and never modified once loaded.
type User struct {
	// Login is the user name clients send in the startup packet: the
	// block's label.
	Login string
	// Verifier is the parsed SCRAM-SHA-256 verifier; pgveil never keeps a
	// plaintext password. It is the zero Verifier when the user has no
	// password (see HasPassword), which no client proof can match.
	Verifier scram.Verifier
	// Auth is how the user authenticates: AuthSCRAM or AuthCert. Empty
	// means AuthSCRAM.
	Auth string
	// Roles names the user's roles (role blocks).
	Roles []string
	// Team is the id of the user's team; nil when the user has none.
	Team *int64
	// Groups names the user's groups.
	Groups []string
	// Attributes are the user's free attributes, me.<name> in policies.
	Attributes map[string]Value
	// ActFor makes the user a BI service: the logins, "role:<name>" and
	// "group:<name>" whose users it may act for (see MayActFor). Only a
	// user block sets it.
	ActFor []string
	// MaxConnections caps the user's sessions at once, in place of
	// Listen.MaxUserConnections; 0 leaves that default. Only a user block
	// sets it.
	MaxConnections int
	// MaxPoolBackends caps, in transaction mode, the pooled backends the
	// user's sessions hold at once, in place of Upstream.Pool.MaxPerUser;
	// 0 leaves that default. Only a user block sets it.
	// NOTE: at most Upstream.Pool.Size (validate). A reload applies it
	// from the login's next session.
	MaxPoolBackends int
	// DeclRange is where the user block starts (or, for a user known only
	// from identity rows, its identity block), for diagnostics.
	DeclRange hcl.Range

	// set records which fields the user block sets, for merging with
	// identity rows, where the block wins field by field.
	set userFields
	// directory marks a user built by DirectoryUser for one login: its
	// roles and groups depend on the directory, so its policy key covers
	// them.
	directory bool
}

// userFields is a set of User fields.
type userFields uint8

// Fields of a User that a user block or identity row may set.
const (
	fieldPassword userFields = 1 << iota
	fieldRoles
	fieldTeam
	fieldGroups
)

// HasPassword reports whether the user has a verifier.
func (u *User) HasPassword() bool { return len(u.Verifier.StoredKey) > 0 }

// Method returns how the user authenticates: AuthSCRAM unless Auth says
// otherwise.
func (u *User) Method() string {
	if u.Auth == "" {
		return AuthSCRAM
	}
	return u.Auth
}

// CanAuthenticate reports whether the user has what its method needs: a
// verifier for SCRAM; a certificate or a directory needs nothing stored.
func (u *User) CanAuthenticate() bool { return u.Method() != AuthSCRAM || u.HasPassword() }

// Role is a `role "name" { … }` block: what a user holding the role may
// do.
type Role struct {
	// Name is the block's label.
	Name string
	// Statements are the statement kinds the role may run on governed
	// relations.
	Statements []rewrite.StatementKind
	// Columns are the column classes the role sees unmasked.
	Columns []string
	// Scope is the role's ceiling: one of the Scope* constants except
	// ScopeGroups. Default ScopeAll.
	Scope string
	// OwnRows lets the role's users always see the rows about themselves
	// (the table's owner_column equals their login).
	OwnRows bool
	// Functions are the functions outside pg_catalog the role may call,
	// as "schema.name".
	Functions []string
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// Built-in scopes: rule scopes and role ceilings.
const (
	// ScopeAll is every row.
	ScopeAll = "all"
	// ScopeSelf is the rows whose owner column is the user's login.
	ScopeSelf = "self"
	// ScopeOwnTeam is the rows whose team column is the user's team.
	ScopeOwnTeam = "own_team"
	// ScopeTeamSubtree is the rows of the user's team and every team
	// below it.
	ScopeTeamSubtree = "team_subtree"
	// ScopeOwnGroups is the rows owned by any user sharing a group with
	// the user.
	ScopeOwnGroups = "own_groups"
	// ScopeGroups is the rows owned by the members of the rule's groups
	// (rules only).
	ScopeGroups = "groups"
	// ScopeNone is no row (role ceilings only).
	ScopeNone = "none"
)

// Table is a `table "schema.name" { … }` block, whose label may be a
// pattern ("public.*").
type Table struct {
	// Pattern is the block's label.
	Pattern Pattern
	// OwnerColumn is the column holding the login a row is about; "" when
	// the table has none.
	OwnerColumn string
	// TeamColumn is the column holding the id of the team a row belongs
	// to; "" when the table has none.
	TeamColumn string
	// Columns maps a column name to its `column` block.
	Columns map[string]*Column
	// Reference marks reference data (dimension tables such as countries):
	// roles' ceilings do not bound it, its rules alone decide which rows a
	// user sees. A ceiling needs a row's owner or team, which reference
	// rows do not have.
	Reference bool
	// Pushdown lets the rewriter copy the client's leak-proof comparisons
	// of visible columns into the table's scope subquery, so that indexes
	// serve them (the default). false keeps every client predicate
	// outside: slower, but the time a statement takes no longer tells
	// whether a hidden row matches.
	Pushdown bool
	// Follows, when not nil, makes the table a child of another governed
	// table: a row is visible exactly when its parent row is, as a read of
	// the parent would show it to the user (its rules, ceilings and
	// restrictive rules), and the table's own rules may add rows (bounded
	// by its own ceiling) or restrict them.
	//
	// NOTE: the parent is named exactly by a table block (crossCheck),
	// its key column is not classified (a masked key would be compared
	// by its real value), and follows do not loop.
	Follows *Follows
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// Follows is a table block's follows attribute: the table's rows follow
// those of Table, joined on Column = Key.
type Follows struct {
	// Table is the parent, a schema-qualified name.
	Table rewrite.QName
	// Column is the child's column holding the parent's key; Key the
	// parent's column it matches. A row whose Column is NULL matches no
	// parent and is never visible through the follow.
	Column, Key string
	// Range is where the attribute's value is, for diagnostics.
	Range hcl.Range
}

// Column is a `column "name" { … }` block of a table block.
type Column struct {
	// Name is the block's label.
	Name string
	// Class is the column's class: roles listing it see the column.
	Class string
	// Mask replaces the column's value for everyone else.
	Mask Mask
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// Mask kinds.
const (
	MaskNull       = "null"
	MaskRedact     = "redact"
	MaskPartial    = "partial"
	MaskHash       = "hash"
	MaskExpression = "expression"
)

// Mask is how a column's value is replaced.
type Mask struct {
	// Kind is one of the Mask* constants.
	Kind string
	// Value is the constant of MaskRedact.
	Value Value
	// KeepStart and KeepEnd are the characters MaskPartial keeps at
	// each end.
	KeepStart, KeepEnd int
	// ipad and opad are the HMAC-SHA256 inner and outer keys (the secret,
	// padded, XOR 0x36 and 0x5c) of MaskHash.
	// NOTE: they never enter a statement: they are installed upstream
	// (MaskKeysSQL) and statements name them by keyID.
	ipad, opad []byte
	// keyID names the key of MaskHash upstream (see maskKeyID).
	keyID string
	// expr is the expression of MaskExpression.
	expr *sqlExpr
}

// Expression returns the SQL of a MaskExpression mask as written.
func (m *Mask) Expression() string {
	if m.expr == nil {
		return ""
	}
	return m.expr.text
}

// Columns returns the columns of its table a MaskExpression mask reads
// (unqualified names), sorted; nil for other masks.
func (m *Mask) Columns() []string {
	if m.expr == nil {
		return nil
	}
	return slices.Clone(m.expr.columns)
}

// Schema is a `schema "name" { … }` block: what happens to the relations
// of the schema that no table block governs.
type Schema struct {
	// Name is the block's label.
	Name string
	// Allow leaves ungoverned relations open; false (default = "deny")
	// denies them.
	Allow bool
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// Rule is a `rule "name" { … }` block: rows some users may see.
type Rule struct {
	// Name is the block's label.
	Name string
	// Tables are the relations (names or patterns) the rule applies to.
	Tables []Pattern
	// Roles and Users are whom the rule applies to: users holding one of
	// Roles, and the logins Users.
	Roles, Users []string
	// Restrictive rules are AND-ed with the permissive ones, which are
	// OR-ed, as in PostgreSQL row-level security.
	Restrictive bool
	// Scope is the rule's built-in scope (Scope* constants), "" when the
	// rule has a where.
	Scope string
	// Groups are the groups of ScopeGroups.
	Groups []string
	// Enabled is false for rules switched off with enabled = false.
	Enabled bool
	// DeclRange is where the block starts.
	DeclRange hcl.Range

	// where is the rule's SQL predicate, nil when Scope is set.
	where *sqlExpr
	// src remembers where the rule's settings are written.
	src ruleSources
}

// Where returns the rule's SQL predicate as written, "" for a scope rule.
func (r *Rule) Where() string {
	if r.where == nil {
		return ""
	}
	return r.where.text
}

// Columns returns the columns of the governed relation the rule's where
// reads (unqualified names outside subqueries), sorted; nil for a scope
// rule.
func (r *Rule) Columns() []string {
	if r.where == nil {
		return nil
	}
	return slices.Clone(r.where.columns)
}

// IdentitySource is an `identity "name" { … }` block: a query listing
// users.
type IdentitySource struct {
	// Name is the block's label.
	Name string
	// Query is the SELECT run upstream by LoadIdentities.
	Query string
	// Refresh is how often serve reads the identities again while it
	// runs (the block's refresh, a minute by default), putting rows that
	// changed in force as a reload does.
	Refresh time.Duration
	// DeclRange is where the block starts; QueryRange is its query.
	DeclRange, QueryRange hcl.Range
}

// Teams is the team tree: either a table upstream (Table set) or team
// blocks (ByID set).
type Teams struct {
	// Table is the teams table of a `teams` block; nil for team blocks.
	Table *rewrite.QName
	// IDColumn and ParentColumn are the table's id and parent id
	// columns.
	IDColumn, ParentColumn string
	// ByID maps a team id to its `team` block; nil for a teams table.
	ByID map[int64]*Team
	// DeclRange is where the `teams` block, or the first `team` block,
	// starts.
	DeclRange hcl.Range

	// subtrees maps a team id to the sorted ids of the team and every
	// team below it (team blocks only).
	subtrees map[int64][]int64
}

// Team is a `team "name" { … }` block.
type Team struct {
	// Name is the block's label.
	Name string
	// ID is the team's id, as users' team attributes and tables' team
	// columns hold it.
	ID int64
	// Parent is the name of the parent team; "" for a root.
	Parent string
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// LDAP is the `ldap` block: the directory that checks the passwords of
// users with auth = "ldap", and of people with no user block, whose
// groups map to roles and groups.
type LDAP struct {
	// Directory says how to reach the directory and find a user in it;
	// its RootCAs are provisioned from CAFile.
	Directory ldapauth.Config
	// CAFile is the PEM bundle verifying the directory's certificate,
	// resolved against the configuration file's directory; empty for the
	// system pool.
	CAFile string
	// AllowCleartext lets LDAP logins run over client connections without
	// TLS, where the password the client sends would be readable.
	AllowCleartext bool
	// Groups map directory groups to roles and groups, in file order.
	Groups []*LDAPGroup
	// DeclRange is where the block starts.
	DeclRange hcl.Range
}

// LDAPGroup is a `group "<dn>"` block inside `ldap`: members of the
// directory group get its roles and groups.
type LDAPGroup struct {
	// DN is the group's distinguished name, the block's label.
	DN string
	// Roles are given to the group's members.
	Roles []string
	// Groups are given to the group's members (me.groups).
	Groups []string
}
