package rewrite

import (
	_ "embed" // the classification data files
	"fmt"
	"strings"
)

// functionsTSV classifies every pg_catalog function by what a call can
// reveal or do; relationsTSV every pg_catalog table and view. Both are
// reviewable data files: see their heads for the format.
var (
	//go:embed functions.tsv
	functionsTSV string
	//go:embed relations.tsv
	relationsTSV string
)

// class is what the firewall does with a pg_catalog function or relation.
type class string

// The classes of the data files.
const (
	classAllow  class = "allow"  // called or read as it is
	classRefuse class = "refuse" // the statement is refused by the entry's rule
	classNull   class = "null"   // a function call answered NULL of its type (sizes, nullTypes)
	classMasked class = "masked" // a relation served by maskedCatalogRelations
)

// classified is one name's entry in a classification.
type classified struct {
	class  class
	rule   string // the firewall rule refusing it, for classRefuse and classNull
	group  string
	reason string // why, for the whole group
}

// The firewall rules refusing names the classifications do not hold: a
// PostgreSQL version newer than the data files may add functions and
// views that reveal anything.
const (
	ruleUnclassifiedFunction = "unclassified_function"
	ruleUnclassifiedRelation = "unclassified_relation"
)

var (
	// catalogFunctions classifies pg_catalog's functions by name.
	catalogFunctions = mustParseClassification("functions.tsv", functionsTSV, classAllow, classRefuse, classNull)
	// catalogRelations classifies pg_catalog's tables and views by name.
	catalogRelations = mustParseClassification("relations.tsv", relationsTSV, classAllow, classRefuse, classMasked)
)

// CatalogFunctionAllowed reports whether the firewall lets a statement
// call the pg_catalog function name as it is.
func CatalogFunctionAllowed(name string) bool { return catalogFunctions[name].class == classAllow }

// CatalogRelationAllowed reports whether the firewall lets a statement
// read the pg_catalog relation name as it is (not masked, not refused).
func CatalogRelationAllowed(name string) bool { return catalogRelations[name].class == classAllow }

// mustParseClassification parses an embedded classification; the files
// are part of the program, so an error is a bug.
func mustParseClassification(file, text string, classes ...class) map[string]classified {
	m, err := parseClassification(text, classes...)
	if err != nil {
		panic("rewrite: " + file + ": " + err.Error())
	}
	return m
}

// parseClassification reads a classification: blank lines and lines
// starting with # are skipped; a line
//
//	== <group> TAB <class> TAB <rule> TAB <reason>
//
// starts a group, and every other line is one name of the current group.
// Only the given classes may appear; a name may appear once.
func parseClassification(text string, classes ...class) (map[string]classified, error) {
	out := map[string]classified{}
	var cur *classified
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimRight(line, " \r")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "== "):
			f := strings.Split(strings.TrimPrefix(line, "== "), "\t")
			if len(f) != 4 || f[0] == "" || f[3] == "" {
				return nil, fmt.Errorf("line %d: a group needs a name, a class, a rule and a reason, tab-separated", i+1)
			}
			c := classified{group: f[0], class: class(f[1]), rule: f[2], reason: f[3]}
			known := false
			for _, k := range classes {
				known = known || c.class == k
			}
			if !known {
				return nil, fmt.Errorf("line %d: unknown class %q", i+1, f[1])
			}
			if (c.class == classRefuse || c.class == classNull) == (c.rule == "-" || c.rule == "") {
				return nil, fmt.Errorf("line %d: group %s: refuse and null name a rule, the others \"-\"", i+1, c.group)
			}
			cur = &c
		default:
			if cur == nil {
				return nil, fmt.Errorf("line %d: %q comes before any group", i+1, line)
			}
			if strings.ContainsAny(line, " \t") {
				return nil, fmt.Errorf("line %d: %q is not a single name", i+1, line)
			}
			if prev, dup := out[line]; dup {
				return nil, fmt.Errorf("line %d: %s is already in group %s", i+1, line, prev.group)
			}
			out[line] = *cur
		}
	}
	return out, nil
}

// statementTextPrefixes begin the names of extensions' functions and
// views that return the statements of this or other sessions, such as
// pg_stat_statements: they would show the rewritten SQL. pg_stat_kcache
// and pg_wait_sampling show per-statement activity of every session
// rather than text, and are refused with them. They live in
// whatever schema the extension was installed in, so they are refused by
// name in every schema, before the policy is asked (a role listing
// public.pg_stat_statements, or a schema whose default is allow, must not
// open them).
var statementTextPrefixes = []string{
	"pg_stat_statements", "pg_stat_monitor", "pg_show_plans", "pg_store_plans",
	"pg_qualstats", "pg_wait_sampling", "pg_stat_kcache", "pg_active_queries",
}

// statementTextName reports whether name, of any schema, is refused by
// statementTextPrefixes.
func statementTextName(name string) bool {
	for _, p := range statementTextPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
