package policy

import (
	"fmt"
	"strings"

	"github.com/pgveil/pgveil/rewrite"
)

// Pattern is a relation name as a table block or a rule writes it:
// schema.name, where either part may hold `*` wildcards that match any run
// of characters ("public.*", "public.responses_*", "*.audit").
//
// Names are compared as the catalog stores them: case-sensitively, and
// unquoted (an unquoted SQL identifier is stored in lower case).
type Pattern struct {
	// Schema is the schema part, possibly with wildcards.
	Schema string
	// Name is the relation part, possibly with wildcards.
	Name string
}

// catalogSchemas are the schemas whose relations are always open: the
// rewriter applies its own list of what may be read there.
var catalogSchemas = map[string]bool{"pg_catalog": true, "information_schema": true}

// parsePattern parses schema.name. It returns a sentence saying what is
// wrong when s is not a valid name or pattern.
func parsePattern(s string) (Pattern, string) {
	schema, name, ok := strings.Cut(s, ".")
	switch {
	case !ok:
		return Pattern{}, fmt.Sprintf("%q has no schema: write schema.table, e.g. %q.", s, "public."+s)
	case strings.Contains(name, "."):
		return Pattern{}, fmt.Sprintf("%q has more than one dot: write schema.table (no database name, no quotes).", s)
	case schema == "" || name == "":
		return Pattern{}, fmt.Sprintf("%q has an empty schema or table name: write schema.table.", s)
	case strings.ContainsAny(s, "?[]"):
		return Pattern{}, fmt.Sprintf("%q uses a wildcard pgveil does not support: only * (any run of characters) is.", s)
	case strings.ContainsAny(s, "\" \t\r\n\x00"):
		msg := fmt.Sprintf("%q holds quotes or white space: write names as the catalog stores them, unquoted.", s)
		// "Billing"."Subscriptions", quoted as in SQL: the names as the
		// catalog stores them are the same without the quotes.
		if unquoted := strings.ReplaceAll(s, `"`, ""); unquoted != s {
			if _, problem := parsePattern(unquoted); problem == "" {
				msg += fmt.Sprintf(" Did you mean %q?", unquoted)
			}
		}
		return Pattern{}, msg
	}
	return Pattern{Schema: schema, Name: name}, ""
}

// String renders the pattern as written: schema.name.
func (p Pattern) String() string { return p.Schema + "." + p.Name }

// Exact reports whether the pattern has no wildcard: it names one
// relation.
func (p Pattern) Exact() bool { return !strings.Contains(p.Schema+p.Name, "*") }

// QName returns the relation an exact pattern names.
func (p Pattern) QName() rewrite.QName { return rewrite.QName{Schema: p.Schema, Name: p.Name} }

// Match reports whether the pattern covers q.
//
// NOTE: a pattern never covers a pg_catalog or information_schema relation
// unless it names that schema literally, and table blocks may not; catalog
// relations are always open.
func (p Pattern) Match(q rewrite.QName) bool {
	if catalogSchemas[q.Schema] && p.Schema != q.Schema {
		return false
	}
	return globMatch(p.Schema, q.Schema) && globMatch(p.Name, q.Name)
}

// specificity ranks patterns: the higher, the more specific. An exact name
// beats every pattern; among patterns, the one with more literal
// (non-wildcard) characters wins.
func (p Pattern) specificity() int {
	if p.Exact() {
		return 1 << 30
	}
	return len(strings.ReplaceAll(p.Schema+p.Name, "*", ""))
}

// globMatch reports whether s matches pattern, where `*` matches any run of
// characters, including none.
func globMatch(pattern, s string) bool {
	parts := strings.Split(pattern, "*")
	if len(parts) == 1 {
		return pattern == s
	}
	if !strings.HasPrefix(s, parts[0]) {
		return false
	}
	s = s[len(parts[0]):]
	last := parts[len(parts)-1]
	for _, mid := range parts[1 : len(parts)-1] {
		i := strings.Index(s, mid)
		if i < 0 {
			return false
		}
		s = s[i+len(mid):]
	}
	return len(s) >= len(last) && strings.HasSuffix(s, last)
}
