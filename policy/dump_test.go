package policy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// dumpPolicy writes the policy part of cfg (roles, teams, tables,
// schemas, rules, identities, and what user blocks say about access) for
// golden files; it writes nothing for a configuration without one.
func dumpPolicy(w *bytes.Buffer, cfg *Config) {
	p := func(format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
	for _, login := range sortedKeys(cfg.Users) {
		u := cfg.Users[login]
		if u.set&^fieldPassword == 0 && len(u.Attributes) == 0 {
			continue
		}
		team := "none"
		if u.Team != nil {
			team = fmt.Sprint(*u.Team)
		}
		p("user %q: roles %q, team %s, groups %q, attributes %s, password %v", login, u.Roles, team, u.Groups,
			dumpAttributes(u.Attributes), u.HasPassword())
	}
	for _, name := range sortedKeys(cfg.Roles) {
		r := cfg.Roles[name]
		p("role %q: statements %q, columns %q, scope %q, own_rows %v, functions %q", name, r.Statements, r.Columns, r.Scope, r.OwnRows, r.Functions)
	}
	if t := cfg.Teams; t != nil {
		if t.Table != nil {
			p("teams: table %s, id %q, parent %q", t.Table, t.IDColumn, t.ParentColumn)
		} else {
			ids := make([]int64, 0, len(t.ByID))
			for id := range t.ByID {
				ids = append(ids, id)
			}
			slices.Sort(ids)
			for _, id := range ids {
				tm := t.ByID[id]
				p("team %q: id %d, parent %q, subtree %v", tm.Name, id, tm.Parent, t.subtree(id))
			}
		}
	}
	for _, src := range cfg.IdentitySources {
		p("identity %q: %s", src.Name, src.Query)
	}
	for _, t := range cfg.Tables {
		p("table %q (specificity %d): owner_column %q, team_column %q, reference %t, pushdown %t",
			t.Pattern.String(), t.Pattern.specificity(), t.OwnerColumn, t.TeamColumn, t.Reference, t.Pushdown)
		for _, name := range sortedKeys(t.Columns) {
			c := t.Columns[name]
			p("  column %q: class %q, mask %s", name, c.Class, dumpMask(&c.Mask))
		}
	}
	for _, name := range sortedKeys(cfg.Schemas) {
		p("schema %q: allow %v", name, cfg.Schemas[name].Allow)
	}
	for _, r := range cfg.Rules {
		kind := "permissive"
		if r.Restrictive {
			kind = "restrictive"
		}
		tables := make([]string, len(r.Tables))
		for i, t := range r.Tables {
			tables[i] = t.String()
		}
		row := fmt.Sprintf("scope %q", r.Scope)
		if r.Scope == ScopeGroups {
			row += fmt.Sprintf(" %q", r.Groups)
		}
		if r.where != nil {
			row = "where " + deparseExpr(r.where.node)
			if len(r.where.tables) > 0 {
				row += fmt.Sprintf(" (reads %v)", r.where.tables)
			}
		}
		p("rule %q: %s, enabled %v, tables %q, roles %q, users %q, %s", r.Name, kind, r.Enabled, tables, r.Roles, r.Users, row)
	}
}

// dumpAttributes renders attributes in name order.
func dumpAttributes(attrs map[string]Value) string {
	parts := make([]string, 0, len(attrs))
	for _, name := range sortedKeys(attrs) {
		parts = append(parts, name+" = "+attrs[name].String())
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

// dumpMask renders a mask.
func dumpMask(m *Mask) string {
	switch m.Kind {
	case MaskRedact:
		return "redact " + m.Value.String()
	case MaskPartial:
		return fmt.Sprintf("partial (keep %d, %d)", m.KeepStart, m.KeepEnd)
	case MaskHash:
		return fmt.Sprintf("hash (key set %v)", len(m.ipad) == hmacBlockSize)
	case MaskExpression:
		if m.expr == nil {
			return "expression (invalid)"
		}
		return "expression " + deparseExpr(m.expr.node)
	}
	return m.Kind
}

// deparseExpr renders an expression as SQL, or the deparser's error.
func deparseExpr(n *pg_query.Node) string {
	sql, err := deparseStmt(selectOf(pg_query.MakeResTargetNodeWithVal(n, -1)))
	if err != nil {
		return "<" + err.Error() + ">"
	}
	return strings.TrimPrefix(sql, "SELECT ")
}

// selectOf returns SELECT <targets> as a statement node, well-formed for
// the deparser (which crashes on zero enum values).
func selectOf(targets ...*pg_query.Node) *pg_query.Node {
	return &pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: &pg_query.SelectStmt{
		TargetList:  targets,
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}}}
}
