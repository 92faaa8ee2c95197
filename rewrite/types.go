package rewrite

import (
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// QName is a schema-qualified relation name, as stored in the catalog
// (case-folded, unquoted).
type QName struct {
	Schema string
	Name   string
}

// String renders the name for messages: schema.name.
func (q QName) String() string { return q.Schema + "." + q.Name }

// Quoted returns q as PostgreSQL prints it (quote_ident rules): each part
// in double quotes when it needs them, for refusals a DBA pastes into
// SQL. String stays the policy's key, unquoted.
func (q QName) Quoted() string { return QuoteIdent(q.Schema) + "." + QuoteIdent(q.Name) }

// QuoteIdent quotes name as PostgreSQL's quote_ident does: bare when it
// is lower case letters, digits, _ and $ (not first) and no keyword but
// an unreserved one; in double quotes, doubled inside, otherwise.
func QuoteIdent(name string) string {
	bare := name != ""
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case i > 0 && (r >= '0' && r <= '9' || r == '$'):
		default:
			bare = false
		}
	}
	if k, ok := parserKeywords[name]; bare && (!ok || k.cat == 'U') {
		return name
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// Catalog is a snapshot of the upstream catalog: what the rewriter
// resolves relation and function names against.
//
// NOTE: a *Catalog is immutable once built; sessions share it.
type Catalog struct {
	// Database is the upstream database's name: a three-part name may
	// name it, as PostgreSQL allows (dbt writes every table so).
	Database string
	// SearchPath is the pinned search_path, schemas in order. pg_catalog
	// is searched first unless listed, as in PostgreSQL.
	SearchPath []string
	// Relations holds every table, partitioned table, view, materialized
	// view and foreign table the service account can see, including
	// pg_catalog and information_schema relations.
	Relations map[QName]*Relation
	// Refusals names the set of relations the snapshot refuses
	// (Relation.Refused), "" when it refuses none: statements prepared
	// under another set are checked again (proxy/server's version).
	Refusals string
	// Functions maps a schema name to the names of the functions in it.
	Functions map[string]map[string]bool
	// RowFunctions is Functions restricted to the names of which some
	// function may take a row as its one argument: the functions that
	// attribute notation (t.f for f(t)) may call.
	RowFunctions map[string]map[string]bool
	// FieldFunctions is Functions restricted to the names of which some
	// function may take one argument, of any type: the functions a field
	// selection ((x).f for f(x)) may call.
	// NOTE: PostgreSQL reads (x).f as f(x) whatever x's type, coercing x
	// implicitly: (t.note).f calls f(text), (t.id).f calls f(bigint).
	FieldFunctions map[string]map[string]bool
	// OperatorCalls maps an operator name to the functions outside
	// pg_catalog that operators of that name call, with the operator's
	// schema, and CastCalls a type name to those that casts to a type
	// of that name call: a statement runs them without naming them.
	// NOTE: an operator's commutator's and negator's functions count as
	// its own: the planner rewrites NOT (a op b) to the negator, and may
	// commute a op b to match an index or a join; so do those of their
	// commutators and negators, through any chain, and the support
	// functions of the btree and hash operator families of each, which a
	// merge or hash join runs.
	// Operators and casts of extensions are not listed (see
	// catalogCallsSQL).
	OperatorCalls map[string][]ImplicitCall
	CastCalls     map[string][]ImplicitCall
	// InputCalls maps the OID of a type made of a domain with a CHECK
	// to the functions those CHECKs call: reading a value of the type,
	// as Bind reads a parameter a Parse message declares of it, runs
	// them (the OID-keyed CastCalls of domains).
	// NOTE: a type created since the snapshot is missing until the next
	// catalog read, like a domain reached by name.
	InputCalls map[uint32][]ImplicitCall
	// CheckCalls is InputCalls keyed by the type's name (pg_type.typname,
	// of any schema): a relation with a column of such a type lets a
	// value the statement writes become the column's type with no type
	// name in the statement (array_position(ARRAY[col], 'x'), arr @>
	// '{x}', a UNION with the column, a parameter PostgreSQL infers from
	// it), running the CHECKs (walker.columnTypeCalls).
	// NOTE: keyed by name as CastCalls is, so a type of that name in
	// another schema counts too: a refusal more, never one less.
	// NOTE: CastCalls, InputCalls, CheckCalls and ResultCalls also hold,
	// with Via naming the class, the functions outside pg_catalog of the
	// default btree and hash operator classes of the types a type is made
	// of, and of a range's subtype operator class, canonical and
	// subtype_diff functions: ORDER BY, DISTINCT, GROUP BY, UNION, a
	// window, a join and building a range run them with no operator or
	// type name in the statement.
	CheckCalls map[string][]ImplicitCall
	// ResultCalls is InputCalls keyed by the name of a function
	// (pg_proc.proname, of any schema) whose result, a column of its
	// SETOF table or an OUT or TABLE column is of such a type: its value
	// meets the statement's values as a column's does (array_position(
	// f(), 'x'), SELECT c @> '{x}' FROM f()), running the CHECKs
	// (walker.function).
	// NOTE: keyed by name, every overload counts: a refusal more, never
	// one less. Argument types do not count: listing f trusts it.
	ResultCalls map[string][]ImplicitCall
	// UnseenCalls are the functions outside pg_catalog that implicit and
	// assignment casts and domain CHECK constraints a DBA created call:
	// PostgreSQL runs them where no syntax of the statement shows them,
	// so the walker cannot check them. Configuration checks warn about
	// them (policy.Config.CheckUnseenCalls). Extensions' are not listed.
	UnseenCalls []UnseenCall
	// OperatorNames and TypeNames hold the names of every operator and
	// type, in any schema: a statement naming one they lack names an
	// object newer than the snapshot (or none). nil when the catalog was
	// not read upstream, which checks nothing.
	OperatorNames, TypeNames map[string]bool
	// Sequences holds the names of sequences, which are no relation of
	// Relations: a statement naming one reads a counter of the rows of
	// the table it numbers (firewall rule sequences).
	Sequences map[QName]bool
	// Digest is a SHA-256 of everything LoadCatalog read, in its
	// queries' order: two snapshots with the same Digest are the same.
	// Zero when the catalog was not read upstream.
	Digest [32]byte
	// Grammar is how the upstream's grammar differs from pgveil's
	// parser; nil when the catalog was not read upstream (offline
	// tools), which checks nothing.
	Grammar *GrammarDiff
}

// UnseenCall is a function a cast or a domain calls where no syntax
// shows it (Catalog.UnseenCalls).
type UnseenCall struct {
	// Kind is 'c' for an implicit or assignment cast from Source to
	// Target, 'd' for a CHECK constraint of the domain Target.
	Kind byte
	// Source and Target are type names as format_type writes them;
	// Source is "" for a domain.
	Source, Target string
	// Function is the function called.
	Function QName
	// Via names, for an operator's function, the operator of another
	// name whose function it is ("the negator #>=#"), "" when the
	// operator's own: the planner may run a commutator or a negator in
	// the operator's place.
	Via string
}

// ImplicitCall is a function an operator or a cast calls.
type ImplicitCall struct {
	// Schema is the operator's schema: an unqualified operator name
	// finds it only when the search path holds it. "" for a cast.
	Schema string
	// Function is the function called.
	Function QName
	// Via names, for an operator's function, the operator of another
	// name whose function it is ("the negator #>=#"), "" when the
	// operator's own: the planner may run a commutator or a negator in
	// the operator's place. For a type's, the operator class or range
	// whose function it is ("its default btree operator class c"), ""
	// when a domain CHECK's.
	Via string
	// Result is, for an operator's, the type of its result whose operator
	// class (Via) the function is of, "" otherwise: sorting, grouping or
	// comparing what the operator returns runs it, also when the operator
	// is pg_catalog's (@@ box returns a point, which a DBA may have given a
	// default btree class).
	Result string
}

// InternalSchema is the upstream schema of pgveil's own objects: the
// secret keys of hash masks (a table only its owner reads) and the
// SECURITY DEFINER function hashing with them. Every relation and
// function in it is refused to clients, whatever the policy says, and
// the search path pgveil pins must not list it.
const InternalSchema = "pgveil"

// Relation is a relation of the catalog snapshot.
type Relation struct {
	QName
	// OID is pg_class.oid.
	OID uint32
	// Kind is pg_class.relkind: 'r', 'p', 'v', 'm', 'f'.
	Kind byte
	// Columns are the relation's columns in attnum order (dropped columns
	// excluded).
	Columns []Column
	// Ancestors are the relations this one inherits from or is a
	// partition of, nearest first: a child of a governed table is
	// governed by its ancestor's policy.
	Ancestors []QName
	// BoundBy holds the columns the partition keys of the relation's
	// ancestors read (partitionPeers' keys, by name): which rows a
	// partition holds is decided by them, so reading it by name answers a
	// question about each of its rows' values of them.
	// NOTE: empty for a relation that is no partition, and for a root.
	BoundBy []string
	// Parents are the relations this one inherits from or is a partition
	// of directly, in pg_inherits order: each is a line of inheritance
	// whose scan reads this one's rows under the block governing that
	// line, so blocks that disagree along two lines are ambiguous for it.
	// NOTE: a parent the snapshot lacks is left out, as from Ancestors.
	Parents []*Relation
	// Descendants are the relations that inherit from this one or are its
	// partitions, at any depth, in name order: a scan of this one without
	// ONLY reads their rows too.
	Descendants []*Relation
	// Reads are, for a view or a materialized view, the relations its
	// query names (pg_depend), in OID order: reading it reads them with
	// the service account's rights, past their policies.
	Reads []*Relation
	// ReadColumns are, for a view or a materialized view, the columns of
	// each relation of Reads that its query names, by name, in name
	// order (pg_depend): check's only link between what a view shows and
	// the classified columns it reads under another name or in an
	// expression.
	// NOTE: a whole-row reference or count(*) names no column.
	ReadColumns map[QName][]string
	// ReadBy are the views and materialized views whose Reads hold this
	// relation or one of its ancestors, in OID order: a write of this
	// one changes what they show (a table the policy reads through a
	// view is as much the policy's input as one it names).
	ReadBy []*Relation
	// Calls are, for a view or a materialized view, the functions its
	// query calls by name or through an operator, in name order.
	Calls []QName
	// Keys holds the columns a unique index or an exclusion constraint
	// reads (as a key, in an expression or in its predicate),
	// References maps each column of a foreign key to the relations it
	// references, and ReferencedBy each column a foreign key references
	// to the relations referencing it: PostgreSQL checks a value written
	// there, or a row deleted, against rows no scope limits, and may
	// cascade into them (writeChecked). A relation's own include its
	// inheritance children's and partitions', which a write of it
	// reaches.
	Keys                     map[string]bool
	References, ReferencedBy map[string][]QName
	// SettingReferences maps each column of a foreign key of several
	// columns, whose ON DELETE action is SET NULL or SET DEFAULT, or
	// that is not validated (NOT VALID), to the relations it
	// references: a DELETE of a referenced row writes a value into the
	// column (whose check, for a default, reads a parent row the user
	// may not see), or pairs it with another; or rows may reference no
	// row yet, which a new parent row would reach.
	// Every other foreign key of a column checks it, or deletes the row
	// holding it, on a DELETE (deleteChecked).
	// NOTE: a subset of References.
	SettingReferences map[string][]QName
	// DefaultReferences maps each column of a foreign key whose ON
	// DELETE action is SET DEFAULT to the relations it references: a
	// DELETE of a referenced row writes the column's default, which
	// every foreign key of the column checks (deleteCheckedFrom).
	// NOTE: a subset of SettingReferences; every column of the key
	// counts (ON DELETE SET DEFAULT (column) sets fewer).
	DefaultReferences map[string][]QName
	// UpdateReferences maps each column of a foreign key whose ON
	// UPDATE action changes it (CASCADE, SET NULL, SET DEFAULT) to the
	// relations such keys reference: an UPDATE of the referenced key
	// carries on into the column (updateCascadeChecked). A NO ACTION or
	// RESTRICT key only checks its rows.
	// NOTE: a subset of References.
	UpdateReferences map[string][]QName
	// Defaulted holds the columns an INSERT or a COPY leaving them out
	// may fill with a value a unique key compares: those with a default
	// (an identity, a sequence, a constant), generated, of a domain, or
	// under a unique key of expressions or NULLS NOT DISTINCT, where a
	// NULL meets others (writeChecked). A relation's own include its
	// children's.
	Defaulted map[string]bool
	// Generated maps each generated column to the columns its expression
	// reads (none, an empty list, for a constant): writing one of those
	// changes it. Keys, References and
	// ReferencedBy hold those columns too, as their generated column's.
	Generated map[string][]string
	// IndexPeers maps each column an index reads (as a key, in an
	// expression or in its predicate) to the other columns that index
	// reads: a write of the column makes a new index row of the real
	// values of them all, and the index's row size limit fails or not by
	// their length (writeChecked). Like Keys, a relation's own include
	// its children's, and a generated column's are its bases' too.
	// NOTE: a column may repeat in a list (several indexes, children).
	IndexPeers map[string][]string
	// CheckPeers maps each column a CHECK constraint of the relation
	// reads to the other columns that constraint reads (every column for
	// one reading the whole row): a write of the column makes PostgreSQL
	// check the written value against the real values of them all, and
	// the check's verdict answers a question about each (checkChecked).
	// Like IndexPeers, a relation's own include its children's, and a
	// generated column's are its bases' too. The columns of the partition
	// keys of the relation's partition tree (its own, its ancestors' and
	// its descendants') count as read by one constraint: where an UPDATE
	// sends the row, or whether it fails, answers the same question.
	// NOTE: a column may repeat in a list (several constraints, children).
	CheckPeers map[string][]string
	// PrimaryKey holds the columns of the relation's own primary key
	// (not deferrable), in name order; none without one. PostgreSQL
	// takes the other columns of a relation whose primary key a GROUP BY
	// holds as grouped (functionally dependent); a subquery loses that,
	// which widenGroupings makes up for (grouping.go).
	// NOTE: a relation's own: unlike Keys, never its children's.
	PrimaryKey []string
	// Refused, when set, says why no user may read or write the relation
	// in this snapshot: DDL since the policy was loaded left the policy
	// not matching it (a governed table renamed, a classified column
	// renamed or dropped; policy.Config.Drift). The policy's Relation
	// answers Denied with it.
	// NOTE: set on a snapshot before it is put in force, never after.
	Refused string
}

// Column is a column of a Relation.
type Column struct {
	Name string
	// Type is format_type(atttypid, atttypmod), e.g. "numeric(5,2)".
	Type string
	// TypeName is Type parsed, for casts the rewriter writes.
	TypeName *pg_query.TypeName
	// MaskType is the type a masked value of the column is cast to when
	// it is not Type: Type with its domains replaced by their base types
	// (catalogRelationsSQL). A domain's NOT NULL or CHECK would reject
	// the NULL of a null mask, or a hash or partial mask's value, on
	// every row read: a masked column of a domain reads as its base
	// type. "" (and MaskTypeName nil) when Type involves no domain.
	// NOTE: the masked value is the only value either way; only its
	// type's constraints are not checked on it.
	MaskType     string
	MaskTypeName *pg_query.TypeName
	// Num is pg_attribute.attnum: renaming a column keeps it, so it
	// tells a column renamed from one dropped and added again
	// (policy.Config.Drift).
	Num int16
	// Ungroupable: the column's type has no equality operator GROUP BY
	// can use (no default btree or hash operator class: json, xml,
	// point), through domains, arrays and composite types' fields, as
	// PostgreSQL's type cache reads it (catalogRelationsSQL).
	// widenGroupings does not add such a column to a GROUP BY.
	// NOTE: the zero value says groupable (a catalog built by hand): a
	// column added that is not fails as PostgreSQL's GROUP BY does on it
	// (42883), and one left out that is fails with 42803 if the SELECT
	// reads it ungrouped; neither changes a statement's rows.
	Ungroupable bool
	// Nondeterministic is the OID of the column's collation when that
	// collation is nondeterministic (CREATE COLLATION … deterministic =
	// false: case- or accent-insensitive equality), "" otherwise
	// (catalogRelationsSQL). Two text columns compare equal under the
	// nondeterministic collation of either, where a deterministic one
	// compares bytes: policy's follows compares a child's column with its
	// parent's key only when both have the same.
	// NOTE: the zero value says deterministic (a catalog built by hand).
	Nondeterministic string
	// Collation is the OID of the column's collation when it has one
	// other than the database's default, "" otherwise
	// (catalogRelationsSQL). Two columns of two such collations compare
	// under neither: PostgreSQL fails the comparison (42P22), and only
	// when it meets a row, so policy's follows compares a child's column
	// with its parent's key only when at most one has one, or both the same.
	// NOTE: the zero value says the default (a catalog built by hand).
	Collation string
}

// MaskCast returns the type a masked value of the column is cast to, as
// format_type writes it and parsed: MaskType when set, Type otherwise.
func (c Column) MaskCast() (string, *pg_query.TypeName) {
	if c.MaskTypeName != nil {
		return c.MaskType, c.MaskTypeName
	}
	return c.Type, c.TypeName
}

// StatementKind is a kind of statement a role may run on governed data.
type StatementKind string

// Statement kinds a role's `statements` list may name.
const (
	KindSelect  StatementKind = "select"
	KindCopyOut StatementKind = "copy_out"
	KindInsert  StatementKind = "insert"
	KindUpdate  StatementKind = "update"
	KindDelete  StatementKind = "delete"
)

// AccessMode says how a relation reference is treated for a user.
type AccessMode int

const (
	// Denied relations refuse the statement (42501, Access.Reason).
	Denied AccessMode = iota
	// Open relations are left as written (ungoverned data the policy
	// allows, catalog relations BI tools need).
	Open
	// Governed relations are replaced by a subquery applying Filter and
	// Masks.
	Governed
)

// Access is how one relation is governed for one user.
type Access struct {
	Mode AccessMode
	// Reason names the firewall rule that denied access (Mode Denied).
	Reason string
	// Filter is the row scope: a boolean expression over the relation's
	// unqualified column names, with the user's attributes already bound
	// as literals. nil means every row.
	Filter *pg_query.Node
	// Masks maps a column name to the expression that replaces its value
	// (over the unqualified column names); the rewriter casts it to the
	// column's type (Column.MaskCast), or to MaskTypes' type when it
	// names one. A column not in Masks is visible.
	Masks map[string]*pg_query.Node
	// MaskTypes maps a masked column to the type its mask's value is
	// served as when that is not the column's own: a hash mask of an
	// integer column is a bigint pseudonym, of a uuid column a uuid
	// (policy's hash templates). The rewriter casts the mask to it, so a
	// client reads (and describes) that type for the column.
	// NOTE: only for columns in Masks; the pseudonym's type is wider
	// than the column's (int4 to int8), since a cast back to the
	// column's type would fail on most pseudonyms (22003), or make
	// different values equal.
	MaskTypes map[string]*pg_query.TypeName
	// Rules names the rules that contributed to Filter, for the audit log.
	Rules []string
	// NoPushdown keeps every predicate of the client's outside the scope
	// subquery: no comparison is copied inside for an index to serve it,
	// so the statement's duration says nothing about hidden rows.
	NoPushdown bool
	// ReadOnly, when set, says why no statement may write the relation:
	// the policy itself reads it (a teams table, the table of an identity
	// query or of a rule's subquery), so a write would change what users
	// may see, the writer's own scope included.
	ReadOnly string
	// FollowedKeys holds the columns of the relation another relation's
	// scope reads as a key (policy's follows: a child row is visible
	// when a visible row's key equals its column). Under a row scope an
	// UPDATE of one is refused as one of a column Filter reads: giving a
	// visible row the key of a hidden one, or of orphans, would show the
	// writer their children.
	// For an ancestor of a followed partition it holds the partition's
	// key and the columns that route rows into it (Relation.BoundBy).
	// NOTE: the key need not be unique; a unique one is refused anyway
	// (writeChecked), whatever FollowedKeys holds.
	FollowedKeys map[string]bool
	// Follows is set when the relation follows another (policy's
	// follows) and shows every row whose Column equals the Key of a row
	// of Parent the user sees: no restrictive rule of the relation's
	// narrows the follow. A DELETE of Parent's rows then reaches, by a
	// foreign key from Column to Key, only rows the user sees
	// (deleteChecked). nil otherwise.
	Follows *Follow
}

// Follow is a relation's follow of its parent (Access.Follows): its rows
// are those whose Column equals the Key of a visible row of Parent.
type Follow struct {
	Parent      QName
	Column, Key string
}

// Policy is one user's compiled policy, as the rewriter consults it.
//
// NOTE: implementations must be safe for concurrent use and must return
// nodes the rewriter may not modify: the rewriter copies what it uses.
type Policy interface {
	// Key identifies the compiled policy: two policies with equal keys
	// rewrite every statement identically. Rewrite caches use it.
	Key() string
	// AllowStatement reports whether the user may run statements of kind
	// k on governed relations; when not, reason names the rule.
	AllowStatement(k StatementKind) (ok bool, reason string)
	// Relation returns how r is governed for the user.
	Relation(r *Relation) Access
	// AllowFunction reports whether the user may call a function outside
	// pg_catalog.
	AllowFunction(schema, name string) bool
}

// CatalogPolicy is a Policy whose access to a relation may depend on
// other relations of the catalog snapshot: a table whose rows follow
// those of another (policy's follows), whose scope is a subquery over
// the parent as the user may read it. The rewriter asks RelationIn, with
// the snapshot it rewrites against, in place of Relation.
//
// NOTE: RelationIn(cat, r) depends on cat and r only as the snapshot
// holds them: the rewrite caches, keyed by policy and snapshot, stay
// exact.
type CatalogPolicy interface {
	Policy
	RelationIn(cat *Catalog, r *Relation) Access
}
