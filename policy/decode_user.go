package policy

import (
	"fmt"
	"math/big"
	"regexp"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	"github.com/zclconf/go-cty/cty"
)

// builtinAttributes are the attributes every user has: me.login, me.team,
// me.groups, me.roles.
var builtinAttributes = []string{"login", "team", "groups", "roles"}

// reservedAttributes are the names free attributes may not take: the
// built-in ones, and password, an identity column.
var reservedAttributes = append(slices.Clone(builtinAttributes), "password")

// attributeNameRE matches a free attribute's name: a lower-case SQL
// identifier, so that me.<name> reads the same unquoted.
var attributeNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// decodeUserPolicy decodes what a user block says about the user's access:
// roles, team, groups and free attributes.
func (d *decoder) decodeUserPolicy(u *User, c *hcl.BodyContent) {
	if a := c.Attributes["roles"]; a != nil {
		u.Roles, _, _ = d.stringList(a, "a role name")
		u.set |= fieldRoles
	}
	if a := c.Attributes["team"]; a != nil {
		if id, ok := d.teamID(a); ok {
			u.Team = &id
		}
		u.set |= fieldTeam
	}
	if a := c.Attributes["groups"]; a != nil {
		u.Groups, _, _ = d.stringList(a, "a group name")
		u.set |= fieldGroups
	}
	if a := c.Attributes["attributes"]; a != nil {
		u.Attributes = d.attributes(a)
	}
}

// teamID decodes a team id: a whole number that fits a bigint.
func (d *decoder) teamID(a *hcl.Attribute) (int64, bool) {
	v, ok := d.value(a, cty.Number)
	if !ok {
		return 0, false
	}
	bf := v.AsBigFloat()
	n, acc := bf.Int64()
	if !bf.IsInt() || acc != big.Exact {
		d.errorAt(a, "Invalid team id", fmt.Sprintf("%s must be a whole number (a team id), such as 2.", a.Name))
		return 0, false
	}
	return n, true
}

// stringList decodes a list of non-empty strings, reporting duplicates,
// and returns the range of each element (the whole list's range when the
// elements are not written one by one). what names an element for
// messages ("a role name").
func (d *decoder) stringList(a *hcl.Attribute, what string) ([]string, []hcl.Range, bool) {
	v, ok := d.value(a, cty.List(cty.String))
	if !ok {
		return nil, nil, false
	}
	ranges := elementRanges(a.Expr, v.LengthInt())
	out := make([]string, 0, v.LengthInt())
	ok = true
	for i, e := range v.AsValueSlice() {
		if e.IsNull() || e.AsString() == "" {
			d.errorRange(ranges[i], a, "Invalid value", fmt.Sprintf("Each element of %s must be %s, not empty.", a.Name, what))
			ok = false
			continue
		}
		s := e.AsString()
		if slices.Contains(out, s) {
			d.errorRange(ranges[i], a, "Duplicate list element", fmt.Sprintf("%q appears twice in %s.", s, a.Name))
			ok = false
			continue
		}
		out = append(out, s)
	}
	if !ok {
		return out, ranges, false
	}
	return out, ranges, true
}

// elementRanges returns the range of each of the n elements of a list
// expression, or n copies of the expression's range when it is not a
// literal list.
func elementRanges(expr hcl.Expression, n int) []hcl.Range {
	ranges := make([]hcl.Range, n)
	elems, diags := hcl.ExprList(expr)
	for i := range ranges {
		if !diags.HasErrors() && len(elems) == n {
			ranges[i] = elems[i].Range()
		} else {
			ranges[i] = expr.Range()
		}
	}
	return ranges
}

// errorRange reports an error about part of a's value.
func (d *decoder) errorRange(rng hcl.Range, a *hcl.Attribute, summary, detail string) {
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  summary,
		Detail:   detail,
		Subject:  rng.Ptr(),
		Context:  a.Range.Ptr(),
	})
}

// attributes decodes a user's free attributes: an object whose values are
// strings, numbers, booleans or lists of strings or numbers.
func (d *decoder) attributes(a *hcl.Attribute) map[string]Value {
	v, diags := a.Expr.Value(d.ctx)
	d.diags = append(d.diags, diags...)
	if diags.HasErrors() || !v.IsWhollyKnown() {
		return nil
	}
	if v.IsNull() || !(v.Type().IsObjectType() || v.Type().IsMapType()) {
		d.errorAt(a, "Incorrect attribute value type",
			`attributes must be an object, such as { country = "France", regions = ["north", "south"] }.`)
		return nil
	}
	itemRanges := map[string]hcl.Range{}
	if pairs, diags := hcl.ExprMap(a.Expr); !diags.HasErrors() {
		for _, p := range pairs {
			k, diags := p.Key.Value(d.ctx)
			if diags.HasErrors() || k.Type() != cty.String || !k.IsKnown() || k.IsNull() {
				continue
			}
			name := k.AsString()
			if prev, dup := itemRanges[name]; dup {
				// NOTE: HCL keeps the last value silently; which one the
				// author meant is anyone's guess.
				d.errorRange(p.Key.Range(), a, "Duplicate attribute", fmt.Sprintf(
					"The attribute %s is already set at %s. Set each attribute once.", name, position(prev)))
				continue
			}
			itemRanges[name] = p.Key.Range()
		}
	}
	out := map[string]Value{}
	for it := v.ElementIterator(); it.Next(); {
		k, ev := it.Element()
		name := k.AsString()
		rng, ok := itemRanges[name]
		if !ok {
			rng = a.Expr.Range()
		}
		switch {
		case slices.Contains(reservedAttributes, name):
			d.errorRange(rng, a, "Reserved attribute name", fmt.Sprintf(
				"%s cannot be a free attribute: me.login, me.team, me.groups and me.roles come from the user's "+
					"login, team, groups and roles, and password is an identity column. Choose another name.", name))
			continue
		case !attributeNameRE.MatchString(name):
			d.errorRange(rng, a, "Invalid attribute name", fmt.Sprintf(
				"%q is not a valid attribute name: use lower-case letters, digits and underscores, starting with a "+
					"letter, so that me.%s reads the same in SQL.", name, strings.ToLower(name)))
			continue
		}
		val, problem := ctyToValue(ev)
		if problem != "" {
			d.errorRange(rng, a, "Invalid attribute value", fmt.Sprintf("The attribute %s cannot be used: %s.", name, problem))
			continue
		}
		out[name] = val
	}
	return out
}

// ctyToValue converts an HCL value into a Value, or says why it cannot.
func ctyToValue(v cty.Value) (Value, string) {
	if v.IsNull() {
		return Value{}, "it is null (leave the attribute out instead)"
	}
	ty := v.Type()
	switch {
	case ty == cty.String:
		return stringValue(v.AsString())
	case ty == cty.Number:
		bf := v.AsBigFloat()
		if bf.IsInf() {
			return Value{}, "it is infinite"
		}
		if !reasonableNumber(bf) {
			return Value{}, "it is beyond 1e±1000"
		}
		if bf.IsInt() {
			if n, acc := bf.Int64(); acc == big.Exact {
				return intValue(n), ""
			}
		}
		return numberValue(bf.Text('f', -1))
	case ty == cty.Bool:
		return boolValue(v.True()), ""
	case ty.IsTupleType() || ty.IsListType() || ty.IsSetType():
		var elems []Value
		for it := v.ElementIterator(); it.Next(); {
			_, ev := it.Element()
			if ev.IsNull() || !(ev.Type() == cty.String || ev.Type() == cty.Number) {
				return Value{}, "a list may only hold strings or numbers"
			}
			e, problem := ctyToValue(ev)
			if problem != "" {
				return Value{}, problem
			}
			elems = append(elems, e)
		}
		return listValue(elems)
	}
	return Value{}, fmt.Sprintf("it is %s %s; an attribute is a string, a number, a bool, or a list of strings or numbers",
		strings.ToLower(article(ty.FriendlyName())), ty.FriendlyName())
}
