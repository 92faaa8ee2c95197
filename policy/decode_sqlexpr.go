package policy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/pganalyze/pg_query_go/v6/parser"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/rewrite"
)

// sqlExpr is a SQL expression a DBA wrote in the configuration (a rule's
// where, a mask expression), parsed and checked when the configuration is
// loaded.
//
// NOTE: node is never modified after loading: bind works on a copy.
type sqlExpr struct {
	// text is the expression as written.
	text string
	// node is the parsed expression. me.<name> are still column
	// references; unqualified function and operator names are qualified
	// with pg_catalog (see qualifyOperators).
	node *pg_query.Node
	// columns are the governed relation's columns it reads (unqualified
	// names outside subqueries), sorted, without duplicates.
	columns []string
	// columnAt holds where each of columns is first read.
	columnAt map[string]hcl.Range
	// attrs are the user attributes it reads (me.<name>), with where each
	// is first used.
	attrs map[string]hcl.Range
	// funcs are the functions outside pg_catalog it calls, as
	// "schema.name", with where each is first called.
	funcs map[string]hcl.Range
	// tables are the relations its subqueries read.
	tables []rewrite.QName
}

// exprKind says where an expression is written, which decides what it may
// contain.
type exprKind struct {
	// attr names the attribute in messages ("where", "expression").
	attr string
	// subqueries allows subqueries (where only).
	subqueries bool
}

// Kinds of SQL expressions.
var (
	whereExpr = exprKind{attr: "where", subqueries: true}
	maskExpr  = exprKind{attr: "expression"}
)

// exprPrefix is prepended to an expression to parse it as a statement.
const exprPrefix = "SELECT "

// attrRoot is the name that introduces a user attribute: me.<name>.
const attrRoot = "me"

// sqlExpression decodes a's string as a SQL expression of kind k and
// checks it, reporting every problem at the part of the string it is
// about. It returns nil after reporting errors.
func (d *decoder) sqlExpression(a *hcl.Attribute, k exprKind) *sqlExpr {
	if d.meReferences(a) {
		return nil
	}
	text, ok := d.nonEmptyString(a, a.Name)
	if !ok {
		return nil
	}
	tree, at := d.parseSQL(a, text, exprPrefix, "The "+k.attr+" is not a valid SQL expression")
	if tree == nil {
		return nil
	}
	val, problem := singleExpression(tree)
	if problem != "" {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Invalid SQL expression",
			Detail:   fmt.Sprintf("The %s must be one SQL expression: %s.", k.attr, problem),
			Subject:  at(-1, 0),
			Context:  a.Range.Ptr(),
		})
		return nil
	}
	e := &sqlExpr{text: text, node: val, columnAt: map[string]hcl.Range{}, attrs: map[string]hcl.Range{}, funcs: map[string]hcl.Range{}}
	rangeAt := func(loc int32) hcl.Range {
		off := int(loc) - len(exprPrefix)
		if loc < 0 {
			off = -1
		}
		return *at(off, tokenLen(text, off))
	}
	c := &exprChecker{
		kind:    k,
		expr:    e,
		rangeAt: rangeAt,
		report: func(loc int32, summary, detail string) {
			rng := rangeAt(loc)
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  summary,
				Detail:   detail,
				Subject:  &rng,
				Context:  a.Range.Ptr(),
			})
		},
	}
	c.check(val, nil, false)
	if !c.ok() {
		return nil
	}
	for _, p := range qualifyOperators(val) {
		c.fail(p.loc, "Unqualifiable operator in policy expression", "%s.", p.detail)
	}
	if !c.ok() {
		return nil
	}
	slices.Sort(e.columns)
	e.columns = slices.Compact(e.columns)
	return e
}

// parseSQL parses prefix+text, where text is the string value of a,
// reporting a syntax error at its position in the file; what starts the
// error's detail. It returns nil after an error, and a function giving the
// file range of the bytes [off, off+n) of text (the whole expression when
// off < 0 or the string does not map onto the file).
func (d *decoder) parseSQL(a *hcl.Attribute, text, prefix, what string) (*pg_query.ParseResult, func(off, n int) *hcl.Range) {
	src := d.sourceOf(a, text)
	at := func(off, n int) *hcl.Range {
		if src == nil || off < 0 {
			return a.Expr.Range().Ptr()
		}
		return src.rangeOf(off, n).Ptr()
	}
	if strings.ContainsRune(text, 0) {
		d.errorAt(a, "SQL syntax error", what+": it contains a NUL character.")
		return nil, at
	}
	tree, err := pg_query.Parse(prefix + text)
	if err != nil {
		off, n := -1, 0
		var perr *parser.Error
		if errors.As(err, &perr) && perr.Cursorpos > len(prefix) {
			off = runeOffset(text, perr.Cursorpos-1-len([]rune(prefix)))
			n = tokenLen(text, off)
			// NOTE: "at end of input" points past the text: underline
			// what follows its last character (not a heredoc's marker).
			if end := len(strings.TrimRight(text, " \t\r\n")); off >= end {
				off, n = end, 0
			}
		}
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "SQL syntax error",
			Detail:   fmt.Sprintf("%s: %s.", what, err),
			Subject:  at(off, n),
			Context:  a.Range.Ptr(),
		})
		return nil, at
	}
	return tree, at
}

// meReferences reports (and returns true) when a refers to me.<name> as
// an HCL expression instead of inside the SQL text: a common slip, which
// HCL alone would call "Variables not allowed".
func (d *decoder) meReferences(a *hcl.Attribute) bool {
	for _, tr := range a.Expr.Variables() {
		if tr.RootName() == attrRoot {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Attribute reference outside SQL",
				Detail: fmt.Sprintf("%s is written as an HCL reference; user attributes belong inside the SQL text, "+
					"which pgveil binds for each user. Write it inside the string without ${…}: "+
					`where = "country = me.country".`, hclTraversalString(tr)),
				Subject: tr.SourceRange().Ptr(),
				Context: a.Range.Ptr(),
			})
			return true
		}
	}
	return false
}

// hclTraversalString renders a traversal such as me.country.
func hclTraversalString(tr hcl.Traversal) string {
	var b strings.Builder
	b.WriteString(tr.RootName())
	for _, step := range tr[1:] {
		if s, ok := step.(hcl.TraverseAttr); ok {
			b.WriteString("." + s.Name)
		} else {
			b.WriteString("[…]")
		}
	}
	return b.String()
}

// runeOffset converts a character index of text into a byte offset.
func runeOffset(text string, chars int) int {
	for i := range text {
		if chars == 0 {
			return i
		}
		chars--
	}
	return len(text)
}

// bareSelect is what "SELECT <expr>" parses to once its target list is
// removed: anything else means the text held more than one expression.
var bareSelect = &pg_query.SelectStmt{LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT, Op: pg_query.SetOperation_SETOP_NONE}

// singleExpression returns the expression of a parsed "SELECT <expr>", or
// a sentence saying why the text was not one expression (a second
// statement, a FROM clause, a second column…).
func singleExpression(tree *pg_query.ParseResult) (*pg_query.Node, string) {
	if len(tree.Stmts) != 1 {
		return nil, "it ends its statement and starts another (a semicolon)"
	}
	sel := tree.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) == 0 {
		return nil, "it is not an expression"
	}
	if len(sel.TargetList) > 1 {
		return nil, "it holds several comma-separated expressions; combine conditions with AND or OR"
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil || rt.Name != "" || len(rt.Indirection) > 0 || rt.Val == nil {
		return nil, "it names its result (AS)"
	}
	rest := proto.Clone(sel).(*pg_query.SelectStmt)
	rest.TargetList = nil
	if !proto.Equal(rest, bareSelect) {
		return nil, "it goes on with clauses of a statement (FROM, WHERE, ORDER BY, UNION…)"
	}
	return rt.Val, ""
}

// rangeScope is the range names visible inside a subquery: the aliases
// (or table names) of its FROM list, then those of enclosing subqueries.
type rangeScope struct {
	// names are the range names of one FROM list.
	names map[string]bool
	// unknown is set when a FROM item was rejected: its names are not
	// known, so column references are not checked against them.
	unknown bool
	// outer is the enclosing subquery's scope; nil at the first level.
	outer *rangeScope
}

// has reports whether name is a range of s or of an enclosing scope (or
// might be, after a rejected FROM item).
func (s *rangeScope) has(name string) bool {
	for ; s != nil; s = s.outer {
		if s.names[name] || s.unknown {
			return true
		}
	}
	return false
}

// exprChecker walks a parsed expression and accepts only what a policy
// expression may contain; every other node is reported.
//
// NOTE: this is an allow list: a node type it does not know is an error,
// so a new construct of a future parser fails closed.
type exprChecker struct {
	// kind is what the expression is.
	kind exprKind
	// expr collects what the expression reads and calls.
	expr *sqlExpr
	// report reports an error at a parser location.
	report func(loc int32, summary, detail string)
	// rangeAt returns the file range of a parser location.
	rangeAt func(loc int32) hcl.Range
	// errors counts reported errors.
	errors int
}

// ok reports whether the expression passed.
func (c *exprChecker) ok() bool { return c.errors == 0 }

// fail reports an error.
func (c *exprChecker) fail(loc int32, summary, format string, args ...any) {
	c.errors++
	c.report(loc, summary, fmt.Sprintf(format, args...))
}

// check checks the expression n. sc is nil outside subqueries; inSub is
// true inside a subquery, where aggregates are allowed.
func (c *exprChecker) check(n *pg_query.Node, sc *rangeScope, inSub bool) {
	if n == nil {
		return
	}
	switch x := n.Node.(type) {
	case *pg_query.Node_AConst:
		c.constant(x.AConst, nil)
	case *pg_query.Node_SqlvalueFunction:
		c.sessionValue(x.SqlvalueFunction)
		statementInstant(n)
	case *pg_query.Node_ColumnRef:
		c.columnRef(x.ColumnRef, sc)
	case *pg_query.Node_AExpr:
		c.operator(x.AExpr.Name, x.AExpr.Location)
		c.check(x.AExpr.Lexpr, sc, inSub)
		c.check(x.AExpr.Rexpr, sc, inSub)
	case *pg_query.Node_List:
		c.checkAll(x.List.Items, sc, inSub)
	case *pg_query.Node_BoolExpr:
		c.checkAll(x.BoolExpr.Args, sc, inSub)
	case *pg_query.Node_NullTest:
		c.check(x.NullTest.Arg, sc, inSub)
	case *pg_query.Node_BooleanTest:
		c.check(x.BooleanTest.Arg, sc, inSub)
	case *pg_query.Node_FuncCall:
		c.funcCall(x.FuncCall, sc, inSub)
	case *pg_query.Node_NamedArgExpr:
		c.check(x.NamedArgExpr.Arg, sc, inSub)
	case *pg_query.Node_SortBy:
		c.check(x.SortBy.Node, sc, inSub)
	case *pg_query.Node_TypeCast:
		c.typeName(x.TypeCast.TypeName)
		if k := x.TypeCast.Arg.GetAConst(); k != nil {
			c.constant(k, x.TypeCast.TypeName)
		} else {
			c.check(x.TypeCast.Arg, sc, inSub)
		}
	case *pg_query.Node_CaseExpr:
		c.check(x.CaseExpr.Arg, sc, inSub)
		c.checkAll(x.CaseExpr.Args, sc, inSub)
		c.check(x.CaseExpr.Defresult, sc, inSub)
	case *pg_query.Node_CaseWhen:
		c.check(x.CaseWhen.Expr, sc, inSub)
		c.check(x.CaseWhen.Result, sc, inSub)
	case *pg_query.Node_CoalesceExpr:
		c.checkAll(x.CoalesceExpr.Args, sc, inSub)
	case *pg_query.Node_MinMaxExpr:
		c.checkAll(x.MinMaxExpr.Args, sc, inSub)
	case *pg_query.Node_AArrayExpr:
		c.checkAll(x.AArrayExpr.Elements, sc, inSub)
	case *pg_query.Node_RowExpr:
		c.checkAll(x.RowExpr.Args, sc, inSub)
	case *pg_query.Node_CollateClause:
		c.check(x.CollateClause.Arg, sc, inSub)
	case *pg_query.Node_AIndirection:
		c.indirection(x.AIndirection, sc, inSub)
	case *pg_query.Node_SubLink:
		c.subLink(x.SubLink, sc, inSub)
	case *pg_query.Node_ParamRef:
		c.fail(x.ParamRef.Location, "Parameter in policy expression",
			"$%d would be bound to the client's own parameters: a policy expression may not use parameters.", x.ParamRef.Number)
	default:
		c.fail(nodeLocation(n), "Unsupported SQL in policy expression",
			"A %s may not contain %s. It may use columns, constants, me.<attribute>, operators, function calls, "+
				"CASE, COALESCE, casts and arrays%s.", c.kind.attr, nodeKindName(n), c.subqueryHint())
	}
}

// subqueryHint completes the list of what an expression may use.
func (c *exprChecker) subqueryHint() string {
	if c.kind.subqueries {
		return ", and subqueries over schema-qualified tables"
	}
	return ""
}

// checkAll checks every node of ns.
func (c *exprChecker) checkAll(ns []*pg_query.Node, sc *rangeScope, inSub bool) {
	for _, n := range ns {
		c.check(n, sc, inSub)
	}
}

// columnRef checks a column reference: me.<name>, a column of the
// governed relation (unqualified, outside subqueries), or alias.column
// inside a subquery.
func (c *exprChecker) columnRef(ref *pg_query.ColumnRef, sc *rangeScope) {
	names := make([]string, len(ref.Fields))
	for i, f := range ref.Fields {
		if f.GetAStar() != nil {
			c.fail(ref.Location, "Invalid column reference", "* is not a value: name the columns the %s reads.", c.kind.attr)
			return
		}
		names[i] = f.GetString_().GetSval()
	}
	if names[0] == attrRoot {
		switch len(names) {
		case 1:
			c.fail(ref.Location, "Invalid attribute reference",
				"me alone is not a value: write me.<attribute>, e.g. me.login or me.country. (A column named me cannot be used in a policy expression.)")
		case 2:
			if _, seen := c.expr.attrs[names[1]]; !seen {
				c.expr.attrs[names[1]] = c.rangeAt(ref.Location)
			}
		default:
			c.fail(ref.Location, "Invalid attribute reference",
				"%s: attributes have no fields; write me.%s.", strings.Join(names, "."), names[1])
		}
		return
	}
	if sc == nil {
		if len(names) > 1 {
			c.fail(ref.Location, "Qualified column in policy expression",
				"%s names a column through a table name or alias. A policy expression reads the governed table's "+
					"columns unqualified (write %s); other tables may only be read in a subquery%s.",
				strings.Join(names, "."), names[len(names)-1], c.subqueryNote())
			return
		}
		if _, seen := c.expr.columnAt[names[0]]; !seen {
			c.expr.columnAt[names[0]] = c.rangeAt(ref.Location)
		}
		c.expr.columns = append(c.expr.columns, names[0])
		return
	}
	if len(names) != 2 || !sc.has(names[0]) {
		what := fmt.Sprintf("%s has no alias", names[0])
		if len(names) > 1 {
			what = fmt.Sprintf("%s is not an alias of the subquery", names[0])
		}
		c.fail(ref.Location, "Unqualified column in subquery",
			"Inside a subquery, write every column as alias.column, with an alias of the subquery's own FROM list "+
				"(%s): an unqualified name the table lacks would silently refer to another table's column.", what)
	}
}

// subqueryNote tells where subqueries are not allowed.
func (c *exprChecker) subqueryNote() string {
	if c.kind.subqueries {
		return ""
	}
	return " (in a where, not in a mask)"
}

// operator checks an operator name: a schema-qualified operator must be
// pg_catalog's.
func (c *exprChecker) operator(name []*pg_query.Node, loc int32) {
	if len(name) > 1 && name[0].GetString_().GetSval() != "pg_catalog" {
		c.fail(loc, "Operator outside pg_catalog",
			"OPERATOR(%s.…) is not allowed in a policy expression: only pg_catalog's operators are.", name[0].GetString_().GetSval())
	}
}

// typeName checks a cast's type: me.<name> is not a type, and type
// modifiers (varchar(n)) are expressions too.
func (c *exprChecker) typeName(t *pg_query.TypeName) {
	if t == nil {
		return
	}
	if len(t.Names) > 1 && t.Names[0].GetString_().GetSval() == attrRoot {
		c.fail(t.Location, "Invalid attribute reference", "me.%s is an attribute, not a type.", t.Names[1].GetString_().GetSval())
	}
	c.checkAll(t.Typmods, nil, false)
}

// constant checks a string constant, cast to typ when typ is not nil:
// DateStyle and IntervalStyle may not change what it means (see
// compile_datetime.go). A constant cast to another type (text, a number) is not
// a date.
func (c *exprChecker) constant(k *pg_query.A_Const, typ *pg_query.TypeName) {
	if k.GetSval() == nil {
		return
	}
	name := ""
	if typ != nil && len(typ.Names) > 0 {
		name = typ.Names[len(typ.Names)-1].GetString_().GetSval()
		switch name {
		case "date", "timestamp", "timestamptz", "time", "timetz", "interval":
		default:
			return
		}
	}
	if problem := constantProblem(k.GetSval().GetSval(), name); problem != "" {
		c.fail(k.Location, "Setting-dependent constant in policy expression",
			"The rows a policy selects may not depend on the client's SET: %s.", problem)
	}
}

// sessionFunctions are pg_catalog functions a policy may not call: they
// read or write session settings, which the client controls (SET), so a
// policy depending on them could be bypassed.
var sessionFunctions = map[string]bool{"current_setting": true, "set_config": true}

// sessionValue refuses CURRENT_USER and friends: upstream, every session
// is the service account's; and the session's local date and time, which
// follow the client's TimeZone.
func (c *exprChecker) sessionValue(f *pg_query.SQLValueFunction) {
	switch f.Op {
	case pg_query.SQLValueFunctionOp_SVFOP_CURRENT_USER, pg_query.SQLValueFunctionOp_SVFOP_SESSION_USER,
		pg_query.SQLValueFunctionOp_SVFOP_USER, pg_query.SQLValueFunctionOp_SVFOP_CURRENT_ROLE:
		detail := "Upstream, every statement runs as pgveil's service account, so CURRENT_USER and SESSION_USER name it, " +
			"not the client: write me.login for the user's login."
		if f.Op == pg_query.SQLValueFunctionOp_SVFOP_USER {
			// NOTE: USER is a keyword; a column so named reads as it unless quoted.
			detail += ` A column named user must be quoted: "user".`
		}
		c.fail(f.Location, "Session user in policy expression", "%s", detail)
	case pg_query.SQLValueFunctionOp_SVFOP_CURRENT_DATE, pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIME,
		pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIME_N, pg_query.SQLValueFunctionOp_SVFOP_LOCALTIME,
		pg_query.SQLValueFunctionOp_SVFOP_LOCALTIME_N, pg_query.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP,
		pg_query.SQLValueFunctionOp_SVFOP_LOCALTIMESTAMP_N:
		c.fail(f.Location, "Session time zone in policy expression",
			"CURRENT_DATE, CURRENT_TIME, LOCALTIME and LOCALTIMESTAMP are the date or time in the client's TimeZone, "+
				"which the client may SET: compare a timestamptz column with now() or CURRENT_TIMESTAMP instead.")
	}
}

// transactionInstants are the pg_catalog functions giving the start of the
// transaction, which statementInstant replaces by statement_timestamp().
var transactionInstants = map[string]bool{"now": true, "transaction_timestamp": true}

// statementInstant replaces CURRENT_TIMESTAMP in n by
// pg_catalog.statement_timestamp() (CURRENT_TIMESTAMP(p) by its cast to
// timestamptz(p)); funcCall does the same with now() and
// transaction_timestamp().
//
// NOTE: all of them are the start of the transaction, which the client
// decides: a rule's window relative to now (occurred_at > now() - interval
// '2160 hours') would stay where it was when a transaction began for as
// long as the client keeps the transaction open (a statement every few
// minutes keeps idle_transaction_timeout away), and show, statement after
// statement, rows written or changed since that left the window before
// the statement. The start of the statement moves on with every one; it
// stays one instant within a statement, as now() does.
func statementInstant(n *pg_query.Node) {
	f := n.GetSqlvalueFunction()
	if f == nil || (f.Op != pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP && f.Op != pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N) {
		return
	}
	call := pg_query.MakeFuncCallNode([]*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("statement_timestamp")}, nil, f.Location)
	if f.Op == pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N {
		tn := &pg_query.TypeName{
			Names:   []*pg_query.Node{pg_query.MakeStrNode("pg_catalog"), pg_query.MakeStrNode("timestamptz")},
			Typmods: []*pg_query.Node{pg_query.MakeAConstIntNode(int64(f.Typmod), -1)},
			Typemod: -1, Location: -1,
		}
		call = &pg_query.Node{Node: &pg_query.Node_TypeCast{TypeCast: &pg_query.TypeCast{Arg: call, TypeName: tn, Location: f.Location}}}
	}
	n.Node = call.Node
}

// funcCall checks a function call and qualifies an unqualified name with
// pg_catalog.
//
// NOTE: qualifying makes the call resolve in pg_catalog whatever the
// search_path: a policy never calls a function the DBA did not name. A
// function outside pg_catalog must be written schema.name and be listed in
// some role's functions (checked once every role is known).
func (c *exprChecker) funcCall(f *pg_query.FuncCall, sc *rangeScope, inSub bool) {
	names := make([]string, len(f.Funcname))
	for i, n := range f.Funcname {
		names[i] = n.GetString_().GetSval()
	}
	if fn := names[len(names)-1]; sessionFunctions[fn] && (len(names) == 1 || names[0] == "pg_catalog") {
		c.fail(f.Location, "Session setting in policy expression",
			"%s reads or changes a session setting, which the client controls with SET: a policy depending on it "+
				"could be bypassed. Give users attributes and write me.<attribute> instead.", fn)
	}
	if fn := names[len(names)-1]; transactionInstants[fn] && len(f.Args) == 0 && (len(names) == 1 || names[0] == "pg_catalog") {
		// See statementInstant.
		names = []string{"statement_timestamp"}
		f.Funcname = []*pg_query.Node{pg_query.MakeStrNode("statement_timestamp")}
	}
	switch {
	case len(names) == 1:
		f.Funcname = append([]*pg_query.Node{pg_query.MakeStrNode("pg_catalog")}, f.Funcname...)
	case len(names) == 2 && names[0] == attrRoot:
		c.fail(f.Location, "Invalid attribute reference", "me.%s is an attribute, not a function.", names[1])
	case len(names) == 2 && names[0] != "pg_catalog":
		qn := names[0] + "." + names[1]
		if _, seen := c.expr.funcs[qn]; !seen {
			c.expr.funcs[qn] = c.rangeAt(f.Location)
		}
	case len(names) > 2:
		c.fail(f.Location, "Invalid function name", "%s: write schema.function.", strings.Join(names, "."))
	}
	if f.Over != nil {
		c.fail(f.Location, "Window function in policy expression", "A %s may not use window functions (OVER).", c.kind.attr)
	}
	if !inSub && (f.AggStar || f.AggDistinct || len(f.AggOrder) > 0 || f.AggFilter != nil || f.AggWithinGroup) {
		c.fail(f.Location, "Aggregate in policy expression",
			"A %s is evaluated row by row: aggregates are only allowed inside a subquery.", c.kind.attr)
	}
	c.checkAll(f.Args, sc, inSub)
	c.checkAll(f.AggOrder, sc, inSub)
	c.check(f.AggFilter, sc, inSub)
}

// indirection checks subscripts and field selections.
func (c *exprChecker) indirection(ind *pg_query.A_Indirection, sc *rangeScope, inSub bool) {
	if ref := ind.Arg.GetColumnRef(); ref != nil && len(ref.Fields) > 0 && ref.Fields[0].GetString_().GetSval() == attrRoot {
		c.fail(ref.Location, "Invalid attribute reference",
			"me.<attribute> cannot be subscripted: compare with = ANY(me.<attribute>), or pass it to a function.")
		return
	}
	c.check(ind.Arg, sc, inSub)
	for _, i := range ind.Indirection {
		switch x := i.Node.(type) {
		case *pg_query.Node_AIndices:
			c.check(x.AIndices.Lidx, sc, inSub)
			c.check(x.AIndices.Uidx, sc, inSub)
		case *pg_query.Node_String_:
		default:
			c.fail(nodeLocation(ind.Arg), "Unsupported SQL in policy expression", "A %s may not select .* from a value.", c.kind.attr)
		}
	}
}

// subLink checks a subquery: EXISTS, IN, = ANY/ALL, or a scalar or ARRAY
// subquery, in a where only.
func (c *exprChecker) subLink(s *pg_query.SubLink, sc *rangeScope, inSub bool) {
	if !c.kind.subqueries {
		c.fail(s.Location, "Subquery in mask expression", "A mask expression may not contain a subquery: it computes a value from the row's own columns.")
		return
	}
	switch s.SubLinkType {
	case pg_query.SubLinkType_EXISTS_SUBLINK, pg_query.SubLinkType_ANY_SUBLINK, pg_query.SubLinkType_ALL_SUBLINK,
		pg_query.SubLinkType_EXPR_SUBLINK, pg_query.SubLinkType_ARRAY_SUBLINK:
	default:
		c.fail(s.Location, "Unsupported subquery", "Only EXISTS (…), IN (…), = ANY (…), ALL (…), ARRAY(…) and scalar subqueries are allowed.")
		return
	}
	c.operator(s.OperName, s.Location)
	c.check(s.Testexpr, sc, inSub)
	sel := s.Subselect.GetSelectStmt()
	if sel == nil {
		c.fail(s.Location, "Unsupported subquery", "The subquery must be a SELECT.")
		return
	}
	c.selectStmt(sel, sc, s.Location)
}

// selectStmt checks a subquery's SELECT: a target list, a FROM list of
// schema-qualified tables, and a WHERE clause, nothing else.
func (c *exprChecker) selectStmt(sel *pg_query.SelectStmt, outer *rangeScope, subLinkLoc int32) {
	loc := subLinkLoc
	var clause string
	first := func(ns []*pg_query.Node) int32 {
		if len(ns) == 0 {
			return -1
		}
		return nodeLocation(ns[0])
	}
	switch {
	case sel.Op != pg_query.SetOperation_SETOP_NONE:
		clause = "UNION, INTERSECT or EXCEPT"
	case sel.WithClause != nil:
		clause, loc = "WITH", sel.WithClause.Location
	case sel.IntoClause != nil:
		clause = "INTO"
	case len(sel.LockingClause) > 0:
		clause = "FOR UPDATE/SHARE"
	case len(sel.ValuesLists) > 0:
		clause = "VALUES"
	case len(sel.DistinctClause) > 0:
		clause = "DISTINCT"
	case len(sel.GroupClause) > 0 || sel.HavingClause != nil:
		clause, loc = "GROUP BY or HAVING", max(first(sel.GroupClause), nodeLocation(sel.HavingClause))
	case len(sel.WindowClause) > 0:
		clause = "WINDOW"
	case len(sel.SortClause) > 0:
		clause, loc = "ORDER BY", first(sel.SortClause)
	case sel.LimitCount != nil || sel.LimitOffset != nil:
		clause, loc = "LIMIT or OFFSET", max(nodeLocation(sel.LimitCount), nodeLocation(sel.LimitOffset))
	}
	if clause != "" {
		if loc < 0 {
			loc = subLinkLoc
		}
		c.fail(loc, "Unsupported subquery",
			"A policy subquery is SELECT … FROM schema.table alias WHERE …; it may not use %s.", clause)
		return
	}
	sc := &rangeScope{names: map[string]bool{}, outer: outer}
	for _, item := range sel.FromClause {
		rv := item.GetRangeVar()
		if rv == nil {
			c.fail(nodeLocation(item), "Unsupported subquery",
				"A policy subquery's FROM list may only name tables (schema.table alias), separated by commas; write join conditions in its WHERE.")
			sc.unknown = true // NOTE: its names are unknown: do not report every column as well.
			continue
		}
		name := rv.Relname
		if rv.Alias != nil {
			name = rv.Alias.Aliasname
		}
		switch {
		case rv.Schemaname == "" || rv.Catalogname != "":
			c.fail(rv.Location, "Unqualified table in subquery",
				"Write %s as schema.table (e.g. public.%s), so that it does not depend on the search_path.", rv.Relname, rv.Relname)
			sc.names[name] = true
		case rv.Schemaname == attrRoot || name == attrRoot:
			c.fail(rv.Location, "Invalid attribute reference", "me names the user's attributes: it cannot be a schema or an alias.")
		case rv.Alias != nil && len(rv.Alias.Colnames) > 0:
			c.fail(rv.Location, "Unsupported subquery", "Column aliases are not allowed in a policy subquery's FROM list.")
		case sc.names[name]:
			c.fail(rv.Location, "Unsupported subquery", "%s is used twice in the same FROM list: give each table its own alias.", name)
		default:
			sc.names[name] = true
			c.expr.tables = append(c.expr.tables, rewrite.QName{Schema: rv.Schemaname, Name: rv.Relname})
		}
	}
	for _, t := range sel.TargetList {
		if rt := t.GetResTarget(); rt != nil {
			c.check(rt.Val, sc, true)
		}
	}
	c.check(sel.WhereClause, sc, true)
}

// nodeLocation returns a node's parser location, or else the first
// location found inside it (a JOIN's left table), or -1.
func nodeLocation(n *pg_query.Node) int32 {
	if n == nil {
		return -1
	}
	return messageLocation(n)
}

// messageLocation returns m's location field, or the first one found
// depth-first inside it, or -1.
func messageLocation(m proto.Message) int32 {
	r := m.ProtoReflect()
	if f := r.Descriptor().Fields().ByName("location"); f != nil && f.Kind() == protoreflect.Int32Kind {
		if loc := int32(r.Get(f).Int()); loc >= 0 {
			return loc
		}
	}
	var loc int32 = -1
	pgtree.Children(m, func(c proto.Message) {
		if loc < 0 {
			loc = messageLocation(c)
		}
	})
	return loc
}

// nodeKindName names a node's type for messages, e.g. "xml_expr".
func nodeKindName(n *pg_query.Node) string {
	name := "an unknown construct"
	n.ProtoReflect().Range(func(f protoreflect.FieldDescriptor, _ protoreflect.Value) bool {
		name = strings.ReplaceAll(string(f.Name()), "_", " ") + " nodes"
		return false
	})
	return name
}
