package rewrite

import (
	"bufio"
	"context"
	_ "embed"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgconn"
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// parserKeywordsFile lists the keywords of pgveil's parser: pg_query_go
// v6 parses with PostgreSQL 17's grammar, whatever the upstream runs.
//
//go:embed keywords.txt
var parserKeywordsFile string

// keyword is how a grammar reads a word: its category (pg_get_keywords'
// catcode: 'U', 'C', 'T' or 'R'; 0 for a plain identifier) and whether it
// may be a bare column label.
type keyword struct {
	cat  byte
	bare bool
}

// parserKeywords is parserKeywordsFile read.
var parserKeywords = func() map[string]keyword {
	kw, err := parseKeywords(parserKeywordsFile)
	if err != nil {
		panic("rewrite: keywords.txt: " + err.Error())
	}
	return kw
}()

// parseKeywords reads a keyword list: a line per word, its category and
// t or f for a bare label; # starts a comment line.
func parseKeywords(text string) (map[string]keyword, error) {
	out := map[string]keyword{}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		f := strings.Fields(line)
		if len(f) != 3 || len(f[1]) != 1 || !strings.Contains("UCTR", f[1]) {
			return nil, fmt.Errorf("bad line %q", line)
		}
		out[f[0]] = keyword{cat: f[1][0], bare: f[2] == "t"}
	}
	return out, nil
}

// GrammarDiff is what separates the upstream's grammar from pgveil's
// parser: the words the two read differently. A word that is reserved in
// one and an identifier in the other (SYSTEM_USER: a function call to
// PostgreSQL 16 and later, a column or table alias to 15) makes the two
// build different trees from one text, so that the rewriter's checks,
// masks and audit columns would apply to a statement the upstream does
// not run. Statements using such a word unquoted are refused.
type GrammarDiff struct {
	// Upstream is the upstream's server_version_num.
	Upstream int
	// words maps each differing word (lower case) to a description of
	// the difference, for the refusal.
	words map[string]string
	// NOTE: probes are the words of words, for the quick test of a
	// statement's text before it is scanned.
	probes []string
}

// Words returns the differing words, sorted.
func (g *GrammarDiff) Words() []string {
	out := make([]string, 0, len(g.words))
	for w := range g.words {
		out = append(out, w)
	}
	sort.Strings(out)
	return out
}

// upstreamKeywordsSQL reads the upstream's keywords; barelabel exists
// from PostgreSQL 14 on.
const (
	upstreamKeywordsSQL     = `SELECT word, catcode, barelabel FROM pg_catalog.pg_get_keywords()`
	upstreamKeywordsSQLPG13 = `SELECT word, catcode, true FROM pg_catalog.pg_get_keywords()`
)

// LoadGrammarDiff reads the upstream's version and keywords and returns
// how its grammar differs from pgveil's parser.
func LoadGrammarDiff(ctx context.Context, conn *pgconn.PgConn) (*GrammarDiff, error) {
	version, err := strconv.Atoi(conn.ParameterStatus("server_version_num"))
	if err != nil || version == 0 {
		rr := conn.ExecParams(ctx, `SELECT pg_catalog.current_setting('server_version_num')`, nil, nil, nil, nil)
		var v string
		for rr.NextRow() {
			v = string(rr.Values()[0])
		}
		if _, err := rr.Close(); err != nil {
			return nil, fmt.Errorf("reading the upstream's version: %w", err)
		}
		if version, err = strconv.Atoi(v); err != nil {
			return nil, fmt.Errorf("reading the upstream's version: %q", v)
		}
	}
	q := upstreamKeywordsSQL
	if version < 140000 {
		q = upstreamKeywordsSQLPG13
	}
	upstream := map[string]keyword{}
	rr := conn.ExecParams(ctx, q, nil, nil, nil, nil)
	for rr.NextRow() {
		v := rr.Values()
		if len(v[1]) != 1 {
			rr.Close()
			return nil, fmt.Errorf("reading the upstream's keywords: bad category %q", v[1])
		}
		upstream[string(v[0])] = keyword{cat: v[1][0], bare: string(v[2]) == "t"}
	}
	if _, err := rr.Close(); err != nil {
		return nil, fmt.Errorf("reading the upstream's keywords: %w", err)
	}
	if len(upstream) == 0 {
		return nil, fmt.Errorf("reading the upstream's keywords: none")
	}
	return diffGrammars(version, upstream), nil
}

// diffGrammars compares the upstream's keywords with the parser's.
// Bare-label differences count only when the upstream reports them
// (PostgreSQL 14 and later).
func diffGrammars(version int, upstream map[string]keyword) *GrammarDiff {
	g := &GrammarDiff{Upstream: version, words: map[string]string{}}
	note := func(w string, ours, theirs keyword) {
		if ours.cat == theirs.cat && (ours.cat == 0 || version < 140000 || ours.bare == theirs.bare) {
			return
		}
		if neutral(ours, theirs) || neutral(theirs, ours) {
			return
		}
		g.words[w] = fmt.Sprintf("%q is %s to pgveil's parser (PostgreSQL 17) and %s to the upstream (server_version_num %d)",
			w, describeKeyword(ours), describeKeyword(theirs), version)
		g.probes = append(g.probes, w)
	}
	for w, ours := range parserKeywords {
		note(w, ours, upstream[w])
	}
	for w, theirs := range upstream {
		if _, ok := parserKeywords[w]; !ok {
			note(w, keyword{}, theirs)
		}
	}
	sort.Strings(g.probes)
	return g
}

// neutral reports whether a word that is the unreserved keyword a in one
// grammar and b in the other is read the same way by both. Wherever the
// grammar takes a name (ColId, type_function_name, NonReservedWord,
// ColLabel, BareColLabel) it takes an identifier and an unreserved
// keyword alike, so a word that is unreserved (and a bare label) in one
// grammar and a plain identifier in the other names the same thing in
// both. What remains is the newer grammar's own syntax built on the
// keyword (PostgreSQL 16 and 17 added FORMAT, PATH, ERROR, KEYS, SOURCE,
// TARGET, … for SQL/JSON and MERGE), which the older grammar rejects as
// a syntax error; and every such construct also needs a word whose
// difference is not neutral (JSON, JSON_TABLE, IS JSON, MERGE), so
// statements using it are refused all the same. COPY … (FORMAT csv),
// columns named source or path, and the like keep working.
func neutral(a, b keyword) bool {
	return a.cat == 'U' && a.bare && b.cat == 0
}

func describeKeyword(k keyword) string {
	label := ""
	if k.cat != 0 && !k.bare {
		label = ", not a bare column label"
	}
	switch k.cat {
	case 'U':
		return "an unreserved keyword" + label
	case 'C':
		return "a column-name keyword" + label
	case 'T':
		return "a type or function name keyword" + label
	case 'R':
		return "a reserved keyword" + label
	}
	return "an identifier"
}

// problem returns a refusal when sql uses, unquoted, a word the two
// grammars read differently, or a number only pgveil's parser reads
// (newNumbers), or nil. A nil GrammarDiff (no upstream, as
// in offline tools) checks nothing.
//
// NOTE: the text is scanned by pgveil's own scanner, so words inside
// string constants, comments and quoted identifiers do not count: only
// keyword and identifier tokens do. The scan runs only when the text
// holds a differing word at all.
// NOTE: a word may stand where pg_query's normalisation puts a $n (the
// value of SET datestyle = json is a constant in the tree): the engine
// asks problem before serving a text from the normalised-text cache.
func (g *GrammarDiff) problem(sql string) *Refused {
	if g == nil {
		return nil
	}
	if r := g.numberProblem(sql); r != nil {
		return r
	}
	if len(g.words) == 0 {
		return nil
	}
	lower := strings.ToLower(sql)
	hit := false
	for _, w := range g.probes {
		if strings.Contains(lower, w) {
			hit = true
			break
		}
	}
	if !hit {
		return nil
	}
	res, err := pg_query.Scan(sql)
	if err != nil {
		return denySyntax("%v", err)
	}
	for i, tok := range res.Tokens {
		if tok.KeywordKind == pg_query.KeywordKind_NO_KEYWORD && tok.Token != pg_query.Token_IDENT {
			continue
		}
		if tok.Start < 0 || tok.End > int32(len(sql)) || tok.Start >= tok.End {
			continue
		}
		word := strings.ToLower(sql[tok.Start:tok.End])
		why, ok := g.words[word]
		if !ok || neutralPlace(res.Tokens, i, word) {
			continue
		}
		return deny("grammar_version", "the word %s is read differently by the upstream: %s", strings.ToUpper(word), why)
	}
	return nil
}

// neutralPlace reports whether the word of tokens[i] stands where both
// grammars read it alike, whatever keyword it is in either:
//   - after :: (x::json), a type name: both read a type there, or the
//     newer grammar a syntax error, and the pinned search_path resolves
//     it alike (pg_catalog first);
//   - after AS (CAST(x AS json), an alias): a type name again, or a
//     column label, which takes every keyword in both;
//   - after a dot (pg_catalog.json, t.json): an attribute name, which
//     takes every keyword in both;
//   - JSON before a string constant (json '{}'): a typed literal of the
//     type json in both;
//   - JSON after FORMAT (EXPLAIN (FORMAT JSON)): an option's value, which
//     takes any word in both; the newer grammar's FORMAT JSON of its
//     SQL/JSON functions is a syntax error in the older one.
//
// Elsewhere the newer grammar may build its own syntax on the word:
// JSON(…) parses JSON text where the older grammar calls a function
// named json, and IS JSON is a predicate the older one lacks.
func neutralPlace(tokens []*pg_query.ScanToken, i int, word string) bool {
	if i > 0 {
		switch tokens[i-1].Token {
		case pg_query.Token_TYPECAST, pg_query.Token_AS, pg_query.Token_ASCII_46:
			return true
		}
	}
	if word == "json" && i > 0 && tokens[i-1].Token == pg_query.Token_FORMAT {
		return true
	}
	if word == "json" && i+1 < len(tokens) {
		switch tokens[i+1].Token {
		case pg_query.Token_SCONST, pg_query.Token_USCONST:
			return true
		}
	}
	return false
}

// numberProblem is problem for the numbers of sql only (newNumbers): nil
// for a nil GrammarDiff and an upstream of PostgreSQL 16 or later.
//
// NOTE: the engine asks problem, which asks it, before serving a text
// from the normalised-text cache too: pg_query normalises 0x1F as it does
// 31, so a text whose number the upstream reads otherwise shares the
// normalisation of one forwarded unchanged before.
func (g *GrammarDiff) numberProblem(sql string) *Refused {
	if g == nil || g.Upstream >= 160000 || !mayHoldNewNumber(sql) {
		return nil
	}
	return newNumbers(sql, g.Upstream)
}

// mayHoldNewNumber reports whether sql may hold a number written as only
// PostgreSQL 16 and later read it (newNumbers): a 0 followed by x, o or
// b, or a digit followed by an underscore. It is the quick test before
// the scan; identifiers (col1_x, t0b) pass it too.
func mayHoldNewNumber(sql string) bool {
	for i := 0; i+1 < len(sql); i++ {
		if sql[i] < '0' || sql[i] > '9' {
			continue
		}
		switch sql[i+1] {
		case '_':
			return true
		case 'x', 'X', 'o', 'O', 'b', 'B':
			if sql[i] == '0' {
				return true
			}
		}
	}
	return false
}

// newNumbers refuses sql when it holds a number PostgreSQL 16 introduced:
// a hexadecimal, octal or binary integer (0x1F, 0o17, 0b101) or digits
// grouped by underscores (1_000). pgveil's parser (PostgreSQL 17) reads
// them as numbers, and the rewriter's deparse and templates print their
// value (31, 1000); an upstream before 16 rejects the client's text as a
// syntax error ("trailing junk after numeric literal"), so that the
// forwarded statement would run where the client's does not. version is
// the upstream's server_version_num.
//
// NOTE: the text is scanned by pgveil's own scanner: such a number in a
// string constant, a comment or a quoted identifier does not count.
func newNumbers(sql string, version int) *Refused {
	res, err := pg_query.Scan(sql)
	if err != nil {
		return denySyntax("%v", err)
	}
	for _, tok := range res.Tokens {
		if tok.Token != pg_query.Token_ICONST && tok.Token != pg_query.Token_FCONST {
			continue
		}
		if tok.Start < 0 || tok.End > int32(len(sql)) || tok.Start >= tok.End {
			continue
		}
		num := sql[tok.Start:tok.End]
		if !strings.Contains(num, "_") && !(len(num) > 1 && num[0] == '0' && strings.ContainsRune("xXoObB", rune(num[1]))) {
			continue
		}
		return deny("grammar_version", "the number %s is read differently by the upstream: PostgreSQL 16 and later read it as a number, the upstream (server_version_num %d) as a syntax error", num, version)
	}
	return nil
}
