package rewrite

import (
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// walker checks and rewrites one statement text.
//
// NOTE: every node of an allowed statement is visited: a RangeVar wrapped
// in a Node can only be a FROM item once the statement kind is allowed
// (DDL, where RangeVars mean other things, is refused before walking).
type walker struct {
	cat *Catalog
	pol Policy
	// readsConstant records a check that read a constant's value: a call
	// named set_config, or SET of a setting of settingValues (see
	// readsConstantValues).
	readsConstant bool
	// path is the effective search path (see effectivePath).
	path []string
	// funcAliases names the FROM items of the statement being walked
	// that are function calls (FROM f() g: g), whose whole row t in t.f
	// may be of any type; anyFuncAlias reports one whose name the walker
	// cannot tell.
	// NOTE: PostgreSQL reads t.f as f(t) where t is a scalar function's
	// row, of the function's scalar type: such a t.f may call any
	// function of one argument, not only one of a row.
	funcAliases  map[string]bool
	anyFuncAlias bool
	// funcItemCols maps a name of funcAliases to the columns that every
	// function item of that name declares (g(a), AS g(a text)): g.a
	// reads the column, never a function a, PostgreSQL looking for a
	// column first.
	// NOTE: only where anyFuncAlias is false; a table of that name in
	// another scope still has t.a checked against RowFunctions.
	funcItemCols map[string]map[string]bool
	// ctes is the stack of CTE names visible at the current query level,
	// innermost last.
	ctes []map[string]bool
	// selects is the stack of SELECTs being walked, innermost last, for
	// pushing safe predicates into the subqueries of their FROM items.
	selects []*pg_query.SelectStmt
	// root is the top-level SELECT of the statement being walked, nil
	// when that statement is not a SELECT (flatten.go).
	root *pg_query.SelectStmt
	// topWrite is the statement being walked when it is itself an UPDATE
	// or a DELETE (not one under EXPLAIN, PREPARE, DECLARE or WITH);
	// writes holds the governed write scopedRows found there, which
	// flatten may make find its rows directly (flatten.go).
	topWrite *pg_query.Node
	writes   []scopedWrite
	// skipTarget is the target relation of the write being walked: it is
	// checked by write, not substituted.
	skipTarget *pg_query.RangeVar
	// copyingOut reports whether the query being walked is a COPY … TO's:
	// its reads of governed tables need the copy_out statement kind,
	// which copyStmt checked, instead of select.
	copyingOut bool
	// access caches Policy.Relation per relation.
	accessCache map[*Relation]Access
	// changed reports whether the tree was modified other than by
	// substitute (scoped) and the shortening of column references it
	// asks for (unqualified): such a statement is deparsed, never
	// spliced.
	changed bool
	// scoped are the FROM items substitute replaced, in walk order.
	scoped []scopedRef
	// unqualified are the column references unqualifyColumnRefs
	// shortened from schema.rel.x to rel.x, with the schema they lost.
	unqualified []unqualifiedRef
	// version is the parse tree's version, which a deparse of a part of
	// it must name.
	version int32
	// governedSeen reports whether a governed relation was referenced.
	governedSeen bool
	// locking reports whether a FOR UPDATE/SHARE clause was seen.
	locking bool
	tables  map[string]bool
	rules   map[string]bool
	masked  map[string]bool
	// named holds every relation of the catalog a name resolved to, as
	// schema.name: what a refusal tells the audit trail the statement
	// named (Refused.Tables).
	named map[string]bool
	// visible holds the unmasked columns of the governed relations
	// referenced, as schema.table.column; refs the last field of every
	// column reference of the statement; relNames the names and aliases
	// the governed relations are referenced by; star whether a * was
	// seen. Together they say which visible columns the statement could
	// read (Result.Columns), for the audit trail.
	//
	// NOTE: star is also set where columns are read without their names:
	// a column alias list on a governed relation (responses AS t(a, b,
	// x): x is contact) or on a join, and a NATURAL join (its condition
	// compares the columns both sides have). USING names its columns:
	// they go to refs.
	visible  map[string]bool
	refs     map[string]bool
	relNames map[string]bool
	star     bool
	// objects are Result.Objects.
	objects []SessionObject
	// act is Result.Act.
	act *Act
	// endsTx is Result.TransactionEnd.
	endsTx string
	// savepoints are Result.Savepoints.
	savepoints []Savepoint
	// keeps and resets are Result.Keeps and Result.Resets.
	keeps, resets []string
	// declared are the parameter types a Parse message declared
	// (DeclaredTypes), by OID; prepared those of the SQL PREPARE being
	// walked, by name. pushDown reads them (declaredParam).
	declared []uint32
	prepared []*pg_query.Node
	// stmt is the statement being walked, and params counts the
	// references to each parameter in it, counted at the first need
	// (paramUses).
	stmt   *pg_query.Node
	params map[int32]int
	err    error
}

// paramUses returns how many times the statement being walked references
// the parameter $n. Counted once substitution may have begun, copies
// pushed into scope subqueries may count too: the count is never low.
func (w *walker) paramUses(n int32) int {
	if w.params == nil {
		w.params = map[int32]int{}
		var count func(m proto.Message)
		count = func(m proto.Message) {
			if pr, ok := m.(*pg_query.ParamRef); ok {
				w.params[pr.Number]++
			}
			pgtree.Children(m, count)
		}
		if w.stmt != nil {
			count(w.stmt)
		}
	}
	return w.params[n]
}

// keep notes session state the statement leaves on its backend.
func (w *walker) keep(what string) {
	for _, k := range w.keeps {
		if k == what {
			return
		}
	}
	w.keeps = append(w.keeps, what)
}

func newWalker(cat *Catalog, p Policy) *walker {
	w := &walker{
		cat: cat, pol: p, path: effectivePath(cat.SearchPath),
		accessCache: map[*Relation]Access{},
		tables:      map[string]bool{}, rules: map[string]bool{}, masked: map[string]bool{},
		named:   map[string]bool{},
		visible: map[string]bool{}, refs: map[string]bool{}, relNames: map[string]bool{},
	}
	if d, ok := p.(*declaredPolicy); ok {
		// The walker checks against the user's own policy, whose
		// optional interfaces (sessionTagger) the wrapper hides; the
		// wrapper only keys the caches.
		w.pol, w.declared = d.Policy, d.types
	}
	return w
}

// walk visits n and everything below it.
func (w *walker) walk(n *pg_query.Node) error {
	if n == nil {
		return nil
	}
	w.visitNode(n)
	return w.err
}

func (w *walker) walkList(ns []*pg_query.Node) error {
	for _, n := range ns {
		if err := w.walk(n); err != nil {
			return err
		}
	}
	return nil
}

// visitNode handles the node kinds the firewall cares about and walks
// the fields of every other node.
func (w *walker) visitNode(n *pg_query.Node) {
	if w.err != nil || n == nil {
		return
	}
	switch v := n.Node.(type) {
	case *pg_query.Node_RangeVar:
		w.relationRef(n, v.RangeVar)
		return
	case *pg_query.Node_SelectStmt:
		w.err = w.walkSelect(v.SelectStmt)
		return
	case *pg_query.Node_InsertStmt:
		w.withScope(v.InsertStmt.WithClause, func() { w.visitChildren(v.InsertStmt, v.InsertStmt.WithClause) })
		return
	case *pg_query.Node_UpdateStmt:
		w.withScope(v.UpdateStmt.WithClause, func() { w.visitChildren(v.UpdateStmt, v.UpdateStmt.WithClause) })
		return
	case *pg_query.Node_DeleteStmt:
		w.withScope(v.DeleteStmt.WithClause, func() { w.visitChildren(v.DeleteStmt, v.DeleteStmt.WithClause) })
		return
	case *pg_query.Node_FuncCall:
		if w.maskSize(n, v.FuncCall) {
			return
		}
		w.function(v.FuncCall)
	case *pg_query.Node_AExpr:
		w.exprOperator(v.AExpr)
	case *pg_query.Node_SubLink:
		if v.SubLink.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && len(v.SubLink.OperName) == 0 {
			// x IN (SELECT …) has no operator name: it compares with
			// =, which the search path may resolve to a DBA's.
			w.operatorCalls("=", w.path)
			break
		}
		w.operator(v.SubLink.OperName)
	case *pg_query.Node_SortBy:
		w.operator(v.SortBy.UseOp)
	case *pg_query.Node_CaseExpr:
		if v.CaseExpr.Arg != nil {
			// CASE x WHEN v compares with =.
			w.operatorCalls("=", w.path)
		}
	case *pg_query.Node_JoinExpr:
		if len(v.JoinExpr.UsingClause) > 0 || v.JoinExpr.IsNatural {
			// USING and NATURAL joins compare with =.
			w.operatorCalls("=", w.path)
		}
		for _, u := range v.JoinExpr.UsingClause {
			w.refs[u.GetString_().GetSval()] = true
		}
		if v.JoinExpr.IsNatural || len(v.JoinExpr.GetAlias().GetColnames()) > 0 {
			w.star = true
		}
	case *pg_query.Node_ColumnRef:
		w.columnRef(v.ColumnRef)
		if f := v.ColumnRef.Fields; len(f) >= 2 {
			callable := w.cat.RowFunctions
			q, name := f[0].GetString_().GetSval(), f[len(f)-1].GetString_().GetSval()
			if len(f) == 2 && (w.anyFuncAlias || w.funcAliases[q] && !w.funcItemCols[q][name]) {
				callable = w.cat.FieldFunctions
			}
			w.attributeCall(f[len(f)-1], callable)
		}
	case *pg_query.Node_ParamRef:
		// $0 does not exist, and pg_query deparses it as "?".
		if v.ParamRef.Number < 1 {
			w.err = denySyntax("there is no parameter $%d", v.ParamRef.Number)
			return
		}
	case *pg_query.Node_AIndirection:
		// A field or subscript of a bare constant, (0).a: pg_query
		// deparses it without its parentheses, a different statement.
		if v.AIndirection.Arg.GetAConst() != nil {
			w.err = denySyntax("a field or subscript of a constant is not supported")
			return
		}
		for _, ind := range v.AIndirection.Indirection {
			w.attributeCall(ind, w.cat.FieldFunctions)
		}
	case *pg_query.Node_RangeTableSample:
		if rv, ok := v.RangeTableSample.Relation.GetNode().(*pg_query.Node_RangeVar); ok {
			if rel, err := w.resolve(rv.RangeVar); err == nil && rel != nil && w.access(rel).Mode == Governed {
				w.err = deny("tablesample", "TABLESAMPLE on the governed table %s is not allowed", rel.QName)
				return
			}
		}
	case *pg_query.Node_IntoClause:
		w.err = deny("select_into", "SELECT INTO creates a table")
		return
	case *pg_query.Node_LockingClause:
		// FOR UPDATE/SHARE [OF name, …]: the names are FROM items of the
		// query, not relations to resolve. Locking governed rows is a
		// write; checkLocking refuses it once the FROM list is known.
		w.locking = true
		return
	}
	w.visitChildren(n, nil)
}

// visitChildren walks every message directly below m but skip (a WITH
// clause its caller has walked in scope).
func (w *walker) visitChildren(m proto.Message, skip proto.Message) {
	pgtree.Children(m, func(c proto.Message) {
		if w.err == nil && c != skip {
			w.visitMessage(c)
		}
	})
}

// visitMessage dispatches a message: Nodes through visitNode, SelectStmts
// reached directly (set-operation arms) through walkSelect, typed
// RangeVar fields (write targets) through the statement's checks.
func (w *walker) visitMessage(m proto.Message) {
	switch v := m.(type) {
	case *pg_query.Node:
		w.visitNode(v)
	case *pg_query.SelectStmt:
		if err := w.walkSelect(v); err != nil && w.err == nil {
			w.err = err
		}
	case *pg_query.TypeName:
		// x::t, and every other place PostgreSQL converts a value to a
		// type the statement names: an XMLTABLE column, a column
		// definition list (json_to_record(…) AS x(e t)), XMLSERIALIZE's
		// type, a PREPARE's parameter types. Each runs the CHECKs of
		// the domains t is made of.
		w.castCalls(v)
		w.visitChildren(v, nil)
	case *pg_query.RangeVar:
		if v == w.skipTarget {
			return
		}
		// A typed RangeVar outside a write target: refuse rather than
		// guess what it names.
		w.err = deny("statement_kind", "unexpected relation reference %s", v.Relname)
	default:
		w.visitChildren(m, nil)
	}
}

// walkSelect walks a SELECT with its WITH clause in scope.
func (w *walker) walkSelect(s *pg_query.SelectStmt) error {
	if s == nil {
		return w.err
	}
	if s.IntoClause != nil {
		return deny("select_into", "SELECT INTO creates a table")
	}
	w.selects = append(w.selects, s)
	w.withScope(s.WithClause, func() { w.visitChildren(s, s.WithClause) })
	w.selects = w.selects[:len(w.selects)-1]
	return w.err
}

// withScope walks the CTEs of wc, then runs body with their names
// visible. In WITH RECURSIVE every CTE sees all of them; otherwise each
// sees only those before it, as in PostgreSQL.
func (w *walker) withScope(wc *pg_query.WithClause, body func()) {
	if wc == nil {
		body()
		return
	}
	frame := map[string]bool{}
	w.ctes = append(w.ctes, frame)
	defer func() { w.ctes = w.ctes[:len(w.ctes)-1] }()
	names := make([]string, 0, len(wc.Ctes))
	for _, c := range wc.Ctes {
		if cte := c.GetCommonTableExpr(); cte != nil {
			names = append(names, cte.Ctename)
		}
	}
	if wc.Recursive {
		for _, n := range names {
			frame[n] = true
		}
	}
	for i, c := range wc.Ctes {
		if w.err != nil {
			return
		}
		if cte := c.GetCommonTableExpr(); cte != nil {
			if kind := modifyingKind(cte.Ctequery); kind != "" {
				// PostgreSQL runs a write in WITH whether or not the
				// statement reads its output; pgveil scopes writes only
				// as statements of their own.
				// NOTE: the table it writes is named (Refused.Tables),
				// so that the audit trail's search for the table finds
				// the write refused; a name that does not resolve is
				// left out, the refusal stays this one.
				_, _ = w.resolve(modifiedRelation(cte.Ctequery))
				r := deny("statement_kind", "%s in WITH (%s) is not supported: run it as a statement of its own", kind, cte.Ctename)
				// NOTE: the write's kind, not its statement's (select):
				// the audit trail's --kind delete finds the write refused.
				// No data-modifying WITH is ever allowed, so no allowed
				// statement's kind says otherwise. A statement of another
				// kind (an INSERT, an EXPLAIN, a PREPARE…) keeps its own
				// first: --kind insert finds the INSERT refused too.
				r.Kind = strings.ToLower(kind)
				if w.stmt != nil {
					if own := kindOf(w.stmt); own != "" && own != "select" && own != r.Kind {
						r.Kind = own + "," + r.Kind
					}
				}
				w.err = r
				return
			}
			w.visitChildren(cte, nil)
			frame[names[i]] = true
		}
	}
	if w.err == nil {
		body()
	}
}

// modifiedRelation returns the table a data-modifying WITH query writes
// (see modifyingKind), nil for a query that only reads.
func modifiedRelation(n *pg_query.Node) *pg_query.RangeVar {
	switch s := n.GetNode().(type) {
	case *pg_query.Node_InsertStmt:
		return s.InsertStmt.GetRelation()
	case *pg_query.Node_UpdateStmt:
		return s.UpdateStmt.GetRelation()
	case *pg_query.Node_DeleteStmt:
		return s.DeleteStmt.GetRelation()
	case *pg_query.Node_MergeStmt:
		return s.MergeStmt.GetRelation()
	}
	return nil
}

// modifyingKind names the write a WITH query is (INSERT, UPDATE, DELETE,
// MERGE), or returns "" for a query that only reads.
func modifyingKind(n *pg_query.Node) string {
	switch n.GetNode().(type) {
	case *pg_query.Node_InsertStmt:
		return "INSERT"
	case *pg_query.Node_UpdateStmt:
		return "UPDATE"
	case *pg_query.Node_DeleteStmt:
		return "DELETE"
	case *pg_query.Node_MergeStmt:
		return "MERGE"
	}
	return ""
}

// isCTE reports whether an unqualified name refers to a visible CTE.
func (w *walker) isCTE(name string) bool {
	for i := len(w.ctes) - 1; i >= 0; i-- {
		if w.ctes[i][name] {
			return true
		}
	}
	return false
}

// resolve finds the catalog relation rv names, using the pinned
// search_path for unqualified names. It returns nil for a CTE reference.
func (w *walker) resolve(rv *pg_query.RangeVar) (*Relation, error) {
	rel, err := w.resolveName(rv)
	if rel != nil {
		w.named[rel.QName.String()] = true
	}
	return rel, err
}

func (w *walker) resolveName(rv *pg_query.RangeVar) (*Relation, error) {
	if rv == nil {
		return nil, nil
	}
	if rv.Catalogname != "" {
		if rv.Catalogname != w.cat.Database || w.cat.Database == "" {
			return nil, deny("cross_database", "references to other databases are not allowed")
		}
		// The current database, as PostgreSQL allows: the name is read
		// as schema.rel, and a deparse drops the database.
		rv.Catalogname = ""
		w.changed = true
	}
	if rv.Schemaname != "" {
		if rel := w.cat.Relations[QName{rv.Schemaname, rv.Relname}]; rel != nil {
			return rel, nil
		}
		if rv.Schemaname == "pg_temp" || strings.HasPrefix(rv.Schemaname, "pg_temp_") {
			return nil, deny("temp_objects", "temporary relations are not allowed")
		}
		if w.cat.Sequences[QName{rv.Schemaname, rv.Relname}] {
			return nil, denySequence(rv.Schemaname + "." + rv.Relname)
		}
		return nil, &UnknownRelationError{Name: rv.Schemaname + "." + rv.Relname}
	}
	if w.isCTE(rv.Relname) {
		return nil, nil
	}
	for _, schema := range w.path {
		if rel := w.cat.Relations[QName{schema, rv.Relname}]; rel != nil {
			return rel, nil
		}
		if w.cat.Sequences[QName{schema, rv.Relname}] {
			return nil, denySequence(rv.Relname)
		}
	}
	return nil, &UnknownRelationError{Name: rv.Relname}
}

// denySequence refuses a FROM item naming the sequence name.
func denySequence(name string) error {
	return deny("sequences", "reading the sequence %s is not allowed: its counter tells how many rows the table it numbers has had", name)
}

// effectivePath is the search path PostgreSQL uses: pg_catalog first
// unless the pinned path places it.
func effectivePath(path []string) []string {
	for _, s := range path {
		if s == "pg_catalog" {
			return path
		}
	}
	return append([]string{"pg_catalog"}, path...)
}

// access returns how rel is governed for the user, with the firewall's
// own rules for catalog relations first.
func (w *walker) access(rel *Relation) Access {
	if a, ok := w.accessCache[rel]; ok {
		return a
	}
	var a Access
	if rel.Schema == InternalSchema {
		a = Access{Mode: Denied, Reason: "the schema " + InternalSchema + " holds pgveil's own keys and functions"}
	} else if statementTextName(rel.Name) {
		a = Access{Mode: Denied, Reason: rel.QName.String() + " is not allowed: it shows the statements of sessions, which hold the rewritten SQL"}
	} else if rel.Schema == "pg_catalog" || rel.Schema == "information_schema" {
		if m, ok := maskedCatalogAccess(rel); ok {
			a = m
		} else if rel.Schema == "pg_catalog" && catalogRelationRule(rel.Name) != "" {
			a = Access{Mode: Denied, Reason: catalogRelationReason(rel.Name)}
		} else if rel.Schema == "information_schema" && informationSchemaRefused[rel.Name] != "" {
			a = Access{Mode: Denied, Reason: informationSchemaReason(rel.Name)}
		} else {
			a = w.policyRelation(rel)
			if a.Mode == Denied && a.Reason == "" {
				a.Reason = "access to " + rel.QName.String() + " is denied"
			}
		}
	} else {
		a = w.policyRelation(rel)
	}
	w.accessCache[rel] = a
	return a
}

// policyRelation asks the policy how rel is governed, with the walker's
// snapshot when the policy reads other relations of it (CatalogPolicy).
func (w *walker) policyRelation(rel *Relation) Access {
	return AccessIn(w.pol, w.cat, rel)
}

// AccessIn returns how rel, a relation of the snapshot cat, is governed
// by p: RelationIn when p is a CatalogPolicy, Relation otherwise. Tools
// showing a user's access (pgveil explain) ask it as the rewriter does.
func AccessIn(p Policy, cat *Catalog, rel *Relation) Access {
	if cp, ok := p.(CatalogPolicy); ok {
		return cp.RelationIn(cat, rel)
	}
	return p.Relation(rel)
}

// relationRef checks a FROM item and substitutes it when governed.
func (w *walker) relationRef(n *pg_query.Node, rv *pg_query.RangeVar) {
	rel, err := w.resolve(rv)
	if err != nil {
		w.err = err
		return
	}
	if rel == nil {
		return // a CTE
	}
	acc := w.access(rel)
	switch acc.Mode {
	case Denied:
		w.err = deny(denyRule(rel), "%s", acc.Reason)
		return
	case Governed:
		if !w.mayRead(rel) {
			return
		}
		w.substitute(n, rv, rel, acc)
	}
	w.columnTypeCalls(rel)
}

// mayRead checks that the user may read the governed relation rel: one
// of their roles lists select (copy_out in a COPY … TO, which copyStmt
// checked). A role listing only writes (an ingestion service given a
// rule of every row so that it may INSERT) reads no governed table.
// NOTE: the catalog relations pgveil serves through its own subqueries
// (pg_class, pg_attribute…) are the clients' introspection, not the
// policy's tables: every login reads them.
func (w *walker) mayRead(rel *Relation) bool {
	if w.copyingOut || rel.Schema == "pg_catalog" || rel.Schema == "information_schema" {
		return true
	}
	if ok, reason := w.pol.AllowStatement(KindSelect); !ok {
		w.err = deny("statement_kind", "reading %s is not allowed: %s", rel.QName, reason)
		return false
	}
	return true
}

// columnTypeCalls checks the functions the domain CHECKs of rel's
// column types call (Catalog.CheckCalls). PostgreSQL gives a value the
// user writes the type of a column it meets, with no type name in the
// statement: array_position(ARRAY[c], 'x') reads 'x' as a value of c's
// domain, a @> '{x}' and a UNION with a read ARRAY['x'] as a's array of
// it, and a parameter of undeclared type is inferred so (Bind reads it
// as the domain). Each runs the CHECKs, and the functions they call as
// the service account: reading the relation counts them, as the cast
// x::t to a column's type t would (castCalls).
// NOTE: the walker does not resolve columns, so every column of rel
// counts, read by the statement or not, masked (read as its base type)
// or not: a refusal more, never one less. A DBA lets the role call the
// CHECK's function (role.functions) to read the relation.
func (w *walker) columnTypeCalls(rel *Relation) {
	for _, col := range rel.Columns {
		if w.err != nil {
			return
		}
		for _, c := range w.cat.ColumnCheckCalls(col) {
			if c.Via != "" {
				w.implicitCall(fmt.Sprintf("the column %s of %s, of the type %s, through %s (ORDER BY, GROUP BY, DISTINCT, UNION, a join or a window on it runs it; list the function in the role's functions to read it),", col.Name, rel.QName, col.Type, c.Via), c.Function)
				continue
			}
			w.implicitCall(fmt.Sprintf("the column %s of %s, of the type %s whose domain CHECKs call functions (a value the statement writes may become its type; list the function in the role's functions to read it),", col.Name, rel.QName, col.Type), c.Function)
		}
	}
}

// ColumnCheckCalls returns the functions the domain CHECKs of col's
// type call (CheckCalls, by the type's name): a statement reading or
// writing col's relation counts them (walker.columnTypeCalls).
func (c *Catalog) ColumnCheckCalls(col Column) []ImplicitCall {
	if col.TypeName == nil || len(col.TypeName.Names) == 0 {
		return nil
	}
	return c.CheckCalls[col.TypeName.Names[len(col.TypeName.Names)-1].GetString_().GetSval()]
}

// denyRule names the firewall rule behind a denied relation.
func denyRule(rel *Relation) string {
	if rel.Refused != "" {
		return "policy_mismatch"
	}
	if statementTextName(rel.Name) {
		return "statement_text"
	}
	if rel.Schema == "pg_catalog" {
		if r := catalogRelationRule(rel.Name); r != "" {
			return r
		}
		return "catalog"
	}
	if rel.Schema == "information_schema" {
		if r := informationSchemaRefused[rel.Name]; r != "" {
			return r
		}
		return "catalog"
	}
	return "ungoverned_table"
}

// function checks a function call: pg_catalog functions as
// catalogFunctions classifies them; others only when the policy allows
// them, and never those of statementTextPrefixes.
func (w *walker) function(fc *pg_query.FuncCall) {
	schema, name := "", ""
	switch len(fc.Funcname) {
	case 1:
		name = fc.Funcname[0].GetString_().GetSval()
	case 2:
		schema, name = fc.Funcname[0].GetString_().GetSval(), fc.Funcname[1].GetString_().GetSval()
	default:
		w.err = deny("function", "function names with a database are not allowed")
		return
	}
	// Its result meets the statement's values as a column does
	// (columnTypeCalls): array_position(f(), 'x') reads 'x' through
	// the CHECKs of the domains its type is made of.
	for _, c := range w.cat.ResultCalls[name] {
		if c.Via != "" {
			w.implicitCall(fmt.Sprintf("the function %s, whose result is of a type, through %s (sorting, grouping, comparing or, for a range, building its values runs it),", name, c.Via), c.Function)
			continue
		}
		w.implicitCall(fmt.Sprintf("the function %s, whose result is of a type whose domain CHECKs call functions (a value the statement writes may become its type),", name), c.Function)
	}
	if w.err != nil {
		return
	}
	if name == "set_config" {
		w.readsConstant = true
	}
	if name == "setseed" && (schema == "" || schema == "pg_catalog") {
		// The seed outlives the statement: the next random() on the
		// backend follows from it.
		w.keep("setseed")
	}
	if schema == InternalSchema {
		// Its functions hash with the masks' secret keys: calling one
		// would confirm a guess of a masked value.
		w.err = deny("internal", "the functions of the schema %s are pgveil's own", InternalSchema)
		return
	}
	if statementTextName(name) {
		w.err = deny("statement_text", "the function %s is not allowed: it shows the statements of sessions, which hold the rewritten SQL", name)
		return
	}
	if schema == "" {
		// PostgreSQL picks among the functions of that name in every
		// schema of the path, by argument types: a function in another
		// schema may win over pg_catalog's for some arguments. Each such
		// schema must be allowed, not only the first.
		schemas := w.functionSchemas(name)
		if len(schemas) == 0 {
			w.err = deny("function", "the function %s is not allowed by the policy", name)
			return
		}
		for _, s := range schemas {
			if s == "pg_catalog" {
				if !w.catalogFunction(name, fc) {
					return
				}
			} else if s == InternalSchema {
				w.err = deny("internal", "the functions of the schema %s are pgveil's own", InternalSchema)
				return
			} else if !w.pol.AllowFunction(s, name) {
				w.err = deny("function", "the function %s is not allowed by the policy (%s.%s may be called)", name, s, name)
				return
			} else {
				w.keep("the function " + s + "." + name)
			}
		}
		return
	}
	if schema == "pg_catalog" {
		w.catalogFunction(name, fc)
		return
	}
	if schema == "" || !w.pol.AllowFunction(schema, name) {
		qualified := name
		if schema != "" {
			qualified = schema + "." + name
		}
		w.err = deny("function", "the function %s is not allowed by the policy", qualified)
		return
	}
	// Its body is not pgveil's to read: it may change settings or
	// create objects that outlive the statement.
	w.keep("the function " + schema + "." + name)
}

// attributeCall checks the field name of a qualified column reference
// (t.name, s.t.name) or of a field selection ((expr).name) as the call
// of the function name it may be: PostgreSQL reads t.f as f(t) when t
// has no column f and a function f takes t's row (attribute notation,
// "computed columns"). Where a function of that name is visible, the
// reference must pass the checks a call f(t) would, so that no function
// the policy refuses runs that way.
//
// NOTE: the walker does not resolve columns, so a real column that
// shares its name with such a function the user may not call is refused
// too; outside pg_catalog only the functions of callable count:
// Catalog.RowFunctions for t.f, where t is a table's row, and
// Catalog.FieldFunctions for (x).f, where x may be of any type.
func (w *walker) attributeCall(field *pg_query.Node, callable map[string]map[string]bool) {
	name := field.GetString_().GetSval()
	if name == "" || w.err != nil {
		return
	}
	fc := &pg_query.FuncCall{Funcname: []*pg_query.Node{field}}
	switch {
	case statementTextName(name):
		w.function(fc)
	default:
		// pg_catalog's functions as catalogFunctions classifies them;
		// the others only where one may take what precedes the name:
		// t.geometry is no call of PostGIS's geometry(text), but
		// (x).geometry may be, x being of any type.
		for _, s := range w.path {
			switch {
			case w.err != nil:
			case s == "pg_catalog":
				if w.cat.Functions[s][name] {
					w.catalogFunction(name, fc)
				}
			case callable[s][name]:
				w.function(&pg_query.FuncCall{Funcname: []*pg_query.Node{pg_query.MakeStrNode(s), field}})
			}
		}
		// x.d and (x).d, d a type's name, cast x to d where no function
		// need run for it (a domain over x's type, or over a type x
		// converts to by its text): a domain's CHECK runs, and it may
		// call functions. Every cast to such a name counts, as for
		// x::d (castCalls).
		if w.err == nil {
			for _, c := range w.cat.CastCalls[name] {
				w.implicitCall("the reference x."+name+", a cast to "+name+",", c.Function)
			}
			if r, ok := w.err.(*Refused); ok && r.Detail == "" {
				r.Detail = fmt.Sprintf("The reference x.%s or (x).%s casts x to the type %s when x has no column %s (PostgreSQL's attribute notation). "+
					"A column named %s may be written unqualified, which is never a cast.", name, name, name, name, name)
			}
		}
	}
	if r, ok := w.err.(*Refused); ok && r.Detail == "" {
		r.Detail = fmt.Sprintf("The reference x.%s or (x).%s may call %s(x) when x has no column %s (PostgreSQL's attribute notation).", name, name, name, name)
	}
}

// catalogFunction checks the call fc of the pg_catalog function name
// against catalogFunctions; it reports whether the call is allowed. A
// function the classification does not name is refused. The functions
// answered NULL reach here only when maskSize left them, because another
// schema of the path has a function of that name: they are refused.
func (w *walker) catalogFunction(name string, fc *pg_query.FuncCall) bool {
	if name == "set_config" {
		if why := setConfigProblem(fc); why != "" {
			w.err = deny("pinned_settings", "%s", why)
			return false
		}
		w.tagSetConfig(fc)
		w.keep("set_config")
		return true
	}
	c, ok := catalogFunctions[name]
	switch {
	case !ok:
		w.err = deny(ruleUnclassifiedFunction, "the function pg_catalog.%s is not classified by this version of pgveil, so it is not allowed", name)
		return false
	case c.class != classAllow:
		w.err = deny(c.rule, "the function %s is not allowed", name)
		return false
	}
	if populateFunctions[name] || typedInputFunctions[name] {
		w.populateCalls(name, fc)
		return w.err == nil
	}
	return true
}

// typedInputFunctions are the functions of pg_catalog that read the
// text the user writes as a value of a type an argument gives by its OID
// or name (domain_in('x', 'd'::regtype, -1), record_in, and
// pg_input_is_valid('x', 'd') of PostgreSQL 16 on): the CHECKs of the
// domains the type is made of run, and no type name of the statement
// shows it ('d'::regtype is a cast to regtype). Every function a domain
// CHECK calls counts (Catalog.InputCalls).
// NOTE: the functions that take a type's OID besides a value of type
// internal (domain_recv, record_recv) cannot be called from SQL.
var typedInputFunctions = map[string]bool{
	"array_in": true, "domain_in": true, "multirange_in": true, "range_in": true, "record_in": true,
	"pg_input_error_info": true, "pg_input_is_valid": true,
}

// populateFunctions are the functions of pg_catalog that read a value of
// the row type of their first argument from JSON the user writes: each
// field's value is read as a value of its type, running the CHECKs of
// the domains it is made of.
var populateFunctions = map[string]bool{
	"json_populate_record": true, "json_populate_recordset": true,
	"jsonb_populate_record": true, "jsonb_populate_recordset": true,
}

// populateCalls checks the domain CHECKs a call fc of a populate function
// or of a typed input function runs. When a populate function's first
// argument is a cast (NULL::t), t names the type, whose casts' functions
// castCalls checks; any other argument (a row r of FROM, a composite
// column), and the type argument of an input function, gives a type the
// walker does not know: every function a domain's CHECK calls counts
// (Catalog.InputCalls).
func (w *walker) populateCalls(name string, fc *pg_query.FuncCall) {
	what := name + " of a row of a type the statement does not name (write its first argument NULL::type)"
	switch {
	case typedInputFunctions[name]:
		what = name + ", reading a value of a type given by its OID or name,"
	case len(fc.Args) > 0 && fc.Args[0].GetTypeCast() != nil:
		return
	}
	oids := make([]uint32, 0, len(w.cat.InputCalls))
	for oid := range w.cat.InputCalls {
		oids = append(oids, oid)
	}
	slices.Sort(oids)
	for _, oid := range oids {
		for _, c := range w.cat.InputCalls[oid] {
			w.implicitCall(what, c.Function)
		}
	}
}

// setConfigProblem says why a call of set_config(name, value, is_local)
// is refused, or "" when it may run: it changes exactly what SET name
// may, so its first argument must be a string literal naming a setting
// of allowedSettings. Any other expression (a column, a parameter,
// current_setting(…), a cast) could name search_path or role, and is
// refused. The value and is_local may be any expression: the walker
// checks them as everywhere else.
func setConfigProblem(fc *pg_query.FuncCall) string {
	const refused = "set_config may only change a setting SET may change, named by a string literal"
	if len(fc.Args) != 3 || fc.FuncVariadic || fc.AggStar || fc.AggDistinct || len(fc.AggOrder) > 0 ||
		fc.AggFilter != nil || fc.Over != nil || fc.AggWithinGroup {
		return refused
	}
	c := fc.Args[0].GetAConst()
	if c == nil || c.Isnull || c.GetSval() == nil {
		return refused
	}
	setting := strings.ToLower(c.GetSval().Sval)
	if isActSetting(setting) {
		return "set_config cannot change the acting user: send SET " + ActSetting + " = 'login' (or SET ROLE login) as a statement of its own"
	}
	if !allowedSettings[setting] || setting == "transaction" || setting == "session characteristics" {
		return "set_config may not change the setting \"" + c.GetSval().Sval + "\": " + refused
	}
	if settingValues[setting] != nil {
		v := fc.Args[1].GetAConst()
		if v == nil || v.Isnull || v.GetSval() == nil || !settingValueAllowed(setting, v.GetSval().Sval) {
			return "set_config may not set \"" + c.GetSval().Sval + "\" to that value: pgveil allows only " + allowedValuesText(setting)
		}
	}
	return ""
}

// functionSchemas lists the schemas of the search path that hold a
// function named name.
func (w *walker) functionSchemas(name string) []string {
	var out []string
	for _, s := range w.path {
		if w.cat.Functions[s][name] {
			out = append(out, s)
		}
	}
	return out
}

// operator refuses operators qualified with a schema other than
// pg_catalog: they name user-defined functions. An unqualified operator
// may find one on the search path: the functions operators of that name
// call there must pass the function policy (operatorCalls).
func (w *walker) operator(name []*pg_query.Node) {
	if len(name) > 2 || len(name) == 2 && name[0].GetString_().GetSval() != "pg_catalog" {
		// NOTE: the operator is named, and the way out said: an
		// extension's operator (ltree's <@, pg_trgm's %) passes unqualified
		// with its schema on upstream.search_path, checked by operatorCalls.
		w.err = deny("function", "operators qualified with a schema other than pg_catalog are not allowed (OPERATOR(%s)): "+
			"write the operator without its schema, which must be on the search path", qualifiedOperatorName(name))
		return
	}
	if len(name) == 1 {
		w.operatorCalls(name[0].GetString_().GetSval(), w.path)
		return
	}
	if len(name) == 2 {
		// A pg_catalog operator's commutator or negator may be a DBA's
		// (CREATE OPERATOR … NEGATOR = OPERATOR(pg_catalog.^@) fills in
		// ^@'s): OPERATOR(pg_catalog.^@) runs it too.
		w.operatorCalls(name[1].GetString_().GetSval(), []string{"pg_catalog"})
	}
}

// exprOperator checks the operators an A_Expr runs: BETWEEN's name is
// the keyword, and it compares with >= and <=; the others run the
// operator they name (IN, DISTINCT and NULLIF =, LIKE ~~, …).
func (w *walker) exprOperator(e *pg_query.A_Expr) {
	switch e.Kind {
	case pg_query.A_Expr_Kind_AEXPR_BETWEEN, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN,
		pg_query.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg_query.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		w.operatorCalls(">=", w.path)
		w.operatorCalls("<=", w.path)
		return
	}
	w.operator(e.Name)
}

// operatorCalls checks, for an unqualified operator op, the functions
// that operators of that name outside pg_catalog call, where the search
// path finds them: PostgreSQL picks among every operator of that name on
// the path by argument types, which pgveil does not know. path is the
// search path for an unqualified operator, pg_catalog alone for one
// qualified with it.
func (w *walker) operatorCalls(op string, path []string) {
	if w.cat.OperatorNames != nil && !w.cat.OperatorNames[op] && w.err == nil {
		w.err = &UnknownRelationError{Name: op, Kind: KindOperator}
		return
	}
	for _, c := range w.cat.OperatorCalls[op] {
		if slices.Contains(path, c.Schema) {
			what := "the operator " + c.Schema + "." + op
			if c.Result != "" {
				w.implicitCall(what+", whose result is of the type "+c.Result+", through "+c.Via+" (sorting, grouping, comparing or, for a range, building its values runs it),", c.Function)
				continue
			}
			if c.Via != "" {
				// NOT (a op b) runs the negator, and the planner
				// may commute a op b to match an index or a join.
				what += ", through " + c.Via + " the planner may run in its place,"
			}
			w.implicitCall(what, c.Function)
			// Its function's result meets the statement's values as a
			// call's does (function): 'a' ### 'b' of a checked domain's
			// array reads 'x' through the CHECKs in array_position(…, 'x').
			for _, r := range w.cat.ResultCalls[c.Function.Name] {
				w.implicitCall(what+" whose function's result is of a type whose domain CHECKs call functions", r.Function)
			}
		}
	}
}

// castCalls checks the functions that casts to a type named like the
// last name of tn call.
func (w *walker) castCalls(tn *pg_query.TypeName) {
	if tn == nil || len(tn.Names) == 0 {
		return
	}
	typ := tn.Names[len(tn.Names)-1].GetString_().GetSval()
	if w.cat.TypeNames != nil && !w.cat.TypeNames[typ] && w.err == nil {
		w.err = &UnknownRelationError{Name: typ, Kind: KindType}
		return
	}
	for _, c := range w.cat.CastCalls[typ] {
		if c.Via != "" {
			// Sorting, grouping or comparing a value of it runs them.
			w.implicitCall("a cast to "+typ+", through "+c.Via+" (sorting, grouping, comparing or, for a range, building its values runs it),", c.Function)
			continue
		}
		w.implicitCall("a cast to "+typ, c.Function)
	}
}

// implicitCall checks fn, which what calls without the statement naming
// it, as a call of fn would be checked (function).
func (w *walker) implicitCall(what string, fn QName) {
	if w.err != nil {
		return
	}
	switch {
	case fn.Schema == InternalSchema:
		w.err = deny("internal", "%s calls a function of the schema %s, pgveil's own", what, InternalSchema)
	case statementTextName(fn.Name):
		w.err = deny("statement_text", "%s calls the function %s, which shows the statements of sessions", what, fn.Quoted())
	case !w.pol.AllowFunction(fn.Schema, fn.Name):
		w.err = deny("function", "%s calls the function %s, which the policy does not allow", what, fn.Quoted())
	default:
		w.keep("the function " + fn.String())
	}
}

// walkColumnRefs calls f for every ColumnRef message below m.
func walkColumnRefs(m proto.Message, f func(*pg_query.ColumnRef)) {
	pgtree.Walk(m, func(m proto.Message) bool {
		if cr, ok := m.(*pg_query.ColumnRef); ok {
			f(cr)
			return false
		}
		return true
	})
}

// columnRef notes the column a reference names, for Result.Columns.
func (w *walker) columnRef(cr *pg_query.ColumnRef) {
	if len(cr.Fields) == 0 {
		return
	}
	last := cr.Fields[len(cr.Fields)-1]
	if last.GetAStar() != nil {
		w.star = true
		return
	}
	w.refs[last.GetString_().GetSval()] = true
}

// readable returns the columns of cols (w.visible, or w.masked) the
// statement could read, sorted: those it names, or all of them when it
// uses * or a whole-row reference (a column reference that is a governed
// relation's name or alias). It may say too much, never too little.
func (w *walker) readable(cols map[string]bool) []string {
	all := w.star
	for name := range w.relNames {
		if w.refs[name] {
			all = true
		}
	}
	out := map[string]bool{}
	for qcol := range cols {
		if all || w.refs[qcol[strings.LastIndexByte(qcol, '.')+1:]] {
			out[qcol] = true
		}
	}
	return keys(out)
}

// noteFuncAliases sets the walker's funcAliases, anyFuncAlias and
// funcItemCols for the statement stmt: the names of its FROM items that
// are function calls, at any level, and the columns they declare.
func (w *walker) noteFuncAliases(stmt *pg_query.Node) {
	w.funcAliases, w.anyFuncAlias, w.funcItemCols = map[string]bool{}, false, map[string]map[string]bool{}
	pgtree.Walk(stmt, func(m proto.Message) bool {
		rf, ok := m.(*pg_query.RangeFunction)
		if !ok {
			return true
		}
		if a := rf.GetAlias().GetAliasname(); a != "" {
			cols := map[string]bool{}
			for _, c := range rf.GetAlias().GetColnames() {
				cols[c.GetString_().GetSval()] = true
			}
			for _, d := range rf.Coldeflist {
				cols[d.GetColumnDef().GetColname()] = true
			}
			if seen, ok := w.funcItemCols[a]; ok || w.funcAliases[a] {
				// Another item of that name: only the columns both declare.
				for c := range seen {
					if !cols[c] {
						delete(seen, c)
					}
				}
			} else {
				w.funcItemCols[a] = cols
			}
			w.funcAliases[a] = true
			return true
		}
		// Without an alias PostgreSQL names the item after its function;
		// a ROWS FROM item or an expression (COALESCE, CAST) is named by
		// rules not followed here.
		if len(rf.Functions) != 1 {
			w.anyFuncAlias = true
			return true
		}
		items := rf.Functions[0].GetList().GetItems()
		fc := (*pg_query.FuncCall)(nil)
		if len(items) > 0 {
			fc = items[0].GetFuncCall()
		}
		if fc == nil || len(fc.Funcname) == 0 {
			w.anyFuncAlias = true
			return true
		}
		name := fc.Funcname[len(fc.Funcname)-1].GetString_().GetSval()
		w.funcAliases[name] = true
		// Its columns are not declared: none of that name is known.
		w.funcItemCols[name] = map[string]bool{}
		return true
	})
}

// qualifiedOperatorName prints an operator's qualified name as written,
// its parts joined by dots, for a refusal's message.
func qualifiedOperatorName(name []*pg_query.Node) string {
	parts := make([]string, 0, len(name))
	for _, n := range name {
		parts = append(parts, n.GetString_().GetSval())
	}
	return strings.Join(parts, ".")
}
