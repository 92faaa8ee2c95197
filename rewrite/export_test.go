package rewrite

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
