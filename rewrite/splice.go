package rewrite

import (
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// A spliced rewrite is how the engine rewrites a statement it has not
// seen before without deparsing it: the client's own text, with each
// governed relation's name replaced, at the position the parser gave, by
// the text of its scoped subquery, and each column reference the rewrite
// shortened (schema.rel.col into rel.col, see unqualifyColumnRefs)
// shortened in place. Deparsing a statement costs several times parsing
// it (pg_query serialises the tree to protobuf and back), and BI tools
// send statements they never send again.
//
// Where its text comes from:
//
//   - outside the replaced spans, the client's text, byte for byte;
//   - a relation's subquery: a subqueryTemplate, the deparsed SELECT the
//     rewriter built for that relation under that policy with those
//     pushed comparisons, kept once it reproduced, filled with the
//     statement's own constants, that SELECT's direct deparse;
//   - around it "(", ")" and, when the client gave no alias, " AS " and
//     the client's own token of the relation's name.
//
// NOTE: a statement is spliced only when every change the walker made is
// one of those two (walker.changed is false): any other change (writes,
// COPY, masked size functions, tags) is deparsed. Each span is checked
// against the tree before it is replaced: its tokens are the names the
// parser read, a complete qualified name with nothing but spaces between
// its parts; anything else falls back to the deparse. A reference with
// ONLY is replaced from the ONLY keyword on (ONLY name, ONLY (name), as
// the scanner reads them, comments included), one with the inheritance
// star through the star (name *), and its subquery reads the relation
// with ONLY or without, as the deparse's would (subqueryKey tells them
// apart). The result's skeleton must parse into the walked tree, each
// subquery an empty SELECT (skeletonMatches), like a deparse into its
// tree; tests also hold every splice to the deparse-based rewrite's parse
// tree (spliceMatchesDeparse).
type splicer struct {
	// subqueries caches the subquery templates, keyed by the policy key
	// and subqueryKey.
	subqueries *lruCache
	// policy is the compiled policy's key.
	policy string
	// gen is the generation of subqueries read before the catalog
	// snapshot the splice reads (lruCache.putAt).
	gen uint64
}

// edit replaces text[start:end] by repl; in the skeleton (see splice),
// by skel.
type edit struct {
	start, end int
	repl, skel string
}

// skeletonSelect stands for a subquery's text in a splice's skeleton.
const skeletonSelect = "(SELECT)"

// splice returns the spliced rewrite of text, or false when one of its
// changes cannot be spliced and the statement must be deparsed. It also
// returns the rewrite's skeleton: the same text with each subquery
// written (SELECT). A subquery's text is one whole SELECT statement
// (buildSubqueryTemplate checks it) put between parentheses, where the
// grammar reads any such statement alike, so the rewrite parses as its
// skeleton does (skeletonMatches), at the cost of parsing a text of about
// the client's length rather than one several times longer.
func (w *walker) splice(text string, sp *splicer) (out, skeleton string, ok bool) {
	edits := make([]edit, 0, len(w.scoped)+len(w.unqualified))
	var tokens []*pg_query.ScanToken
	for i := range w.scoped {
		s := &w.scoped[i]
		names := []string{s.rv.Relname}
		if s.rv.Schemaname != "" {
			names = []string{s.rv.Schemaname, s.rv.Relname}
		}
		start := int(s.rv.Location)
		end, last, ok := qualifiedNameAt(text, start, names)
		if !ok {
			return "", "", false
		}
		if !s.rv.Inh {
			// ONLY name, ONLY (name): the parser's location is the
			// name's; the span starts at ONLY.
			if tokens == nil {
				res, err := pg_query.Scan(text)
				if err != nil {
					return "", "", false
				}
				tokens = res.Tokens
			}
			if start, end, ok = onlySpan(tokens, start, end); !ok {
				return "", "", false
			}
		} else if j := skipSpaces(text, end); j < len(text) && text[j] == '*' {
			// name *: inheritance said again; the star goes with the
			// name.
			end = j + 1
		}
		// TABLE [ONLY] name [*]: the grammar's SELECT * FROM name, the
		// same tree; the span starts at TABLE, and the splice writes the
		// SELECT out (TABLE takes a name, not a subquery).
		table := false
		// NOTE: a scan only when the text spells TABLE somewhere: it
		// costs a C call, on the cold path of every statement.
		if s.rv.Alias == nil && containsFold(text, "table") {
			if tokens == nil {
				res, err := pg_query.Scan(text)
				if err != nil {
					return "", "", false
				}
				tokens = res.Tokens
			}
			if at, ok := tableKeywordBefore(tokens, start); ok {
				start, table = at, true
			}
		}
		sub, ok := sp.subquery(w, s, text)
		if !ok {
			return "", "", false
		}
		alias := ""
		if s.rv.Alias == nil {
			// The rewrite's alias is the relation's name: the client's
			// own token of it.
			alias = " AS " + last
			// NOTE: the span may end at the star or at ONLY's closing
			// parenthesis, where the client's next token may follow
			// with no space (t*LEFT JOIN, ONLY(t)LEFT JOIN): glued to
			// the alias, it would be read as part of it (an alias
			// tLEFT and an inner join), which skeletonMatches then
			// refuses.
			if end < len(text) && (identChar(text[end]) || text[end] == '"' || text[end] == '\'') {
				alias += " "
			}
		}
		if table {
			edits = append(edits, edit{start: start, end: end, repl: "SELECT * FROM (" + sub + ")" + alias, skel: "SELECT * FROM " + skeletonSelect + alias})
			continue
		}
		edits = append(edits, edit{start: start, end: end, repl: "(" + sub + ")" + alias, skel: skeletonSelect + alias})
	}
	for _, u := range w.unqualified {
		start := int(u.ref.Location)
		if len(u.ref.Fields) < 2 {
			return "", "", false
		}
		rel := u.ref.Fields[0].GetString_().GetSval()
		end, _, ok := qualifiedNameAt(text, start, []string{u.schema})
		if !ok {
			return "", "", false
		}
		// The schema, the dot and the spaces around it go; the text must
		// go on with the relation's name.
		j := skipSpaces(text, end)
		if j >= len(text) || text[j] != '.' {
			return "", "", false
		}
		j = skipSpaces(text, j+1)
		if _, _, ok := qualifiedNameAt(text, j, []string{rel}); !ok {
			return "", "", false
		}
		edits = append(edits, edit{start: start, end: j})
	}
	slices.SortFunc(edits, func(a, b edit) int { return a.start - b.start })
	n, k := len(text), len(text)
	for i, e := range edits {
		if i > 0 && e.start < edits[i-1].end {
			return "", "", false
		}
		n += len(e.repl) - (e.end - e.start)
		k += len(e.skel) - (e.end - e.start)
	}
	var b, sk strings.Builder
	b.Grow(n)
	sk.Grow(k)
	last := 0
	for _, e := range edits {
		b.WriteString(text[last:e.start])
		b.WriteString(e.repl)
		sk.WriteString(text[last:e.start])
		sk.WriteString(e.skel)
		last = e.end
	}
	b.WriteString(text[last:])
	sk.WriteString(text[last:])
	return b.String(), sk.String(), true
}

// skeletonMatches reports whether skeleton, a splice's skeleton (see
// splice), parses into tree, the walked statement, with an empty SELECT
// as each scoped reference's subquery, locations aside: the client's
// text around the spans reads as it did, each span is the FROM item the
// walker replaced, under the alias it gave it. A span one token too
// short or too long, or an alias glued to the next token, parses into
// another tree.
//
// NOTE: the skeleton stands for the splice: each subquery is one whole
// SELECT (buildSubqueryTemplate) between parentheses, where the grammar
// reads any such statement alike.
func (w *walker) skeletonMatches(skeleton string, tree *pg_query.ParseResult) bool {
	if !utf8.ValidString(skeleton) {
		return false
	}
	back, err := pg_query.Parse(skeleton)
	if err != nil {
		return false
	}
	kept := make([]*pg_query.Node, len(w.scoped))
	for i, s := range w.scoped {
		kept[i] = s.rs.Subquery
		s.rs.Subquery = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
			LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT, Op: pg_query.SetOperation_SETOP_NONE,
		}}}
	}
	same := pgtree.Equal(back, tree)
	for i, s := range w.scoped {
		s.rs.Subquery = kept[i]
	}
	return same
}

// containsFold reports whether text holds word, a lowercase ASCII word,
// in any case.
func containsFold(text, word string) bool {
	for i := 0; i+len(word) <= len(text); i++ {
		if strings.EqualFold(text[i:i+len(word)], word) {
			return true
		}
	}
	return false
}

// tableKeywordBefore returns the start of the TABLE keyword that is the
// token before the one starting at start (comments aside), the TABLE of
// the grammar's TABLE relation_expr; false when there is none.
//
// NOTE: a TABLE before a name elsewhere (LOCK TABLE, TRUNCATE TABLE)
// names no relation the walker scopes; should one be spliced, the
// skeleton would not parse into the walked tree (skeletonMatches), and
// the statement is deparsed instead.
func tableKeywordBefore(tokens []*pg_query.ScanToken, start int) (int, bool) {
	for i, t := range tokens {
		if int(t.Start) != start {
			continue
		}
		for i--; i >= 0 && isComment(tokens[i]); i-- {
		}
		if i >= 0 && tokens[i].Token == pg_query.Token_TABLE {
			return int(tokens[i].Start), true
		}
		return 0, false
	}
	return 0, false
}

// onlySpan returns the span of a relation_expr with ONLY, the grammar's
// ONLY qualified_name or ONLY ( qualified_name ), whose qualified name
// spans text[start:end], read from tokens, the text's scan: from the
// ONLY keyword to the name's end or its closing parenthesis. Comments may
// sit between the tokens, and go with the span. It returns false when
// the tokens around the name are anything else.
func onlySpan(tokens []*pg_query.ScanToken, start, end int) (int, int, bool) {
	first := -1
	for i, t := range tokens {
		if int(t.Start) == start {
			first = i
			break
		}
	}
	if first < 0 {
		return 0, 0, false
	}
	prev := func(i int) int {
		for i--; i >= 0 && isComment(tokens[i]); i-- {
		}
		return i
	}
	i := prev(first)
	if i < 0 {
		return 0, 0, false
	}
	if tokens[i].Token == pg_query.Token_ONLY {
		return int(tokens[i].Start), end, true
	}
	if tokens[i].Token != pg_query.Token_ASCII_40 { // (
		return 0, 0, false
	}
	if i = prev(i); i < 0 || tokens[i].Token != pg_query.Token_ONLY {
		return 0, 0, false
	}
	// The closing parenthesis: the first token after the name.
	for _, t := range tokens[first:] {
		if int(t.Start) < end || isComment(t) {
			continue
		}
		if t.Token != pg_query.Token_ASCII_41 { // )
			return 0, 0, false
		}
		return int(tokens[i].Start), int(t.End), true
	}
	return 0, 0, false
}

// isComment reports whether t is a comment.
func isComment(t *pg_query.ScanToken) bool {
	return t.Token == pg_query.Token_SQL_COMMENT || t.Token == pg_query.Token_C_COMMENT
}

// qualifiedNameAt reads, at text[start:], the identifiers of names
// separated by dots, as PostgreSQL's lexer and parser read a qualified
// name: a bare identifier folded to lower case, or a double-quoted one.
// It returns the end of the last one and its token, or false when the
// text there is anything else: other names, comments or U&"…" between
// the parts, a name PostgreSQL would truncate.
func qualifiedNameAt(text string, start int, names []string) (end int, last string, ok bool) {
	i := start
	for k, want := range names {
		if k > 0 {
			i = skipSpaces(text, i)
			if i >= len(text) || text[i] != '.' {
				return 0, "", false
			}
			i = skipSpaces(text, i+1)
		}
		tokStart := i
		got, next, ok := identifierAt(text, i)
		if !ok || got != want {
			return 0, "", false
		}
		i = next
		last = text[tokStart:next]
	}
	return i, last, true
}

// identifierAt reads the identifier token at text[i:]: its value and
// end. Anything that is not a plain or double-quoted identifier, or that
// goes on into another token glued to it (U&"…", a string prefix), is
// refused.
func identifierAt(text string, i int) (value string, end int, ok bool) {
	n := len(text)
	if i >= n {
		return "", 0, false
	}
	if text[i] == '"' {
		var closed bool
		if end, closed = quoted(text, i); !closed || end == i+2 {
			return "", 0, false
		}
		value = strings.ReplaceAll(text[i+1:end-1], `""`, `"`)
	} else {
		if !identStart(text[i]) {
			return "", 0, false
		}
		end = i + 1
		for end < n && identChar(text[end]) {
			end++
		}
		// PostgreSQL folds ASCII letters only (in UTF-8).
		value = strings.Map(func(r rune) rune {
			if r >= 'A' && r <= 'Z' {
				return r + 'a' - 'A'
			}
			return r
		}, text[i:end])
	}
	if end < n && (text[end] == '&' || text[end] == '\'' || text[end] == '"') {
		return "", 0, false
	}
	// NOTE: PostgreSQL truncates identifiers to NAMEDATALEN-1 bytes; such
	// a name's token does not say the name the parser read.
	if len(value) > 63 {
		return "", 0, false
	}
	return value, end, true
}

// skipSpaces returns the index of the first non-space byte at or after i.
func skipSpaces(text string, i int) int {
	for i < len(text) && isSpace(text[i]) {
		i++
	}
	return i
}

// subquery returns the text of s's scoped SELECT for the statement text.
func (sp *splicer) subquery(w *walker, s *scopedRef, text string) (string, bool) {
	key, consts, ok := subqueryKey(s)
	if !ok {
		return "", false
	}
	lits := make([]string, len(consts))
	for i, c := range consts {
		tok, kind, ok := literalAt(text, int(c.Location))
		if !ok || kind != constKind(c) {
			return "", false
		}
		if lits[i], ok = renderLiteral(tok, kind); !ok {
			return "", false
		}
	}
	ck := cacheKey{policy: sp.policy, kind: subqueryKind, text: key}
	if c, ok := sp.subqueries.get(ck); ok {
		return c.tmpl.fill(lits)
	}
	t := w.buildSubqueryTemplate(s, consts, lits)
	if t == nil {
		return "", false
	}
	sp.subqueries.putAt(sp.gen, ck, cached{tmpl: t})
	return t.fill(lits)
}

// subqueryKind is the cacheKey kind of subquery templates.
const subqueryKind = 0x40

// subqueryKey names what s's scoped SELECT depends on beyond the policy:
// the relation, whether it is read with ONLY, and each pushed comparison's column, operator, side and
// operand (a constant's kind or value for booleans, a parameter's number
// and type). It returns the constants that fill the template's slots, in
// order.
func subqueryKey(s *scopedRef) (string, []*pg_query.A_Const, bool) {
	var b strings.Builder
	// NOTE: a NUL, which no identifier holds, between schema and name: a
	// dot would make "a.b".c and a."b.c" one key.
	b.WriteString(s.rel.QName.Schema)
	b.WriteByte(0)
	b.WriteString(s.rel.QName.Name)
	if !s.rv.Inh {
		// ONLY: the SELECT reads the relation alone.
		b.WriteString("\x00only")
	}
	var consts []*pg_query.A_Const
	for _, p := range s.pushed {
		cmps, or := pushedComparisons(p)
		if cmps == nil {
			return "", nil, false
		}
		if or {
			// An IN list's copy: (c = a OR c = b …).
			b.WriteString("\x00or ")
			b.WriteString(strconv.Itoa(len(cmps)))
		}
		for _, e := range cmps {
			if !keyComparison(&b, e, &consts) {
				return "", nil, false
			}
		}
	}
	return b.String(), consts, true
}

// pushedComparisons returns the comparisons of a copy pushDown made: the
// copy itself, or the arms of an IN list's OR (or true); nil for anything
// else.
func pushedComparisons(p *pg_query.Node) (cmps []*pg_query.A_Expr, or bool) {
	if e := p.GetAExpr(); e != nil {
		return []*pg_query.A_Expr{e}, false
	}
	be := p.GetBoolExpr()
	if be == nil || be.Boolop != pg_query.BoolExprType_OR_EXPR {
		return nil, false
	}
	for _, a := range be.Args {
		e := a.GetAExpr()
		if e == nil {
			return nil, false
		}
		cmps = append(cmps, e)
	}
	return cmps, true
}

// keyComparison writes to b what subqueryKey says of one pushed
// comparison, appending its constant to consts.
func keyComparison(b *strings.Builder, e *pg_query.A_Expr, consts *[]*pg_query.A_Const) bool {
	if len(e.Name) != 2 {
		return false
	}
	b.WriteByte(0)
	b.WriteString(e.Name[1].GetString_().GetSval())
	for _, side := range []*pg_query.Node{e.Lexpr, e.Rexpr} {
		b.WriteByte(' ')
		switch {
		case side.GetColumnRef() != nil:
			cr := side.GetColumnRef()
			if len(cr.Fields) != 1 {
				return false
			}
			b.WriteString("c:")
			b.WriteString(cr.Fields[0].GetString_().GetSval())
		case side.GetTypeCast() != nil:
			tc := side.GetTypeCast()
			pr := tc.Arg.GetParamRef()
			if pr == nil || tc.TypeName == nil || len(tc.TypeName.Names) != 2 {
				return false
			}
			b.WriteString("p:")
			b.WriteString(strconv.Itoa(int(pr.Number)))
			b.WriteByte(':')
			b.WriteString(tc.TypeName.Names[1].GetString_().GetSval())
		case side.GetAConst() != nil:
			c := side.GetAConst()
			if c.GetBoolval() != nil {
				b.WriteString("b:")
				b.WriteString(strconv.FormatBool(c.GetBoolval().Boolval))
				continue
			}
			k := constKind(c)
			if k == 0 {
				return false
			}
			b.WriteString("k:")
			b.WriteByte(k)
			*consts = append(*consts, c)
		default:
			return false
		}
	}
	return true
}

// constKind is the literal kind (see shape.go) of a pushed constant, 0
// for one pushDown does not push.
func constKind(c *pg_query.A_Const) byte {
	switch {
	case c.GetIval() != nil:
		return kindInt
	case c.GetSval() != nil:
		return kindString
	case c.GetFval() != nil:
		if _, err := strconv.ParseInt(c.GetFval().GetFval(), 10, 64); err == nil {
			return kindBigInt
		}
	}
	return 0
}

// literalAt reads the literal constant token at text[i:] as scanLiterals
// reads one: a standard '…' string or a decimal number. ok is false for
// anything else (E'…' and other prefixed strings, dollar quotes, a string
// continued on a later line, a minus sign the parser folded into the
// constant, other bases).
func literalAt(text string, i int) (tok string, kind byte, ok bool) {
	if i < 0 || i >= len(text) {
		return "", 0, false
	}
	switch c := text[i]; {
	case c == '\'':
		if i > 0 && (identChar(text[i-1]) || text[i-1] == '&') {
			return "", 0, false
		}
		end, closed := quoted(text, i)
		if !closed || continuesString(text, end) {
			return "", 0, false
		}
		return text[i:end], kindString, true
	case isDigit(c):
		if i > 0 && (identChar(text[i-1]) || text[i-1] == '.') {
			return "", 0, false
		}
		end, kind, ok := scanNumber(text, i)
		if !ok {
			return "", 0, false
		}
		return text[i:end], kind, true
	}
	return "", 0, false
}

// buildSubqueryTemplate makes the template of s's scoped SELECT, whose
// pushed comparisons hold consts, rendered lits in this statement; nil
// when it does not reproduce the SELECT's direct deparse.
//
// A subquery template is the text of the SELECT substitute builds for one
// relation under one compiled policy with one set of pushed comparisons:
// fixed pieces the deparser wrote, and a slot for each constant a pushed
// comparison copied from the statement. It is made the way statement
// templates are (template.go): the SELECT is deparsed with a sentinel for
// each constant, twice, with sentinels that share no value, the
// sentinels are found by pg_query's scanner, both probes must cut the
// same template, and it is kept only when filling it with the
// statement's constants gives that SELECT's direct deparse, byte for
// byte. It serves every
// statement whose reference to the relation, under the same policy key
// and catalog snapshot, pushes comparisons of the same columns, operators
// and operand kinds (subqueryKey).
func (w *walker) buildSubqueryTemplate(s *scopedRef, consts []*pg_query.A_Const, lits []string) *template {
	direct, ok := deparseSelect(w.buildScopedSelect(s.rel, s.acc, s.rv.Inh, false, s.pushed), w.version, true)
	// NOTE: a splice's skeleton stands for this text (see splice): it
	// must be one whole SELECT statement.
	if !ok || !reparses(direct, 1) || !strings.HasPrefix(direct, "SELECT ") {
		return nil
	}
	// The same SELECT with a sentinel for each constant: the pushed
	// comparisons are copies, so the sentinels go into copies of them.
	// NOTE: as for statement templates (buildTemplate), two probes with
	// sentinels that share no value must cut the same template.
	var t *template
	for probe := range sentinelProbes {
		cut := w.probeSubqueryTemplate(s, consts, newSentinels(probe, len(consts)))
		if cut == nil || t != nil && !sameTemplate(t, cut) {
			return nil
		}
		t = cut
	}
	// NOTE: the proof: filled with this statement's constants, the
	// template is the SELECT's direct deparse, byte for byte.
	if got, ok := t.fill(lits); !ok || got != direct {
		return nil
	}
	return t
}

// probeSubqueryTemplate deparses s's scoped SELECT with sent's sentinels
// in place of consts, the constants of its pushed comparisons, and cuts
// it into a template; nil when that fails.
func (w *walker) probeSubqueryTemplate(s *scopedRef, consts []*pg_query.A_Const, sent *sentinels) *template {
	byText := make(map[string]int, len(consts))
	swap := make(map[*pg_query.A_Const]*pg_query.A_Const, len(consts))
	for i, c := range consts {
		v := sent.of(i, constKind(c))
		byText[v] = i
		sc := &pg_query.A_Const{Location: -1}
		switch constKind(c) {
		case kindInt:
			n, _ := strconv.Atoi(v)
			sc.Val = &pg_query.A_Const_Ival{Ival: &pg_query.Integer{Ival: int32(n)}}
		case kindBigInt:
			sc.Val = &pg_query.A_Const_Fval{Fval: &pg_query.Float{Fval: v}}
		default:
			sc.Val = &pg_query.A_Const_Sval{Sval: &pg_query.String{Sval: v[1 : len(v)-1]}}
		}
		swap[c] = sc
	}
	swapped := func(e *pg_query.A_Expr) *pg_query.Node {
		cp := &pg_query.A_Expr{Kind: e.Kind, Name: e.Name, Lexpr: e.Lexpr, Rexpr: e.Rexpr, Location: e.Location}
		for _, side := range []**pg_query.Node{&cp.Lexpr, &cp.Rexpr} {
			if c := (*side).GetAConst(); c != nil && swap[c] != nil {
				*side = &pg_query.Node{Node: &pg_query.Node_AConst{AConst: swap[c]}}
			}
		}
		return &pg_query.Node{Node: &pg_query.Node_AExpr{AExpr: cp}}
	}
	pushed := make([]*pg_query.Node, len(s.pushed))
	for i, p := range s.pushed {
		cmps, or := pushedComparisons(p)
		if !or {
			pushed[i] = swapped(cmps[0])
			continue
		}
		arms := make([]*pg_query.Node, len(cmps))
		for j, e := range cmps {
			arms[j] = swapped(e)
		}
		pushed[i] = &pg_query.Node{Node: &pg_query.Node_BoolExpr{BoolExpr: &pg_query.BoolExpr{
			Boolop: pg_query.BoolExprType_OR_EXPR, Args: arms, Location: -1,
		}}}
	}
	probe, ok := deparseSelect(w.buildScopedSelect(s.rel, s.acc, s.rv.Inh, false, pushed), w.version, false)
	if !ok {
		return nil
	}
	return cutTemplate(probe, byText, len(consts))
}

// deparseSelect deparses sel as a statement of its own, with the
// deparser's workarounds (deparsefix.go) applied to it first; faithful
// also requires the text to parse back into it.
//
// NOTE: sel holds the policy's scope and masks, which may say what the
// deparser prints otherwise ((NOT a) IS NULL printed NOT a IS NULL, a
// scope of no rows read as one of every row): like a statement's deparse
// (rewriteText), a subquery's must be faithful, or it is not spliced.
// buildSubqueryTemplate checks the direct deparse; its probes need not,
// as the template they cut must fill into it byte for byte.
func deparseSelect(sel *pg_query.SelectStmt, version int32, faithful bool) (string, bool) {
	tree := &pg_query.ParseResult{Version: version, Stmts: []*pg_query.RawStmt{{
		Stmt: &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}},
	}}}
	// NOTE: the probes too: a probe must print as the direct deparse
	// does, operands wrapped alike, for its template to fill into it.
	out, held, err := deparseHeld(tree, 0)
	if err != nil || faithful && !held {
		return "", false
	}
	return out, true
}

// fill returns the template with lits, rendered literals, in its slots.
func (t *template) fill(lits []string) (string, bool) {
	if len(lits) != t.literals {
		return "", false
	}
	n := 0
	for _, p := range t.pieces {
		n += len(p)
	}
	for _, i := range t.slots {
		n += len(lits[i])
	}
	var b strings.Builder
	b.Grow(n)
	for i, p := range t.pieces {
		b.WriteString(p)
		if i < len(t.slots) {
			b.WriteString(lits[t.slots[i]])
		}
	}
	return b.String(), true
}
