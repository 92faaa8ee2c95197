package policy

import (
	"fmt"
	"strings"

	"github.com/hashicorp/hcl/v2"

	"github.com/pgveil/pgveil/rewrite"
)

// roleSchema is the body of a role block.
var roleSchema = &hcl.BodySchema{
	Attributes: []hcl.AttributeSchema{
		{Name: "statements"},
		{Name: "columns"},
		{Name: "scope"},
		{Name: "own_rows"},
		{Name: "functions"},
	},
}

// statementKinds lists the statement kinds a role's statements may name,
// in the order messages show them.
var statementKinds = []string{
	string(rewrite.KindSelect), string(rewrite.KindCopyOut), string(rewrite.KindInsert),
	string(rewrite.KindUpdate), string(rewrite.KindDelete),
}

// ceilingScopes are the scopes a role may have as its ceiling.
var ceilingScopes = []string{ScopeAll, ScopeSelf, ScopeOwnTeam, ScopeTeamSubtree, ScopeOwnGroups, ScopeNone}

// ruleScopes are the built-in scopes a rule may have.
var ruleScopes = []string{ScopeSelf, ScopeOwnTeam, ScopeTeamSubtree, ScopeOwnGroups, ScopeGroups, ScopeAll}

// decodeRole decodes one role block into Roles.
func (d *decoder) decodeRole(b *hcl.Block) {
	name := b.Labels[0]
	c := d.content(b.Body, roleSchema, "role."+name)
	if !d.validLabel(b, "role") {
		return
	}
	if prev, ok := d.cfg.Roles[name]; ok {
		d.duplicate(b, "role", name, prev.DeclRange)
		return
	}
	r := &Role{Name: name, Scope: ScopeAll, DeclRange: b.DefRange}
	d.cfg.Roles[name] = r
	if a := c.Attributes["statements"]; a != nil {
		kinds, ranges, _ := d.stringList(a, "a statement kind")
		for i, k := range kinds {
			if d.oneOf(ranges[i], a, k, "statement kind", statementKinds) {
				r.Statements = append(r.Statements, rewrite.StatementKind(k))
			}
		}
	}
	if a := c.Attributes["columns"]; a != nil {
		r.Columns, _, _ = d.stringList(a, "a column class")
	}
	if a := c.Attributes["scope"]; a != nil {
		if s, ok := d.string(a); ok {
			if s == ScopeGroups {
				d.errorAt(a, "Invalid scope", `A role's scope cannot be "groups", which needs a list of groups: `+
					`use a rule with scope = "groups", or "own_groups" for the groups of the user.`)
			} else if d.oneOf(a.Expr.Range(), a, s, "scope", ceilingScopes) {
				r.Scope = s
			}
		}
	}
	if a := c.Attributes["own_rows"]; a != nil {
		r.OwnRows, _ = d.boolean(a)
	}
	if a := c.Attributes["functions"]; a != nil {
		fns, ranges, _ := d.stringList(a, "a function name")
		for i, f := range fns {
			schema, fn, ok := strings.Cut(f, ".")
			if !ok || schema == "" || fn == "" || strings.ContainsAny(fn, ".\"( ") {
				d.errorRange(ranges[i], a, "Invalid function name",
					fmt.Sprintf("%q must be schema.function, such as \"public.my_func\" (no arguments, no quotes).", f))
				continue
			}
			r.Functions = append(r.Functions, f)
		}
	}
}

// oneOf reports whether s is one of valid; otherwise it reports an error
// at rng naming the valid values, with a suggestion for a near miss.
func (d *decoder) oneOf(rng hcl.Range, a *hcl.Attribute, s, what string, valid []string) bool {
	for _, v := range valid {
		if s == v {
			return true
		}
	}
	quoted := make([]string, len(valid))
	for i, v := range valid {
		quoted[i] = fmt.Sprintf("%q", v)
	}
	detail := fmt.Sprintf("%q is not a %s: use one of %s.", s, what, strings.Join(quoted, ", "))
	if m := suggest(strings.ToLower(s), valid); m != "" {
		detail += fmt.Sprintf(" Did you mean %q?", m)
	}
	d.errorRange(rng, a, "Invalid "+what, detail)
	return false
}

// validLabel reports an empty block label.
func (d *decoder) validLabel(b *hcl.Block, kind string) bool {
	if b.Labels[0] != "" {
		return true
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  fmt.Sprintf("Invalid %s name", kind),
		Detail:   fmt.Sprintf("A %s block needs a non-empty name.", kind),
		Subject:  b.LabelRanges[0].Ptr(),
	})
	return false
}

// article returns "An" or "A" for word.
func article(word string) string {
	if strings.ContainsRune("aeiou", rune(word[0])) {
		return "An"
	}
	return "A"
}

// duplicate reports a second block of the same kind and name.
func (d *decoder) duplicate(b *hcl.Block, kind, name string, prev hcl.Range) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Duplicate " + kind,
		Detail: fmt.Sprintf("%s %s named %q is already defined at %s. Each %s name can be defined only once.",
			article(kind), kind, name, position(prev), kind),
		Subject: b.DefRange.Ptr(),
	})
}
