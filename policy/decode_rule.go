package policy

import (
	"fmt"

	"github.com/hashicorp/hcl/v2"
)

// ruleSchema is the body of a rule block.
var ruleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "tables", Required: true},
		{Name: "roles"},
		{Name: "users"},
		{Name: "kind"},
		{Name: "where"},
		{Name: "scope"},
		{Name: "groups"},
		{Name: "enabled"},
	},
}

// Rule kinds.
const (
	rulePermissive  = "permissive"
	ruleRestrictive = "restrictive"
)

// ruleSources remembers where a rule's settings are written, for the
// checks made once every block is decoded.
type ruleSources struct {
	// tables, roles, users and groups are the ranges of each list element.
	tables, roles, users, groups []hcl.Range
	// rolesAttr, usersAttr, groupsAttr and scope are the attributes, nil
	// when absent.
	rolesAttr, usersAttr, groupsAttr, scope *hcl.Attribute
	// tablesAttr is the tables attribute.
	tablesAttr *hcl.Attribute
}

// decodeRule decodes one rule block into Rules.
func (d *decoder) decodeRule(b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, ruleSchema, "rule."+name)
	if !d.validLabel(b, "rule") {
		return
	}
	for _, prev := range d.cfg.Rules {
		if prev.Name == name {
			d.duplicate(b, "rule", name, prev.DeclRange)
			return
		}
	}
	r := &Rule{Name: name, Enabled: true, DeclRange: b.DefRange}
	d.cfg.Rules = append(d.cfg.Rules, r)
	src := &r.src
	if a := c.Attributes["tables"]; a != nil {
		src.tablesAttr = a
		names, ranges, ok := d.stringList(a, "a table name or pattern")
		if ok && len(names) == 0 {
			d.errorAt(a, "Invalid value", "tables must name at least one table or pattern.")
		}
		for i, n := range names {
			p, problem := parsePattern(n)
			if problem == "" && catalogSchemas[p.Schema] {
				problem = fmt.Sprintf("%s relations are always open: a rule cannot apply to them.", p.Schema)
			}
			if problem != "" {
				d.errorRange(ranges[i], a, "Invalid table name", problem)
				continue
			}
			r.Tables = append(r.Tables, p)
			src.tables = append(src.tables, ranges[i])
		}
	}
	rolesOK, usersOK := true, true
	if a := c.Attributes["roles"]; a != nil {
		src.rolesAttr = a
		r.Roles, src.roles, rolesOK = d.stringList(a, "a role name")
	}
	if a := c.Attributes["users"]; a != nil {
		src.usersAttr = a
		r.Users, src.users, usersOK = d.stringList(a, "a login")
	}
	// NOTE: empty lists too: a restrictive rule for nobody restricts
	// nobody, silently.
	if len(r.Roles) == 0 && len(r.Users) == 0 && rolesOK && usersOK {
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Rule without users",
			Detail:   fmt.Sprintf("Rule %q applies to nobody: set roles = [...], users = [...], or both.", name),
			Subject:  b.DefRange.Ptr(),
		})
	}
	if a := c.Attributes["kind"]; a != nil {
		if k, ok := d.string(a); ok && d.oneOf(a.Expr.Range(), a, k, "rule kind", []string{rulePermissive, ruleRestrictive}) {
			r.Restrictive = k == ruleRestrictive
		}
	}
	if a := c.Attributes["enabled"]; a != nil {
		r.Enabled, _ = d.boolean(a)
	}
	where, scope := c.Attributes["where"], c.Attributes["scope"]
	switch {
	case where != nil && scope != nil:
		d.errorAt(scope, "Conflicting row scope", fmt.Sprintf(
			"Rule %q has both a where and a scope: a rule has one or the other. Write two rules to combine them.", name))
	case where == nil && scope == nil:
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError,
			Summary:  "Rule without row scope",
			Detail: fmt.Sprintf(`Rule %q says whom it applies to but not which rows: set where = "<SQL predicate>" `+
				`or scope = "self", "own_team", "team_subtree", "own_groups", "groups" or "all".`, name),
			Subject: b.DefRange.Ptr(),
		})
	case where != nil:
		r.where = d.sqlExpression(where, whereExpr)
	default:
		src.scope = scope
		if s, ok := d.string(scope); ok {
			if s == ScopeNone {
				d.errorAt(scope, "Invalid scope", `"none" is a role ceiling, not a rule scope: a rule that grants no row `+
					`is written enabled = false.`)
			} else if d.oneOf(scope.Expr.Range(), scope, s, "scope", ruleScopes) {
				r.Scope = s
			}
		}
	}
	if a := c.Attributes["groups"]; a != nil {
		src.groupsAttr = a
		r.Groups, src.groups, _ = d.stringList(a, "a group name")
		if r.Scope != ScopeGroups && r.Scope != "" {
			d.errorAt(a, "Setting without effect", fmt.Sprintf(`groups is only used with scope = "groups"; rule %q has scope = %q.`, name, r.Scope))
		}
	} else if r.Scope == ScopeGroups {
		d.errorAt(scope, "Missing groups", fmt.Sprintf(`Rule %q has scope = "groups": list them with groups = ["…"].`, name))
	}
}
