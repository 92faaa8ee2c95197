package statement

// Source tells which frontend message carried a statement.
type Source byte

const (
	// SourceQuery is a simple-protocol Query message; its text may hold
	// several statements separated by semicolons.
	SourceQuery Source = 'Q'
	// SourceParse is an extended-protocol Parse message: one statement.
	SourceParse Source = 'P'
	// SourceExecute is an Execute message pgveil refuses in its place;
	// it carries no statement.
	SourceExecute Source = 'E'
)

// Statement is one statement text on its way upstream.
type Statement struct {
	// Source is the message that carried Text.
	Source Source
	// Text is the SQL exactly as the client sent it.
	Text string
	// Name is the prepared statement name of a Parse message ("" for the
	// unnamed statement and for Query messages).
	Name string
	// ParamOIDs are the parameter types a Parse message declares.
	ParamOIDs []uint32
	// PolicyVersion is set by the Rewriter: the version of the policy
	// that decided, for the audit trail.
	PolicyVersion string
	// Roles is set by the Rewriter with PolicyVersion: the roles of the
	// user whose policy decided (the end user a BI service acts for,
	// with her directory groups of that version), for the audit trail.
	// NOTE: nil when the Rewriter does not know them; never modified
	// once set (Info shares it).
	Roles []string
	// Replaces is the refusal of Text when pgveil sent a statement of
	// its own upstream in its place (a refused PREPARE TRANSACTION in a
	// transaction block, prepared as its rollbackMarker); nil otherwise.
	//
	// NOTE: that statement fails only in a transaction block: an Execute
	// of it outside one must be refused by pgveil (Info.Replaced).
	Replaces *Refusal
}
