package adversarial_test

import (
	"fmt"
	"strings"
)

// The BI families of the diffsmith generator: whole statements of the
// shapes reporting tools write, each aimed at the masked columns
// (contact, email, score) and the row scopes of responses:
//
//   - window functions with frames (ROWS, RANGE with offsets, GROUPS,
//     EXCLUDE), named windows, percent_rank, cume_dist, nth_value;
//   - aggregates with FILTER, ordered-set and hypothetical-set
//     aggregates (percentile_cont, percentile_disc, mode, rank(x) WITHIN
//     GROUP…), string_agg/array_agg/json_agg ordered inside, under GROUP
//     BY ROLLUP/CUBE/GROUPING SETS with GROUPING() of several keys;
//   - DISTINCT ON a masked expression;
//   - set operations (UNION/INTERSECT/EXCEPT [ALL]) between governed
//     relations;
//   - recursive CTEs with SEARCH and CYCLE, over the team tree and over a
//     chain of responses that steps on masked values;
//   - VALUES lists joined to responses on masked columns;
//   - FETCH FIRST … WITH TIES over a partial order, NULLS FIRST/LAST;
//   - scalar subqueries in the select list and correlated EXISTS over
//     responses from teams, countries and surveys;
//   - LIMIT inside subqueries (derived tables, IN, LATERAL top-n).
//
// Each statement's answer does not depend on the plan: ROWS frames,
// lag/lead, ntile, row_number and LIMIT follow a total order (the
// responses id last); RANGE and GROUPS frames, whose frames are whole
// peer groups, take any order; nth_value and first_value read the
// ordering expression itself when the order is partial; mode() returns
// the first of equally frequent values in its sort order; the numerics
// a set operation meets are of one scale.
//
// NOTE: a BI statement is drawn from g.y (biPct percent of statements),
// and written from g.y alone: a seed none enters writes the statement it
// wrote before they came.

// biPct is the share of statements that are BI statements:
// PGVEIL_DIFFSMITH_BI=1 makes every statement one (TestDiffsmith).
var biPct = 12

// biStatement returns a BI statement, or ok false when the seed draws
// none.
func (g *smith) biStatement() (string, bool) {
	if g.y.Intn(100) >= biPct {
		return "", false
	}
	g.r = g.y
	families := []func() string{
		g.biWindow, g.biWindow, g.biAggregates, g.biAggregates, g.biDistinctOn, g.biSetOp,
		g.biRecursive, g.biValues, g.biTies, g.biCorrelated, g.biLimited,
	}
	return families[g.r.Intn(len(families))](), true
}

// biResp returns a reference to responses under a fresh alias, and the
// alias.
func (g *smith) biResp() (string, string) {
	a := g.fresh("r")
	return g.pick("responses", smithSchema+".responses", smithQSchema+`."responses"`, "ONLY responses") + g.pick(" ", " AS ") + a, a
}

// biText returns a text expression of responses row a, often masked.
func (g *smith) biText(a string) string {
	return g.pick(a+".email", a+".contact", a+".email", "split_part("+a+".email, '@', 2)", "lower("+a+".contact)", a+".country", a+".sentiment", a+".branch")
}

// biNum returns a numeric expression of responses row a, often masked.
func (g *smith) biNum(a string) string {
	return g.pick(a+".score", a+".score", a+".nps", "round("+a+".score)", "("+a+".score + "+a+".nps)", "length("+a+".email)")
}

// biWhere returns a WHERE clause over responses row a, or "".
func (g *smith) biWhere(a string) string {
	if g.p(40) {
		return ""
	}
	return "\nWHERE " + g.pick(a+".nps > 5", a+".email LIKE '%.fr'", a+".score > 50", a+".country = 'France'",
		a+".contact IS NOT NULL", a+".team_id IN (3, 4, 6, 9)", a+".score IS NULL", "NOT ("+a+".email ILIKE 'c%')", a+".sentiment <> 'neutral'")
}

// biWindow returns a query of window functions with frames over the
// masked columns.
func (g *smith) biWindow() string {
	from, a := g.biResp()
	var outs []string
	named := g.p(25)
	part := ""
	if g.p(60) {
		part = "PARTITION BY " + g.pick(a+".country", a+".team_id", "split_part("+a+".email, '@', 2)", a+".sentiment", "("+a+".score > 50)") + " "
	}
	for i, n := 0, 1+g.r.Intn(3); i < n; i++ {
		var fn, over string
		switch g.r.Intn(4) {
		case 0:
			// ROWS over a total order.
			ord := g.pick(g.biNum(a), g.biText(a)) + g.pick("", " DESC", " NULLS FIRST", " DESC NULLS LAST") + ", " + a + ".id"
			fn = g.pick("sum("+g.biNum(a)+")", "count("+g.biText(a)+")", "max("+g.biText(a)+")", "first_value("+g.biText(a)+")",
				"last_value("+g.biNum(a)+")", "nth_value("+g.biText(a)+", 2)", "avg("+a+".nps)", "string_agg("+g.biText(a)+", ',')")
			frame := g.pick("ROWS BETWEEN 2 PRECEDING AND CURRENT ROW", "ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING EXCLUDE CURRENT ROW",
				"ROWS BETWEEN 5 PRECEDING AND 5 FOLLOWING EXCLUDE TIES", "ROWS 3 PRECEDING EXCLUDE GROUP", "ROWS BETWEEN CURRENT ROW AND 2 FOLLOWING EXCLUDE NO OTHERS")
			if g.p(25) {
				fn = g.pick("lag("+g.biText(a)+")", "lead("+g.biNum(a)+", 2, -1)", "row_number()", "ntile(4)", "lag("+g.biNum(a)+", 1, 0)")
				frame = ""
			}
			// NOTE: EXCLUDE makes PostgreSQL aggregate each frame anew:
			// no frame spans a whole partition both ways, which
			// string_agg over three thousand rows would make quadratic.
			over = part + "ORDER BY " + ord + " " + frame
		case 1:
			// RANGE with an offset: one numeric ordering column.
			col, off := g.pick(a+".score", a+".nps"), ""
			if strings.HasSuffix(col, "score") {
				off = g.pick("10", "2.5", "0")
			} else {
				off = g.pick("1", "2", "0")
			}
			fn = g.pick("count(*)", "sum("+a+".nps)", "max("+g.biText(a)+")", "avg("+col+")", "min("+col+")", "first_value("+col+")", "last_value("+col+")")
			over = part + "ORDER BY " + col + g.pick("", " DESC", " NULLS FIRST") + " RANGE BETWEEN " + off + " PRECEDING AND " + g.pick(off+" FOLLOWING", "CURRENT ROW", "UNBOUNDED FOLLOWING") +
				g.pick("", " EXCLUDE CURRENT ROW", " EXCLUDE GROUP", " EXCLUDE TIES")
		case 2:
			// GROUPS and RANGE frames of whole peer groups: any order.
			ord := g.pick(g.biNum(a), g.biText(a))
			fn = g.pick("count(*)", "sum("+a+".nps)", "max("+g.biText(a)+")", "min("+g.biNum(a)+")", "count(DISTINCT "+a+".id) FILTER (WHERE "+a+".nps > 5)",
				"first_value("+ord+")", "nth_value("+ord+", 2)", "last_value("+ord+")", "bool_or("+a+".score > 50)")
			if strings.Contains(fn, "DISTINCT") {
				// DISTINCT is not implemented for window functions.
				fn = "count(" + a + ".id) FILTER (WHERE " + a + ".nps > 5)"
			}
			over = part + "ORDER BY " + ord + g.pick("", " DESC NULLS LAST", " NULLS FIRST") + " " +
				g.pick("GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING", "GROUPS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW", "GROUPS 2 PRECEDING",
					"RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW", "RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING") +
				g.pick("", " EXCLUDE CURRENT ROW", " EXCLUDE GROUP", " EXCLUDE TIES", " EXCLUDE NO OTHERS")
		default:
			// Ranks of peers.
			fn = g.pick("rank()", "dense_rank()", "percent_rank()", "cume_dist()")
			over = part + "ORDER BY " + g.pick(g.biNum(a), g.biText(a)) + g.pick("", " DESC", " NULLS FIRST")
		}
		if named && i == 0 {
			// A named window the OVER clause refines.
			over = strings.TrimPrefix(over, part)
			outs = append(outs, fmt.Sprintf("%s OVER (w %s) AS x%d", fn, over, i+1))
			continue
		}
		outs = append(outs, fmt.Sprintf("%s OVER (%s) AS x%d", fn, strings.TrimSpace(over), i+1))
	}
	q := "SELECT " + a + ".id, " + g.pick(g.biText(a)+" AS t, ", "") + strings.Join(outs, ", ") + "\nFROM " + from + g.biWhere(a)
	if named {
		q += "\nWINDOW w AS (" + strings.TrimSpace(part) + ")"
	}
	if g.p(30) {
		// Only the window's values, counted: a smaller answer.
		q = "SELECT count(*), count(DISTINCT d) FROM (" + q + ") AS q(" + g.biCols(q) + ") CROSS JOIN LATERAL (SELECT q.x1::text) AS z(d)"
	}
	return q
}

// biCols names the outputs of a biWindow query.
func (g *smith) biCols(q string) string {
	n := strings.Count(strings.SplitN(q, "\nFROM", 2)[0], " OVER (")
	cols := []string{"id"}
	if strings.Contains(strings.SplitN(q, "\nFROM", 2)[0], " AS t, ") {
		cols = append(cols, "t")
	}
	for i := 1; i <= n; i++ {
		cols = append(cols, fmt.Sprintf("x%d", i))
	}
	return strings.Join(cols, ", ")
}

// biAggregates returns a grouped query of FILTER, ordered-set,
// hypothetical-set and ordered aggregates over the masked columns.
func (g *smith) biAggregates() string {
	from, a := g.biResp()
	if g.p(30) {
		t := g.fresh("t")
		from += " JOIN " + g.pick("teams", smithSchema+".teams") + " AS " + t + " ON " + t + ".id = " + a + ".team_id"
	}
	keyCols := []string{a + ".country", a + ".sentiment", a + ".email", a + ".score", a + ".branch", a + ".contact", a + ".team_id"}
	var keys []string
	for i, n := 0, g.r.Intn(3); i < n; i++ {
		k := keyCols[g.r.Intn(len(keyCols))]
		if !strings.Contains(strings.Join(keys, ","), k) {
			keys = append(keys, k)
		}
	}
	aggs := []string{
		"percentile_cont(0.5) WITHIN GROUP (ORDER BY " + a + ".score)",
		"percentile_cont(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY " + g.biNum(a) + ")",
		"percentile_disc(0.9) WITHIN GROUP (ORDER BY " + g.biNum(a) + " DESC)",
		"percentile_disc(0.5) WITHIN GROUP (ORDER BY " + g.biText(a) + ")",
		"mode() WITHIN GROUP (ORDER BY " + g.biText(a) + ")",
		"mode() WITHIN GROUP (ORDER BY " + g.biNum(a) + ")",
		"rank(" + g.pick("50", "88.5", "0") + ") WITHIN GROUP (ORDER BY " + a + ".score)",
		"dense_rank('m') WITHIN GROUP (ORDER BY " + g.biText(a) + ")",
		"percent_rank(" + g.pick("50", "7") + ") WITHIN GROUP (ORDER BY " + g.biNum(a) + " DESC NULLS LAST)",
		"cume_dist('louis.bernard@example.fr') WITHIN GROUP (ORDER BY " + a + ".email)",
		"count(*) FILTER (WHERE " + a + ".email LIKE '%.fr')",
		"sum(" + a + ".nps) FILTER (WHERE " + a + ".score > " + g.pick("50", "80") + ")",
		"avg(" + g.biNum(a) + ") FILTER (WHERE " + a + ".contact IS NOT NULL)",
		"max(" + g.biText(a) + ") FILTER (WHERE " + a + ".nps >= 9)",
		"string_agg(" + a + ".email, ',' ORDER BY " + a + ".email NULLS FIRST)",
		"string_agg(DISTINCT split_part(" + a + ".email, '@', 2), ';' ORDER BY split_part(" + a + ".email, '@', 2))",
		"array_agg(" + a + ".score ORDER BY " + a + ".score DESC NULLS LAST) FILTER (WHERE " + a + ".nps > 8)",
		"json_agg(" + a + ".contact ORDER BY " + a + ".contact, " + a + ".id)",
		"jsonb_agg(" + a + ".nps ORDER BY " + a + ".score NULLS FIRST, " + a + ".id)",
		"json_agg(DISTINCT " + a + ".score ORDER BY " + a + ".score)",
		"array_agg(" + a + ".id ORDER BY " + a + ".email DESC, " + a + ".id)",
		"count(DISTINCT " + g.biText(a) + ")",
		"json_object_agg(" + a + ".id, " + a + ".email ORDER BY " + a + ".id) FILTER (WHERE " + a + ".id <= 4)",
	}
	var outs []string
	outs = append(outs, keys...)
	for i, n := 0, 1+g.r.Intn(3); i < n; i++ {
		outs = append(outs, aggs[g.r.Intn(len(aggs))]+fmt.Sprintf(" AS a%d", i+1))
	}
	group := ""
	switch {
	case len(keys) == 0:
	case len(keys) == 1:
		group = "\nGROUP BY " + g.pick(keys[0], "ROLLUP ("+keys[0]+")", "CUBE ("+keys[0]+")")
	default:
		group = "\nGROUP BY " + g.pick(keys[0]+", "+keys[1], "ROLLUP ("+keys[0]+", "+keys[1]+")", "CUBE ("+keys[0]+", "+keys[1]+")",
			"GROUPING SETS (("+keys[0]+"), ("+keys[1]+"), ())")
		outs = append(outs, "GROUPING("+keys[0]+", "+keys[1]+") AS g")
	}
	if len(keys) == 1 && strings.Contains(group, "(") {
		outs = append(outs, "GROUPING("+keys[0]+") AS g")
	}
	q := "SELECT " + strings.Join(outs, ", ") + "\nFROM " + from + g.biWhere(a) + group
	if group != "" && g.p(30) {
		q += "\nHAVING " + g.pick("count(*) FILTER (WHERE "+a+".score > 50) > 0", "max("+a+".email) IS NOT NULL", "count(*) > 1", "percentile_cont(0.5) WITHIN GROUP (ORDER BY "+a+".score) > 50")
	}
	return q
}

// biDistinctOn returns DISTINCT ON a masked expression, ordered so that
// each first row is determined.
func (g *smith) biDistinctOn() string {
	from, a := g.biResp()
	on := g.pick(g.biText(a), g.biNum(a), a+".country, "+g.biText(a))
	tie := g.pick(a+".id", a+".score DESC NULLS LAST, "+a+".id", a+".email NULLS FIRST, "+a+".id")
	q := "SELECT DISTINCT ON (" + on + ") " + on + ", " + a + ".id, " + g.pick(a+".email", a+".score", a+".nps") + "\nFROM " + from + g.biWhere(a) +
		"\nORDER BY " + on + ", " + tie
	if g.p(30) {
		q += fmt.Sprintf("\nLIMIT %d", 1+g.r.Intn(5))
	}
	return q
}

// biSetOp returns a set operation between governed relations, counted
// or listed.
func (g *smith) biSetOp() string {
	side := func(t bool) string {
		if g.p(25) {
			tb := g.fresh("t")
			if t {
				return "SELECT " + tb + ".name FROM " + g.pick("teams", "countries", "surveys") + " " + tb
			}
			return "SELECT " + tb + ".id::numeric(8, 2) FROM " + g.pick("teams", "surveys") + " " + tb
		}
		from, a := g.biResp()
		if t {
			return "SELECT " + g.biText(a) + " FROM " + from + strings.ReplaceAll(g.biWhere(a), "\n", " ")
		}
		// NOTE: of one scale: equal numerics of different scales (48,
		// 48.00) meet in a set operation as whichever the plan reads
		// first.
		return "SELECT (" + g.pick(a+".score", a+".nps", "round("+a+".score, 0)") + ")::numeric(8, 2) FROM " + from + strings.ReplaceAll(g.biWhere(a), "\n", " ")
	}
	t := g.p(60)
	op := g.pick("UNION", "UNION ALL", "INTERSECT", "INTERSECT ALL", "EXCEPT", "EXCEPT ALL")
	q := "(" + side(t) + ")\n" + op + "\n(" + side(t) + ")"
	if g.p(30) {
		q += "\n" + op + "\n(" + side(t) + ")"
	}
	if g.p(50) {
		return "SELECT count(*), count(DISTINCT x), min(x), max(x) FROM (" + q + ") AS u(x)"
	}
	return q + g.pick("", "\nORDER BY 1 NULLS FIRST LIMIT 10", "\nORDER BY 1 DESC NULLS LAST FETCH FIRST 3 ROWS WITH TIES")
}

// biRecursive returns a recursive CTE with SEARCH and CYCLE.
func (g *smith) biRecursive() string {
	if g.p(50) {
		search := g.pick("", "\n SEARCH DEPTH FIRST BY id SET ord", "\n SEARCH BREADTH FIRST BY id SET ord")
		cycle := g.pick("", "\n CYCLE id SET is_cycle USING path", "\n CYCLE id SET is_cycle TO true DEFAULT false USING path")
		q := `WITH RECURSIVE tree(id, name, parent_id, depth) AS (SELECT id, name, parent_id, 1 FROM teams WHERE parent_id IS NULL
 UNION ALL SELECT c.id, c.name, c.parent_id, tree.depth + 1 FROM teams c JOIN tree ON c.parent_id = tree.id)` + search + cycle + "\n"
		outs := "tree.id, tree.name, tree.depth"
		if search != "" {
			outs += ", tree.ord"
		}
		if cycle != "" {
			outs += ", tree.is_cycle"
		}
		sel := g.pick(
			"SELECT "+outs+" FROM tree",
			"SELECT tree.id, count(r.id), max(r.score), string_agg(r.email, ',' ORDER BY r.email) FROM tree LEFT JOIN responses r ON r.team_id = tree.id GROUP BY tree.id",
			"SELECT tree.depth, percentile_cont(0.5) WITHIN GROUP (ORDER BY r.score), count(*) FILTER (WHERE r.email IS NOT NULL) FROM tree JOIN responses r ON r.team_id = tree.id GROUP BY ROLLUP (tree.depth)",
		)
		if search != "" && strings.HasPrefix(sel, "SELECT "+outs) {
			sel += "\nORDER BY tree.ord"
		}
		return q + sel
	}
	// A chain of responses that steps on masked values: each step takes
	// the next id whose masked value passes the condition, among the
	// next forty (the native views' scopes are subqueries, which a step
	// over every row would run thousands of times).
	step := g.pick("r2.score > chain.score", "r2.email > chain.email", "r2.contact IS NOT NULL", "coalesce(r2.score, 0) >= coalesce(chain.score, 0)", "r2.nps >= chain.nps")
	cycle := g.pick("", "\n CYCLE id SET is_cycle USING path", "\n SEARCH DEPTH FIRST BY n SET ord")
	q := fmt.Sprintf(`WITH RECURSIVE chain(n, id, nps, email, score) AS (SELECT 1, id, nps, email, score FROM responses WHERE id = (SELECT min(id) FROM responses)
 UNION ALL SELECT chain.n + 1, r.id, r.nps, r.email, r.score FROM chain JOIN responses r ON r.id = (SELECT min(r2.id) FROM responses r2 WHERE r2.id > chain.id AND r2.id <= chain.id + 40 AND %s) WHERE chain.n < %d)%s
`, step, 3+g.r.Intn(8), cycle)
	return q + g.pick("SELECT n, id, nps, email, score FROM chain", "SELECT count(*), max(n), sum(nps), max(score) FROM chain",
		"SELECT chain.n, t.name FROM chain JOIN responses r ON r.id = chain.id JOIN teams t ON t.id = r.team_id")
}

// biValues returns a VALUES list joined to responses on masked columns.
func (g *smith) biValues() string {
	from, a := g.biResp()
	v := g.fresh("v")
	switch g.r.Intn(4) {
	case 0:
		return "SELECT " + v + ".e, count(" + a + ".id), max(" + a + ".nps)\nFROM (VALUES ('camille.martin@example.fr'), ('emily.johnson@example.com'), ('nobody@example.org'), (NULL)) AS " + v + "(e)\n" +
			g.pick("LEFT JOIN ", "JOIN ", "FULL JOIN ") + from + " ON " + a + ".email = " + v + ".e\nGROUP BY " + v + ".e"
	case 1:
		return "SELECT " + v + ".s, " + a + ".id, " + a + ".nps\nFROM (VALUES (88.50), (27.25), (95.0), (55.75)) AS " + v + "(s)\n" +
			g.pick("JOIN ", "LEFT JOIN ") + from + " ON " + a + ".score " + g.pick("=", "<=") + " " + v + ".s AND " + a + ".id <= " + g.pick("4", "40")
	case 2:
		return "SELECT " + a + ".id, " + a + ".country\nFROM " + from + "\nWHERE (" + g.pick(a+".contact", "lower("+a+".contact)") + ", " + a + ".nps) " + g.pick("IN", "NOT IN") +
			" (VALUES ('Camille Martin', 9), ('camille martin', 9), ('Emily Johnson', 10), ('x', NULL))"
	default:
		return "SELECT " + v + ".k, count(*) FILTER (WHERE " + a + ".email LIKE " + v + ".pat), sum(" + a + ".score) FILTER (WHERE " + a + ".email LIKE " + v + ".pat)\nFROM (VALUES (1, '%.fr'), (2, '%.com'), (3, 'c%')) AS " + v + "(k, pat)\nCROSS JOIN " + from + g.biWhere(a) + "\nGROUP BY " + v + ".k"
	}
}

// biTies returns FETCH FIRST … WITH TIES over a partial order on a
// masked or scoped column, or NULLS FIRST/LAST before a total order.
func (g *smith) biTies() string {
	from, a := g.biResp()
	ord := g.pick(a+".score", a+".email", a+".nps", "split_part("+a+".email, '@', 2)", a+".contact") + g.pick(" NULLS FIRST", " DESC NULLS LAST", " DESC", "")
	outs := a + ".id, " + g.pick(a+".nps", a+".email", a+".score", a+".country")
	if g.p(35) {
		return "SELECT " + outs + "\nFROM " + from + g.biWhere(a) + "\nORDER BY " + ord + ", " + a + ".id" + fmt.Sprintf("\nLIMIT %d OFFSET %d", 1+g.r.Intn(10), g.r.Intn(5))
	}
	q := "SELECT " + outs + "\nFROM " + from + g.biWhere(a) + "\nORDER BY " + ord + fmt.Sprintf("\nFETCH FIRST %d ROWS WITH TIES", 1+g.r.Intn(5))
	if g.p(40) {
		return "SELECT count(*), min(id), max(id) FROM (" + q + ") AS q"
	}
	return q
}

// biCorrelated returns a query over a small governed table with scalar
// subqueries in its select list and correlated EXISTS over responses.
func (g *smith) biCorrelated() string {
	o := g.fresh("o")
	var table, link string
	switch g.r.Intn(3) {
	case 0:
		table, link = "teams", "%s.team_id = "+o+".id"
	case 1:
		table, link = "countries", "%s.country = "+o+".name"
	default:
		table, link = "surveys", "%s.survey_id = "+o+".id"
	}
	sub := func() string {
		from, a := g.biResp()
		on := fmt.Sprintf(link, a)
		switch g.r.Intn(5) {
		case 0:
			return "(SELECT " + g.pick("max("+a+".score)", "count("+a+".email)", "min("+a+".contact)", "percentile_cont(0.5) WITHIN GROUP (ORDER BY "+a+".score)", "count(*) FILTER (WHERE "+a+".score > 50)") + " FROM " + from + " WHERE " + on + ")"
		case 1:
			return "(SELECT " + g.pick(a+".email", a+".id", a+".contact") + " FROM " + from + " WHERE " + on + " ORDER BY " + g.pick(a+".score DESC NULLS LAST", a+".email NULLS FIRST", a+".nps") + ", " + a + ".id LIMIT 1)"
		case 2:
			return "ARRAY(SELECT " + a + ".id FROM " + from + " WHERE " + on + " ORDER BY " + g.pick(a+".score", a+".email DESC") + ", " + a + ".id LIMIT 3)"
		default:
			return g.pick("", "NOT ") + "EXISTS (SELECT 1 FROM " + from + " WHERE " + on + " AND " + g.pick(a+".score > 90", a+".email LIKE '%.com'", a+".contact = 'Camille Martin'", a+".score IS NOT NULL", a+".nps = 10") + ")"
		}
	}
	outs := []string{o + ".id"}
	if table == "countries" {
		outs[0] = o + ".code"
	}
	for i, n := 0, 1+g.r.Intn(3); i < n; i++ {
		outs = append(outs, sub()+fmt.Sprintf(" AS s%d", i+1))
	}
	q := "SELECT " + strings.Join(outs, ", ") + "\nFROM " + table + " " + o
	if g.p(50) {
		e := sub()
		if !strings.Contains(e, "EXISTS") {
			e = "(" + e + ") IS NOT NULL"
		}
		q += "\nWHERE " + e
	}
	return q
}

// biLimited returns a query with LIMIT inside a subquery: a derived
// table, an IN list or a LATERAL top-n, each in a total order.
func (g *smith) biLimited() string {
	from, a := g.biResp()
	top := "SELECT " + a + ".id, " + a + ".email, " + a + ".score, " + a + ".team_id FROM " + from + strings.ReplaceAll(g.biWhere(a), "\n", " ") +
		" ORDER BY " + g.pick(a+".score DESC NULLS LAST", a+".email NULLS FIRST", a+".nps DESC", "length("+a+".contact)") + ", " + a + ".id LIMIT " + fmt.Sprint(1+g.r.Intn(20))
	switch g.r.Intn(3) {
	case 0:
		return "SELECT count(*), max(d.score), string_agg(d.email, ',' ORDER BY d.email, d.id), sum(d.id)\nFROM (" + top + ") AS d"
	case 1:
		r2 := g.fresh("r")
		return "SELECT " + r2 + ".id, " + r2 + ".nps\nFROM responses " + r2 + "\nWHERE " + r2 + ".id " + g.pick("IN", "NOT IN") + " (SELECT id FROM (" + top + ") AS d)" + g.pick("", " AND "+r2+".id < 200")
	default:
		t := g.fresh("t")
		from2, b := g.biResp()
		return "SELECT " + t + ".id, l.id, l.email, l.score\nFROM teams " + t + "\nCROSS JOIN LATERAL (SELECT " + b + ".id, " + b + ".email, " + b + ".score FROM " + from2 +
			" WHERE " + b + ".team_id = " + t + ".id ORDER BY " + g.pick(b+".score DESC NULLS LAST", b+".email", b+".contact DESC") + ", " + b + ".id LIMIT 2) AS l"
	}
}
