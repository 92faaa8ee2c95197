package policy

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"
	"github.com/zclconf/go-cty/cty"

	"github.com/pgveil/pgveil/rewrite"
)

// crossCheck checks what blocks say about each other: roles, users,
// groups, classes, functions and attributes named somewhere must be
// defined somewhere, and scopes must have the columns they need.
//
// NOTE: without identity blocks every user, group and attribute is in the
// files, so naming an unknown one is an error; with identity blocks they
// may come from upstream rows, and LoadIdentities warns instead.
func (d *decoder) crossCheck() {
	cfg := d.cfg
	fromFilesOnly := !d.identityBlocks
	if fromFilesOnly {
		for _, b := range d.userPasswordless {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Missing password",
				Detail: fmt.Sprintf(`User %q has no password, and no identity block could supply one: write `+
					`password = "SCRAM-SHA-256$…" (see pgveil passwd).`, b.Labels[0]),
				Subject: b.DefRange.Ptr(),
			})
		}
	}
	roleNames := sortedKeys(cfg.Roles)
	for _, login := range sortedKeys(cfg.Users) {
		u := cfg.Users[login]
		a := d.attrs["user."+login+".roles"]
		for _, r := range u.Roles {
			if cfg.Roles[r] == nil {
				d.unknown(d.elementRange(a, r), a, "role", r, roleNames, "Define it with a role block.")
			}
		}
		if unbounded, bounded, detail := cfg.liftedCeiling(u.Roles); detail != "" {
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Ceiling lifted",
				Detail:   fmt.Sprintf("User %q holds role %q, whose scope is \"all\", and role %q, whose scope is %q: %s", login, unbounded, bounded, cfg.Roles[bounded].Scope, detail),
				Subject:  d.elementRange(a, unbounded).Ptr(),
			})
		}
		if t := cfg.Teams; t != nil && t.ByID != nil && u.Team != nil && t.ByID[*u.Team] == nil {
			a := d.attrs["user."+login+".team"]
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Unknown team",
				Detail: fmt.Sprintf("No team block has id %d: scopes over teams give user %q no rows until one does.",
					*u.Team, login),
				Subject: a.Expr.Range().Ptr(),
			})
		}
	}
	if cfg.LDAP != nil {
		for _, g := range cfg.LDAP.Groups {
			a := d.attrs["ldap.group."+g.DN+".roles"]
			if unbounded, bounded, detail := cfg.liftedCeiling(g.Roles); detail != "" && a != nil {
				d.diags = append(d.diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Ceiling lifted",
					Detail: fmt.Sprintf("LDAP group %q gives role %q, whose scope is \"all\", and role %q, whose scope is %q: %s",
						g.DN, unbounded, bounded, cfg.Roles[bounded].Scope, strings.Replace(detail, "this user", "its members", 1)),
					Subject: d.elementRange(a, unbounded).Ptr(),
				})
			}
		}
	}
	d.groupPairCeilings()
	d.checkFollows()
	classes := map[string]bool{}
	for _, t := range cfg.Tables {
		for _, c := range t.Columns {
			classes[c.Class] = true
		}
	}
	classNames := sortedKeys(classes)
	for _, name := range roleNames {
		r := cfg.Roles[name]
		a := d.attrs["role."+name+".columns"]
		for _, c := range r.Columns {
			if !classes[c] && !d.droppedClasses[c] {
				d.unknown(d.elementRange(a, c), a, "column class", c, classNames, "Give it to columns with class = \""+c+"\" in a column block.")
			}
		}
		if s := d.attrs["role."+name+".scope"]; s != nil {
			d.needTeams(s, r.Scope, fmt.Sprintf("Role %q", name))
		}
	}
	for _, t := range cfg.Tables {
		for _, cname := range sortedKeys(t.Columns) {
			if e := t.Columns[cname].Mask.expr; e != nil {
				where := fmt.Sprintf("The mask of column %s of %s", cname, t.Pattern)
				d.checkFunctions(e, where)
				d.checkAttributes(e, where, fromFilesOnly)
			}
		}
	}
	for _, r := range cfg.Rules {
		d.checkRule(r, roleNames, fromFilesOnly)
	}
	d.readOnlyWrites()
	d.checkActFor(fromFilesOnly)
}

// readOnlyWrites warns, once per table, about a rule granting rows of a
// table a rule's or a mask's subquery reads to a role that lists a
// write: pgveil refuses every write of such a table (policy_input), so
// the role's writes of it never run.
//
// NOTE: a warning, not an error: the role's writes of other tables still
// run, and the refusal is what keeps users from changing what the policy
// reads. The names are the files' (a view or rule found upstream is
// policy_input's too, but only serving knows it).
func (d *decoder) readOnlyWrites() {
	inputs := d.cfg.policyInputs()
	// NOTE: the teams table and identity tables are plainly the policy's
	// own: a role's writes are meant for the data tables, and one warning
	// per such table would be noise. A data table a subquery reads is the
	// surprise.
	warned := map[rewrite.QName]bool{}
	if t := d.cfg.Teams; t != nil && t.Table != nil {
		warned[*t.Table] = true
	}
	for _, src := range d.cfg.IdentitySources {
		for _, n := range queryRelations(src.Query) {
			warned[n] = true
		}
	}
	for _, r := range d.cfg.Rules {
		if r.Restrictive {
			continue
		}
		for i, p := range r.Tables {
			if !p.Exact() || i >= len(r.src.tables) {
				continue
			}
			q := p.QName()
			if warned[q] || warned[rewrite.QName{Name: q.Name}] || !(inputs[q] || inputs[rewrite.QName{Name: q.Name}]) {
				continue
			}
			for _, name := range r.Roles {
				role := d.cfg.Roles[name]
				if role == nil {
					continue
				}
				var writes []string
				for _, k := range role.Statements {
					if k == rewrite.KindInsert || k == rewrite.KindUpdate || k == rewrite.KindDelete {
						writes = append(writes, string(k))
					}
				}
				if len(writes) == 0 {
					continue
				}
				warned[q] = true
				d.diags = append(d.diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Writes refused",
					Detail: fmt.Sprintf(
						"Rule %q grants role %q rows of %s, and the role lists %s, but a rule's or a mask's subquery reads %s, "+
							"and pgveil refuses every write of a table the policy reads (policy_input), so that users cannot change what they may see. "+
							"Write it upstream as its owner, or scope the subquery by another table.",
						r.Name, name, p, strings.Join(writes, ", "), p),
					Subject: r.src.tables[i].Ptr(),
					Context: r.src.tablesAttr.Range.Ptr(),
				})
				break
			}
		}
	}
}

// liftedCeiling reports whether a user holding roles escapes the ceiling
// of one of them: a role with scope "all" (unbounded) leaves out the
// ceiling of every other role (bounded), so the rules granted through
// bounded grant beyond its scope. detail names those rules, "" when the
// roles lift no ceiling that bounds a rule.
//
// NOTE: a warning, not an error: the OR of the ceilings is documented,
// and a DBA may mean it; but a role added for another purpose (a
// product team's triage) silently widens every rule of the other.
func (c *Config) liftedCeiling(roles []string) (unbounded, bounded, detail string) {
	names := slices.Clone(roles)
	slices.Sort(names)
	names = slices.Compact(names)
	for _, n := range names {
		if r := c.Roles[n]; r != nil && r.Scope == ScopeAll && unbounded == "" {
			unbounded = n
		}
	}
	if unbounded == "" {
		return "", "", ""
	}
	for _, n := range names {
		r := c.Roles[n]
		if r == nil || r.Scope == ScopeAll {
			continue
		}
		var rules []string
		for _, rule := range c.Rules {
			// NOTE: a rule whose built-in scope is the role's ceiling
			// grants the same rows with the ceiling lifted.
			if rule.Enabled && !rule.Restrictive && slices.Contains(rule.Roles, n) && !c.referenceOnly(rule) && rule.Scope != r.Scope {
				rules = append(rules, rule.Name)
			}
		}
		if len(rules) > 0 {
			return unbounded, n, fmt.Sprintf("a role with scope \"all\" leaves out the ceilings of the others, so %q does not bound "+
				"what its rules grant this user (rule %s). Give %q a scope, or grant the rows of %q by rules of their own.",
				n, strings.Join(rules, ", rule "), unbounded, n)
		}
	}
	return "", "", ""
}

// referenceOnly reports whether every table a rule names is governed by a
// reference table block, which no ceiling bounds.
func (c *Config) referenceOnly(r *Rule) bool {
	for _, pat := range r.Tables {
		if !slices.ContainsFunc(c.Tables, func(t *Table) bool { return t.Reference && t.Pattern == pat }) {
			return false
		}
	}
	return true
}

// selfComparisons warns about a comparison of a column with itself in
// rule r's where (country = country): true on every row where the column
// is not NULL, it is most likely me.country mistyped.
func (d *decoder) selfComparisons(r *Rule) {
	known := d.knownAttributes()
	seen := map[string]bool{}
	walkNodes(r.where.node, func(x *pg_query.Node) {
		e := x.GetAExpr()
		if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) == 0 {
			return
		}
		switch e.Name[len(e.Name)-1].GetString_().GetSval() {
		case "=", "<=", ">=", "~~", "~~*":
		default:
			return
		}
		l, rr := e.Lexpr.GetColumnRef(), e.Rexpr.GetColumnRef()
		if l == nil || rr == nil || len(l.Fields) != 1 || len(rr.Fields) != 1 {
			return
		}
		name := l.Fields[0].GetString_().GetSval()
		if name == "" || name != rr.Fields[0].GetString_().GetSval() || seen[name] {
			return
		}
		seen[name] = true
		detail := fmt.Sprintf("Rule %q compares %s with itself, which is true on every row where it is not NULL: "+
			"the rule grants (or, restrictive, keeps) nearly every row.", r.Name, name)
		if s := suggest(name, sortedKeys(known)); s != "" {
			detail += fmt.Sprintf(" Did you mean me.%s?", s)
		} else {
			detail += ` Write scope = "all" if that is meant.`
		}
		rng := r.where.columnAt[name]
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning, Summary: "Column compared with itself", Detail: detail, Subject: rng.Ptr(),
		})
	})
}

// patternOperators name the operators whose right operand is a pattern,
// as qualifyOperators writes them.
//
// NOTE: not the negated ones (NOT LIKE, !~): a wider pattern there keeps
// fewer rows.
var patternOperators = map[string]string{"~~": "LIKE", "~~*": "ILIKE", "~": "regular expression", "~*": "regular expression"}

// attributePatterns warns about a me.<name> in the pattern of a LIKE,
// ILIKE, SIMILAR TO or regular expression in rule r's where: the value's
// wildcards match more than the value (an identity row's "%" sees every
// row), and an empty value before a % matches everything.
func (d *decoder) attributePatterns(r *Rule) {
	seen := map[string]bool{}
	walkNodes(r.where.node, func(x *pg_query.Node) {
		e := x.GetAExpr()
		if e == nil || len(e.Name) == 0 || e.Rexpr == nil {
			return
		}
		what, ok := patternOperators[e.Name[len(e.Name)-1].GetString_().GetSval()]
		if !ok {
			return
		}
		walkNodes(e.Rexpr, func(y *pg_query.Node) {
			name, ok := attributeRef(y)
			if !ok || seen[name] {
				return
			}
			seen[name] = true
			rng := r.where.attrs[name]
			wild := "% or _"
			if what == "regular expression" {
				wild = "a metacharacter (. * + [ and others)"
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Attribute in a pattern",
				Detail: fmt.Sprintf("Rule %q builds a %s pattern from me.%s: a value holding %s matches more than itself, "+
					"and an empty one matches every row. Compare with = or starts_with(column, me.%s), which read the value as it is.",
					r.Name, what, name, wild, name),
				Subject: rng.Ptr(),
			})
		})
	})
}

// nowFunctions are the pg_catalog functions giving the current instant.
var nowFunctions = map[string]bool{"now": true, "statement_timestamp": true, "transaction_timestamp": true, "clock_timestamp": true}

// isNow tells whether n is now(), CURRENT_TIMESTAMP or a function like it.
func isNow(n *pg_query.Node) bool {
	if f := n.GetSqlvalueFunction(); f != nil {
		return f.Op == pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP || f.Op == pg_query.SQLValueFunctionOp_SVFOP_CURRENT_TIMESTAMP_N
	}
	f := n.GetFuncCall()
	if f == nil || len(f.Args) > 0 || len(f.Funcname) == 0 {
		return false
	}
	if len(f.Funcname) == 2 && f.Funcname[0].GetString_().GetSval() != "pg_catalog" {
		return false
	}
	return nowFunctions[f.Funcname[len(f.Funcname)-1].GetString_().GetSval()]
}

// calendarInterval returns the text of n when it is an interval constant
// counting days, weeks, months or years (`interval '90 days'`,
// `'P3M'::interval`), which PostgreSQL adds to a timestamptz in the
// session's TimeZone.
func calendarInterval(n *pg_query.Node) (string, bool) {
	tc := n.GetTypeCast()
	if tc == nil || tc.TypeName == nil || len(tc.TypeName.Names) == 0 ||
		tc.TypeName.Names[len(tc.TypeName.Names)-1].GetString_().GetSval() != "interval" {
		return "", false
	}
	k := tc.Arg.GetAConst()
	if k == nil || k.GetSval() == nil {
		return "", false
	}
	text := k.GetSval().GetSval()
	if len(tc.TypeName.Typmods) > 0 {
		// interval '90' day: the field decides; a time field (hour,
		// minute, second) is exact.
		return text, !strings.ContainsAny(text, ":")
	}
	low := strings.ToLower(text)
	if strings.HasPrefix(low, "p") {
		date, _, _ := strings.Cut(low, "t")
		return text, strings.ContainsAny(date, "dwmy")
	}
	for _, unit := range []string{"d", "w", "mon", "y", "decade", "centur", "millen"} {
		for i := 0; ; {
			j := strings.Index(low[i:], unit)
			if j < 0 {
				break
			}
			j += i
			// A unit follows a number or a space ("90 days", "3mons"),
			// which no letter of hour, minute or second does.
			if j > 0 && (low[j-1] == ' ' || (low[j-1] >= '0' && low[j-1] <= '9')) {
				return text, true
			}
			i = j + 1
		}
	}
	return text, false
}

// zonedIntervals warns about now() plus or minus an interval of days,
// weeks, months or years in rule r's where: PostgreSQL computes it in the
// session's TimeZone, which the client may SET, so the window moves with
// it (an hour across a DST change for days, days for months).
func (d *decoder) zonedIntervals(r *Rule) {
	seen := map[string]bool{}
	walkNodes(r.where.node, func(x *pg_query.Node) {
		e := x.GetAExpr()
		if e == nil || e.Kind != pg_query.A_Expr_Kind_AEXPR_OP || len(e.Name) == 0 || e.Lexpr == nil || e.Rexpr == nil {
			return
		}
		if op := e.Name[len(e.Name)-1].GetString_().GetSval(); op != "+" && op != "-" {
			return
		}
		text, ok := calendarInterval(e.Rexpr)
		if !ok || !isNow(e.Lexpr) {
			if text, ok = calendarInterval(e.Lexpr); !ok || !isNow(e.Rexpr) {
				return
			}
		}
		if seen[text] {
			return
		}
		seen[text] = true
		var rng *hcl.Range
		if a := d.attrs["rule."+r.Name+".where"]; a != nil {
			rng = a.Expr.Range().Ptr()
		}
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Time window follows the session's TimeZone",
			Detail: fmt.Sprintf("Rule %q adds interval '%s' to now(): PostgreSQL adds days, weeks, months and years to a "+
				"timestamptz in the session's TimeZone, which the client may SET, so the window it grants moves with the client's "+
				"setting (an hour across a daylight-saving change for days, up to days for months). Write the interval in hours "+
				"(interval '2160 hours' for 90 days), which every TimeZone adds alike.", r.Name, text),
			Subject: rng,
		})
	})
}

// maskedInRule warns when rule r's where reads a column of table t that
// some of the roles or users it applies to see masked: the rule's filter
// reads the real value, so the rows it shows them tell whether that value
// meets it (where = "salary > 100000" tells an analyst without the
// salary's class that every row he sees earns more).
func (d *decoder) maskedInRule(r *Rule, t *Table) {
	cfg := d.cfg
	sees := func(roles []string, class string) bool {
		return slices.ContainsFunc(roles, func(n string) bool {
			role := cfg.Roles[n]
			return role != nil && slices.Contains(role.Columns, class)
		})
	}
	for _, name := range r.where.columns {
		col := t.Columns[name]
		if col == nil {
			continue
		}
		var blind []string
		for _, n := range r.Roles {
			if cfg.Roles[n] != nil && !sees([]string{n}, col.Class) {
				blind = append(blind, fmt.Sprintf("role %q", n))
			}
		}
		for _, login := range r.Users {
			if u := cfg.Users[login]; u != nil && !sees(u.Roles, col.Class) {
				blind = append(blind, fmt.Sprintf("user %q", login))
			}
		}
		if len(blind) == 0 {
			continue
		}
		rng := r.where.columnAt[name]
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Rule reads a masked column",
			Detail: fmt.Sprintf("Rule %q reads %s of %s, which %s %s masked (class %q): the rule reads the real value, "+
				"so the rows it shows tell whether that value meets the rule. Scope by a column they see, "+
				"or give them the class if they may know that much.",
				r.Name, name, t.Pattern, strings.Join(blind, ", "), map[bool]string{true: "sees", false: "see"}[len(blind) == 1], col.Class),
			Subject: rng.Ptr(),
		})
	}
}

// checkRule checks a rule's references.
func (d *decoder) checkRule(r *Rule, roleNames []string, fromFilesOnly bool) {
	cfg, src := d.cfg, &r.src
	for _, role := range r.Roles {
		if cfg.Roles[role] == nil {
			d.unknown(d.elementRange(src.rolesAttr, role), src.rolesAttr, "role", role, roleNames, "Define it with a role block.")
		}
	}
	if fromFilesOnly {
		logins := sortedKeys(cfg.Users)
		for _, login := range r.Users {
			if cfg.Users[login] == nil {
				d.unknown(d.elementRange(src.usersAttr, login), src.usersAttr, "user", login, logins,
					"Define it with a user block (or list users upstream with an identity block).")
			}
		}
		groups := map[string]bool{}
		for _, u := range cfg.Users {
			for _, g := range u.Groups {
				groups[g] = true
			}
		}
		for _, g := range r.Groups {
			if !groups[g] {
				rng := d.elementRange(src.groupsAttr, g)
				detail := fmt.Sprintf("No user is in group %q, so the rule grants no row through it.", g)
				if r.Restrictive {
					detail = fmt.Sprintf("No user is in group %q, so the restrictive rule lets no row pass through it: only the rows of its other groups' members pass.", g)
				}
				if s := suggest(g, sortedKeys(groups)); s != "" {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
				d.diags = append(d.diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning, Summary: "Empty group", Detail: detail, Subject: rng.Ptr(), Context: src.groupsAttr.Range.Ptr(),
				})
			}
		}
	}
	if src.scope != nil {
		d.needTeams(src.scope, r.Scope, fmt.Sprintf("Rule %q", r.Name))
	}
	for i, p := range r.Tables {
		if !p.Exact() {
			continue
		}
		gov := cfg.governing(p.QName())
		switch {
		case len(gov) == 0:
			detail := fmt.Sprintf("Rule %q names %s, which no table block governs: the rule would never apply.", r.Name, p)
			// NOTE: a partition (app.events_2026_11) is read under its
			// partitioned table's block and rules, and a block of its
			// own that differs refuses reads of the parent: "Add table" or "Did
			// you mean" another partition's name would be the wrong
			// fix. Offline the catalog is unknown, so a governed name
			// the rule's name extends (app.events + "_2026_11") is
			// taken as its likely parent, checked before a near miss.
			if parent := partitionParent(p.String(), cfg.tableNames()); parent != "" {
				detail += fmt.Sprintf(" If %s is a partition of %s, name the partitioned table here: write %q. "+
					"A partition is read under its partitioned table's table block and rules; a block or rule of its own that differs from its parent's makes pgveil refuse reads of the partitioned table.", p, parent, parent)
				d.errorRange(src.tables[i], src.tablesAttr, "Ungoverned table", detail)
				continue
			}
			// NOTE: a misspelt name is the likelier mistake than a missing
			// block: suggest the governed name it is close to first.
			if s := suggest(p.String(), cfg.tableNames()); s != "" {
				// NOTE: when no rule names the near block, its label is as
				// likely the misspelt name (table "public.customer" for
				// the table public.customers) as the rule's, and nothing
				// offline tells which: "Did you mean" would offer the
				// block's misspelling as the fix. Name the block, and both
				// corrections.
				if t := cfg.tableBlock(s); t != nil && !cfg.ruleNames(s) {
					detail += fmt.Sprintf(" The table block %q (at %s), which no rule names, is close: if the table is %q, write that here; "+
						"if it is %q, correct the block's label.", s, position(t.DeclRange), s, p.String())
				} else {
					detail += fmt.Sprintf(" Did you mean %q?", s)
				}
				detail += fmt.Sprintf(" Or add table %q { … }.", p.String())
			} else {
				detail += fmt.Sprintf(" Add table %q { … } (if it is a partition, name its partitioned table instead: a partition is read under its parent's table block and rules).", p.String())
			}
			d.errorRange(src.tables[i], src.tablesAttr, "Ungoverned table", detail)
		case len(gov) > 1:
			d.errorRange(src.tables[i], src.tablesAttr, "Ambiguous table blocks", fmt.Sprintf(
				"%s is matched by equally specific table blocks %s: add a table block that names it exactly.",
				p, tableLabels(gov)))
		case src.scope != nil:
			d.scopeColumns(r, gov[0], p)
			d.ceilingColumns(r, gov[0], p)
		case r.where != nil:
			d.maskedInRule(r, gov[0])
			d.ceilingColumns(r, gov[0], p)
		}
	}
	if r.where != nil {
		d.selfComparisons(r)
		d.attributePatterns(r)
		d.zonedIntervals(r)
		d.checkFunctions(r.where, fmt.Sprintf("Rule %q", r.Name))
		d.checkAttributes(r.where, fmt.Sprintf("Rule %q", r.Name), fromFilesOnly)
	}
}

// scopeColumns reports a rule whose built-in scope needs a column that
// the table block governing p lacks.
func (d *decoder) scopeColumns(r *Rule, t *Table, p Pattern) {
	setting, have := "", ""
	switch r.Scope {
	case ScopeSelf, ScopeOwnGroups, ScopeGroups:
		setting, have = "owner_column", t.OwnerColumn
	case ScopeOwnTeam, ScopeTeamSubtree:
		setting, have = "team_column", t.TeamColumn
	default:
		return
	}
	if have != "" {
		return
	}
	d.errorAt(r.src.scope, "Missing "+setting, fmt.Sprintf(
		"Rule %q has scope = %q on %s, which needs to know the %s of each row, but the table block %q (at %s) has no %s.",
		r.Name, r.Scope, p, map[string]string{"owner_column": "login", "team_column": "team"}[setting],
		t.Pattern.String(), position(t.DeclRange), setting))
}

// ceilingColumns warns about a rule granting rows of the table p names
// exactly to a role whose ceiling needs a column the table block governing
// it lacks: the ceiling is then FALSE there (see compile), so the rule
// grants the role's users no row of the table, unless another of their
// roles lifts the ceiling.
//
// NOTE: a warning, not an error: a user holding another role with
// scope = "all", or a ceiling the table can serve, still gets the rule's
// rows. Reference tables are not bounded by ceilings.
func (d *decoder) ceilingColumns(r *Rule, t *Table, p Pattern) {
	if t.Reference || r.Restrictive || r.src.rolesAttr == nil {
		return
	}
	for _, name := range r.Roles {
		role := d.cfg.Roles[name]
		if role == nil {
			continue
		}
		setting, have, what := "", "", ""
		switch role.Scope {
		case ScopeSelf, ScopeOwnGroups:
			setting, have, what = "owner_column", t.OwnerColumn, "login"
		case ScopeOwnTeam, ScopeTeamSubtree:
			setting, have, what = "team_column", t.TeamColumn, "team"
		case ScopeNone:
			// NOTE: a ceiling of none is FALSE on every table but
			// reference ones: a role given it so as not to lift other
			// roles' ceilings (one that only unmasks) is not meant to be
			// granted rows, and a rule granting it some shows none.
			rng := d.elementRange(r.src.rolesAttr, name)
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Ceiling grants no row",
				Detail: fmt.Sprintf(
					"Rule %q grants role %q rows of %s, but the role's ceiling scope = %q grants no row of a table without reference = true: "+
						"the role's users see no row of it, unless another of their roles lifts the ceiling. Give the role the scope its users' rows need (\"all\" for no ceiling), "+
						"or reference = true on the table block %q (at %s) if the ceiling should not bound this table.",
					r.Name, name, p, role.Scope, t.Pattern.String(), position(t.DeclRange)),
				Subject: rng.Ptr(),
				Context: r.src.rolesAttr.Range.Ptr(),
			})
			continue
		default:
			continue
		}
		if have != "" {
			continue
		}
		rng := d.elementRange(r.src.rolesAttr, name)
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Ceiling grants no row",
			Detail: fmt.Sprintf(
				"Rule %q grants role %q rows of %s, but the role's ceiling scope = %q needs the %s of each row, and the table block %q (at %s) has no %s: "+
					"the role's users see no row of it, unless another of their roles lifts the ceiling. Add %s to the table block, or reference = true if the ceiling should not bound this table.",
				r.Name, name, p, role.Scope, what, t.Pattern.String(), position(t.DeclRange), setting, setting),
			Subject: rng.Ptr(),
			Context: r.src.rolesAttr.Range.Ptr(),
		})
	}
}

// needTeams reports a team_subtree scope without a team tree.
func (d *decoder) needTeams(a *hcl.Attribute, scope, owner string) {
	if scope == ScopeTeamSubtree && d.cfg.Teams == nil {
		d.errorAt(a, "Missing team tree", fmt.Sprintf(
			`%s has scope = "team_subtree", which needs the team tree: add a teams block (read from a table) or team blocks.`, owner))
	}
}

// checkFunctions reports functions outside pg_catalog that no role lists.
func (d *decoder) checkFunctions(e *sqlExpr, where string) {
	allowed := map[string]bool{}
	for _, r := range d.cfg.Roles {
		for _, f := range r.Functions {
			allowed[f] = true
		}
	}
	for _, f := range sortedKeys(e.funcs) {
		if !allowed[f] {
			rng := e.funcs[f]
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Function not allowed",
				Detail: fmt.Sprintf("%s calls %s, a function outside pg_catalog that no role allows: list it in a role's "+
					"functions = [%q] if it is safe to call.", where, f, f),
				Subject: rng.Ptr(),
			})
		}
	}
}

// checkAttributes reports me.<name> that no user has, when every user is
// in the files.
func (d *decoder) checkAttributes(e *sqlExpr, where string, fromFilesOnly bool) {
	if !fromFilesOnly {
		return
	}
	known := d.knownAttributes()
	for _, name := range sortedKeys(e.attrs) {
		if known[name] {
			continue
		}
		rng := e.attrs[name]
		detail := fmt.Sprintf("%s reads me.%s, but no user has the attribute %s, so every user would lack it "+
			"(a rule reading it grants no row, a mask reading it shows NULL).", where, name, name)
		if s := suggest(name, sortedKeys(known)); s != "" {
			detail += fmt.Sprintf(" Did you mean me.%s?", s)
		}
		d.diags = append(d.diags, &hcl.Diagnostic{
			Severity: hcl.DiagError, Summary: "Unknown attribute", Detail: detail, Subject: rng.Ptr(),
		})
	}
}

// unknown reports a name that is not defined, suggesting a near miss.
func (d *decoder) unknown(rng hcl.Range, a *hcl.Attribute, what, name string, known []string, advice string) {
	detail := fmt.Sprintf("No %s is named %q.", what, name)
	if s := suggest(name, known); s != "" {
		detail += fmt.Sprintf(" Did you mean %q?", s)
	} else {
		detail += " " + advice
	}
	d.diags = append(d.diags, &hcl.Diagnostic{
		Severity: hcl.DiagError,
		Summary:  "Unknown " + what,
		Detail:   detail,
		Subject:  rng.Ptr(),
		Context:  a.Range.Ptr(),
	})
}

// elementRange returns the range of the element of list attribute a whose
// value is s, or a's range.
func (d *decoder) elementRange(a *hcl.Attribute, s string) hcl.Range {
	elems, diags := hcl.ExprList(a.Expr)
	if !diags.HasErrors() {
		for _, e := range elems {
			if v, diags := e.Value(d.ctx); !diags.HasErrors() && v.IsKnown() && !v.IsNull() && v.Type() == cty.String && v.AsString() == s {
				return e.Range()
			}
		}
	}
	return a.Expr.Range()
}

// tableLabels renders table blocks' labels for messages.
func tableLabels(ts []*Table) string {
	labels := make([]string, len(ts))
	for i, t := range ts {
		labels[i] = fmt.Sprintf("%q (at %s)", t.Pattern.String(), position(t.DeclRange))
	}
	return strings.Join(labels, " and ")
}

// sortedKeys returns the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// knownAttributes returns the names me.<name> may read that some user
// block gives, with the built-in ones (me.login, me.team…).
func (d *decoder) knownAttributes() map[string]bool {
	known := map[string]bool{}
	for _, n := range builtinAttributes {
		known[n] = true
	}
	for _, u := range d.cfg.Users {
		for n := range u.Attributes {
			known[n] = true
		}
	}
	return known
}

// tableBlock returns the table block whose label is exactly name, or nil.
func (c *Config) tableBlock(name string) *Table {
	for _, t := range c.Tables {
		if t.Pattern.Exact() && t.Pattern.String() == name {
			return t
		}
	}
	return nil
}

// partitionParent returns the longest of names that name extends by an
// underscore and more (app.events for app.events_2026_11), the table a
// partition named after its parent likely belongs to, or "".
//
// NOTE: a guess from names only, offered as "if it is a partition": the
// catalog, which would tell, is not read offline.
func partitionParent(name string, names []string) string {
	best := ""
	for _, n := range names {
		if len(n) > len(best) && len(name) > len(n)+1 && strings.HasPrefix(name, n+"_") {
			best = n
		}
	}
	return best
}

// ruleNames reports whether some rule's tables name the table name
// exactly.
func (c *Config) ruleNames(name string) bool {
	for _, r := range c.Rules {
		for _, p := range r.Tables {
			if p.Exact() && p.String() == name {
				return true
			}
		}
	}
	return false
}

// groupPairCeilings warns about two LDAP groups each of whose roles keep
// their ceilings, but whose members of both hold a role with scope "all"
// and a bounded role with rules: a role that only unmasks columns (a pii
// group) lifts a manager's ceiling for the managers in it.
//
// NOTE: a person's roles are the union of her groups' roles, known only
// at her login; the per-user check cannot see them, so the pairs are
// checked here, once per pair, the unbounded group first.
func (d *decoder) groupPairCeilings() {
	cfg := d.cfg
	if cfg.LDAP == nil {
		return
	}
	gs := cfg.LDAP.Groups
	for _, a := range gs {
		for _, b := range gs {
			if a == b {
				continue
			}
			if _, _, alone := cfg.liftedCeiling(a.Roles); alone != "" {
				continue
			}
			if _, _, alone := cfg.liftedCeiling(b.Roles); alone != "" {
				continue
			}
			unbounded, bounded, detail := cfg.liftedCeiling(append(slices.Clone(a.Roles), b.Roles...))
			if detail == "" || !slices.Contains(a.Roles, unbounded) || !slices.Contains(b.Roles, bounded) {
				continue
			}
			attr := d.attrs["ldap.group."+a.DN+".roles"]
			if attr == nil {
				continue
			}
			d.diags = append(d.diags, &hcl.Diagnostic{
				Severity: hcl.DiagWarning,
				Summary:  "Ceiling lifted",
				Detail: fmt.Sprintf("A member of LDAP groups %q and %q holds role %q, whose scope is \"all\", and role %q, whose scope is %q: %s "+
					"(A role that only unmasks columns can say scope = \"none\": it then lifts no other role's ceiling.)",
					a.DN, b.DN, unbounded, bounded, cfg.Roles[bounded].Scope, strings.Replace(detail, "this user", "such members", 1)),
				Subject: d.elementRange(attr, unbounded).Ptr(),
			})
		}
	}
}
