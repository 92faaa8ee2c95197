package adversarial_test

import (
	"fmt"
	"math/rand"
	"regexp"
	"strings"
)

// smithConst matches a bare constant, which ORDER BY reads as an ordinal.
var smithConst = regexp.MustCompile(`^(-?[0-9.]+|'.*'|\$\$.*\$\$|E'.*'|true|false|NULL)$`)

// The diffsmith generator writes random SELECTs over the demo schema,
// sqlsmith-style, for the generated differential test (diffsmith_test.go).
// A statement is a pure function of its seed, so a mismatch is replayed
// from the seed alone.
//
// It aims at valid statements whose answer does not depend on the plan:
// every LIMIT, OFFSET and FETCH follows an ORDER BY of every output
// column, window functions that need a total order order by the keys of
// every relation in scope, aggregates that concatenate order their input,
// and joins are sized so that no statement reads more than some ten
// thousand rows.
//
// NOTE: a schema-qualified governed table is written with the
// placeholders smithSchema (unquoted) and smithQSchema (quoted schema):
// public through pgveil, native_<login> natively.

const (
	smithSchema  = "\x01S\x01"
	smithQSchema = "\x01Q\x01"
)

// smithKnownDifferences are the differences between pgveil and the
// native views the generator steers clear of, each found by this test and
// left as they are:
//
//   - the whole row of a governed table given column aliases in FROM
//     (surveys AS s(a, b)): PostgreSQL types it as the table's row, whose
//     field names (to_json's keys) are the table's column names; pgveil's
//     scoped subquery is a record named by the aliases;
//   - the whole row of a governed table where PostgreSQL needs its named
//     row type: json_populate_record(r, '{}'), (jsonb_populate_record(r,
//     …)).*, unnest(ARRAY[r]) AS x with x.email fail through pgveil only
//     (42601 "a column definition list is required", 42703, 42809), on
//     every row alike: the scoped subquery's row is an anonymous record.
//     The generator passes a row to a function of a row type only with
//     NULL::responses for the type (json_populate_record(NULL::…, r)).
const smithKnownDifferences = 2

// smithText returns stmt with the schema placeholders replaced by schema.
func smithText(stmt, schema string) string {
	return strings.NewReplacer(smithSchema, schema, smithQSchema, `"`+schema+`"`).Replace(stmt)
}

// styp is the category of an expression's type: values of one category
// unify in set operations, CASE and COALESCE.
type styp int

const (
	tNum styp = iota
	tText
	tBool
	tTs
	tArr
	tJSON
	nTypes
)

// scol is a column of a relation in scope.
type scol struct {
	name string
	typ  styp
	// origin is table.column of the base column it carries, "" for a
	// computed one; uniq reports whether it is unique in its relation.
	origin string
	uniq   bool
}

// srel is a relation in a FROM clause.
type srel struct {
	// alias is the name that qualifies its columns, as written in SQL.
	alias string
	cols  []scol
	// key are expressions identifying a row of the relation; nil when it
	// has none (a derived table without a unique column).
	key []string
	// rows estimates its size; base tells the base table it reads
	// directly ("" otherwise), whole whether alias may name its row.
	rows  int
	base  string
	whole bool
	// renamed reports column aliases on a governed table: its whole row
	// is then left alone (see smithKnownDifferences).
	renamed bool
	// scalar is the type of a function item's value when the function
	// returns a scalar (unnest(…) AS g(x)): g is then that value, which
	// attribute notation (g.upper) reads; scalarOK reports one.
	scalar   styp
	scalarOK bool
}

// sscope is the FROM of one query level, and the levels around it.
type sscope struct {
	rels  []srel
	outer *sscope
}

func (s *sscope) keys() []string {
	var out []string
	for _, r := range s.rels {
		if r.key == nil {
			return nil
		}
		out = append(out, r.key...)
	}
	return out
}

func (s *sscope) rows() int {
	n := 1
	for _, r := range s.rels {
		n *= r.rows
	}
	return n
}

var smithBase = map[string]struct {
	cols []scol
	key  string
	rows int
}{
	"responses": {cols: []scol{
		{"id", tNum, "responses.id", true}, {"survey_id", tNum, "responses.survey_id", false},
		{"contact", tText, "", false}, {"email", tText, "", false}, {"country", tText, "responses.country", false},
		{"branch", tText, "", false}, {"nps", tNum, "", false}, {"score", tNum, "", false},
		{"agent_login", tText, "", false}, {"team_id", tNum, "responses.team_id", false}, {"tags", tArr, "", false},
		{"sentiment", tText, "", false}, {"comment", tText, "", false}, {"submitted_at", tTs, "", false},
	}, key: "id", rows: 3004},
	// The demo's child table: it follows responses on response_id.
	"response_comments": {cols: []scol{
		{"id", tNum, "response_comments.id", true}, {"response_id", tNum, "response_comments.response_id", false},
		{"author", tText, "", false}, {"author_email", tText, "", false}, {"body", tText, "", false},
		{"created_at", tTs, "", false},
	}, key: "id", rows: 460},
	"countries": {cols: []scol{{"code", tText, "countries.code", true}, {"name", tText, "countries.name", true}}, key: "code", rows: 6},
	"teams":     {cols: []scol{{"id", tNum, "teams.id", true}, {"name", tText, "", true}, {"parent_id", tNum, "teams.parent_id", false}}, key: "id", rows: 14},
	"surveys":   {cols: []scol{{"id", tNum, "surveys.id", true}, {"name", tText, "", true}, {"project", tText, "", false}}, key: "id", rows: 6},
}

var smithTableNames = []string{"responses", "responses", "responses", "countries", "teams", "surveys"}

// smithLinks are the equi-join conditions between base columns that keep
// a join no larger than its larger side.
var smithLinks = map[[2]string]bool{
	{"responses.team_id", "teams.id"}:                                  true,
	{"responses.survey_id", "surveys.id"}:                              true,
	{"responses.country", "countries.name"}:                            true,
	{"teams.parent_id", "teams.id"}:                                    true,
	{"responses.id", "responses.id"}:                                   true,
	{"response_comments.response_id", "responses.id"}:                  true,
	{"response_comments.id", "response_comments.id"}:                   true,
	{"response_comments.response_id", "response_comments.response_id"}: true,
	{"teams.id", "teams.id"}:                                           true,
	{"countries.code", "countries.code"}:                               true,
	{"countries.name", "countries.name"}:                               true,
	{"surveys.id", "surveys.id"}:                                       true,
}

// maxRows bounds the estimated size of a FROM clause.
const maxRows = 5000

// smith is the state of one statement's generation.
type smith struct {
	r *rand.Rand
	// used are the relation names taken in the statement, so that no
	// level's name shadows another's (which would move a correlation).
	used map[string]bool
	n    int
	// ctes are the CTE names visible, which shadow base tables.
	ctes []srel
	// depth is the nesting of queries; budget the subqueries left.
	depth, budget int
	// groupBy is the GROUP BY clause groupedOutputs chose.
	groupBy string
	// noOuter keeps columns of enclosing levels out, as in the argument of
	// an aggregate (which would otherwise belong to the enclosing level).
	noOuter bool
	// small keeps responses out of a subquery run once per row of a
	// large enclosing query.
	small bool
	// x draws the widened forms (diffsmith_widen_test.go) apart from r,
	// so that a statement none of them enters stays what it was before
	// they came.
	// NOTE: a widened form swaps x for r while it writes (widen), so that
	// its own draws leave r where it was too.
	x *rand.Rand
	// widening reports that a widened form is being written.
	widening bool
	// y draws the BI statements (diffsmith_bi_test.go) apart from r and
	// x, for the same reason.
	y *rand.Rand
	// z draws the child table's forms (response_comments in place of
	// responses, correlated aggregates of a response's notes) apart from
	// r, x and y, for the same reason.
	z *rand.Rand
}

func newSmith(seed int64) *smith {
	return &smith{r: rand.New(rand.NewSource(seed)), x: rand.New(rand.NewSource(seed ^ 0x5eed20)), y: rand.New(rand.NewSource(seed ^ 0x5eed21)), z: rand.New(rand.NewSource(seed ^ 0x5eed22)), used: map[string]bool{}, budget: 4}
}

func (g *smith) p(pct int) bool          { return g.r.Intn(100) < pct }
func (g *smith) pick(s ...string) string { return s[g.r.Intn(len(s))] }

func (g *smith) fresh(prefix string) string {
	g.n++
	name := fmt.Sprintf("%s%d", prefix, g.n)
	g.used[name] = true
	return name
}

// Statement returns one top-level statement.
func (g *smith) Statement() string {
	if s, ok := g.biStatement(); ok {
		return s
	}
	var b strings.Builder
	if g.p(30) {
		b.WriteString(g.with())
	}
	b.WriteString(g.query(g.topSig(), nil, true))
	return b.String()
}

func (g *smith) topSig() []styp {
	n := 1 + g.r.Intn(4)
	sig := make([]styp, n)
	for i := range sig {
		sig[i] = g.typ()
	}
	return sig
}

func (g *smith) typ() styp {
	switch x := g.r.Intn(20); {
	case x < 8:
		return tNum
	case x < 14:
		return tText
	case x < 16:
		return tBool
	case x < 17:
		return tTs
	case x < 18:
		return tArr
	default:
		return tJSON
	}
}

// with returns a WITH clause and makes its CTEs visible.
func (g *smith) with() string {
	if g.p(15) {
		return g.recursive()
	}
	var parts []string
	for i, n := 0, 1+g.r.Intn(2); i < n; i++ {
		name := g.cteName()
		sig := g.topSig()
		body := g.query(sig, nil, false)
		if g.p(15) && g.depth < 2 {
			// A nested WITH inside the CTE's body.
			g.depth++
			saved := len(g.ctes)
			w := g.with()
			body = w + g.query(sig, nil, false)
			g.ctes = g.ctes[:saved]
			g.depth--
		}
		rel := srel{alias: name, rows: 100, whole: true}
		var names []string
		for j, t := range sig {
			c := fmt.Sprintf("c%d", j+1)
			names = append(names, c)
			rel.cols = append(rel.cols, scol{name: c, typ: t})
		}
		mat := g.pick("", "", "MATERIALIZED ", "NOT MATERIALIZED ")
		parts = append(parts, fmt.Sprintf("%s(%s) AS %s(%s)", name, strings.Join(names, ", "), mat, body))
		g.ctes = append(g.ctes, rel)
	}
	return "WITH " + strings.Join(parts, ", ") + "\n"
}

// cteName returns a CTE name, often one that shadows a governed table.
func (g *smith) cteName() string {
	for _, n := range []string{"responses", "teams", "countries", "surveys"} {
		if g.p(12) && !g.used[n] {
			g.used[n] = true
			return n
		}
	}
	return g.fresh("w")
}

// recursive returns a WITH RECURSIVE clause over the team tree or the
// responses.
func (g *smith) recursive() string {
	name := g.fresh("rec")
	var body string
	var rel srel
	if g.p(60) {
		body = fmt.Sprintf(`%[1]s(id, name, depth, path) AS (SELECT id, name, 1, ARRAY[name] FROM teams WHERE parent_id IS NULL
 UNION ALL SELECT t.id, t.name, %[1]s.depth + 1, %[1]s.path || t.name FROM teams t JOIN %[1]s ON t.parent_id = %[1]s.id)`, name)
		rel = srel{alias: name, rows: 14, whole: true, key: []string{name + ".id"}, cols: []scol{
			{"id", tNum, "teams.id", true}, {"name", tText, "", true}, {"depth", tNum, "", false}, {"path", tArr, "", false}}}
	} else {
		body = fmt.Sprintf(`%[1]s(n, id, nps, country) AS (SELECT 1, id, nps, country FROM responses WHERE id = (SELECT min(id) FROM responses)
 UNION ALL SELECT %[1]s.n + 1, r.id, r.nps, r.country FROM %[1]s JOIN responses r ON r.id = (SELECT min(r2.id) FROM responses r2 WHERE r2.id > %[1]s.id) WHERE %[1]s.n < %[2]d)`,
			name, 2+g.r.Intn(10))
		rel = srel{alias: name, rows: 12, whole: true, key: []string{name + ".n"}, cols: []scol{
			{"n", tNum, "", true}, {"id", tNum, "responses.id", true}, {"nps", tNum, "", false}, {"country", tText, "responses.country", false}}}
	}
	g.ctes = append(g.ctes, rel)
	return "WITH RECURSIVE " + body + "\n"
}

// query returns a query with outputs of the types of sig: a SELECT or a
// set operation. top queries may end in ORDER BY and LIMIT.
func (g *smith) query(sig []styp, outer *sscope, top bool) string {
	if g.p(15) && g.budget > 1 {
		g.budget--
		op := g.pick("UNION", "UNION ALL", "INTERSECT", "EXCEPT", "UNION", "INTERSECT ALL", "EXCEPT ALL")
		l := g.sel(sig, outer, false)
		r := g.sel(sig, outer, false)
		if g.p(50) || strings.Contains(l+r, "\nORDER BY") {
			l, r = "("+l+")", "("+r+")"
		}
		q := l + "\n" + op + "\n" + r
		if g.p(40) {
			q += "\n" + g.orderAll(len(sig)) + g.limit()
		}
		return q
	}
	return g.sel(sig, outer, top)
}

// orderAll orders by every output column, which makes any LIMIT
// deterministic as a multiset.
func (g *smith) orderAll(n int) string {
	var parts []string
	for i := 1; i <= n; i++ {
		parts = append(parts, fmt.Sprintf("%d%s", i, g.pick("", "", " DESC", " NULLS FIRST", " DESC NULLS LAST")))
	}
	return "ORDER BY " + strings.Join(parts, ", ")
}

func (g *smith) limit() string {
	switch g.r.Intn(6) {
	case 0:
		return fmt.Sprintf(" LIMIT %d", 1+g.r.Intn(20))
	case 1:
		return fmt.Sprintf(" LIMIT %d OFFSET %d", 1+g.r.Intn(20), g.r.Intn(10))
	case 2:
		return fmt.Sprintf(" OFFSET %d ROWS FETCH FIRST %d ROWS ONLY", g.r.Intn(5), 1+g.r.Intn(10))
	case 3:
		return fmt.Sprintf(" FETCH NEXT %d ROWS WITH TIES", 1+g.r.Intn(10))
	default:
		return ""
	}
}

// sel returns a SELECT with outputs of the types of sig.
func (g *smith) sel(sig []styp, outer *sscope, top bool) string {
	g.depth++
	defer func() { g.depth-- }()
	if g.p(4) {
		return g.values(sig)
	}
	sc := &sscope{outer: outer}
	from := g.from(sc)
	var b strings.Builder
	grouped := g.p(35)
	var outs []string
	distinctOn := ""
	groupBy := ""
	if grouped {
		outs = g.groupedOutputs(sc, sig)
		groupBy = g.groupBy
	} else {
		for _, t := range sig {
			outs = append(outs, g.output(sc, t, top))
		}
	}
	b.WriteString("SELECT ")
	if !grouped && g.p(8) {
		b.WriteString("DISTINCT ")
	} else if !grouped && g.p(6) {
		distinctOn = "1"
		if len(sig) > 1 && g.p(50) {
			distinctOn = "1, 2"
		}
		b.WriteString("DISTINCT ON (" + distinctOn + ") ")
	}
	var cols []string
	for i, o := range outs {
		if !top || g.p(70) {
			o += " AS " + g.outName(i)
		}
		cols = append(cols, o)
	}
	if top && g.p(8) && !grouped && distinctOn == "" {
		// A star: all of one relation, or all of them.
		r := sc.rels[g.r.Intn(len(sc.rels))]
		star := g.pick("*", r.alias+".*")
		if star == "*" && len(sc.rels) == 1 && g.p(50) {
			cols = []string{"*"}
		} else {
			cols = append(cols, star)
		}
	}
	b.WriteString(strings.Join(cols, ", "))
	b.WriteString("\nFROM " + from)
	if g.p(60) {
		b.WriteString("\nWHERE " + g.bool(sc, 0))
	}
	if grouped {
		b.WriteString(groupBy)
		if g.p(25) {
			b.WriteString("\nHAVING " + g.aggBool(sc))
		}
	}
	limited := false
	if distinctOn != "" || (top || g.p(20)) && g.p(50) {
		// Every output column, as ordinals, behind DISTINCT ON's.
		if distinctOn != "" {
			b.WriteString("\nORDER BY " + distinctOn)
			for i := strings.Count(distinctOn, ",") + 2; i <= len(outs); i++ {
				fmt.Fprintf(&b, ", %d", i)
			}
		} else if len(cols) == len(outs) && g.p(30) {
			b.WriteString("\n" + g.orderExprs(outs))
		} else if len(cols) == len(outs) {
			b.WriteString("\n" + g.orderAll(len(outs)))
		} else {
			b.WriteString("\n" + g.orderAll(len(outs)))
			if k := sc.keys(); k != nil && !grouped {
				b.WriteString(", " + strings.Join(k, ", "))
			} else {
				return b.String()
			}
		}
		limited = true
	}
	if limited {
		b.WriteString(g.limit())
	}
	return b.String()
}

// orderExprs orders by the output expressions themselves (or their
// aliases' ordinals), which a rewrite must keep pointing at the same
// columns.
func (g *smith) orderExprs(outs []string) string {
	var parts []string
	for i, o := range outs {
		// A bare name may be an output's name too: ORDER BY would read it
		// as that (or as ambiguous).
		bare := !strings.ContainsAny(o, ".(")
		if strings.Contains(o, "(SELECT") || strings.Contains(o, " OVER ") || g.p(30) || smithConst.MatchString(o) || bare {
			parts = append(parts, fmt.Sprint(i+1))
		} else {
			parts = append(parts, o)
		}
	}
	return "ORDER BY " + strings.Join(parts, ", ")
}

func (g *smith) outName(i int) string {
	if g.p(10) {
		// A name shadowing a column, or a quoted one.
		n := g.pick("nps", "country", "id", "Name", "c x", "contact") + fmt.Sprint(i+1)
		if n != strings.ToLower(n) || strings.Contains(n, " ") {
			return `"` + n + `"`
		}
		return n
	}
	return fmt.Sprintf("c%d", i+1)
}

// values returns a VALUES list of sig's types.
func (g *smith) values(sig []styp) string {
	var rows []string
	for i, n := 0, 1+g.r.Intn(3); i < n; i++ {
		var vals []string
		for _, t := range sig {
			vals = append(vals, g.literal(t))
		}
		rows = append(rows, "("+strings.Join(vals, ", ")+")")
	}
	return "VALUES " + strings.Join(rows, ", ")
}

// from returns a FROM clause and fills sc with its relations.
func (g *smith) from(sc *sscope) string {
	s := g.fromItem(sc, false)
	for i, n := 0, g.r.Intn(3); i < n; i++ {
		s = g.join(sc, s, i == n-1)
	}
	return s
}

// join joins one more item to the FROM clause so far; a comma, whose
// right side no later ON may see past, only when it is the last.
func (g *smith) join(sc *sscope, left string, last bool) string {
	before := len(sc.rels)
	leftRows := sc.rows()
	item := g.fromItem(sc, g.p(20))
	if len(sc.rels) != before+1 {
		return left
	}
	right := sc.rels[before]
	// A lateral subquery or a function may read the relations before it,
	// which only an inner or left join allows.
	lateral := strings.HasPrefix(item, "LATERAL ") || !strings.HasPrefix(item, "(") && strings.Contains(strings.SplitN(item, " ", 2)[0], "(") || strings.HasPrefix(item, "ROWS FROM")
	type link struct {
		l, r scol
		lrel srel
	}
	var links []link
	for _, lr := range sc.rels[:before] {
		for _, lc := range lr.cols {
			for _, rc := range right.cols {
				if lc.origin != "" && rc.origin != "" && (smithLinks[[2]string{lc.origin, rc.origin}] || smithLinks[[2]string{rc.origin, lc.origin}]) && (lc.uniq || rc.uniq) {
					links = append(links, link{lc, rc, lr})
				}
			}
		}
	}
	rows := leftRows * right.rows
	var l *link
	if len(links) > 0 && g.p(85) {
		l = &links[g.r.Intn(len(links))]
		switch {
		case l.r.uniq:
			rows = leftRows
		case l.l.uniq:
			rows = right.rows * 3
		}
	}
	if rows > maxRows {
		sc.rels = sc.rels[:before]
		return left
	}
	sc.rels[before].rows = max(1, rows/max(1, leftRows))
	var kind string
	switch {
	case lateral:
		kind = g.pick("JOIN", "LEFT JOIN", "CROSS JOIN", "INNER JOIN")
		if last && g.p(25) {
			kind = ","
		}
		if !strings.HasPrefix(item, "LATERAL ") && g.p(30) {
			item = "LATERAL " + item
		}
	case l != nil:
		kind = g.pick("JOIN", "INNER JOIN", "LEFT JOIN", "LEFT OUTER JOIN", "RIGHT JOIN", "FULL JOIN", "FULL OUTER JOIN")
	default:
		kind = g.pick("JOIN", "INNER JOIN", "LEFT JOIN", "RIGHT JOIN", "CROSS JOIN")
		if last && g.p(30) {
			kind = ","
		}
	}
	if kind == "," {
		return left + g.pick(" ", "") + ", " + item
	}
	if kind == "CROSS JOIN" {
		return left + " " + kind + " " + item
	}
	if l == nil {
		if lateral && g.p(50) {
			return left + " " + kind + " " + item + " ON true"
		}
		return left + " " + kind + " " + item + " ON " + g.bool(sc, 1)
	}
	if l.l.name == l.r.name && !lateral && g.p(40) && g.nameOnceLeft(sc, before, l.l.name) {
		if g.p(50) && g.onlyCommon(sc, before, l.l.name) {
			return left + " NATURAL " + kind + " " + item
		}
		return left + " " + kind + " " + item + " USING (" + l.l.name + ")"
	}
	cond := g.colRef(sc, l.lrel, l.l) + " = " + g.colRef(sc, right, l.r)
	if g.p(20) && !strings.HasPrefix(kind, "FULL") {
		cond += " AND " + g.bool(sc, 1)
	}
	return left + " " + kind + " " + item + " ON " + cond
}

// nameOnceLeft reports whether name is a column of exactly one relation
// before index before.
func (g *smith) nameOnceLeft(sc *sscope, before int, name string) bool {
	n := 0
	for _, r := range sc.rels[:before] {
		for _, c := range r.cols {
			if c.name == name {
				n++
			}
		}
	}
	return n == 1
}

// onlyCommon reports whether name is the only column name the new
// relation shares with those before it.
func (g *smith) onlyCommon(sc *sscope, before int, name string) bool {
	right := sc.rels[len(sc.rels)-1]
	for _, rc := range right.cols {
		for _, r := range sc.rels[:before] {
			for _, c := range r.cols {
				if c.name == rc.name && c.name != name {
					return false
				}
			}
		}
	}
	return true
}

// fromItem returns one FROM item and appends its relation to sc.
func (g *smith) fromItem(sc *sscope, lateral bool) string {
	if s, ok := g.widen(10, func() string { return g.fieldFunc(sc) }); ok {
		return s
	}
	x := g.r.Intn(100)
	switch {
	case x < 8 && len(sc.rels) > 0 && g.hasBase(sc, "responses"):
		return g.tableFunc(sc)
	case x < 14 && len(g.ctes) > 0:
		c := g.ctes[g.r.Intn(len(g.ctes))]
		for _, r := range sc.rels {
			if r.alias == c.alias {
				return g.table(sc)
			}
		}
		rel := c
		s := c.alias
		if g.p(40) || g.usedAbove(sc, c.alias) {
			rel.alias = g.fresh("cte")
			s += " AS " + rel.alias
			rel.key = renameKey(c.key, c.alias, rel.alias)
		}
		sc.rels = append(sc.rels, rel)
		return s
	case x < 24 && g.budget > 0:
		return g.derived(sc, lateral)
	case x < 27:
		return g.valuesItem(sc)
	default:
		return g.table(sc)
	}
}

func renameKey(key []string, from, to string) []string {
	if key == nil {
		return nil
	}
	out := make([]string, len(key))
	for i, k := range key {
		out[i] = to + strings.TrimPrefix(k, from)
	}
	return out
}

// usedAbove reports whether alias names a relation of an enclosing level.
func (g *smith) usedAbove(sc *sscope, alias string) bool {
	for s := sc.outer; s != nil; s = s.outer {
		for _, r := range s.rels {
			if r.alias == alias {
				return true
			}
		}
	}
	return false
}

func (g *smith) hasBase(sc *sscope, table string) bool {
	for _, r := range sc.rels {
		if r.base == table {
			return true
		}
	}
	return false
}

func (g *smith) shadowed(name string) bool {
	for _, c := range g.ctes {
		if c.alias == name {
			return true
		}
	}
	return false
}

// table returns a governed table, named in one of the ways SQL allows.
func (g *smith) table(sc *sscope) string {
	name := smithTableNames[g.r.Intn(len(smithTableNames))]
	if name == "responses" && g.z.Intn(100) < 25 {
		name = "response_comments"
	}
	// A child joined to its parent (or the parent to its child) stays
	// small when join links them; join drops it when it does not.
	linked := name == "response_comments" && g.hasBase(sc, "responses") || name == "responses" && g.hasBase(sc, "response_comments")
	if g.small || sc.rows()*smithBase[name].rows > maxRows && !(linked && sc.rows() <= maxRows) {
		name = g.pick("countries", "teams", "surveys")
	}
	def := smithBase[name]
	rel := srel{base: name, rows: def.rows, whole: true}
	rel.cols = append(rel.cols, def.cols...)
	var s string
	switch x := g.r.Intn(20); {
	case g.shadowed(name) || x < 3:
		s = g.pick(smithSchema+"."+name, smithQSchema+`."`+name+`"`, smithSchema+"."+strings.ToUpper(name))
	case x < 4:
		s = `"` + name + `"`
	case x < 5:
		s = strings.ToUpper(name[:1]) + name[1:]
	case x < 6:
		s = "ONLY " + name
	default:
		s = name
	}
	alias := name
	switch x := g.r.Intn(20); {
	case g.used[name] || x < 12:
		alias = g.fresh(name[:2])
		s += g.pick(" ", " AS ") + alias
	case x < 14 && !g.used["country"]:
		alias = "country"
		g.used[alias] = true
		s += " AS country"
	case x < 16:
		// A governed table's name as the alias of another.
		for _, other := range []string{"teams", "responses", "surveys", "countries"} {
			if other != name && !g.used[other] && !g.shadowed(other) {
				alias = other
				break
			}
		}
		if alias == name {
			alias = g.fresh(name[:2])
		}
		g.used[alias] = true
		s += " AS " + alias
	case x < 17:
		alias = g.fresh("Q")
		alias = `"` + alias + ` x"`
		s += " AS " + alias
	default:
		g.used[name] = true
	}
	if g.p(20) {
		// Column aliases: rename the first few columns, to names no other
		// column of the table has.
		k := 1 + g.r.Intn(len(rel.cols))
		if k > 4 {
			k = 4
		}
		var names []string
		for i := 0; i < k; i++ {
			n := rel.cols[i].name
			if g.p(70) {
				n = g.renamed(rel.cols, rel.cols[i].name)
			}
			names = append(names, n)
			rel.cols[i].name = n
		}
		if alias == name && !strings.HasPrefix(s, "ONLY") {
			alias = g.fresh(name[:2])
			s += " AS " + alias
		} else if alias == name {
			alias = g.fresh(name[:2])
			s += " " + alias
		}
		s += "(" + strings.Join(names, ", ") + ")"
		rel.renamed = true
	}
	rel.alias = alias
	for _, c := range rel.cols {
		if c.origin == name+"."+def.key {
			rel.key = []string{alias + "." + c.name}
		}
	}
	sc.rels = append(sc.rels, rel)
	return s
}

// renamed returns a new name for a column, distinct from every name of
// cols: sometimes the name of a column of another table.
func (g *smith) renamed(cols []scol, old string) string {
	for _, n := range []string{g.pick("team_id", "survey_id", "code", "parent_id", "label", "score", "name"), old + "_x", g.fresh("col")} {
		ok := true
		for _, c := range cols {
			if c.name == n {
				ok = false
			}
		}
		if ok {
			return n
		}
	}
	return g.fresh("col")
}

// derived returns a subquery in FROM.
func (g *smith) derived(sc *sscope, lateral bool) string {
	g.budget--
	sig := g.topSig()
	var outer *sscope
	if lateral {
		outer = &sscope{rels: append([]srel(nil), sc.rels...), outer: sc.outer}
		defer g.smallFor(sc)()
	} else {
		outer = sc.outer
	}
	q := g.query(sig, outer, false)
	alias := g.fresh("d")
	rel := srel{alias: alias, rows: 60, whole: true}
	var names []string
	for i, t := range sig {
		n := fmt.Sprintf("c%d", i+1)
		names = append(names, n)
		rel.cols = append(rel.cols, scol{name: n, typ: t})
	}
	// The outputs may have names of their own (sel's shadowing ones):
	// the column aliases name them c1….
	// NOTE: the draw below decided nothing since; it stays so that each
	// seed keeps the statement the long runs reported.
	_ = g.p(50)
	s := "(" + q + ") AS " + alias + "(" + strings.Join(names, ", ") + ")"
	if lateral {
		s = "LATERAL " + s
	}
	sc.rels = append(sc.rels, rel)
	return s
}

// valuesItem returns a VALUES list in FROM.
func (g *smith) valuesItem(sc *sscope) string {
	alias := g.fresh("v")
	rel := srel{alias: alias, rows: 3, whole: true, key: []string{alias + ".n"}}
	rel.cols = []scol{{"n", tNum, "", true}, {"label", tText, "", false}}
	var rows []string
	for i := 1; i <= 3; i++ {
		rows = append(rows, fmt.Sprintf("(%d, %s)", i, g.literal(tText)))
	}
	sc.rels = append(sc.rels, rel)
	return "(VALUES " + strings.Join(rows, ", ") + ") AS " + alias + "(n, label)"
}

// tableFunc returns a set-returning function over a responses relation in
// scope, or a constant one.
func (g *smith) tableFunc(sc *sscope) string {
	var rr srel
	for _, r := range sc.rels {
		if r.base == "responses" {
			rr = r
		}
	}
	col := func(name string) string {
		for _, c := range rr.cols {
			if c.origin == "responses."+name || (c.origin == "" && c.name == name) {
				return rr.alias + "." + c.name
			}
		}
		return "NULL"
	}
	alias := g.fresh("f")
	var s string
	var rel srel
	x := g.r.Intn(5)
	if x == 1 && rr.renamed {
		x = 2
	}
	switch x {
	case 0:
		s = fmt.Sprintf("unnest(%s) WITH ORDINALITY AS %s(tag, ord)", col("tags"), alias)
		rel = srel{cols: []scol{{"tag", tText, "", false}, {"ord", tNum, "", false}}, rows: 3, key: []string{alias + ".ord"}}
	case 1:
		s = fmt.Sprintf("jsonb_each_text(to_jsonb(%s)) AS %s(k, v)", g.whole(sc, rr), alias)
		rel = srel{cols: []scol{{"k", tText, "", false}, {"v", tText, "", false}}, rows: 14, key: []string{alias + ".k"}}
	case 2:
		s = fmt.Sprintf("generate_series(1, %d) AS %s(n)", 1+g.r.Intn(3), alias)
		rel = srel{cols: []scol{{"n", tNum, "", true}}, rows: 3, key: []string{alias + ".n"}}
	case 3:
		s = fmt.Sprintf("ROWS FROM (unnest(%s), generate_series(1, 2)) AS %s(tag, n)", col("tags"), alias)
		rel = srel{cols: []scol{{"tag", tText, "", false}, {"n", tNum, "", false}}, rows: 3, key: []string{alias + ".n"}}
	default:
		s = fmt.Sprintf("regexp_split_to_table(%s, '@') WITH ORDINALITY AS %s(part, pos)", col("email"), alias)
		rel = srel{cols: []scol{{"part", tText, "", false}, {"pos", tNum, "", false}}, rows: 2, key: []string{alias + ".pos"}}
	}
	if rr.key == nil {
		rel.key = nil
	}
	rel.alias = alias
	rel.whole = true
	sc.rels = append(sc.rels, rel)
	return s
}

// whole returns a whole-row reference to r.
func (g *smith) whole(sc *sscope, r srel) string {
	if g.p(40) || g.isColumnName(sc, r.alias) {
		return r.alias + ".*"
	}
	return r.alias
}

func (g *smith) isColumnName(sc *sscope, name string) bool {
	for s := sc; s != nil; s = s.outer {
		for _, r := range s.rels {
			for _, c := range r.cols {
				if c.name == name || `"`+c.name+`"` == name {
					return true
				}
			}
		}
	}
	return false
}

// colRef returns a reference to column c of r, unqualified when that is
// unambiguous.
func (g *smith) colRef(sc *sscope, r srel, c scol) string {
	// Unqualified only if the innermost level with a column of that name
	// is r's, and holds it once.
	for s := sc; s != nil; s = s.outer {
		n := 0
		mine := false
		for _, o := range s.rels {
			for _, oc := range o.cols {
				if oc.name == c.name {
					n++
					if o.alias == r.alias {
						mine = true
					}
				}
			}
		}
		if n > 0 {
			if n == 1 && mine && g.p(50) {
				if g.p(10) {
					return `"` + c.name + `"`
				}
				return c.name
			}
			break
		}
	}
	if g.p(8) && r.whole && !r.renamed && !g.isColumnName(sc, r.alias) {
		return "(" + r.alias + ")." + c.name
	}
	if g.p(5) {
		return r.alias + `."` + c.name + `"`
	}
	return r.alias + "." + c.name
}

// column returns a column of type t in scope (of an enclosing level
// sometimes), or "" if there is none.
func (g *smith) column(sc *sscope, t styp) string {
	levels := []*sscope{sc}
	if g.p(25) && !g.noOuter {
		for s := sc.outer; s != nil; s = s.outer {
			levels = append(levels, s)
		}
	}
	type cand struct {
		r srel
		c scol
	}
	var cands []cand
	for _, s := range levels {
		for _, r := range s.rels {
			for _, c := range r.cols {
				if c.typ == t {
					cands = append(cands, cand{r, c})
				}
			}
		}
	}
	if len(cands) == 0 {
		return ""
	}
	c := cands[g.r.Intn(len(cands))]
	return g.colRef(sc, c.r, c.c)
}

func (g *smith) wholeRow(sc *sscope) string {
	var rels []srel
	for _, r := range sc.rels {
		if r.whole && !r.renamed {
			rels = append(rels, r)
		}
	}
	if len(rels) == 0 {
		return ""
	}
	return g.whole(sc, rels[g.r.Intn(len(rels))])
}

var smithTexts = []string{"'France'", "'Paris'", "'USA'", "'positive'", "'negative'", "'tom'", "'Banking App'", "'Price'", "'a'", "'%e%'", "'x'", "'O''Brien'", "$$Lyon$$", "E'New\\x20York'", "'Desserts'", "'FR'", "'example.com'"}

func (g *smith) literal(t styp) string {
	switch t {
	case tNum:
		return g.pick("0", "1", "3", "5", "7", "9", "10", "100", "2.5", "-1", "42")
	case tText:
		return smithTexts[g.r.Intn(len(smithTexts))]
	case tBool:
		return g.pick("true", "false", "NULL::boolean")
	case tTs:
		return g.pick("timestamptz '2025-06-01 00:00:00+00'", "'2026-01-15T12:00:00Z'::timestamptz", "'2025-01-01'::date::timestamptz")
	case tArr:
		return g.pick("ARRAY['Price', 'Delivery']", "'{Quality,Staff}'::text[]", "ARRAY[]::text[]", "ARRAY['Banking App']")
	default:
		return g.pick(`'{"a": 1}'::jsonb`, `jsonb_build_object('k', 1)`, `'[1, 2]'::jsonb`, `'null'::jsonb`)
	}
}

// expr returns a row-level expression of type t; d is the nesting.
func (g *smith) expr(sc *sscope, t styp, d int) string {
	if s, ok := g.widen(g.attrPct(sc), func() string { return g.attrForm(sc, t) }); ok {
		return s
	}
	if g.z.Intn(100) < 4 && g.budget > 0 {
		if s := g.childAgg(sc, t); s != "" {
			return s
		}
	}
	if d > 2 || g.p(35+15*d) {
		if c := g.column(sc, t); c != "" && g.p(85) {
			return c
		}
		return g.literal(t)
	}
	if g.p(6) && g.budget > 0 && g.depth < 4 {
		return g.scalarSub(sc, t)
	}
	e := func(t styp) string { return g.expr(sc, t, d+1) }
	switch t {
	case tNum:
		switch g.r.Intn(16) {
		case 0:
			return "(" + e(tNum) + g.pick(" + ", " - ", " * ") + e(tNum) + ")"
		case 1:
			return "length(" + e(tText) + ")"
		case 2:
			return "coalesce(" + e(tNum) + ", " + e(tNum) + ")"
		case 3:
			return "greatest(" + e(tNum) + ", " + e(tNum) + ")"
		case 4:
			return "nullif(" + e(tNum) + ", " + g.literal(tNum) + ")"
		case 5:
			return "CASE WHEN " + g.bool(sc, d+1) + " THEN " + e(tNum) + " ELSE " + e(tNum) + " END"
		case 6:
			return "cardinality(" + e(tArr) + ")"
		case 7:
			return "extract(month FROM " + e(tTs) + ")"
		case 8:
			return "abs(" + e(tNum) + ")"
		case 9:
			return "position(" + g.literal(tText) + " IN " + e(tText) + ")"
		case 10:
			return "char_length(" + e(tText) + ")"
		case 11:
			if g.p(15) {
				// Fails on some rows: errors must match too.
				return "100 / (" + e(tNum) + " - 5)"
			}
			return "least(" + e(tNum) + ", " + e(tNum) + ")"
		case 12:
			return "((" + e(tJSON) + ") ->> 'nps')::int"
		case 13:
			// An integer: equal numerics of different scales (4.0, 4)
			// collapse under DISTINCT into whichever the plan meets first.
			return "round(" + e(tNum) + ")::int"
		case 14:
			return "CAST(" + e(tBool) + " AS int)"
		default:
			return "array_length(" + e(tArr) + ", 1)"
		}
	case tText:
		switch g.r.Intn(23) {
		case 0:
			return "upper(" + e(tText) + ")"
		case 1:
			return "(" + e(tText) + " || " + e(tText) + ")"
		case 2:
			return "substr(" + e(tText) + ", 1, 3)"
		case 3:
			return "coalesce(" + e(tText) + ", " + e(tText) + ")"
		case 4:
			return "regexp_replace(" + e(tText) + ", '[aeiou]', '*', 'g')"
		case 5:
			return "(" + e(tNum) + ")::text"
		case 6:
			if w := g.wholeRow(sc); w != "" {
				return g.pick(w+"::text", "CAST("+w+" AS text)", "row_to_json("+w+")::text", "to_json("+w+")::text")
			}
			return g.literal(t)
		case 7:
			return "(" + e(tArr) + ")[1]"
		case 8:
			return "array_to_string(" + e(tArr) + ", ',')"
		case 9:
			return "split_part(" + e(tText) + ", '@', 2)"
		case 10:
			return "format('%s/%s', " + e(tText) + ", " + e(tNum) + ")"
		case 11:
			return "((" + e(tJSON) + ") ->> " + g.pick("'contact'", "'email'", "'country'", "'score'", "'k'") + ")"
		case 12:
			return "concat_ws('-', " + e(tText) + ", " + e(tText) + ")"
		case 13:
			return "nullif(" + e(tText) + ", " + g.literal(tText) + ")"
		case 14:
			return "(regexp_match(" + e(tText) + ", '([a-z]+)@'))[1]"
		case 15:
			return "CASE " + e(tText) + " WHEN " + g.literal(tText) + " THEN " + e(tText) + " ELSE " + e(tText) + " END"
		case 16:
			return "left(" + e(tText) + ", 2)"
		case 17:
			return "md5(" + e(tText) + ")"
		case 18:
			return "(" + e(tTs) + ")::date::text"
		case 19:
			// A COLLATE, which names an output column after what it is
			// over, and an operator under one: the deparse wraps such
			// operands where the deparser drops their parentheses
			// (parenthesizeOperands).
			return "((" + e(tText) + ") COLLATE \"C\")"
		case 20:
			return "((" + e(tText) + " || " + e(tText) + ") COLLATE \"C\")"
		case 21:
			return "CASE WHEN " + g.bool(sc, d+1) + " THEN " + e(tText) + " ELSE (" + e(tText) + ") COLLATE \"C\" END"
		default:
			return "lower(" + e(tText) + ")::varchar(6)::text"
		}
	case tBool:
		return g.bool(sc, d+1)
	case tTs:
		switch g.r.Intn(3) {
		case 0:
			return "date_trunc('month', " + e(tTs) + ")"
		case 1:
			return "(" + e(tTs) + " + interval '1 day')"
		default:
			return e(tTs)
		}
	case tArr:
		switch g.r.Intn(5) {
		case 0:
			return "ARRAY[" + e(tText) + ", " + e(tText) + "]"
		case 1:
			return "array_append(" + e(tArr) + ", " + e(tText) + ")"
		case 2:
			if g.budget > 0 && g.depth < 4 {
				return g.arraySub(sc)
			}
			return e(tArr)
		case 3:
			return "(" + e(tArr) + " || " + e(tArr) + ")"
		default:
			return "regexp_split_to_array(" + e(tText) + ", '@')"
		}
	default:
		switch g.r.Intn(6) {
		case 0, 1:
			if w := g.wholeRow(sc); w != "" {
				return g.pick("to_jsonb("+w+")", "row_to_json("+w+")::jsonb", "to_jsonb("+w+") - 'comment'", "jsonb_strip_nulls(to_jsonb("+w+"))")
			}
			return g.literal(t)
		case 2:
			return "jsonb_build_object('a', " + e(tNum) + ", 'b', " + e(tText) + ")"
		case 3:
			return "to_jsonb(ROW(" + e(tNum) + ", " + e(tText) + "))"
		case 4:
			return "to_jsonb(" + e(tArr) + ")"
		default:
			return "to_jsonb((" + e(tText) + ")::text)"
		}
	}
}

// bool returns a row-level condition.
func (g *smith) bool(sc *sscope, d int) string {
	if d > 3 {
		return g.cmp(sc, d)
	}
	switch g.r.Intn(24) {
	case 0, 1:
		return "(" + g.bool(sc, d+1) + g.pick(" AND ", " OR ") + g.bool(sc, d+1) + ")"
	case 2:
		return "NOT " + g.bool(sc, d+1)
	case 3:
		if g.budget > 0 && g.depth < 4 {
			return g.pick("", "NOT ") + "EXISTS (" + g.subquery(sc, []styp{g.typ()}) + ")"
		}
	case 4:
		if g.budget > 0 && g.depth < 4 {
			t := g.scalarTyp()
			return "(" + g.expr(sc, t, d+1) + ")" + g.pick(" IN ", " NOT IN ") + "(" + g.subquery(sc, []styp{t}) + ")"
		}
	case 5:
		if g.budget > 0 && g.depth < 4 {
			t := g.pick("=", "<", ">=", "<>")
			return "(" + g.expr(sc, tNum, d+1) + ") " + t + g.pick(" ANY ", " ALL ", " SOME ") + "(" + g.subquery(sc, []styp{tNum}) + ")"
		}
	case 6:
		return "(" + g.expr(sc, tNum, d+1) + ", " + g.expr(sc, tText, d+1) + ") " + g.pick("=", "<", ">", "IS DISTINCT FROM") + " (" + g.expr(sc, tNum, d+1) + ", " + g.expr(sc, tText, d+1) + ")"
	case 7:
		if g.budget > 0 && g.depth < 4 {
			return "(" + g.expr(sc, tNum, d+1) + ", " + g.expr(sc, tText, d+1) + ") IN (" + g.subquery(sc, []styp{tNum, tText}) + ")"
		}
	case 8:
		return "(" + g.expr(sc, tText, d+1) + ")" + g.pick(" LIKE ", " ILIKE ", " NOT LIKE ", " ~ ", " ~* ", " !~ ", " SIMILAR TO ") + g.pick("'%a%'", "'F%'", "'^[A-M]'", "'%@example.fr'", "'.*[0-9]{3}.*'", "'%'")
	case 9:
		return "(" + g.expr(sc, g.typ(), d+1) + ")" + g.pick(" IS NULL", " IS NOT NULL")
	case 10:
		return g.literal(tText) + " = ANY(" + g.expr(sc, tArr, d+1) + ")"
	case 11:
		return "(" + g.expr(sc, tArr, d+1) + ")" + g.pick(" && ", " @> ", " <@ ") + "(" + g.expr(sc, tArr, d+1) + ")"
	case 12:
		return "(" + g.expr(sc, tNum, d+1) + ")" + g.pick(" BETWEEN ", " NOT BETWEEN ") + g.literal(tNum) + " AND " + g.literal(tNum)
	case 13:
		return "(" + g.expr(sc, tJSON, d+1) + ")" + g.pick(" ? 'email'", " @> '{\"country\": \"France\"}'", " ?| ARRAY['a', 'score']")
	case 14:
		if w := g.wholeRow(sc); w != "" && !strings.HasSuffix(w, ".*") {
			return w + g.pick(" IS NULL", " IS NOT NULL", " IS DISTINCT FROM NULL")
		}
	case 15:
		return "(" + g.expr(sc, tBool, d+1) + ")" + g.pick(" IS TRUE", " IS NOT FALSE", " = true")
	case 16:
		return "(" + g.expr(sc, tText, d+1) + ") IN (" + g.literal(tText) + ", " + g.literal(tText) + ")"
	case 17:
		return "starts_with(" + g.expr(sc, tText, d+1) + ", " + g.literal(tText) + ")"
	case 18:
		// Operands pg_query's deparser prints without the parentheses
		// they need: the rewriter casts or wraps them, or refuses.
		return "((" + g.expr(sc, tText, d+1) + ") BETWEEN ((" + g.expr(sc, tText, d+1) + ") COLLATE \"C\") AND " + g.literal(tText) + ")"
	case 19:
		return "((" + g.bool(sc, d+1) + " OR " + g.bool(sc, d+1) + ") IS NOT DISTINCT FROM (" + g.bool(sc, d+1) + "))"
	case 20:
		return "(((" + g.expr(sc, tText, d+1) + ") LIKE 'F%') IS DISTINCT FROM ((" + g.expr(sc, tNum, d+1) + ") = 1))"
	case 21:
		return "((" + g.expr(sc, tTs, d+1) + ")::timestamp BETWEEN ((" + g.expr(sc, tTs, d+1) + ") AT TIME ZONE 'UTC') AND timestamp '2026-01-01')"
	}
	return g.cmp(sc, d)
}

func (g *smith) scalarTyp() styp {
	return []styp{tNum, tText, tText, tNum, tTs}[g.r.Intn(5)]
}

// cmp returns a comparison of two expressions of one type.
func (g *smith) cmp(sc *sscope, d int) string {
	t := g.scalarTyp()
	return "(" + g.expr(sc, t, d+1) + ")" + g.pick(" = ", " <> ", " < ", " >= ", " IS DISTINCT FROM ", " IS NOT DISTINCT FROM ") + "(" + g.expr(sc, t, d+1) + ")"
}

// subquery returns a query of sig, correlated to sc.
func (g *smith) subquery(sc *sscope, sig []styp) string {
	g.budget--
	defer g.smallFor(sc)()
	return g.query(sig, sc, false)
}

// smallFor keeps the subqueries of a large scope on small tables, and
// returns the function that restores the setting.
func (g *smith) smallFor(sc *sscope) func() {
	saved := g.small
	if sc.rows() > 40 {
		g.small = true
	}
	return func() { g.small = saved }
}

// scalarSub returns a scalar subquery of type t: an aggregate, or a first
// row in a total order.
func (g *smith) scalarSub(sc *sscope, t styp) string {
	g.budget--
	g.depth++
	defer func() { g.depth-- }()
	defer g.smallFor(sc)()
	inner := &sscope{outer: sc}
	from := g.from(inner)
	where := ""
	if g.p(80) {
		where = " WHERE " + g.bool(inner, 1)
	}
	if g.p(50) {
		return "(SELECT " + g.aggregate(inner, t) + " FROM " + from + where + ")"
	}
	return "(SELECT " + g.expr(inner, t, 1) + " FROM " + from + where + " ORDER BY 1 LIMIT 1)"
}

// arraySub returns ARRAY(subquery), ordered.
func (g *smith) arraySub(sc *sscope) string {
	g.budget--
	g.depth++
	defer func() { g.depth-- }()
	defer g.smallFor(sc)()
	inner := &sscope{outer: sc}
	from := g.from(inner)
	where := ""
	if g.p(70) {
		where = " WHERE " + g.bool(inner, 1)
	}
	return "ARRAY(SELECT " + g.expr(inner, tText, 1) + " FROM " + from + where + " ORDER BY 1 LIMIT 5)"
}

// output returns a select-list item of type t of an ungrouped query:
// sometimes a window function.
func (g *smith) output(sc *sscope, t styp, top bool) string {
	if s, ok := g.widen(6, func() string { return g.maskedOutput(sc, t) }); ok {
		return s
	}
	if t == tNum && g.p(12) {
		return g.window(sc)
	}
	return g.expr(sc, t, 0)
}

// window returns a window function whose value does not depend on the
// order of peers.
func (g *smith) window(sc *sscope) string {
	part := ""
	if g.p(60) {
		part = "PARTITION BY " + g.expr(sc, g.scalarTyp(), 2)
	}
	ord := g.expr(sc, g.scalarTyp(), 2)
	keys := sc.keys()
	if keys != nil && g.p(60) {
		total := "ORDER BY " + ord + ", " + strings.Join(keys, ", ")
		fn := g.pick("row_number()", "ntile(3)", "lag("+g.expr(sc, tNum, 2)+")", "first_value("+g.expr(sc, tNum, 2)+")", "sum("+g.expr(sc, tNum, 2)+")")
		frame := ""
		if strings.HasPrefix(fn, "sum") || strings.HasPrefix(fn, "first") {
			frame = g.pick("", " ROWS BETWEEN 2 PRECEDING AND CURRENT ROW", " ROWS BETWEEN UNBOUNDED PRECEDING AND 1 FOLLOWING", " ROWS 1 PRECEDING EXCLUDE CURRENT ROW")
		}
		return fmt.Sprintf("%s OVER (%s %s%s)", fn, part, total, frame)
	}
	fn := g.pick("rank()", "dense_rank()", "count(*)", "sum("+g.expr(sc, tNum, 2)+")", "max("+g.expr(sc, tNum, 2)+")", "count("+g.expr(sc, tText, 2)+")")
	frame := ""
	if !strings.HasSuffix(fn, "rank()") {
		frame = g.pick("", " RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW", " GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING", " RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING")
	}
	if g.p(20) && !strings.HasSuffix(fn, "rank()") {
		return fmt.Sprintf("%s OVER (%s)", fn, part)
	}
	return fmt.Sprintf("%s OVER (%s ORDER BY %s%s)", fn, part, ord, frame)
}

// groupedOutputs returns the outputs of a grouped query and sets
// g.groupBy: grouping keys first, then aggregates.
func (g *smith) groupedOutputs(sc *sscope, sig []styp) []string {
	var keys []string
	var outs []string
	var pos []int
	sets := g.p(25)
	for i, t := range sig {
		if i < 2 && (t == tNum || t == tText || t == tTs || t == tBool) && g.p(60) {
			k := g.groupKey(sc, t)
			keys = append(keys, k)
			pos = append(pos, i+1)
			outs = append(outs, k)
			continue
		}
		if t == tNum && sets && len(keys) > 0 && g.p(30) {
			outs = append(outs, "grouping("+keys[0]+")")
			continue
		}
		outs = append(outs, g.aggregate(sc, t))
	}
	g.groupBy = ""
	if len(keys) == 0 {
		if g.p(20) {
			g.groupBy = "\nGROUP BY ()"
		}
		return outs
	}
	var ks []string
	for i, k := range keys {
		if g.p(30) {
			ks = append(ks, fmt.Sprint(pos[i]))
		} else {
			ks = append(ks, k)
		}
	}
	// PostgreSQL 15 does not null a constant grouping key in the grouping
	// sets that leave it out, and does so or not depending on the plan
	// (fixed in PostgreSQL 18): grouping sets group by columns only.
	for _, k := range keys {
		if strings.ContainsAny(k, "('+") || smithConst.MatchString(k) {
			sets = false
		}
	}
	switch {
	case sets && len(keys) == 2:
		g.groupBy = "\nGROUP BY " + g.pick("ROLLUP ("+ks[0]+", "+ks[1]+")", "CUBE ("+ks[0]+", "+ks[1]+")", "GROUPING SETS (("+ks[0]+"), ("+ks[1]+"), ())", "GROUPING SETS (("+ks[0]+", "+ks[1]+"), ("+ks[0]+"))")
	case sets:
		g.groupBy = "\nGROUP BY " + g.pick("ROLLUP ("+ks[0]+")", "GROUPING SETS (("+ks[0]+"), ())", "CUBE ("+ks[0]+")")
	default:
		g.groupBy = "\nGROUP BY " + strings.Join(ks, ", ")
	}
	return outs
}

// groupKey returns a grouping expression of few values.
func (g *smith) groupKey(sc *sscope, t styp) string {
	if s, ok := g.widen(25, func() string { return g.maskedKey(sc, t) }); ok {
		return s
	}
	if c := g.column(sc, t); c != "" && g.p(70) {
		return c
	}
	switch t {
	case tNum:
		return g.pick("1", "2") + "+0"
	case tText:
		return "upper(" + g.expr(sc, tText, 3) + ")"
	case tTs:
		return "date_trunc('year', " + g.expr(sc, tTs, 3) + ")"
	default:
		return g.cmp(sc, 3)
	}
}

// aggregate returns an aggregate of type t.
func (g *smith) aggregate(sc *sscope, t styp) string {
	if s, ok := g.widen(15, func() string { return g.maskedAggregate(sc, t) }); ok {
		return s
	}
	filter := ""
	if g.p(15) {
		filter = " FILTER (WHERE " + g.bool(sc, 2) + ")"
	}
	saved := g.noOuter
	g.noOuter = true
	defer func() { g.noOuter = saved }()
	e := func(t styp) string {
		switch t {
		case tText:
			return "(" + g.expr(sc, t, 2) + ")::text"
		case tNum:
			return "(" + g.expr(sc, t, 2) + ")::numeric"
		}
		return g.expr(sc, t, 2)
	}
	switch t {
	case tNum:
		return g.pick("count(*)"+filter, "count("+e(g.typ())+")"+filter, "count(DISTINCT "+e(tText)+")"+filter, "sum("+e(tNum)+")"+filter, "max("+e(tNum)+")"+filter,
			"round(avg("+e(tNum)+")"+filter+", 2)", "min("+e(tNum)+")"+filter, "percentile_disc(0.5) WITHIN GROUP (ORDER BY "+e(tNum)+")"+filter,
			"(max("+e(tNum)+")"+filter+" + count(*))")
	case tText:
		return g.pick("string_agg(DISTINCT "+e(tText)+", ',')", "max("+e(tText)+")", "min("+e(tText)+")",
			"mode() WITHIN GROUP (ORDER BY "+e(tText)+")", "max("+e(tText)+")") + filter
	case tBool:
		return g.pick("bool_and("+g.bool(sc, 2)+")"+filter, "bool_or("+g.bool(sc, 2)+")"+filter, "count(*)"+filter+" > "+g.literal(tNum))
	case tTs:
		return g.pick("max("+e(tTs)+")", "min("+e(tTs)+")") + filter
	case tArr:
		x := e(tText)
		return "array_agg(DISTINCT " + x + ")" + filter
	default:
		x := e(tNum)
		return g.pick("to_jsonb(array_agg(DISTINCT "+x+")"+filter+")", "jsonb_build_object('n', count(*)"+filter+")")
	}
}

// aggBool returns a HAVING condition.
func (g *smith) aggBool(sc *sscope) string {
	return g.aggregate(sc, tNum) + g.pick(" > ", " <= ", " <> ") + g.literal(tNum)
}

// childAgg returns an aggregate of type t over the notes
// (response_comments) of a responses relation of sc's own level,
// correlated on its id, or "" when sc has none or t has no such
// aggregate.
func (g *smith) childAgg(sc *sscope, t styp) string {
	id := ""
	for _, r := range sc.rels {
		for _, c := range r.cols {
			if r.base == "responses" && c.origin == "responses.id" {
				// Qualified: unqualified, the note's own id would take it.
				id = r.alias + "." + c.name
			}
		}
	}
	if id == "" {
		return ""
	}
	a := g.fresh("rc")
	var agg string
	switch t {
	case tNum:
		agg = g.pick("count(*)", "count(%[1]s.author_email)", "max(%[1]s.id)", "count(DISTINCT %[1]s.author)")
	case tText:
		agg = g.pick("string_agg(%[1]s.body, '; ' ORDER BY %[1]s.id)", "min(%[1]s.author)", "max(%[1]s.author_email)", "string_agg(%[1]s.author_email, ',' ORDER BY %[1]s.id)")
	case tTs:
		agg = "max(%[1]s.created_at)"
	default:
		return ""
	}
	where := g.pick("", " AND %[1]s.author <> 'hq'", " AND %[1]s.author_email IS NOT NULL", " AND %[1]s.created_at > '2025-06-01'")
	return fmt.Sprintf("(SELECT "+agg+" FROM "+g.pick("response_comments", smithSchema+".response_comments")+" AS %[1]s WHERE %[1]s.response_id = %[2]s"+where+")", a, id)
}
