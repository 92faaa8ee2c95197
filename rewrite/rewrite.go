package rewrite

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"unicode"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/internal/sqlstate"
)

// The values of Result.TransactionEnd: COMMIT (END, and COMMIT AND
// CHAIN), ROLLBACK (ABORT, and ROLLBACK AND CHAIN), ROLLBACK TO
// SAVEPOINT.
const (
	EndCommit     = "commit"
	EndRollback   = "rollback"
	EndRollbackTo = "rollback_to"
)

// Savepoint is a SAVEPOINT, RELEASE or ROLLBACK TO statement: Op is
// SavepointSet, SavepointRelease or SavepointRollbackTo, Name the
// savepoint's name as PostgreSQL keys it (folded, unquoted).
type Savepoint struct {
	Op, Name string
}

// The values of Savepoint.Op.
const (
	SavepointSet        = "savepoint"
	SavepointRelease    = "release"
	SavepointRollbackTo = "rollback_to"
)

// Result is a rewritten statement text and what the rewrite did.
type Result struct {
	// SQL is the text to forward upstream. It is the input text itself
	// when nothing needed rewriting.
	SQL string
	// Rewritten reports whether SQL differs from the input.
	Rewritten bool
	// Kinds lists the kind of each statement, e.g. "select", "set".
	Kinds []string
	// Tables lists the governed relations the statement reads, sorted.
	Tables []string
	// Rules lists the policy rules that applied, sorted.
	Rules []string
	// Masked lists the masked columns of the governed relations the
	// statement reads, as schema.table.column, sorted: every one of them,
	// whether the statement names it or not (what pgveil explain and
	// policy tests show).
	Masked []string
	// MaskedRead lists, of Masked, the columns the statement could read
	// (masked), as Columns lists the unmasked ones: the ones it names, or
	// all with * or a whole-row reference. The audit trail's "masked":
	// a count(*) reads none.
	MaskedRead []string
	// Columns lists the unmasked columns of governed relations the
	// statement could read, as table.column, sorted: the ones it names,
	// or all when it reads * or whole rows. It may say too much, never
	// too little, so an auditor looking for who read a column misses no
	// statement.
	Columns []string
	// Objects lists, in order, the prepared statements and cursors the
	// statements create, run or drop: what a proxy needs to know to keep
	// them from outliving the policy that checked them.
	Objects []SessionObject
	// Act is the change of the acting user the text asks for (SET ROLE,
	// SET pgveil.act_for and their RESET), nil for any other text: the
	// proxy must check and make it, or refuse the text.
	Act *Act
	// Begins reports that the text is a single BEGIN or START
	// TRANSACTION: it cannot fail but in an aborted transaction, so a
	// change of the acting user may follow it in the same batch (PgJDBC
	// sends BEGIN with the first statement when autocommit is off).
	Begins bool
	// EndsTransaction reports that the text holds a COMMIT, ROLLBACK
	// (END, ABORT) or ROLLBACK TO SAVEPOINT: what may undo, or settle, a
	// change of the acting user made in its transaction. TransactionEnd
	// is the last of them: EndCommit, EndRollback or EndRollbackTo.
	EndsTransaction bool
	TransactionEnd  string
	// Savepoints are the SAVEPOINT, RELEASE and ROLLBACK TO statements
	// of the text, in order: what a proxy needs to follow which
	// savepoint a ROLLBACK TO returns to.
	Savepoints []Savepoint
	// Keeps names the session state the text may leave on its upstream
	// backend past its transaction, e.g. "SET DateStyle", "PREPARE q",
	// "DECLARE c WITH HOLD", "set_config", or nil: a transaction pool
	// must not hand that backend to another session.
	//
	// NOTE: it says too much rather than too little. SET LOCAL, SET
	// TRANSACTION and RESET leave nothing; a function outside pg_catalog
	// is counted, its body unread.
	Keeps []string
	// Resets lists the settings the text's RESET and SET … TO DEFAULT
	// statements return to their startup values, lowercase, ResetAll for
	// RESET ALL: a transaction pool that replays a session's settings on
	// the backends it takes must forget them.
	Resets []string
	// Fingerprint is pg_query's fingerprint of the statement text, which
	// ignores constants, when the Engine knows it: it computes it once
	// for a literal shape it caches, so that the audit trail need not
	// parse each statement of that shape again. "" otherwise.
	Fingerprint string
	// constantBound reports that a decision on the text read a
	// constant's value (readsConstantValues): it holds for this text
	// only, not for texts differing from it in constants.
	constantBound bool
	// spliced reports that SQL is a spliced rewrite (splice.go), not the
	// deparse of the rewritten tree.
	spliced bool
	// direct reports that SQL reads a governed relation directly
	// (flatten.go).
	direct bool
}

// SessionObject is a prepared statement or cursor a statement names.
type SessionObject struct {
	// Op is one of "prepare", "execute", "deallocate" (SQL prepared
	// statements), "declare", "fetch" (FETCH and MOVE), "close"
	// (cursors), or "discard" (DISCARD ALL, which drops them all).
	Op string
	// Name is the statement or cursor; "" with deallocate and close
	// means ALL.
	Name string
}

// Rewrite checks every statement of sql against the firewall's rules and
// the user's policy p, and replaces each reference to a governed relation
// by a subquery that applies the user's row scope and column masks. It
// returns a *Refused error for a statement that is refused (the whole text
// is refused), or an *UnknownRelationError.
func Rewrite(sql string, cat *Catalog, p Policy) (*Result, error) {
	if err := guard(sql); err != nil {
		return nil, err
	}
	return rewriteGuarded(sql, cat, p)
}

// rewriteGuarded is Rewrite for a text guard has passed.
func rewriteGuarded(sql string, cat *Catalog, p Policy) (*Result, error) {
	return rewriteText(sql, cat, p, nil, true)
}

// rewriteText is rewriteGuarded, splicing the rewrite (splice.go) rather
// than deparsing it when sp is not nil and the statement allows it, and
// reading governed relations directly where flatten allows when direct.
//
// NOTE: the engine's cold path splices and never reads directly: a
// direct read is deparsed, which costs the proxy several times what it
// saves upstream for a statement seen once. A shape seen again gets a
// template (template.go), made from the direct rewrite.
func rewriteText(sql string, cat *Catalog, p Policy, sp *splicer, direct bool) (*Result, error) {
	if r := cat.Grammar.problem(sql); r != nil {
		return nil, r
	}
	if !utf8.ValidString(sql) {
		return nil, &Refused{Code: CodeSyntaxError, Rule: "syntax", Message: "the statement is not valid UTF-8"}
	}
	tree, err := pg_query.Parse(sql)
	if err != nil {
		if strings.Contains(err.Error(), "exceeded maximum recursion depth") {
			// Go's protobuf decoding of a tree too deep, not a syntax
			// error.
			return nil, deny("complexity", "the statement nests expressions too deeply")
		}
		return nil, &Refused{Code: CodeSyntaxError, Rule: "syntax", Message: err.Error()}
	}
	if d := treeDepth(tree, 0); d > maxTreeDepth {
		// NOTE: before anything deparses it (pg_query's deparser recurses
		// in C, and crashes at about 4,900 levels of +).
		return nil, deny("complexity", "the statement nests expressions too deeply (%d levels of its tree, at most %d)", d, maxTreeDepth)
	}
	if r := treeSize(tree); r != nil {
		return nil, r
	}
	w := newWalker(cat, p)
	w.version = tree.Version
	res := &Result{SQL: sql}
	for _, raw := range tree.Stmts {
		w.stmt, w.params = raw.Stmt, nil
		w.noteFuncAliases(raw.Stmt)
		kind, err := w.statement(raw.Stmt)
		if err != nil {
			var r *Refused
			if errors.As(err, &r) && (r.Kind == "" || len(w.named) > 0 && r.Tables == nil) {
				// NOTE: a copy: a refusal may be a shared value.
				cp := *r
				if cp.Kind == "" {
					cp.Kind = kindOf(raw.Stmt)
				}
				if len(w.named) > 0 && cp.Tables == nil {
					cp.Tables = keys(w.named)
				}
				return nil, &cp
			}
			return nil, err
		}
		if w.locking && w.governedSeen {
			r := deny("locking", "FOR UPDATE/SHARE on governed tables is not allowed")
			r.Kind = kind
			return nil, r
		}
		res.Kinds = append(res.Kinds, kind)
	}
	if w.act != nil && !actAlone(tree.Stmts) {
		return nil, deny("act_for", "a change of the acting user (SET ROLE, SET %s) must be the only statement of its text, after BEGIN, SAVEPOINT or RELEASE at most", ActSetting)
	}
	res.Act = w.act
	res.EndsTransaction, res.TransactionEnd = w.endsTx != "", w.endsTx
	res.Savepoints = w.savepoints
	if len(tree.Stmts) == 1 {
		switch tree.Stmts[0].Stmt.GetTransactionStmt().GetKind() {
		case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START:
			res.Begins = true
		}
	}
	res.Tables, res.Rules, res.Masked = keys(w.tables), keys(w.rules), keys(w.masked)
	res.Objects = w.objects
	res.Keeps, res.Resets = w.keeps, w.resets
	res.Columns, res.MaskedRead = w.readable(w.visible), w.readable(w.masked)
	// NOTE: for rewritten statements too: a template must not serve a
	// shape whose checks read a constant (set_config next to a governed
	// table). The walker saw every call and SET; statements forwarded
	// unchanged are also walked in full, as the shape caches have always
	// required.
	res.constantBound = w.readsConstant
	if direct {
		res.direct = w.flatten()
	}
	w.catalogXmin(tree.Stmts)
	// NOTE: after flatten (a relation read directly keeps its key) and
	// before the splice, which a widened GROUP BY rules out (changed).
	if w.widenGroupings(tree.Stmts) {
		res.constantBound = true
	}
	if !w.changed && len(w.scoped) == 0 {
		res.constantBound = res.constantBound || readsConstantValues(tree.Stmts)
		return res, nil
	}
	if sp != nil && !w.changed {
		// NOTE: like a deparse's, a splice's output must parse back into
		// the tree the walker built (its skeleton does, see
		// skeletonMatches); one that does not is deparsed instead.
		out, skeleton, ok := w.splice(sql, sp)
		if ok {
			if r := tooLong(out); r != nil {
				return nil, r
			}
		}
		if ok && w.skeletonMatches(skeleton, tree) && utf8.ValidString(out) {
			res.SQL, res.Rewritten, res.spliced = out, true, true
			return res, nil
		}
	}
	w.materialize()
	// NOTE: the output must parse back into the tree the rewriter
	// built: a deparse bug must not reach the upstream as a different
	// statement. Where the deparser dropped parentheses an operand
	// needs, deparseHeld wraps such operands in nodes it prints with
	// them, of the same value (parenthesizeOperands), and holds that
	// deparse to the changed tree in turn; an output too long is
	// refused before it is parsed back.
	out, faithful, err := deparseHeld(tree, maxRewritten)
	switch {
	case errors.Is(err, errDeparsedTooLong):
		return nil, tooLong(out)
	case err != nil:
		return nil, deny("rewrite", "the statement could not be rewritten: %v", err)
	case !faithful:
		return nil, deny("rewrite", "the rewritten statement did not re-parse")
	}
	res.SQL, res.Rewritten = out, true
	return res, nil
}

// savepoint notes the savepoint statement t, of op (Result.Savepoints).
func (w *walker) savepoint(op string, t *pg_query.TransactionStmt) {
	w.savepoints = append(w.savepoints, Savepoint{Op: op, Name: t.GetSavepointName()})
}

// actAlone reports whether stmts, a text with a change of the acting
// user, has nothing but it to check: every statement before the last
// (the change) opens a transaction or a savepoint, or releases one.
// psqlODBC sends BEGIN;SET ROLE … with autocommit off, and prefixes each
// statement with RELEASE and SAVEPOINT for statement-level rollback
// (Protocol=7.4-2). None of these reads data or changes the acting user,
// so no statement of the text is checked for a user it does not run for;
// should one fail, the server skips the change, which the proxy follows
// from its answers (actSettle). A COMMIT, ROLLBACK or ROLLBACK TO before
// the change would end or undo something under the change's tracking:
// they, and statements after the change (checked for the previous user,
// run for the next), stay refused.
func actAlone(stmts []*pg_query.RawStmt) bool {
	for _, raw := range stmts[:len(stmts)-1] {
		switch raw.Stmt.GetTransactionStmt().GetKind() {
		case pg_query.TransactionStmtKind_TRANS_STMT_BEGIN, pg_query.TransactionStmtKind_TRANS_STMT_START,
			pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT, pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
		default:
			return false
		}
	}
	return true
}

// readsConstantValues reports whether a firewall decision on stmts may
// depend on a constant's value rather than only on its place: the engine
// shares the decision on a statement with the texts differing from it
// only in constants (Engine.Rewrite), which is sound only when no check
// reads a value. The one check that does is set_config's: its first
// argument, a string literal, names the setting (setConfigProblem), so
// set_config('work_mem', …) passes and set_config('search_path', …) is
// refused although both normalise to set_config($1, …); and the values
// of settingValues, in SET as in set_config: SET client_min_messages =
// notice passes and = debug5 is refused, both SET client_min_messages =
// $1 once normalised.
//
// NOTE: any new check that reads a constant's value must be covered here.
// Any call named set_config counts, whatever its schema: saying true too
// often only costs a parse.
func readsConstantValues(stmts []*pg_query.RawStmt) bool {
	found := false
	for _, s := range stmts {
		pgtree.Walk(s, func(m proto.Message) bool {
			switch v := m.(type) {
			case *pg_query.FuncCall:
				if len(v.Funcname) > 0 && v.Funcname[len(v.Funcname)-1].GetString_().GetSval() == "set_config" {
					found = true
				}
			case *pg_query.VariableSetStmt:
				if settingValues[strings.ToLower(v.Name)] != nil || isActSetting(v.Name) {
					found = true
				}
			}
			return !found
		})
		if found {
			return true
		}
	}
	return false
}

// reparses reports whether sql parses into n statements, as
// pg_query.Parse(sql) would: valid UTF-8 (Parse's protobuf decoding
// requires it) that PostgreSQL's raw parser, the one Parse runs, accepts
// as n statements.
//
// NOTE: pg_query.SplitWithParser runs the same raw parser with the same
// options as pg_query.Parse but returns only statement boundaries; it
// skips the serialisation of the tree to protobuf and back, which costs
// several times the parse itself (protobuf-c walks every field of the
// 271-field Node message for each node).
func reparses(sql string, n int) bool {
	if !utf8.ValidString(sql) {
		return false
	}
	stmts, err := pg_query.SplitWithParser(sql, false)
	return err == nil && len(stmts) == n
}

func keys(m map[string]bool) []string {
	if len(m) == 0 {
		return nil
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// The kinds Result.Kinds gives the statements that are not policy
// StatementKinds. Until 2026-12 they were pg_query's node names, given
// in the comments, and audit trails written before hold those (pgveil
// audit search --kind takes either spelling).
const (
	KindDeallocate     = "deallocate"      // DeallocateStmt
	KindFetch          = "fetch"           // FetchStmt
	KindMove           = "move"            // FetchStmt
	KindClose          = "close"           // ClosePortalStmt
	KindSetConstraints = "set_constraints" // ConstraintsSetStmt
	KindShow           = "show"            // VariableShowStmt
	KindUnlisten       = "unlisten"        // UnlistenStmt
)

// statement checks and rewrites one top-level statement and returns its
// kind. Anything not listed here is refused: the allow-list is the
// firewall's default deny.
func (w *walker) statement(n *pg_query.Node) (string, error) {
	if err := w.declaredInputs(); err != nil {
		return "", err
	}
	switch s := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		if hasInto(s.SelectStmt) {
			return "", deny("select_into", "SELECT INTO creates a table")
		}
		w.root = s.SelectStmt
		defer func() { w.root = nil }()
		return "select", w.walkSelect(s.SelectStmt)

	case *pg_query.Node_InsertStmt:
		return "insert", w.write(KindInsert, s.InsertStmt.Relation, n)
	case *pg_query.Node_UpdateStmt:
		w.topWrite = n
		defer func() { w.topWrite = nil }()
		return "update", w.write(KindUpdate, s.UpdateStmt.Relation, n)
	case *pg_query.Node_DeleteStmt:
		w.topWrite = n
		defer func() { w.topWrite = nil }()
		return "delete", w.write(KindDelete, s.DeleteStmt.Relation, n)
	case *pg_query.Node_MergeStmt:
		return "", deny("merge", "MERGE is not supported through pgveil")

	case *pg_query.Node_CopyStmt:
		return "copy", w.copyStmt(n, s.CopyStmt)

	case *pg_query.Node_ExplainStmt:
		return "explain", w.explain(s.ExplainStmt)

	case *pg_query.Node_DeclareCursorStmt:
		w.object("declare", s.DeclareCursorStmt.Portalname)
		if s.DeclareCursorStmt.Options&cursorOptHold != 0 {
			w.keep("DECLARE " + s.DeclareCursorStmt.Portalname + " WITH HOLD")
		}
		return "declare", w.walkQuery(s.DeclareCursorStmt.Query)
	case *pg_query.Node_PrepareStmt:
		w.object("prepare", s.PrepareStmt.Name)
		w.keep("PREPARE " + s.PrepareStmt.Name)
		// NOTE: EXECUTE converts its arguments to the declared types,
		// running their domains' CHECKs: the types count as casts.
		if err := w.walkList(s.PrepareStmt.Argtypes); err != nil {
			return "", err
		}
		w.prepared = s.PrepareStmt.Argtypes
		defer func() { w.prepared = nil }()
		return "prepare", w.walkQuery(s.PrepareStmt.Query)
	case *pg_query.Node_ExecuteStmt:
		// EXECUTE runs a statement PREPARE already checked; its
		// parameters are expressions to check like any other.
		w.object("execute", s.ExecuteStmt.Name)
		return "execute", w.walk(n)
	case *pg_query.Node_DeallocateStmt:
		w.object("deallocate", s.DeallocateStmt.Name)
		return KindDeallocate, nil
	case *pg_query.Node_FetchStmt:
		w.object("fetch", s.FetchStmt.Portalname)
		if s.FetchStmt.Ismove {
			return KindMove, nil
		}
		return KindFetch, nil
	case *pg_query.Node_ClosePortalStmt:
		w.object("close", s.ClosePortalStmt.Portalname)
		return KindClose, nil
	case *pg_query.Node_ConstraintsSetStmt:
		return KindSetConstraints, nil
	case *pg_query.Node_VariableShowStmt:
		return KindShow, nil
	case *pg_query.Node_DiscardStmt:
		if s.DiscardStmt.Target == pg_query.DiscardMode_DISCARD_ALL {
			w.object("discard", "")
			// It drops every prepared statement of the backend, whoever
			// prepared it.
			w.keep("DISCARD ALL")
		}
		return "discard", nil

	case *pg_query.Node_TransactionStmt:
		switch s.TransactionStmt.Kind {
		case pg_query.TransactionStmtKind_TRANS_STMT_PREPARE:
			// A PREPARE TRANSACTION that fails ends the transaction
			// block: so does its refusal (Refusal.EndsTransaction).
			r := deny("two_phase_commit", "two-phase commit is not allowed")
			r.EndsTransaction = true
			return "", r
		case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT_PREPARED, pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_PREPARED:
			return "", deny("two_phase_commit", "two-phase commit is not allowed")
		case pg_query.TransactionStmtKind_TRANS_STMT_COMMIT:
			w.endsTx = EndCommit
		case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK:
			w.endsTx = EndRollback
		case pg_query.TransactionStmtKind_TRANS_STMT_ROLLBACK_TO:
			w.endsTx = EndRollbackTo
			w.savepoint(SavepointRollbackTo, s.TransactionStmt)
		case pg_query.TransactionStmtKind_TRANS_STMT_SAVEPOINT:
			w.savepoint(SavepointSet, s.TransactionStmt)
		case pg_query.TransactionStmtKind_TRANS_STMT_RELEASE:
			w.savepoint(SavepointRelease, s.TransactionStmt)
		}
		return "transaction", nil

	case *pg_query.Node_VariableSetStmt:
		return "set", w.set(s.VariableSetStmt)

	case *pg_query.Node_DoStmt:
		return "", deny("procedural_code", "DO blocks are not allowed")
	case *pg_query.Node_CallStmt:
		return "", deny("procedural_code", "CALL is not allowed")
	case *pg_query.Node_CreateFunctionStmt:
		return "", deny("ddl", "CREATE FUNCTION is not allowed")
	case *pg_query.Node_ViewStmt:
		return "", deny("ddl", "CREATE VIEW is not allowed")
	case *pg_query.Node_CreateTableAsStmt:
		return "", deny("ddl", "CREATE TABLE AS is not allowed")
	case *pg_query.Node_CreateStmt:
		// Tableau probes for temporary tables at connect; say why it
		// fails and which setting stops the probe.
		if s.CreateStmt.Relation.GetRelpersistence() == "t" {
			return "", deny("temp_objects", "temporary tables are not allowed")
		}
	case *pg_query.Node_UnlistenStmt:
		// A session never listens through pgveil: UNLISTEN, which
		// asyncpg and other pools send to reset a connection, stops
		// nothing.
		return KindUnlisten, nil
	case *pg_query.Node_ListenStmt, *pg_query.Node_NotifyStmt:
		return "", deny("listen_notify", "LISTEN and NOTIFY are not allowed")
	}
	return "", deny("statement_kind", "%s statements are not allowed", statementName(n))
}

// kindOf is the kind of the statement n for the audit trail of its
// refusal: the kind statement gives the statements it allows (a SELECT
// of a table the user may not read is a select), and for the others
// their node type in words, e.g. drop, create_function, truncate.
func kindOf(n *pg_query.Node) string {
	switch s := n.Node.(type) {
	case *pg_query.Node_SelectStmt:
		return "select"
	case *pg_query.Node_InsertStmt:
		return "insert"
	case *pg_query.Node_UpdateStmt:
		return "update"
	case *pg_query.Node_DeleteStmt:
		return "delete"
	case *pg_query.Node_CopyStmt:
		return "copy"
	case *pg_query.Node_ExplainStmt:
		return "explain"
	case *pg_query.Node_DeclareCursorStmt:
		return "declare"
	case *pg_query.Node_PrepareStmt:
		return "prepare"
	case *pg_query.Node_ExecuteStmt:
		return "execute"
	case *pg_query.Node_DeallocateStmt:
		return KindDeallocate
	case *pg_query.Node_FetchStmt:
		if s.FetchStmt.Ismove {
			return KindMove
		}
		return KindFetch
	case *pg_query.Node_ClosePortalStmt:
		return KindClose
	case *pg_query.Node_ConstraintsSetStmt:
		return KindSetConstraints
	case *pg_query.Node_VariableShowStmt:
		return KindShow
	case *pg_query.Node_DiscardStmt:
		return "discard"
	case *pg_query.Node_TransactionStmt:
		return "transaction"
	case *pg_query.Node_VariableSetStmt:
		return "set"
	case *pg_query.Node_UnlistenStmt:
		return KindUnlisten
	}
	// CreateFunctionStmt is create_function.
	name := strings.TrimSuffix(statementName(n), "Stmt")
	var b strings.Builder
	for i, r := range name {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// statementName names a statement's node type for messages, e.g.
// "CreateStmt" becomes "CREATE".
func statementName(n *pg_query.Node) string {
	name := fmt.Sprintf("%T", n.Node)
	const prefix = "*pg_query.Node_"
	if len(name) > len(prefix) {
		name = name[len(prefix):]
	}
	return name
}

// hasInto reports whether a SELECT (or any arm of it) has an INTO clause.
func hasInto(s *pg_query.SelectStmt) bool {
	if s == nil {
		return false
	}
	return s.IntoClause != nil || hasInto(s.Larg) || hasInto(s.Rarg)
}

// walkQuery checks the query of DECLARE, PREPARE or EXPLAIN.
func (w *walker) walkQuery(q *pg_query.Node) error {
	if q == nil {
		return nil
	}
	switch s := q.Node.(type) {
	case *pg_query.Node_SelectStmt:
		if hasInto(s.SelectStmt) {
			return deny("select_into", "SELECT INTO creates a table")
		}
		return w.walkSelect(s.SelectStmt)
	case *pg_query.Node_InsertStmt:
		return w.write(KindInsert, s.InsertStmt.Relation, q)
	case *pg_query.Node_UpdateStmt:
		return w.write(KindUpdate, s.UpdateStmt.Relation, q)
	case *pg_query.Node_DeleteStmt:
		return w.write(KindDelete, s.DeleteStmt.Relation, q)
	}
	return deny("statement_kind", "%s statements are not allowed here", statementName(q))
}

// write checks INSERT, UPDATE, DELETE and COPY FROM; writeGoverned
// handles a governed target.
func (w *walker) write(k StatementKind, target *pg_query.RangeVar, n *pg_query.Node) error {
	rel, err := w.resolve(target)
	if err != nil {
		return err
	}
	if rel != nil && (rel.Schema == "pg_catalog" || rel.Schema == "information_schema" || rel.Schema == "pg_toast") {
		// NOTE: the server's own relations, whatever the policy
		// serves of them to read: upstream, only a misconfigured
		// service account (a superuser, which pgveil warns of) could
		// write them, and then change what every user may do.
		return deny("catalog", "writing %s is not allowed: pgveil refuses every write of the server's catalogs", rel.QName)
	}
	acc := w.access(rel)
	if rel != nil && acc.Mode != Denied {
		// The target's columns meet the values the statement writes,
		// in SET, VALUES and WHERE alike.
		if w.columnTypeCalls(rel); w.err != nil {
			return w.err
		}
	}
	switch {
	case acc.Mode == Denied:
		return deny(denyRule(rel), "%s", acc.Reason)
	case acc.ReadOnly != "":
		return deny("policy_input", "%s", acc.ReadOnly)
	case acc.Mode == Governed:
		return w.writeGoverned(k, n, rel, acc)
	}
	if ok, reason := w.pol.AllowStatement(k); !ok {
		return deny("statement_kind", "%s is not allowed: %s", k, reason)
	}
	// An open table's keys may reach governed ones: a foreign key's
	// check or cascade.
	var err2 error
	switch s := n.Node.(type) {
	case *pg_query.Node_InsertStmt:
		// NOTE: DEFAULT VALUES (no SELECT) writes every column's default.
		err2 = w.writeChecked(s.InsertStmt.Cols, rel, acc, "INSERT")
		if oc := s.InsertStmt.OnConflictClause; err2 == nil && oc != nil && len(oc.TargetList) > 0 {
			err2 = w.writeChecked(oc.TargetList, rel, acc, "ON CONFLICT DO UPDATE")
		}
	case *pg_query.Node_UpdateStmt:
		err2 = w.writeChecked(s.UpdateStmt.TargetList, rel, acc, "UPDATE")
	case *pg_query.Node_CopyStmt:
		err2 = w.writeChecked(s.CopyStmt.Attlist, rel, acc, "COPY")
	case *pg_query.Node_DeleteStmt:
		err2 = w.deleteChecked(rel)
	}
	if err2 != nil {
		return err2
	}
	w.skipTarget = target
	defer func() { w.skipTarget = nil }()
	return w.walk(n)
}

// nameRelations adds the relations every name under m resolves to to
// the names a refusal tells the audit trail (walker.named), without
// walking m: for a statement refused before its walk. A name that does
// not resolve is left out.
//
// NOTE: it knows no WITH query's name: a CTE named as a table is named
// as that table, more than the statement read, never fewer. Its depth
// is bounded by the tree's (maxTreeDepth), checked before any walk.
func (w *walker) nameRelations(m proto.Message) {
	if rv, ok := m.(*pg_query.RangeVar); ok {
		_, _ = w.resolve(rv)
		return
	}
	pgtree.Children(m, w.nameRelations)
}

// copyStmt allows COPY … TO STDOUT and COPY … FROM STDIN into open
// tables. A governed table copied out becomes COPY (SELECT …) TO STDOUT
// when the user may export.
func (w *walker) copyStmt(n *pg_query.Node, c *pg_query.CopyStmt) error {
	if c.IsProgram || c.Filename != "" {
		return deny("copy_file", "COPY to or from a file or a program is not allowed")
	}
	// NOTE: pg_query's deparser crashes the process on most COPY options
	// given without a value; only the boolean ones may omit it.
	for _, o := range c.Options {
		if d := o.GetDefElem(); d != nil && d.Arg == nil && d.Defname != "header" && d.Defname != "freeze" {
			return deny("copy_option", "the COPY option %s needs a value", d.Defname)
		}
	}
	if c.IsFrom {
		return w.write(KindInsert, c.Relation, n)
	}
	if ok, reason := w.pol.AllowStatement(KindCopyOut); !ok {
		// NOTE: the tables named, for the audit trail (Refused.Tables):
		// a search for a table finds the export refused.
		if c.Query != nil {
			w.nameRelations(c.Query)
		} else {
			_, _ = w.resolve(c.Relation)
		}
		return deny("statement_kind", "COPY TO (export) is not allowed: %s", reason)
	}
	w.copyingOut = true
	defer func() { w.copyingOut = false }()
	if c.Query != nil {
		return w.walkQuery(c.Query)
	}
	// COPY table [(cols)] TO STDOUT: the same as COPY (SELECT cols FROM
	// table) TO STDOUT, which is what a governed table needs.
	rel, err := w.resolve(c.Relation)
	if err != nil {
		return err
	}
	if acc := w.access(rel); acc.Mode == Open {
		return nil
	} else if acc.Mode == Denied {
		return deny(denyRule(rel), "%s", acc.Reason)
	}
	// NOTE: PostgreSQL's COPY table TO copies the rows of a plain table
	// alone, never those of the tables inheriting from it, and refuses
	// every other kind of relation. The SELECT reads the table ONLY, and
	// another kind is refused: a SELECT would read a partitioned table's
	// partitions, a view's or a foreign table's rows.
	if rel.Kind != 'r' {
		r := deny("copy_relation", "cannot copy from %s %q", relationKindName(rel.Kind), rel.Name)
		r.Code = sqlstate.WrongObjectType
		return r
	}
	targets := c.Attlist
	switch {
	case len(targets) == 0 && len(rel.Generated) > 0:
		// NOTE: PostgreSQL's COPY table TO copies every column but the
		// generated ones (CopyGetAttnums), which * would read.
		for _, col := range rel.Columns {
			if _, generated := rel.Generated[col.Name]; !generated {
				targets = append(targets, &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
					Fields: []*pg_query.Node{pg_query.MakeStrNode(col.Name)}}}})
			}
		}
		if len(targets) == 0 {
			return deny("copy_columns", "relation %q has no column but generated ones to copy", rel.Name)
		}
	case len(targets) == 0:
		targets = []*pg_query.Node{{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{
			Fields: []*pg_query.Node{{Node: &pg_query.Node_AStar{AStar: &pg_query.A_Star{}}}}}}}}
	default:
		cols := make([]*pg_query.Node, 0, len(targets))
		seen := map[string]bool{}
		for _, a := range targets {
			// NOTE: in the SELECT, a name that is not a column reads
			// otherwise: the table's name is its whole row, a
			// function's name a call on it. PostgreSQL's COPY takes
			// columns only.
			name := a.GetString_().GetSval()
			if !slices.ContainsFunc(rel.Columns, func(c Column) bool { return c.Name == name }) {
				return deny("copy_columns", "column %q of relation %q does not exist", name, rel.Name)
			}
			if seen[name] {
				r := deny("copy_columns", "column %q specified more than once", name)
				r.Code = CodeDuplicateColumn
				return r
			}
			if _, generated := rel.Generated[name]; generated {
				r := deny("copy_columns", "column %q is a generated column", name)
				r.Code = sqlstate.InvalidColumnReference
				return r
			}
			seen[name] = true
			cols = append(cols, &pg_query.Node{Node: &pg_query.Node_ColumnRef{ColumnRef: &pg_query.ColumnRef{Fields: []*pg_query.Node{a}}}})
		}
		targets = cols
	}
	tl := make([]*pg_query.Node, 0, len(targets))
	for _, t := range targets {
		tl = append(tl, &pg_query.Node{Node: &pg_query.Node_ResTarget{ResTarget: &pg_query.ResTarget{Val: t}}})
	}
	c.Relation.Inh = false
	sel := &pg_query.SelectStmt{
		Op:          pg_query.SetOperation_SETOP_NONE,
		TargetList:  tl,
		FromClause:  []*pg_query.Node{{Node: &pg_query.Node_RangeVar{RangeVar: c.Relation}}},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
	}
	c.Query = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	c.Relation, c.Attlist = nil, nil
	w.changed = true
	return w.walkSelect(sel)
}

// relationKindName names a pg_class.relkind as PostgreSQL's COPY error
// does.
func relationKindName(kind byte) string {
	switch kind {
	case 'p':
		return "partitioned table"
	case 'v':
		return "view"
	case 'm':
		return "materialized view"
	case 'f':
		return "foreign table"
	}
	return "relation"
}

// explain allows EXPLAIN of statements that touch no governed relation:
// a plan of governed data shows row estimates from statistics of rows the
// user may not see, and ANALYZE actual counts.
func (w *walker) explain(e *pg_query.ExplainStmt) error {
	before := len(w.tables)
	if err := w.walkQuery(e.Query); err != nil {
		return err
	}
	if len(w.tables) > before || w.governedSeen {
		return deny("explain_governed", "EXPLAIN of statements on governed tables is not allowed")
	}
	return nil
}

// set allows SET and RESET of settings that change neither parsing nor
// identity.
func (w *walker) set(s *pg_query.VariableSetStmt) error {
	switch s.Kind {
	case pg_query.VariableSetKind_VAR_RESET_ALL:
		// RESET ALL restores the startup values, which pgveil set.
		w.resets = append(w.resets, ResetAll)
		return nil
	case pg_query.VariableSetKind_VAR_SET_CURRENT:
		// SET name FROM CURRENT sets a value no text names: in a
		// transaction pool, two sessions sending the same text would
		// leave different values, and a backend's settings could no
		// longer be told apart by their texts. Outside CREATE
		// FUNCTION it sets a setting to its own value: no client needs
		// it.
		return deny("pinned_settings", "SET %s FROM CURRENT is not allowed through pgveil: SET a value", s.Name)
	case pg_query.VariableSetKind_VAR_RESET, pg_query.VariableSetKind_VAR_SET_DEFAULT:
		// Back to the startup value: nothing is left behind.
		if name := strings.ToLower(s.Name); !s.IsLocal {
			w.resets = append(w.resets, name)
		} else if readLater[name] {
			// SET LOCAL DateStyle TO DEFAULT changes what a later SET
			// in its transaction keeps, as a SET LOCAL of a value does.
			w.keep("a SET LOCAL of " + name + ", which a later SET in its transaction may read")
		}
		if pinnedSettings[strings.ToLower(s.Name)] {
			// pgveil set the pinned value at startup: RESET search_path
			// or SET search_path TO DEFAULT restores it.
			return nil
		}
	default:
		if name := strings.ToLower(s.Name); s.Kind == pg_query.VariableSetKind_VAR_SET_VALUE && pinnedSettings[name] {
			// The decision reads the value: a statement of this shape
			// with another value is another decision.
			w.readsConstant = true
			if setsPinnedValue(name, s.Args, w.cat.SearchPath) {
				return nil
			}
			return deny("pinned_settings", "pgveil pins the setting %q to %s; SET may only repeat that value", s.Name, pinnedValueText(name, w.cat.SearchPath))
		}
		if name := strings.ToLower(s.Name); !s.IsLocal && name != "transaction" {
			w.keep("SET " + name)
		} else if s.IsLocal && readLater[name] {
			w.keep("a SET LOCAL of " + name + ", which a later SET in its transaction may read")
		}
	}
	if isActSetting(s.Name) {
		return w.actSet(s)
	}
	if !allowedSettings[strings.ToLower(s.Name)] {
		return deny("pinned_settings", "the setting %q cannot be changed through pgveil", s.Name)
	}
	if isApplicationName(s.Name) {
		if err := w.tagSet(s); err != nil {
			return err
		}
	}
	if settingValues[strings.ToLower(s.Name)] != nil {
		w.readsConstant = true
	}
	if name := strings.ToLower(s.Name); settingValues[name] != nil && s.Kind == pg_query.VariableSetKind_VAR_SET_VALUE {
		v := ""
		if len(s.Args) == 1 {
			if c := s.Args[0].GetAConst(); c != nil && c.GetSval() != nil {
				v = c.GetSval().Sval
			}
		}
		if !settingValueAllowed(name, v) {
			return deny("pinned_settings", "the setting %q may only be set to %s through pgveil", s.Name, allowedValuesText(name))
		}
	}
	return w.walkList(s.Args)
}

// readLater are the settings whose value a SET of a setting, that
// outlives the transaction, may read: SET DateStyle = 'ISO' keeps the
// field order before it, SET TIME ZONE INTERVAL '…' reads its interval
// as IntervalStyle says. A SET LOCAL of one of them (to a value or TO
// DEFAULT), in the transaction of such a SET, changes what the SET
// leaves for the session, which its text alone no longer tells: a
// transaction pool, which replays a
// session's SETs and gives a backend whose SETs read the same to another
// session without them, keeps the backend instead (Keeps).
// NOTE: as proxy's partialSettings and readsSetting say. The Keeps
// entry does not begin with "SET ", which names a setting the pool may
// replay.
var readLater = map[string]bool{"datestyle": true, "intervalstyle": true}

// object notes a prepared statement or cursor a statement names.
func (w *walker) object(op, name string) {
	w.objects = append(w.objects, SessionObject{Op: op, Name: name})
}

// ResetAll is Result.Resets' name for RESET ALL.
const ResetAll = "all"

// cursorOptHold is PostgreSQL's CURSOR_OPT_HOLD, the bit of
// DeclareCursorStmt.Options for WITH HOLD (parsenodes.h).
const cursorOptHold = 0x0020

// declaredInputs checks the functions that reading a parameter of the
// types a Parse message declares calls: Bind reads the value of $n as a
// value of its declared type, running the CHECKs of the domains the
// type is made of (Catalog.InputCalls), as the cast $n::t would.
func (w *walker) declaredInputs() error {
	for i, oid := range w.declared {
		for _, c := range w.cat.InputCalls[oid] {
			w.implicitCall(fmt.Sprintf("the parameter $%d, of a declared type whose domain CHECKs call functions,", i+1), c.Function)
		}
	}
	return w.err
}
