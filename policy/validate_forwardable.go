package policy

import (
	"errors"
	"fmt"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/rewrite"
)

// maxForwardableBindings caps the bindings validateForwardable deparses
// an expression with: the kinds its attributes may take, combined.
//
// NOTE: past it, each attribute takes its first candidate kind only: a
// where reading many attributes of unknown kinds is checked once, not
// 4^n times.
const maxForwardableBindings = 16

// validateForwardable reports the rules' where and the expression masks
// that pgveil cannot print as SQL PostgreSQL reads back as the same tree
// (rewrite.ErrDeparsedOtherwise: (CASE … END)[1], a COLLATE of a literal
// under BETWEEN): the rewriter would refuse every statement on their
// tables. One error per expression, at its attribute, without an
// upstream, as CheckCatalog's typeCheck reports it with one
// (UnforwardableSummary).
//
// NOTE: an error, not a warning: a configuration loading with it would
// refuse every statement on the tables the rule or mask covers, and
// `pgveil serve` should say so at start (fail closed: the statements are
// refused either way, the DBA should learn it before the users). The
// expression is deparsed as CheckCatalog deparses it: in
// EXPLAIN (COSTS OFF) SELECT 1 FROM ONLY <table> WHERE <where>, or
// SELECT CAST(<mask> AS <type>) …, with me.<name> bound as constants of
// every kind the attribute may have (forwardableBindings). It is reported
// only when no binding deparses faithfully, so that a user whose values
// make it printable is not refused a configuration.
func (d *decoder) validateForwardable() {
	// NOTE: the relation and the mask's type do not change how the
	// expression prints; the check's statements name placeholders.
	rel := &rewrite.Relation{QName: rewrite.QName{Schema: "pgveil_check", Name: "t"}, Kind: 'r'}
	for _, r := range d.cfg.Rules {
		if r.where == nil {
			continue
		}
		a := d.attrs["rule."+r.Name+".where"]
		if a == nil {
			continue
		}
		d.forwardable(a, fmt.Sprintf("the where of rule %q", r.Name), r.where, func(bound *pg_query.Node) *pg_query.Node {
			return explainSelect(pg_query.MakeAConstIntNode(1, -1), rel, bound)
		})
	}
	for _, t := range d.cfg.Tables {
		for _, name := range sortedKeys(t.Columns) {
			col := t.Columns[name]
			if col.Mask.Kind != MaskExpression || col.Mask.expr == nil {
				continue
			}
			a := d.attrs["table."+t.Pattern.String()+".column."+name+".expression"]
			if a == nil {
				continue
			}
			d.forwardable(a, fmt.Sprintf("the %s mask of column %s", col.Mask.Kind, col.Name), col.Mask.expr, func(bound *pg_query.Node) *pg_query.Node {
				return explainSelect(typeCast(bound, scalarType("text")), rel, boolConst(false))
			})
		}
	}
}

// forwardable reports e, written at a, as UnforwardableSummary when the
// statement stmt builds around it deparses otherwise under every binding
// of its attributes. subject names it ("the where of rule \"x\"").
func (d *decoder) forwardable(a *hcl.Attribute, subject string, e *sqlExpr, stmt func(bound *pg_query.Node) *pg_query.Node) {
	for _, attr := range d.forwardableBindings(e) {
		_, err := deparseStmt(stmt(bind(e, attr)))
		if !errors.Is(err, rewrite.ErrDeparsedOtherwise) {
			return // NOTE: printable, or refused otherwise (and then by the rewriter too, not for this).
		}
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  UnforwardableSummary,
		Detail:   unforwardableDetail(subject),
		Subject:  a.Expr.Range().Ptr(),
	})
}

// unforwardableDetail is the detail of UnforwardableSummary about
// subject, offline and upstream alike.
func unforwardableDetail(subject string) string {
	return fmt.Sprintf(
		"pgveil prints %s as SQL that PostgreSQL would read as another expression, and refuses every statement "+
			"it would add it to. Write it another way: a COLLATE on the column rather than on a literal "+
			"(col COLLATE \"C\" BETWEEN 'a' AND 'm'), a subscript of a function call rather than of a CASE or a COLLATE.",
		subject)
}

// forwardableBindings returns the bindings of e's attributes
// validateForwardable tries: each attribute takes a placeholder constant
// of each kind it may have. The built-in ones have theirs (me.login a
// string, me.team a number, me.groups and me.roles lists of strings);
// another takes the kinds the user blocks give it, or, when none does
// (identity rows supply it), every kind. A missing attribute (NULL) is
// not a kind: the user blocks that set it decide.
func (d *decoder) forwardableBindings(e *sqlExpr) []func(string) Value {
	placeholder := map[valueKind]Value{
		kindString: {kind: kindString, text: "pgveil"},
		kindNumber: intValue(1),
		kindBool:   boolValue(true),
		kindList:   stringsValue([]string{"pgveil"}),
	}
	builtin := map[string]valueKind{"login": kindString, "team": kindNumber, "groups": kindList, "roles": kindList}
	names := sortedKeys(e.attrs)
	candidates := make([][]Value, len(names))
	combos := 1
	for i, name := range names {
		if k, ok := builtin[name]; ok {
			candidates[i] = []Value{placeholder[k]}
			continue
		}
		// NOTE: an empty list binds as a cast (ARRAY[]::text[]), not
		// ARRAY[…]: it is a kind of its own here.
		type shape struct {
			kind  valueKind
			empty bool
		}
		seen := map[shape]bool{}
		for _, login := range sortedKeys(d.cfg.Users) {
			v := d.cfg.Users[login].Attributes[name]
			s := shape{v.kind, v.kind == kindList && len(v.list) == 0}
			if v.kind == kindMissing || seen[s] {
				continue
			}
			seen[s] = true
			if s.empty {
				candidates[i] = append(candidates[i], v)
				continue
			}
			candidates[i] = append(candidates[i], placeholder[v.kind])
		}
		if len(candidates[i]) == 0 {
			for _, k := range []valueKind{kindString, kindNumber, kindBool, kindList} {
				candidates[i] = append(candidates[i], placeholder[k])
			}
		}
		combos *= len(candidates[i])
	}
	if combos > maxForwardableBindings {
		for i := range candidates {
			candidates[i] = candidates[i][:1]
		}
	}
	bindings := []map[string]Value{{}}
	for i, name := range names {
		var next []map[string]Value
		for _, b := range bindings {
			for _, v := range candidates[i] {
				m := make(map[string]Value, len(b)+1)
				for k, x := range b {
					m[k] = x
				}
				m[name] = v
				next = append(next, m)
			}
		}
		bindings = next
	}
	out := make([]func(string) Value, len(bindings))
	for i, b := range bindings {
		out[i] = func(name string) Value { return b[name] }
	}
	return out
}
