package rewrite

import (
	"context"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/pgtree"
)

// ClassifiedFunction returns the class and rule catalogFunctions give
// the pg_catalog function name, and whether it names it.
func ClassifiedFunction(name string) (class, rule string, ok bool) {
	c, ok := catalogFunctions[name]
	return string(c.class), c.rule, ok
}

// ClassifiedRelation returns the class and rule catalogRelations give
// the pg_catalog relation name, and whether it names it.
func ClassifiedRelation(name string) (class, rule string, ok bool) {
	c, ok := catalogRelations[name]
	return string(c.class), c.rule, ok
}

// MaskedCatalogRelation reports whether maskedCatalogRelations serves
// the pg_catalog relation name.
func MaskedCatalogRelation(name string) bool {
	_, ok := maskedCatalogRelations[name]
	return ok
}

// MaskedCatalogRelationNames lists maskedCatalogRelations.
func MaskedCatalogRelationNames() []string {
	var out []string
	for n := range maskedCatalogRelations {
		out = append(out, n)
	}
	return out
}

// ParseClassification exposes parseClassification for its own tests.
func ParseClassification(text string) error {
	_, err := parseClassification(text, classAllow, classRefuse, classNull)
	return err
}

// Internals the external tests check against a real PostgreSQL.
var (
	LeakproofPairs  = leakproofPairs
	PushComparisons = pushComparisons
)

// DiffKeywordList compares a keyword list in the format of keywords.txt,
// of the server whose server_version_num is version, with the parser's.
func DiffKeywordList(version int, list string) (*GrammarDiff, error) {
	kw, err := parseKeywords(list)
	if err != nil {
		return nil, err
	}
	return diffGrammars(version, kw), nil
}

// Splicer holds the subquery templates of spliced rewrites, as an
// Engine does, for tests of its cold path.
type Splicer struct{ cache *lruCache }

// NewSplicer returns an empty Splicer.
func NewSplicer() *Splicer { return &Splicer{cache: newLRU(1000)} }

// Rewrite is Rewrite as an Engine's cold path runs it: spliced when the
// statement allows it (splice.go), deparsed otherwise.
func (s *Splicer) Rewrite(sql string, cat *Catalog, p Policy) (*Result, error) {
	if err := guard(sql); err != nil {
		return nil, err
	}
	return rewriteText(sql, cat, p, &splicer{subqueries: s.cache, policy: p.Key()}, false)
}

// Spliced reports whether res is a spliced rewrite.
func Spliced(res *Result) bool { return res.spliced }

// Direct reports whether res reads a governed relation directly
// (flatten.go).
func Direct(res *Result) bool { return res.direct }

// RewriteFenced is Rewrite reading every governed relation through its
// subquery, as the engine's cold path does.
func RewriteFenced(sql string, cat *Catalog, p Policy) (*Result, error) {
	return rewriteText(sql, cat, p, nil, false)
}

// SameStatements reports whether a and b parse to the same statements,
// their locations in the text aside, and the deparse's own workarounds
// (deparsefix.go) aside: a splice keeps the client's (ARRAY(…))[1] where
// the deparse subscripts a scalar subquery, its (a OR b) IS NULL where
// the deparse casts a OR b to boolean, and its (a = b) LIKE c where the
// deparse writes COALESCE(a = b) LIKE c.
func SameStatements(a, b string) (bool, error) {
	ta, err := pg_query.Parse(a)
	if err != nil {
		return false, err
	}
	tb, err := pg_query.Parse(b)
	if err != nil {
		return false, err
	}
	for _, t := range []*pg_query.ParseResult{ta, tb} {
		subscriptArraySublinks(t)
		castBoolTestArgs(t)
		parenthesizeOperands(t)
	}
	return pgtree.Equal(ta, tb), nil
}

// TemplateTries returns how many templates e tried to make.
func TemplateTries(e *Engine) uint64 { return e.templateTries.Load() }

// FillParseSlots takes every parse slot of e, as statements being parsed
// would, and returns the function that gives them back.
func FillParseSlots(e *Engine) (release func()) {
	s := e.parsing
	s.mu.Lock()
	n := s.free
	s.free = 0
	s.mu.Unlock()
	return func() {
		s.mu.Lock()
		defer s.mu.Unlock()
		s.free += n
		s.dispatch()
	}
}

// PinSentinels makes the template sentinels of every probe start at the
// bottom of their range until the test ends, so that a test can write a
// policy constant equal to one.
// NOTE: the tests of the package do not run in parallel.
func PinSentinels(t interface{ Cleanup(func()) }) {
	old := sentinelDraw
	sentinelDraw = func(int64) int64 { return 0 }
	t.Cleanup(func() { sentinelDraw = old })
}

// SetMaxRewritten sets the longest rewritten text the rewrite returns,
// until the returned function restores it.
func SetMaxRewritten(n int) (restore func()) {
	old := maxRewritten
	maxRewritten = n
	return func() { maxRewritten = old }
}

// HoldParseSlots takes as many parse slots for login as its share
// allows, as statements of its being parsed would, and returns the
// function that gives them back.
func HoldParseSlots(e *Engine, login string) (release func()) {
	s := e.parsing
	n := s.perUser
	for range n {
		if err := s.acquire(context.Background(), login); err != nil {
			panic(err)
		}
	}
	return func() {
		for range n {
			s.release(login)
		}
	}
}

// SkeletonMatches walks sql as the engine's cold path does and reports
// whether its splice's skeleton, and that skeleton edited by tamper,
// pass skeletonMatches.
func SkeletonMatches(sql string, cat *Catalog, p Policy, tamper func(string) string) (skeleton string, ok, tampered bool, err error) {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return "", false, false, err
	}
	w := newWalker(cat, p)
	w.version = tree.Version
	for _, raw := range tree.Stmts {
		w.stmt, w.params = raw.Stmt, nil
		if _, err := w.statement(raw.Stmt); err != nil {
			return "", false, false, err
		}
	}
	_, skeleton, spliced := w.splice(sql, &splicer{subqueries: newLRU(10), policy: p.Key()})
	if !spliced {
		return "", false, false, nil
	}
	return skeleton, w.skeletonMatches(skeleton, tree), w.skeletonMatches(tamper(skeleton), tree), nil
}

// ReadAboveWalked returns how many nodes the widening of GROUP BY
// clauses has walked so far (grouping.go).
func ReadAboveWalked() int64 { return readAboveWalked.Load() }

// NullType is nullType: the type, in pg_catalog, of the NULL a call of a
// function classified null is answered with.
func NullType(name string) string { return nullType(name) }

// CatalogCallsSQL is catalogCallsSQL, for a test of its plan.
const CatalogCallsSQL = catalogCallsSQL
