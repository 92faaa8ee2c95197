package adversarial_test

import (
	"fmt"
	"strings"
)

// The widened forms of the diffsmith generator: attribute notation and
// field selection ((r.email).length, (r).email, g.upper over a function
// whose value is a scalar, r.to_jsonb), functions in FROM that read a
// responses row or its masked columns (unnest, jsonb_to_record,
// json_populate_record, string_to_table, ROWS FROM with a column
// definition list), GROUP BY, window functions and aggregates over the
// masked columns, and set-returning functions in the select list.
//
// NOTE: each form draws from g.x (see widen), so a seed whose statement
// enters none of them writes the statement it wrote before they came.

// widen returns f's text with probability pct (drawn from g.x), or ok
// false when not drawn or f has nothing to offer. f draws from g.x too,
// through g.r, which widen swaps for the time of the call.
func (g *smith) widen(pct int, f func() string) (string, bool) {
	if g.widening {
		// Already on g.x: the nested form draws from it as it is.
		if g.r.Intn(100) >= pct {
			return "", false
		}
		s := f()
		return s, s != ""
	}
	if g.x.Intn(100) >= pct {
		return "", false
	}
	g.r, g.x = g.x, g.r
	g.widening = true
	s := f()
	g.widening = false
	g.r, g.x = g.x, g.r
	return s, s != ""
}

// maskedCol is a column of a responses relation the demo masks for some
// user (contact, email, score), with its relation.
type maskedCol struct {
	r srel
	c scol
}

// masked returns the masked columns of the responses relations of sc's
// own level, of type t.
func (g *smith) masked(sc *sscope, t styp) []maskedCol {
	var out []maskedCol
	def := smithBase["responses"].cols
	for _, r := range sc.rels {
		if r.base != "responses" {
			continue
		}
		for i, c := range r.cols {
			n := def[i].name
			if (n == "contact" || n == "email" || n == "score") && c.typ == t {
				out = append(out, maskedCol{r, c})
			}
		}
	}
	return out
}

// maskedRef returns a reference to a masked column of type t (often as
// a field of its relation's row), or "".
func (g *smith) maskedRef(sc *sscope, t styp) string {
	ms := g.masked(sc, t)
	if len(ms) == 0 {
		return ""
	}
	m := ms[g.r.Intn(len(ms))]
	if m.r.whole && !m.r.renamed && !g.isColumnName(sc, m.r.alias) && g.p(30) {
		return g.pick("("+m.r.alias+").", "("+m.r.alias+".*).") + m.c.name
	}
	return g.colRef(sc, m.r, m.c)
}

// anyRef returns a masked column of type t in scope, or any column of
// that type, or "".
func (g *smith) anyRef(sc *sscope, t styp) string {
	if g.p(60) {
		if m := g.maskedRef(sc, t); m != "" {
			return m
		}
	}
	return g.column(sc, t)
}

// attrPct is the chance of attribute notation in an expression: more
// where a scalar function item is in scope, which only it reads as g.fn.
func (g *smith) attrPct(sc *sscope) int {
	for _, r := range sc.rels {
		if r.scalarOK {
			return 20
		}
	}
	return 2
}

// attrForm returns attribute notation: a function applied to a column as
// if it were a field of it ((c).length), to a scalar function item
// (g.upper), or to a whole row (r.to_jsonb); "" when none fits t.
func (g *smith) attrForm(sc *sscope, t styp) string {
	var scalars []srel
	for _, r := range sc.rels {
		if r.scalarOK && r.scalar == tText {
			scalars = append(scalars, r)
		}
	}
	if len(scalars) > 0 && g.p(40) {
		s := scalars[g.r.Intn(len(scalars))]
		switch t {
		case tText:
			return s.alias + "." + g.pick("upper", "md5", "lower", "text", "initcap")
		case tNum:
			return s.alias + "." + g.pick("length", "char_length", "octet_length")
		case tJSON:
			return s.alias + ".to_jsonb"
		}
	}
	switch t {
	case tText:
		if g.p(25) {
			if c := g.anyRef(sc, tNum); c != "" {
				return "(" + c + ").text"
			}
		}
		if c := g.anyRef(sc, tText); c != "" {
			return "(" + c + ")." + g.pick("upper", "lower", "md5", "initcap", "btrim", "reverse")
		}
	case tNum:
		switch g.r.Intn(3) {
		case 0:
			if c := g.anyRef(sc, tNum); c != "" {
				return "(" + c + ").abs"
			}
		case 1:
			if c := g.column(sc, tArr); c != "" {
				return "(" + c + ").cardinality"
			}
		}
		if c := g.anyRef(sc, tText); c != "" {
			return "(" + c + ")." + g.pick("length", "char_length", "octet_length")
		}
	case tJSON:
		var rows []srel
		for _, r := range sc.rels {
			if r.whole && !r.renamed && !g.isColumnName(sc, r.alias) {
				rows = append(rows, r)
			}
		}
		if len(rows) > 0 && g.p(60) {
			r := rows[g.r.Intn(len(rows))]
			return g.pick(r.alias+".to_jsonb", "("+r.alias+").to_jsonb", r.alias+".row_to_json::jsonb")
		}
		if c := g.anyRef(sc, tText); c != "" {
			return "(" + c + ").to_jsonb"
		}
	}
	return ""
}

// fieldFunc returns a function in FROM that reads a responses relation
// of sc (its masked columns, or its whole row), and appends its relation;
// "" when sc has none.
func (g *smith) fieldFunc(sc *sscope) string {
	var rr srel
	found := false
	for _, r := range sc.rels {
		if r.base == "responses" {
			rr, found = r, true
		}
	}
	if !found {
		return ""
	}
	sub := &sscope{rels: []srel{rr}}
	text := func() string {
		ms := g.masked(sub, tText)
		if len(ms) > 0 && g.p(75) {
			return g.colRef(sc, rr, ms[g.r.Intn(len(ms))].c)
		}
		return g.colRef(sc, rr, rr.cols[12]) // comment
	}
	// NOTE: rows is 1 whatever the function returns (up to four rows
	// per responses row): join bounds a FROM clause by its estimate, which
	// would leave every item of more than one row out of a FROM that reads
	// responses.
	alias := g.fresh("f")
	rel := srel{alias: alias, whole: true}
	var s string
	x := g.r.Intn(8)
	if rr.renamed && (x == 2 || x == 3 || x == 6 || x == 7) {
		// The whole row of a renamed table: a known difference.
		x = g.r.Intn(2)
	}
	switch x {
	case 0:
		s = fmt.Sprintf("unnest(ARRAY[%s, %s]) AS %s(x)", text(), text(), alias)
		rel.cols, rel.rows, rel.whole = []scol{{"x", tText, "", false}}, 1, false
		rel.scalar, rel.scalarOK = tText, true
	case 1:
		s = fmt.Sprintf("unnest(ARRAY[%s, %s]) WITH ORDINALITY AS %s(x, n)", text(), text(), alias)
		rel.cols, rel.rows, rel.key = []scol{{"x", tText, "", false}, {"n", tNum, "", false}}, 1, []string{alias + ".n"}
	case 2:
		s = fmt.Sprintf("jsonb_to_record(to_jsonb(%s)) AS %s(email text, nps int, score numeric, contact text)", g.whole(sc, rr), alias)
		rel.cols, rel.rows, rel.key = []scol{{"email", tText, "", false}, {"nps", tNum, "", false}, {"score", tNum, "", false}, {"contact", tText, "", false}}, 1, []string{}
	case 3:
		s = fmt.Sprintf("json_populate_record(NULL::%s.responses, row_to_json(%s)) AS %s", smithSchema, g.whole(sc, rr), alias)
		for _, c := range smithBase["responses"].cols {
			rel.cols = append(rel.cols, scol{name: c.name, typ: c.typ})
		}
		rel.rows, rel.key = 1, []string{}
	case 4:
		s = fmt.Sprintf("string_to_table(%s, '.') WITH ORDINALITY AS %s(part, n)", text(), alias)
		rel.cols, rel.rows, rel.key = []scol{{"part", tText, "", false}, {"n", tNum, "", false}}, 1, []string{alias + ".n"}
	case 5:
		s = fmt.Sprintf("regexp_matches(%s, '([a-z]+)', 'g') WITH ORDINALITY AS %s(m, n)", text(), alias)
		rel.cols, rel.rows, rel.key = []scol{{"m", tArr, "", false}, {"n", tNum, "", false}}, 1, []string{alias + ".n"}
	case 6:
		s = fmt.Sprintf("ROWS FROM (unnest(ARRAY[%s]), jsonb_to_record(%s) AS (email text, nps int)) AS %s(x, email, nps)",
			text(), g.pick("to_jsonb("+g.whole(sc, rr)+")", rr.alias+".to_jsonb"), alias)
		if g.isColumnName(sc, rr.alias) || !rr.whole {
			s = strings.Replace(s, rr.alias+".to_jsonb", "to_jsonb("+rr.alias+".*)", 1)
		}
		rel.cols, rel.rows, rel.key = []scol{{"x", tText, "", false}, {"email", tText, "", false}, {"nps", tNum, "", false}}, 1, []string{}
	default:
		s = fmt.Sprintf("LATERAL (SELECT %s AS x UNION ALL SELECT upper(%s)) AS %s(x)", text(), text(), alias)
		rel.cols, rel.rows = []scol{{"x", tText, "", false}}, 1
	}
	if rr.key == nil {
		rel.key = nil
	}
	sc.rels = append(sc.rels, rel)
	return s
}

// maskedKey returns a grouping key over a masked column, or "".
func (g *smith) maskedKey(sc *sscope, t styp) string {
	c := g.maskedRef(sc, t)
	if c == "" {
		return ""
	}
	switch {
	case g.p(50):
		return c
	case t == tText:
		return g.pick("split_part("+c+", '@', 2)", "("+c+").upper", "left("+c+", 1)")
	default:
		return "round(" + c + ")"
	}
}

// maskedAggregate returns an aggregate over a masked column, whose
// value does not depend on the order of its input, or "".
func (g *smith) maskedAggregate(sc *sscope, t styp) string {
	text, num := g.maskedRef(sc, tText), g.maskedRef(sc, tNum)
	switch t {
	case tNum:
		var fs []string
		if text != "" {
			fs = append(fs, "count(DISTINCT "+text+")", "count("+text+")", "max(("+text+").length)", "count(*) FILTER (WHERE "+text+" LIKE '%@example.fr')")
		}
		if num != "" {
			fs = append(fs, "max("+num+")", "sum("+num+")", "percentile_disc(0.5) WITHIN GROUP (ORDER BY "+num+")", "count(*) FILTER (WHERE "+num+" > 50)")
		}
		if len(fs) > 0 {
			return fs[g.r.Intn(len(fs))]
		}
	case tText:
		if text != "" {
			return g.pick("string_agg("+text+", ',' ORDER BY "+text+")", "max("+text+")", "min(split_part("+text+", '@', 2))", "string_agg(DISTINCT ("+text+").upper, ';')")
		}
	case tArr:
		if text != "" {
			return g.pick("array_agg(DISTINCT "+text+")", "array_agg("+text+" ORDER BY "+text+") FILTER (WHERE "+text+" IS NOT NULL)")
		}
	case tBool:
		if text != "" {
			return g.pick("bool_or("+text+" IS NULL)", "every("+text+" LIKE '%@%')")
		}
	case tJSON:
		if text != "" {
			return "jsonb_agg(DISTINCT " + text + ")"
		}
	}
	return ""
}

// maskedOutput returns a select-list item of an ungrouped query over a
// masked column: a window function partitioned or ordered by it, or a
// set-returning function of it; "" when none fits.
func (g *smith) maskedOutput(sc *sscope, t styp) string {
	text, num := g.maskedRef(sc, tText), g.maskedRef(sc, tNum)
	var fs []string
	switch t {
	case tNum:
		if text != "" {
			fs = append(fs, "count(*) OVER (PARTITION BY "+text+")", "dense_rank() OVER (ORDER BY "+text+")", "rank() OVER (PARTITION BY "+g.expr(sc, tText, 2)+" ORDER BY "+text+" DESC)")
		}
		if num != "" {
			fs = append(fs, "sum("+num+") OVER (PARTITION BY "+g.expr(sc, tText, 2)+")", "count("+num+") OVER ()", "rank() OVER (ORDER BY "+num+" NULLS FIRST)")
		}
	case tText:
		if text != "" {
			fs = append(fs, "unnest(ARRAY["+text+", "+g.expr(sc, tText, 2)+"])", "regexp_split_to_table("+text+", '@')",
				"max("+text+") OVER (PARTITION BY "+g.expr(sc, tText, 2)+")", "first_value("+text+") OVER (PARTITION BY "+g.expr(sc, tNum, 2)+" ORDER BY "+text+")")
		}
	case tArr:
		if text != "" {
			fs = append(fs, "array_agg("+text+") OVER (PARTITION BY "+text+")")
		}
	}
	if len(fs) == 0 {
		return ""
	}
	return fs[g.r.Intn(len(fs))]
}
