package policy

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/zclconf/go-cty/cty"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/rewrite"
)

// GovernedRelations returns the relations of cat that a table block
// governs (directly or through an ancestor), in name order. Relations
// matched by equally specific blocks (denied) are left out.
func (c *Config) GovernedRelations(cat *rewrite.Catalog) []*rewrite.Relation {
	var out []*rewrite.Relation
	for _, rel := range userRelations(cat) {
		if t, _ := c.tableFor(rel); t != nil {
			out = append(out, rel)
		}
	}
	return out
}

// userRelations returns the relations of cat outside pg_catalog and
// information_schema, in name order.
func userRelations(cat *rewrite.Catalog) []*rewrite.Relation {
	var out []*rewrite.Relation
	for q, rel := range cat.Relations {
		if !catalogSchemas[q.Schema] {
			out = append(out, rel)
		}
	}
	slices.SortFunc(out, func(a, b *rewrite.Relation) int { return strings.Compare(a.QName.String(), b.QName.String()) })
	return out
}

// CheckCatalog checks the configuration against the live database, as
// `pgveil check --upstream` does: cat is the catalog snapshot and ids the
// identities loaded from srv, the service account with the pinned
// settings. It reports
//
//   - table blocks naming a table that does not exist (errors), patterns
//     matching none (warnings), relations matched by equally specific
//     patterns (warnings, they are denied) and governed relations the
//     service account may not read (warnings);
//   - owner_column, team_column and column blocks naming columns the table
//     lacks, and masks and rule predicates reading such columns (errors
//     for tables named exactly, warnings for patterns), with suggestions;
//   - masks that do not fit their column's type and rule predicates that
//     PostgreSQL rejects (errors): each is type-checked by the server with
//     EXPLAIN (COSTS OFF) SELECT CAST(<mask> AS <type>) FROM ONLY <table>
//     WHERE false, or SELECT 1 FROM ONLY <table> WHERE <predicate>, built
//     as a syntax tree and bound to a user the rule applies to, so that no
//     data is read;
//   - functions that roles list but the database lacks (warnings);
//   - implicit casts and domains calling functions some role may not call
//     (warnings, CheckUnseenCalls).
//
// CheckCatalog makes srv's session read-only.
func (c *Config) CheckCatalog(ctx context.Context, srv Server, cat *rewrite.Catalog, ids *Identities) hcl.Diagnostics {
	ck := &catalogChecker{cfg: c, ctx: ctx, srv: srv, cat: cat, ids: ids,
		governed: map[*Table][]*rewrite.Relation{}, policies: map[string]*UserPolicy{}}
	return ck.check()
}

// check is CheckCatalog.
func (ck *catalogChecker) check() hcl.Diagnostics {
	c, cat := ck.cfg, ck.cat
	if err := ck.exec("SET default_transaction_read_only = on"); err != nil {
		return hcl.Diagnostics{ck.cannot(err)}
	}
	ck.relations = userRelations(cat)
	for _, rel := range ck.relations {
		t, problem := c.tableFor(rel)
		if problem != "" {
			d := &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Ambiguous table blocks",
				Detail:   strings.ToUpper(problem[:1]) + problem[1:] + ". Until then it is denied to every user.",
			}
			if gov := c.governing(rel.QName); len(gov) > 0 {
				d.Subject = gov[0].DeclRange.Ptr()
			}
			ck.diags = append(ck.diags, d)
		}
		if t != nil {
			ck.governed[t] = append(ck.governed[t], rel)
		}
		if s := c.Schemas[rel.Schema]; t == nil && problem == "" && len(rel.Reads)+len(rel.Calls) > 0 && s != nil && s.Allow {
			p := ck.samplePolicy(func(*UserPolicy) bool { return true })
			if why := p.readsPastPolicy(rel, nil, nil); why != "" {
				ck.diags = append(ck.diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "View denied: it reads a governed table",
					Detail:   strings.ToUpper(why[:1]) + why[1:] + ". Until then it is denied to users who may not read that table as it is.",
					Subject:  s.DeclRange.Ptr(),
				})
			}
		}
		if problem == "" {
			if why := c.inheritedOtherwise(rel, t); why != "" {
				d := &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Table denied: its descendants are governed otherwise",
					Detail:   strings.ToUpper(why[:1]) + why[1:] + ". Until then it is denied to every user.",
				}
				if t != nil {
					d.Subject = t.DeclRange.Ptr()
				}
				ck.diags = append(ck.diags, d)
			}
		}
	}
	ck.shadowedColumns()
	ck.viewColumnsUnclassified()
	for _, t := range c.Tables {
		ck.owner = t
		if !ck.table(t) {
			return ck.diags
		}
	}
	for _, r := range c.Rules {
		ck.owner = r
		if !ck.rule(r) {
			return ck.diags
		}
	}
	ck.owner = nil
	ck.functions()
	return append(ck.diags, c.CheckUnseenCalls(cat)...)
}

// shadowedColumns warns when a table block governing a relation leaves
// unclassified a column of it that a less specific block matching it
// classifies: blocks do not merge, so `table "public.responses"` drops
// the column "email" of `table "public.*"`, and every user sees the
// column. One warning per pair of blocks, at the governing one.
func (ck *catalogChecker) shadowedColumns() {
	type pair struct{ governing, shadowed *Table }
	columns := map[pair]map[string]bool{}
	relations := map[pair][]*rewrite.Relation{}
	var pairs []pair
	for _, t := range ck.cfg.Tables {
		for _, rel := range ck.governed[t] {
			names := append([]rewrite.QName{rel.QName}, rel.Ancestors...)
			for _, u := range ck.cfg.Tables {
				if u == t || !slices.ContainsFunc(names, u.Pattern.Match) {
					continue
				}
				k := pair{t, u}
				for name := range u.Columns {
					if t.Columns[name] != nil || !hasColumn(rel, name) {
						continue
					}
					if columns[k] == nil {
						columns[k] = map[string]bool{}
						pairs = append(pairs, k)
					}
					columns[k][name] = true
					if n := len(relations[k]); n == 0 || relations[k][n-1] != rel {
						relations[k] = append(relations[k], rel)
					}
				}
			}
		}
	}
	for _, k := range pairs {
		names := sortedKeys(columns[k])
		classes := make([]string, len(names))
		for i, n := range names {
			classes[i] = fmt.Sprintf("%s (class %q)", n, k.shadowed.Columns[n].Class)
		}
		ck.diags = append(ck.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Column classification shadowed",
			Detail: fmt.Sprintf("The table block %q governs %s, so the block %q (at %s) does not: blocks do not merge, "+
				"and %s, which that block classifies, %s unclassified there, seen by every user. "+
				"Repeat %s in %q to mask %s there too.",
				k.governing.Pattern.String(), relationList(relations[k]), k.shadowed.Pattern.String(), position(k.shadowed.DeclRange),
				strings.Join(classes, ", "), plural(len(names), "is", "are"),
				plural(len(names), "its column block", "their column blocks"), k.governing.Pattern.String(), plural(len(names), "it", "them")),
			Subject: k.governing.DeclRange.Ptr(),
		})
	}
}

// viewColumnsUnclassified warns when a table block governing a view or
// materialized view leaves unclassified a column named like one that a
// relation it reads (directly or through other views: viewReads) has
// classified, or generated from a classified one
// (a directory view's full_name of a table whose first_name is masked):
// the view reads its relations as the service account, so its own block
// is its whole policy, and every user its rules grant rows sees that
// column. It warns too when the view's query reads such a column (by
// pg_depend) that none of the view's columns is named like (full_name AS
// display, upper(first_name)), unless the block classifies a column
// named like none of that relation's, showing the DBA looked at renamed
// ones; a column of a view no block governs counts as what it is named
// like in the relations that view reads. Names and those dependencies are the only link pgveil has
// between a view's columns and what they show, so the warning may name
// a column that shows something else, or one the view reads only in a
// condition: classify it anyway, or ignore it. One warning per view, at
// its table block.
func (ck *catalogChecker) viewColumnsUnclassified() {
	for _, rel := range ck.relations {
		if len(rel.Reads) == 0 {
			continue
		}
		t, _ := ck.cfg.tableFor(rel)
		if t == nil {
			continue
		}
		via := viewReads(rel)
		var found, reads []string
		for _, col := range rel.Columns {
			if t.Columns[col.Name] != nil {
				continue
			}
			for _, r := range via {
				u, _ := ck.cfg.tableFor(r)
				if u == nil || u == t {
					continue
				}
				if why := classifiedAs(u, r, col.Name); why != "" {
					found = append(found, fmt.Sprintf("%s, named like %s.%s %s", col.Name, r.QName, col.Name, why))
					break
				}
			}
		}
		for _, r := range rel.Reads {
			u, _ := ck.cfg.tableFor(r)
			if u == t || renamedClassified(t, rel, r) {
				continue
			}
			for _, col := range rel.ReadColumns[r.QName] {
				if hasColumn(rel, col) {
					continue // the names' pass above
				}
				if u != nil {
					if why := classifiedAs(u, r, col); why != "" {
						reads = append(reads, fmt.Sprintf("%s.%s %s", r.QName, col, why))
					}
					continue
				}
				// NOTE: r, a view no block governs, shows what it reads
				// past every policy: its column is linked by name to
				// those, as in the names' pass.
				for _, x := range viewReads(r) {
					ux, _ := ck.cfg.tableFor(x)
					if ux == nil || ux == t {
						continue
					}
					if why := classifiedAs(ux, x, col); why != "" {
						reads = append(reads, fmt.Sprintf("%s.%s (named like %s.%s %s)", r.QName, col, x.QName, col, why))
						break
					}
				}
			}
		}
		if len(found) == 0 && len(reads) == 0 {
			continue
		}
		detail := fmt.Sprintf("The table block %q governs the view %s, which reads its relations as the service account, "+
			"past their masks: its own block is its whole policy.", t.Pattern.String(), rel.QName)
		if len(found) > 0 {
			detail += fmt.Sprintf(" It leaves unclassified %s, seen by every user its rules grant rows. Classify %s in %q if %s that value.",
				strings.Join(found, "; "), plural(len(found), "that column", "those columns"), t.Pattern.String(),
				plural(len(found), "it shows", "they show"))
		}
		if len(reads) > 0 {
			detail += fmt.Sprintf(" Its query reads %s, which none of its columns is named like: a column showing %s "+
				"under another name or through an expression is seen by every user its rules grant rows. Classify such "+
				"a column in %q (a column read only in a condition filters rows and shows nothing).",
				joinAnd(reads), plural(len(reads), "it", "them"), t.Pattern.String())
		}
		ck.diags = append(ck.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "View column left unclassified",
			Detail:   detail,
			Subject:  t.DeclRange.Ptr(),
		})
	}
}

// viewReads returns the relations the view rel reads, directly or
// through the views it reads, in that order (each once, rel excluded).
// NOTE: through every view, governed or not: a view reads another as the
// service account, so what the inner one reads reaches the outer one's
// columns past every policy but the outer one's own block.
func viewReads(rel *rewrite.Relation) []*rewrite.Relation {
	seen := map[*rewrite.Relation]bool{rel: true}
	var out []*rewrite.Relation
	for next := rel.Reads; len(next) > 0; {
		var more []*rewrite.Relation
		for _, r := range next {
			if seen[r] {
				continue
			}
			seen[r] = true
			out = append(out, r)
			more = append(more, r.Reads...)
		}
		next = more
	}
	return out
}

// classifiedAs says how u, the block governing r, classifies r's column
// name, "(class …)" or "(generated from …, class …)" for a generated
// column of a classified one, or "" when it does not.
func classifiedAs(u *Table, r *rewrite.Relation, name string) string {
	if uc := u.Columns[name]; uc != nil && hasColumn(r, name) {
		return fmt.Sprintf("(class %q)", uc.Class)
	}
	for _, base := range r.Generated[name] {
		if bc := u.Columns[base]; bc != nil {
			return fmt.Sprintf("(generated from %s, class %q)", base, bc.Class)
		}
	}
	return ""
}

// renamedClassified reports whether t, the block governing the view
// rel, classifies a column of rel that r, a relation rel reads, has no
// column named like.
func renamedClassified(t *Table, rel, r *rewrite.Relation) bool {
	for _, col := range rel.Columns {
		if t.Columns[col.Name] != nil && !hasColumn(r, col.Name) {
			return true
		}
	}
	return false
}

// joinAnd joins items as "a", "a and b", "a, b and c".
func joinAnd(items []string) string {
	if len(items) < 2 {
		return strings.Join(items, "")
	}
	return strings.Join(items[:len(items)-1], ", ") + " and " + items[len(items)-1]
}

// plural returns one when n is 1, else many.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// catalogChecker carries CheckCatalog's state.
type catalogChecker struct {
	cfg *Config
	ctx context.Context
	srv Server
	cat *rewrite.Catalog
	ids *Identities
	// relations are the catalog's relations outside the system schemas,
	// in name order.
	relations []*rewrite.Relation
	// governed maps a table block to the relations it governs.
	governed map[*Table][]*rewrite.Relation
	// policies caches compiled policies by login.
	policies map[string]*UserPolicy
	diags    hcl.Diagnostics
	// owner is the table block or rule being checked, nil between them:
	// report sets it as each diagnostic's Extra, for Drift to tell which
	// relations an error is about.
	owner any
	// locksRefuse makes a type check that times out on a lock an error
	// about the block or rule being checked (lockedSummary), where
	// checking goes on, instead of the end of the check (Drift: a lock
	// on one table must not keep every other DDL out of the snapshot).
	locksRefuse bool
	// unforwardable holds the subjects typeCheck reported as expressions
	// pgveil cannot print faithfully, with their range.
	// NOTE: a rule or mask is checked on each relation it covers: one
	// diagnostic says it for all of them.
	unforwardable map[string]bool
}

// exec runs one statement of pgveil's own, without parameters.
func (ck *catalogChecker) exec(sql string) error {
	_, _, err := ck.srv.Query(ck.ctx, sql)
	return err
}

// UnforwardableSummary is the summary of the error about a configured
// expression pgveil cannot print faithfully (typeCheck).
const UnforwardableSummary = "Expression pgveil cannot forward"

// CannotCheckSummary is the summary of CheckCatalog's error when checking
// stopped on an error that is not about the configuration.
const CannotCheckSummary = "Cannot check the configuration upstream"

// cannot reports that checking stopped on an error that is not about the
// configuration (the connection broke).
func (ck *catalogChecker) cannot(err error) *hcl.Diagnostic {
	return &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  CannotCheckSummary,
		Detail:   fmt.Sprintf("Querying the upstream server failed: %s.", err),
	}
}

// report adds a diagnostic at rng (when not nil).
func (ck *catalogChecker) report(sev hcl.DiagnosticSeverity, rng *hcl.Range, summary, detail string) {
	ck.diags = append(ck.diags, &hcl.Diagnostic{Severity: sev, Summary: summary, Detail: detail, Subject: rng, Extra: ck.owner})
}

// attrRange returns the range of the value of the attribute key
// ("table.public.t.owner_column"), or fallback.
func (ck *catalogChecker) attrRange(key string, fallback hcl.Range) *hcl.Range {
	if a := ck.cfg.attrs[key]; a != nil {
		return a.Expr.Range().Ptr()
	}
	return fallback.Ptr()
}

// typeCheck asks the server to plan stmt (an EXPLAIN): it returns the
// server's message when PostgreSQL rejects it, "" when it accepts it.
// ok is false when the connection failed, after reporting it. subject
// names the configured expression stmt holds ("the where of rule
// \"x\""), at rng.
//
// NOTE: an expression pgveil's deparser cannot print as its tree
// (rewrite.ErrDeparsedOtherwise) never reaches the server, here or in a
// statement: typeCheck reports it at rng itself, once per subject, as
// what it is (the rewriter would refuse every statement it goes into),
// and returns "" so that the caller does not blame PostgreSQL for it.
// Loading reports an expression no binding makes printable
// (validateForwardable), and CheckCatalog never runs on such a
// configuration: here it is one bound for a user whose values do.
func (ck *catalogChecker) typeCheck(rng *hcl.Range, subject string, stmt *pg_query.Node) (problem string, ok bool) {
	sql, err := deparseStmt(stmt)
	if errors.Is(err, rewrite.ErrDeparsedOtherwise) {
		key := subject
		if rng != nil {
			key += "\x00" + rng.String()
		}
		if !ck.unforwardable[key] {
			if ck.unforwardable == nil {
				ck.unforwardable = map[string]bool{}
			}
			ck.unforwardable[key] = true
			ck.report(hcl.DiagError, rng, UnforwardableSummary, unforwardableDetail(subject))
		}
		return "", true
	}
	if err != nil {
		return fmt.Sprintf("the statement could not be built: %v", err), true
	}
	err = ck.exec(sql)
	if err == nil {
		return "", true
	}
	msg, rejected := rejection(err)
	if !rejected {
		if ck.locksRefuse && lockNotAvailable(err) {
			ck.report(hcl.DiagError, nil, lockedSummary, fmt.Sprintf("Type-checking it waited on a lock past lock_timeout: %s.", err))
			return "", true
		}
		ck.diags = append(ck.diags, ck.cannot(err))
		return "", false
	}
	return msg, true
}

// explainTemplate is EXPLAIN (COSTS OFF) of a query the checks fill in.
var explainTemplate = func() *pg_query.ExplainStmt {
	tree, err := pg_query.Parse("EXPLAIN (COSTS OFF) SELECT 1")
	if err != nil {
		panic("policy: parsing the EXPLAIN template: " + err.Error())
	}
	return tree.Stmts[0].Stmt.GetExplainStmt()
}()

// explainSelect returns EXPLAIN (COSTS OFF) SELECT target FROM [ONLY] rel
// WHERE where, as a syntax tree: configured names and values enter it as
// nodes, never as text.
func explainSelect(target *pg_query.Node, rel *rewrite.Relation, where *pg_query.Node) *pg_query.Node {
	from := rangeVar(rel.QName)
	if rel.Kind == 'r' || rel.Kind == 'p' {
		from.GetRangeVar().Inh = false // ONLY: children are checked on their own
	}
	sel := &pg_query.SelectStmt{
		TargetList:  []*pg_query.Node{pg_query.MakeResTargetNodeWithVal(target, -1)},
		FromClause:  []*pg_query.Node{from},
		WhereClause: where,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	ex := proto.Clone(explainTemplate).(*pg_query.ExplainStmt)
	ex.Query = &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}}
	return &pg_query.Node{Node: &pg_query.Node_ExplainStmt{ExplainStmt: ex}}
}

// table checks a table block against the catalog; false when the
// connection failed.
func (ck *catalogChecker) table(t *Table) bool {
	label := t.Pattern.String()
	var rels []*rewrite.Relation
	if t.Pattern.Exact() {
		rel := ck.cat.Relations[t.Pattern.QName()]
		if rel == nil {
			detail := fmt.Sprintf("No table, view or foreign table named %s exists in database %s (as the service account %s sees it).",
				label, ck.cfg.Upstream.Database, ck.cfg.Upstream.User)
			if s := suggest(label, ck.relationNames()); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			ck.report(hcl.DiagError, t.DeclRange.Ptr(), "Unknown table", detail)
			return true
		}
		rels = []*rewrite.Relation{rel}
	} else {
		matched := false
		for _, rel := range ck.relations {
			if t.Pattern.Match(rel.QName) {
				matched = true
				if slices.Contains(ck.governed[t], rel) {
					rels = append(rels, rel)
				}
			}
		}
		if !matched {
			ck.report(hcl.DiagWarning, t.DeclRange.Ptr(), "Pattern matches no table", fmt.Sprintf(
				"No relation of database %s matches %q: the table block governs nothing (yet).", ck.cfg.Upstream.Database, label))
			return true
		}
	}
	// NOTE: a relation the service account cannot read fails every
	// statement, and its type checks with "permission denied": it is
	// warned about once, not type-checked.
	denied := ck.unreadable(t, rels)
	readable := func(rels []*rewrite.Relation) []*rewrite.Relation {
		if len(denied) == 0 {
			return rels
		}
		return slices.DeleteFunc(slices.Clone(rels), func(rel *rewrite.Relation) bool { return denied[rel] })
	}
	prefix := "table." + label
	settings := []struct{ name, column string }{{"owner_column", t.OwnerColumn}, {"team_column", t.TeamColumn}}
	for _, s := range settings {
		if s.column != "" {
			rng := ck.attrRange(prefix+"."+s.name, t.DeclRange)
			have := ck.missingColumn(t, rels, rng, s.column,
				fmt.Sprintf("%s = %q", s.name, s.column), "scopes that need it give no row")
			if !ck.scopeColumn(rng, s.name, s.column, readable(have)) {
				return false
			}
		}
	}
	if t.Follows != nil && !ck.follows(t, rels) {
		return false
	}
	ck.maskedPartitionKeys(t, rels)
	for _, name := range sortedKeys(t.Columns) {
		col := t.Columns[name]
		present := ck.missingColumn(t, rels, col.DeclRange.Ptr(), name, fmt.Sprintf("column %q", name), "it is never masked there")
		if col.Mask.Kind == "" {
			continue // NOTE: an invalid mask kind, already reported when loading.
		}
		if !ck.mask(t, col, readable(present)) {
			return false
		}
	}
	return true
}

// maskedPartitionKeys warns about a classified (so maskable) column of
// t that a partition key of one of rels reads: each partition is refused
// by name to the users who see it masked, and a read of the partitioned
// table returns its rows grouped by partition, in bound order, which
// tells the masked values' ranges (SECURITY.md, Metadata).
func (ck *catalogChecker) maskedPartitionKeys(t *Table, rels []*rewrite.Relation) {
	for _, name := range sortedKeys(t.Columns) {
		col := t.Columns[name]
		if col.Class == "" {
			continue
		}
		var parted []string
		for _, rel := range rels {
			if rel.Kind != 'p' {
				continue
			}
			for _, d := range rel.Descendants {
				if slices.Contains(d.BoundBy, name) {
					parted = append(parted, rel.QName.String())
					break
				}
			}
		}
		if len(parted) == 0 {
			continue
		}
		ck.report(hcl.DiagWarning, col.DeclRange.Ptr(), "Partition key reads a masked column", fmt.Sprintf(
			"%s %s partitioned by a key reading column %q, which roles without class %q see masked: pgveil refuses them each partition by name, "+
				"but a read of the table returns its rows grouped by partition, in bound order, which tells the ranges of the masked values "+
				"(and a LIMIT takes the lowest partition's rows first). Partition by columns no user has masked.",
			strings.Join(parted, ", "), map[bool]string{true: "is", false: "are"}[len(parted) == 1], name, col.Class))
	}
}

// scopeColumn type-checks the comparison pgveil builds with a table
// block's owner_column (own_rows and the self, own_groups and groups
// scopes compare it with logins, text) or team_column (own_team and
// team_subtree compare it with team ids, integers) on the relations that
// have the column: a column of another type makes every statement of the
// users it applies to fail there. The comparison is bound for a user with
// own_rows (owner_column) or a team (team_column) when there is one.
// false when the connection failed.
func (ck *catalogChecker) scopeColumn(rng *hcl.Range, setting, column string, rels []*rewrite.Relation) bool {
	var p *UserPolicy
	var value Value
	var holds, uses string
	if setting == "owner_column" {
		p = ck.samplePolicy(func(p *UserPolicy) bool { return len(p.ownRows) > 0 })
		if len(p.ownRows) == 0 {
			p = ck.samplePolicy(func(*UserPolicy) bool { return true })
		}
		value = p.attr("login")
		holds, uses = "logins (text)", "own_rows and the scopes self, own_groups and groups compare it with the user's login"
	} else {
		p = ck.samplePolicy(func(p *UserPolicy) bool { return p.user.Team != nil })
		team := int64(0)
		if p.user.Team != nil {
			team = *p.user.Team
		}
		value = intValue(team)
		holds, uses = "team ids (integer)", "the scopes own_team and team_subtree compare it with the user's team id"
	}
	var failed []*rewrite.Relation
	first := ""
	for _, rel := range rels {
		problem, ok := ck.typeCheck(rng, fmt.Sprintf("the comparison of column %s with %s", column, setting), explainSelect(pg_query.MakeAConstIntNode(1, -1), rel, eq(columnRef(column), literal(value))))
		if !ok {
			return false
		}
		if problem != "" {
			failed = append(failed, rel)
			if first == "" {
				typ := ""
				if c := columnOf(rel, column); c != nil {
					typ = fmt.Sprintf(" (type %s)", c.Type)
				}
				first = fmt.Sprintf("on %s%s: %s", rel.QName, typ, problem)
			}
		}
	}
	if len(failed) == 0 {
		return true
	}
	detail := fmt.Sprintf("PostgreSQL rejects %s = %s (bound for user %q) %s.", column, literalText(value), p.user.Login, first)
	if len(failed) > 1 {
		detail += fmt.Sprintf(" It fails on %d tables: %s.", len(failed), relationList(failed))
	}
	detail += fmt.Sprintf(" %s: every statement of the users it applies to fails on the table. Name a column holding %s in %s.",
		strings.ToUpper(uses[:1])+uses[1:], holds, setting)
	ck.report(hcl.DiagError, rng, "Scope column of the wrong type", detail)
	return true
}

// literalText renders a string or number v as a SQL constant.
func literalText(v Value) string {
	if v.kind == kindString {
		return "'" + strings.ReplaceAll(v.text, "'", "''") + "'"
	}
	return v.String()
}

// relationNames lists the qualified names of the user relations, for
// suggestions.
func (ck *catalogChecker) relationNames() []string {
	names := make([]string, len(ck.relations))
	for i, rel := range ck.relations {
		names[i] = rel.QName.String()
	}
	return names
}

// missingColumn reports the relations of a table block that lack column,
// which setting names: an error with a suggestion for a block naming one
// table, a warning listing them for a pattern. It returns the relations
// that have the column.
func (ck *catalogChecker) missingColumn(t *Table, rels []*rewrite.Relation, rng *hcl.Range, column, setting, consequence string) []*rewrite.Relation {
	var have, lack []*rewrite.Relation
	for _, rel := range rels {
		if hasColumn(rel, column) {
			have = append(have, rel)
		} else {
			lack = append(lack, rel)
		}
	}
	switch {
	case len(lack) == 0:
	case t.Pattern.Exact():
		rel := lack[0]
		detail := fmt.Sprintf("The table block %q names %s, but %s has no such column.", t.Pattern.String(), setting, rel.QName)
		if s := suggest(column, columnNames(rel)); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		} else {
			detail += fmt.Sprintf(" Its columns are %s.", strings.Join(columnNames(rel), ", "))
		}
		ck.report(hcl.DiagError, rng, "Unknown column", detail)
	default:
		ck.report(hcl.DiagWarning, rng, "Column missing from governed tables", fmt.Sprintf(
			"The table block %q names %s, which %d of the %d tables it governs lack (%s): %s.",
			t.Pattern.String(), setting, len(lack), len(rels), relationList(lack), consequence))
	}
	return have
}

// hasColumn reports whether rel has a column name.
func hasColumn(rel *rewrite.Relation, name string) bool {
	return slices.ContainsFunc(rel.Columns, func(c rewrite.Column) bool { return c.Name == name })
}

// columnOf returns rel's column name.
func columnOf(rel *rewrite.Relation, name string) *rewrite.Column {
	for i := range rel.Columns {
		if rel.Columns[i].Name == name {
			return &rel.Columns[i]
		}
	}
	return nil
}

// columnNames lists rel's column names in order.
func columnNames(rel *rewrite.Relation) []string {
	names := make([]string, len(rel.Columns))
	for i, c := range rel.Columns {
		names[i] = c.Name
	}
	return names
}

// relationList renders up to five relation names, then a count.
func relationList(rels []*rewrite.Relation) string {
	const most = 5
	names := make([]string, 0, most)
	for i, rel := range rels {
		if i == most {
			names = append(names, fmt.Sprintf("and %d more", len(rels)-most))
			break
		}
		names = append(names, rel.QName.String())
	}
	return strings.Join(names, ", ")
}

// hasFunc returns whether rel has a column, for scopes and masks.
func hasFunc(rel *rewrite.Relation) func(string) bool {
	return func(name string) bool { return hasColumn(rel, name) }
}

// unreadable warns about governed relations the service account may not
// SELECT from: every statement on them would fail. It returns them.
func (ck *catalogChecker) unreadable(t *Table, rels []*rewrite.Relation) map[*rewrite.Relation]bool {
	var oids []string
	for _, rel := range rels {
		oids = append(oids, strconv.FormatUint(uint64(rel.OID), 10))
	}
	if len(oids) == 0 {
		return nil
	}
	_, rows, err := ck.srv.Query(ck.ctx,
		`SELECT c.oid::pg_catalog.text FROM pg_catalog.pg_class c
		 WHERE c.oid OPERATOR(pg_catalog.=) ANY($1::pg_catalog.oid[]) AND NOT pg_catalog.has_table_privilege(c.oid, 'SELECT')`,
		"{"+strings.Join(oids, ",")+"}")
	if err != nil || len(rows) == 0 {
		return nil
	}
	denied := map[string]bool{}
	for _, r := range rows {
		denied[string(r[0])] = true
	}
	var lack []*rewrite.Relation
	set := map[*rewrite.Relation]bool{}
	for _, rel := range rels {
		if denied[strconv.FormatUint(uint64(rel.OID), 10)] {
			lack = append(lack, rel)
			set[rel] = true
		}
	}
	names := make([]string, len(lack))
	for i, rel := range lack {
		names[i] = sqlName(rel.Schema) + "." + sqlName(rel.Name)
	}
	ck.report(hcl.DiagWarning, t.DeclRange.Ptr(), "Governed table not readable by the service account", fmt.Sprintf(
		"The service account %s has no SELECT privilege on %s: every statement reading it through pgveil fails. "+
			"GRANT SELECT ON %s TO %s.", ck.cfg.Upstream.User, relationList(lack), strings.Join(names, ", "), sqlName(ck.cfg.Upstream.User)))
	return set
}

// sqlName renders an identifier for SQL text in a hint: as it is when
// PostgreSQL reads it so unquoted (lower case, not a keyword), quoted
// otherwise.
func sqlName(name string) string {
	simple := name != ""
	for i, r := range name {
		if !(r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '$')) {
			simple = false
			break
		}
	}
	if simple {
		res, err := pg_query.Scan(name)
		simple = err == nil && len(res.Tokens) == 1 && res.Tokens[0].KeywordKind == pg_query.KeywordKind_NO_KEYWORD
	}
	if simple {
		return name
	}
	return quoteIdent(name)
}

// isStringType reports whether a partial mask or a hash mask's hex
// digest (text) fits a column of type typ (format_type's output).
func isStringType(typ string) bool {
	base, _, _ := strings.Cut(typ, "(")
	switch strings.TrimSpace(base) {
	case "text", "character varying", "character", "name", "citext":
		return true
	}
	return strings.HasSuffix(base, ".citext")
}

// typeLength returns n of character varying(n) or character(n), 0
// otherwise.
func typeLength(typ string) int {
	_, rest, ok := strings.Cut(typ, "(")
	if !ok || !strings.HasPrefix(typ, "character") {
		return 0
	}
	n, _ := strconv.Atoi(strings.TrimSuffix(rest, ")"))
	return n
}

// hashLength is the length of a hash mask's value: SHA-256 in hex.
const hashLength = 64

// mask checks the mask of col on the relations that have the column:
// the server type-checks CAST(<mask> AS <column type>), partial masks,
// whose values are text, need a text column, and hash masks a text,
// integer or uuid column (hashPseudonym). false when the connection
// failed.
func (ck *catalogChecker) mask(t *Table, col *Column, rels []*rewrite.Relation) bool {
	prefix := "table." + t.Pattern.String() + ".column." + col.Name
	rng := ck.attrRange(prefix+".mask", col.DeclRange)
	switch col.Mask.Kind {
	case MaskRedact:
		rng = ck.attrRange(prefix+".value", *rng)
	case MaskExpression:
		rng = ck.attrRange(prefix+".expression", *rng)
	}
	p := ck.samplePolicy(func(p *UserPolicy) bool { return !p.classes[col.Class] })
	var bound *pg_query.Node
	if col.Mask.expr != nil {
		bound = bind(col.Mask.expr, p.attr)
	}
	var failed []*rewrite.Relation
	first, firstType := "", ""
	for _, rel := range rels {
		c := columnOf(rel, col.Name)
		// NOTE: the type the rewriter casts the mask to: a domain's
		// base type (rewrite.Column.MaskCast).
		castType, castTypeName := c.MaskCast()
		problem := ""
		if e := col.Mask.expr; e != nil {
			if missing := missingColumns(rel, e.columns); len(missing) > 0 {
				if t.Pattern.Exact() {
					ck.report(hcl.DiagError, rng, "Unknown column", fmt.Sprintf(
						"The mask expression of column %s reads %s, which %s lacks%s: the mask would always be NULL.",
						col.Name, strings.Join(missing, ", "), rel.QName, suggestionFor(missing[0], rel)))
				}
				continue
			}
		}
		_, pseudonym := hashPseudonym(castType)
		switch col.Mask.Kind {
		case MaskHash:
			// NOTE: an integer or uuid column gets a pseudonym of its own
			// type (hashPseudonym), a string column the hex digest.
			if !isStringType(castType) && pseudonym == nil {
				problem = fmt.Sprintf("a hash mask produces text (a hex digest) for a string column (text, character varying, character, name, citext), "+
					"%s; a column of type %s is none of these", hashPseudonymTypes, c.Type)
			} else if n := typeLength(castType); n > 0 && n < hashLength {
				ck.report(hcl.DiagWarning, rng, "Hash mask truncated", fmt.Sprintf(
					"Column %s of %s is %s: the %d-character hash is cut to %d characters, so different values may look equal.",
					col.Name, rel.QName, c.Type, hashLength, n))
			}
		case MaskPartial:
			if !isStringType(castType) {
				problem = fmt.Sprintf("a partial mask produces text (the value with characters replaced by stars), which a column of type %s cannot hold", c.Type)
			}
		}
		// NOTE: a hash mask of a string column is pgveil.mask_hash(col::text,
		// id) cast to that string type, which always fits, and of an
		// integer or uuid column a pseudonym served as its own type
		// (hashPseudonym), which fits by construction: type-checking it
		// upstream only tells whether the keys are installed, which
		// CheckMaskKeys reports, with what to run. Without the keys it
		// would also report "schema pgveil does not exist" here, as if the
		// mask did not fit the column.
		if problem == "" && col.Mask.Kind != MaskHash {
			mask := maskNode(&col.Mask, col.Name, castType, bound, hasFunc(rel))
			var ok bool
			problem, ok = ck.typeCheck(rng, fmt.Sprintf("the %s mask of column %s", col.Mask.Kind, col.Name), explainSelect(typeCast(mask, proto.Clone(castTypeName).(*pg_query.TypeName)), rel, boolConst(false)))
			if !ok {
				return false
			}
		}
		if problem == "" && col.Mask.Kind == MaskExpression {
			if !ck.expressionType(rng, col, rel, bound) {
				return false
			}
		}
		if problem != "" {
			failed = append(failed, rel)
			if first == "" {
				first = fmt.Sprintf("on %s (type %s): %s", rel.QName, c.Type, problem)
				firstType = castType
			}
		}
	}
	if len(failed) > 0 {
		detail := fmt.Sprintf("The %s mask of column %s does not fit the column's type %s.", col.Mask.Kind, col.Name, first)
		if len(failed) > 1 {
			detail += fmt.Sprintf(" It fails on %d tables: %s.", len(failed), relationList(failed))
		}
		if col.Mask.Kind == MaskRedact {
			detail += ck.redactHint(firstType)
		}
		ck.report(hcl.DiagError, rng, "Mask does not fit column type", detail)
	}
	return true
}

// redactHint tells what value a redact mask of a column of type typ
// (format_type's, as the rewriter casts to) can be: one of an enum's
// labels, which it names, a number for any other type; and, first, that
// the service account lacks USAGE on the type's schema, when it does:
// the rewriter's cast then fails whatever the value.
//
// NOTE: asked only once the mask failed; a failed lookup gives the
// general hint. The type is found by its schema's and its own name in
// the catalogs, which need no USAGE (a regtype cast of a qualified name
// does); an unqualified name is one on the search path.
func (ck *catalogChecker) redactHint(typ string) string {
	_, rows, err := ck.srv.Query(ck.ctx, `WITH n AS (SELECT pg_catalog.parse_ident($1) AS p)
SELECT pg_catalog.has_schema_privilege(s.oid, 'USAGE')::text, s.nspname, e.enumlabel
  FROM n, pg_catalog.pg_type t JOIN pg_catalog.pg_namespace s ON s.oid OPERATOR(pg_catalog.=) t.typnamespace
  LEFT JOIN pg_catalog.pg_enum e ON e.enumtypid OPERATOR(pg_catalog.=) t.oid
 WHERE CASE
         WHEN pg_catalog.cardinality(n.p) OPERATOR(pg_catalog.=) 1 THEN t.oid OPERATOR(pg_catalog.=) pg_catalog.to_regtype($1)
         WHEN pg_catalog.cardinality(n.p) OPERATOR(pg_catalog.=) 2 THEN s.nspname OPERATOR(pg_catalog.=) n.p[1] AND t.typname OPERATOR(pg_catalog.=) n.p[2]
         ELSE false END
 ORDER BY e.enumsortorder`, typ)
	hint := ""
	if err == nil && len(rows) > 0 && string(rows[0][0]) == "false" {
		hint = fmt.Sprintf(" The service account has no USAGE on schema %s, so the cast of the mask to %s fails whatever its value: "+
			"GRANT USAGE ON SCHEMA %s TO the service account.", quoteIdent(string(rows[0][1])), typ, quoteIdent(string(rows[0][1])))
	}
	if err == nil && len(rows) > 0 && rows[0][2] != nil {
		labels := make([]string, 0, len(rows))
		for _, r := range rows {
			labels = append(labels, string(r[2]))
		}
		more := ""
		if len(labels) > 8 {
			labels, more = labels[:8], ", …"
		}
		return hint + fmt.Sprintf(" %s is an enum: give the redact mask one of its labels as a string (value = %q; its labels are %s%s), or use mask = \"null\".",
			typ, labels[0], strings.Join(labels, ", "), more)
	}
	return hint + " Give the redact mask a value of the column's type (value = 0 for a number), or use mask = \"null\"."
}

// expressionType warns when an expression mask's type is not the
// column's and PostgreSQL casts it only explicitly (text to integer…):
// the cast then runs on each masked value, and a value that does not fit
// fails the statement. The server describes SELECT <mask>, <column> FROM
// ONLY <table> WHERE false without running it. false when the connection
// failed.
func (ck *catalogChecker) expressionType(rng *hcl.Range, col *Column, rel *rewrite.Relation, bound *pg_query.Node) bool {
	sel := explainSelect(bound, rel, boolConst(false)).GetExplainStmt().Query.GetSelectStmt()
	sel.TargetList = append(sel.TargetList, pg_query.MakeResTargetNodeWithVal(columnRef(col.Name), -1))
	sql, err := deparseStmt(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}})
	if err != nil {
		return true
	}
	fields, err := ck.srv.Describe(ck.ctx, sql)
	if err != nil {
		if _, rejected := rejection(err); !rejected {
			ck.diags = append(ck.diags, ck.cannot(err))
			return false
		}
		return true // NOTE: the EXPLAIN accepted it; nothing more to say.
	}
	if len(fields) != 2 || fields[0].OID == fields[1].OID {
		return true
	}
	oid := func(i int) string { return strconv.FormatUint(uint64(fields[i].OID), 10) }
	_, rows, err := ck.srv.Query(ck.ctx, `SELECT pg_catalog.format_type($1::pg_catalog.oid, NULL), pg_catalog.format_type($2::pg_catalog.oid, NULL),
		EXISTS (SELECT FROM pg_catalog.pg_cast c WHERE c.castsource OPERATOR(pg_catalog.=) $1::pg_catalog.oid AND c.casttarget OPERATOR(pg_catalog.=) $2::pg_catalog.oid
		        AND (c.castcontext OPERATOR(pg_catalog.=) 'i' OR c.castcontext OPERATOR(pg_catalog.=) 'a'))`, oid(0), oid(1))
	if err != nil || len(rows) != 1 || string(rows[0][2]) == "t" {
		return true
	}
	ck.report(hcl.DiagWarning, rng, "Mask expression of another type", fmt.Sprintf(
		"The mask expression of column %s of %s yields %s, and the column is %s, to which PostgreSQL casts it only "+
			"explicitly: pgveil casts every masked value, and one that does not fit fails the statement. Write an "+
			"expression of type %s.", col.Name, rel.QName, rows[0][0], rows[0][1], rows[0][1]))
	return true
}

// missingColumns returns the columns of cols that rel lacks.
func missingColumns(rel *rewrite.Relation, cols []string) []string {
	var out []string
	for _, c := range cols {
		if !hasColumn(rel, c) {
			out = append(out, c)
		}
	}
	return out
}

// suggestionFor returns ` (did you mean "x"?)` for a column rel lacks,
// or "". The column is one a policy expression reads, SQL text: a
// suggested name SQL would not read back unquoted (capitals, spaces) is
// shown as it must be written there, quoted.
//
// NOTE: PostgreSQL folds an unquoted name to lower case, so a rule
// written `region = me.region` on a column created as "Region" reads a
// column that does not exist; suggesting "Region" alone sends the DBA
// back to the same mistake.
func suggestionFor(column string, rel *rewrite.Relation) string {
	s := suggest(column, columnNames(rel))
	if s == "" {
		return ""
	}
	if !plainIdentifier(s) {
		return fmt.Sprintf(" (did you mean %q? SQL reads that name only quoted (it folds unquoted names to lower case): write %s, which is %s inside an HCL string)",
			s, quoteIdent(s), strings.ReplaceAll(quoteIdent(s), `"`, `\"`))
	}
	return fmt.Sprintf(" (did you mean %q?)", s)
}

// plainIdentifier reports whether SQL reads name written unquoted as
// name itself: lower-case letters, digits, underscores and dollar signs,
// not starting with a digit or a dollar sign. (Keywords are not
// considered: a near miss of one is rare, and the SQL check reports it.)
func plainIdentifier(name string) bool {
	if name == "" {
		return false
	}
	for i, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r == '_':
		case (r >= '0' && r <= '9') || r == '$':
			if i == 0 {
				return false
			}
		default:
			return false
		}
	}
	return true
}

// samplePolicy returns the compiled policy of the first login (in name
// order) for which want is true, or a policy of a user without attributes
// when none is: expressions bound for it type-check like any other.
func (ck *catalogChecker) samplePolicy(want func(*UserPolicy) bool) *UserPolicy {
	for _, login := range ck.ids.Logins() {
		p, ok := ck.policies[login]
		if !ok {
			p, _ = ck.cfg.compile(login, ck.ids)
			ck.policies[login] = p
		}
		if p != nil && want(p) {
			return p
		}
	}
	return &UserPolicy{cfg: ck.cfg, user: &User{Login: "pgveil_check", Attributes: map[string]Value{}}}
}

// rule type-checks a rule's predicate, bound to a user it applies to, on
// every relation it covers; false when the connection failed.
func (ck *catalogChecker) rule(r *Rule) bool {
	key := "rule." + r.Name + ".where"
	if r.where == nil {
		key = "rule." + r.Name + ".scope"
	}
	rng := ck.attrRange(key, r.DeclRange)
	ck.ruleTables(r)
	p := ck.samplePolicy(func(p *UserPolicy) bool { return p.appliesTo(r) })
	var members []string
	if r.Scope == ScopeGroups {
		seen := map[string]bool{}
		for _, g := range r.Groups {
			for _, m := range ck.ids.members[g] {
				seen[m] = true
			}
		}
		members = sortedKeys(seen)
	}
	var failed []*rewrite.Relation
	first := ""
	for _, rel := range ck.relations {
		t, _ := ck.cfg.tableFor(rel)
		if t == nil || !r.covers(rel) {
			continue
		}
		exact := slices.ContainsFunc(r.Tables, func(pat Pattern) bool { return pat.Exact() && pat.QName() == rel.QName })
		var pred *pg_query.Node
		if r.where != nil {
			if missing := missingColumns(rel, r.where.columns); len(missing) > 0 {
				if exact {
					ck.report(hcl.DiagError, rng, "Unknown column", fmt.Sprintf(
						"Rule %q reads %s, which %s lacks%s: the rule would never grant a row there.",
						r.Name, strings.Join(missing, ", "), rel.QName, suggestionFor(missing[0], rel)))
				}
				continue
			}
			pred = bind(r.where, p.attr)
		} else {
			sc := &scopeContext{table: t, has: hasFunc(rel), p: p}
			pred = sc.predicate(r.Scope, members)
		}
		what := "where"
		if r.where == nil {
			what = fmt.Sprintf("scope %q", r.Scope)
		}
		problem, ok := ck.typeCheck(rng, fmt.Sprintf("the %s of rule %q", what, r.Name), explainSelect(pg_query.MakeAConstIntNode(1, -1), rel, pred))
		if !ok {
			return false
		}
		if problem != "" {
			failed = append(failed, rel)
			if first == "" {
				first = fmt.Sprintf("on %s: %s", rel.QName, problem)
			}
		}
	}
	if len(failed) > 0 {
		what := "where"
		if r.where == nil {
			what = fmt.Sprintf("scope %q", r.Scope)
		}
		detail := fmt.Sprintf("PostgreSQL rejects the %s of rule %q (bound for user %q) %s.", what, r.Name, p.user.Login, first)
		if len(failed) > 1 {
			detail += fmt.Sprintf(" It fails on %d tables: %s.", len(failed), relationList(failed))
		}
		if r.where != nil && strings.Contains(first, "operator does not exist") && strings.Contains(first, "[]") {
			detail += listAttributeHint(r.where, p)
		}
		ck.report(hcl.DiagError, rng, "Rule does not type-check", detail)
	}
	return true
}

// listAttributeHint tells how to compare with the list attributes that
// where reads, bound for p, for a predicate PostgreSQL refused with an
// operator taking an array: `tenant_id = me.tenants` and `tenant_id IN
// (me.tenants)` compare a value with the whole list. Empty when where
// reads no list attribute.
func listAttributeHint(where *sqlExpr, p *UserPolicy) string {
	var lists []string
	for _, name := range sortedKeys(where.attrs) {
		if p.attr(name).kind == kindList {
			lists = append(lists, "me."+name)
		}
	}
	if len(lists) == 0 {
		return ""
	}
	return fmt.Sprintf(" %s is a list (an array in SQL): compare a column with its elements as column = ANY(%s) (or <> ALL), not with = or IN (…).",
		strings.Join(lists, ", "), lists[0])
}

// ruleTables reports the tables entries of rule r that name no relation
// of the database: an error for a restrictive rule, which then restricts
// nothing, a warning for a permissive one, which grants nothing there.
func (ck *catalogChecker) ruleTables(r *Rule) {
	a := ck.cfg.attrs["rule."+r.Name+".tables"]
	for _, pat := range r.Tables {
		if pat.Exact() && ck.cat.Relations[pat.QName()] != nil ||
			!pat.Exact() && slices.ContainsFunc(ck.relations, func(rel *rewrite.Relation) bool { return pat.Match(rel.QName) }) {
			continue
		}
		sev, consequence := hcl.DiagWarning, "it grants nothing there (yet)"
		if r.Restrictive {
			sev, consequence = hcl.DiagError, "it would restrict nothing"
		}
		how := "matched by it"
		if pat.Exact() {
			how = "named so"
		}
		detail := fmt.Sprintf("Rule %q names %s, but no table, view or foreign table of database %s is %s (as the service account %s sees it): %s.",
			r.Name, pat.String(), ck.cfg.Upstream.Database, how, ck.cfg.Upstream.User, consequence)
		if s := suggest(pat.String(), ck.relationNames()); s != "" {
			detail += fmt.Sprintf(" Did you mean %q?", s)
		}
		rng := r.DeclRange.Ptr()
		if a != nil {
			rng = listElementRange(a, pat.String()).Ptr()
		}
		ck.report(sev, rng, "Rule names no table", detail)
	}
}

// functions warns about functions roles list that the database lacks.
func (ck *catalogChecker) functions() {
	var known []string
	for schema, fns := range ck.cat.Functions {
		if catalogSchemas[schema] {
			continue
		}
		for name := range fns {
			known = append(known, schema+"."+name)
		}
	}
	slices.Sort(known)
	for _, name := range sortedKeys(ck.cfg.Roles) {
		role := ck.cfg.Roles[name]
		a := ck.cfg.attrs["role."+name+".functions"]
		for _, f := range role.Functions {
			schema, fn, _ := strings.Cut(f, ".")
			if ck.cat.Functions[schema][fn] {
				continue
			}
			detail := fmt.Sprintf("Role %q allows %s, but database %s has no such function (or the service account cannot see it).",
				name, f, ck.cfg.Upstream.Database)
			if s := suggest(f, known); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			rng := role.DeclRange.Ptr()
			if a != nil {
				rng = listElementRange(a, f).Ptr()
			}
			ck.report(hcl.DiagWarning, rng, "Unknown function", detail)
		}
	}
}

// listElementRange returns the range of the literal element s of list
// attribute a, or a's value range.
func listElementRange(a *hcl.Attribute, s string) hcl.Range {
	if elems, diags := hcl.ExprList(a.Expr); !diags.HasErrors() {
		for _, e := range elems {
			if v, diags := e.Value(nil); !diags.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String && v.AsString() == s {
				return e.Range()
			}
		}
	}
	return a.Expr.Range()
}
