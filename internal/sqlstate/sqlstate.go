package sqlstate

// SQLSTATE codes pgveil sends itself, with PostgreSQL's names
// (Appendix A of its manual).
const (
	// InsufficientPrivilege (42501) is every policy refusal.
	InsufficientPrivilege = "42501"
	// SyntaxError (42601) is a statement pgveil will not pass on as written.
	SyntaxError = "42601"
	// UndefinedTable (42P01) is a relation the catalog snapshot lacks.
	UndefinedTable = "42P01"
	// UndefinedFunction (42883) is, among others, an operator that does
	// not exist.
	UndefinedFunction = "42883"
	// UndefinedObject (42704) is, among others, a type that does not
	// exist.
	UndefinedObject = "42704"
	// UndefinedColumn (42703) is a column a relation does not have.
	UndefinedColumn = "42703"
	// DuplicateColumn (42701) is a column named twice where each name
	// must be one column.
	DuplicateColumn = "42701"
	// InvalidColumnReference (42P10) is, among others, a generated
	// column named in COPY's column list.
	InvalidColumnReference = "42P10"
	// WrongObjectType (42809) is a relation of a kind the statement does
	// not take (COPY TO of a view or a partitioned table).
	WrongObjectType = "42809"
	// ProtocolViolation (08P01) is a malformed or unexpected message.
	ProtocolViolation = "08P01"
	// ConnectionFailure (08006) is a lost upstream connection.
	ConnectionFailure = "08006"
	// CannotConnect (08001) is an upstream that refuses the service account.
	CannotConnect = "08001"
	// InvalidAuthorization (28000) is a refused startup or login.
	InvalidAuthorization = "28000"
	// InvalidPassword (28P01) is a failed password authentication.
	InvalidPassword = "28P01"
	// InvalidCatalogName (3D000) is a database other than the proxied one.
	InvalidCatalogName = "3D000"
	// FeatureNotSupported (0A000) is a protocol feature pgveil lacks.
	FeatureNotSupported = "0A000"
	// TooManyConnections (53300) is a transaction pool with no free
	// upstream connection within its wait timeout.
	TooManyConnections = "53300"
	// IdleInTransactionTimeout (25P03) is a pooled session ended for
	// holding a backend idle past upstream.pool.idle_transaction_timeout.
	IdleInTransactionTimeout = "25P03"
	// ProgramLimitExceeded (54000) is a Parse past the prepared
	// statements a transaction-mode session may hold.
	ProgramLimitExceeded = "54000"
	// AdminShutdown (57P01) is a session ended by a shutdown or a reload.
	AdminShutdown = "57P01"
	// CannotConnectNow (57P03) is an upstream starting up, shutting down
	// or in recovery, which refused the service account for now.
	CannotConnectNow = "57P03"
	// InternalError (XX000) is a bug caught before it reached the client.
	InternalError = "XX000"
	// InvalidCursorName (34000) is what an Execute of an unknown portal
	// fails with.
	InvalidCursorName = "34000"
	// InvalidParameterValue (22023) is a setting's value refused.
	InvalidParameterValue = "22023"
	// InvalidStatementName (26000) is a prepared statement that does not
	// exist.
	InvalidStatementName = "26000"
	// DuplicatePreparedStatement (42P05) is a prepared statement's name
	// taken already.
	DuplicatePreparedStatement = "42P05"
	// IOError (58030) is a statement refused because the audit trail
	// cannot be written (audit.on_error = "refuse").
	IOError = "58030"
)
