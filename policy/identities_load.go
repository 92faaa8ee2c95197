package policy

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/hashicorp/hcl/v2"
	pg_query "github.com/pganalyze/pg_query_go/v6"
)

// identitySettings fix, for the identity transaction, the settings that
// decide the text form of dates, times and intervals.
const identitySettings = "SET LOCAL DateStyle = 'ISO, YMD'; SET LOCAL TimeZone = 'UTC'; SET LOCAL IntervalStyle = 'postgres'"

// LoadIdentities runs the identity queries, and reads the teams table if
// any, on srv (the upstream service account), inside one READ ONLY
// transaction, and merges the rows with the user blocks (see
// buildIdentities).
//
// The transaction is REPEATABLE READ: every query reads one snapshot.
// The blocks' rows about one login are merged field by field, so a job
// committing between two queries read at READ COMMITTED (a move to
// another team with a new role, in one transaction) gave her the old
// block's fields with the new block's: a state no commit ever held.
//
// A query that fails, or returns a column pgveil cannot interpret (no
// login column, a team that is not an integer, groups that are not text),
// is an error: LoadIdentities then returns nil, and no user of any source
// is usable. A bad row (a login with two rows, an invalid verifier, a
// multi-dimensional array) is a warning, and the login it is about has no
// access at all. Every diagnostic points at the identity block.
func (c *Config) LoadIdentities(ctx context.Context, srv Server) (*Identities, hcl.Diagnostics) {
	var diags hcl.Diagnostics
	if len(c.IdentitySources) == 0 && (c.Teams == nil || c.Teams.Table == nil) {
		return c.HCLIdentities(), nil
	}
	if err := srv.Exec(ctx, "BEGIN TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY"); err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read identities",
			Detail:   fmt.Sprintf("Starting a read-only transaction upstream failed: %s.", err),
		}}
	}
	// NOTE: the transaction only reads; ROLLBACK ends it either way.
	defer func() { _ = srv.Exec(context.WithoutCancel(ctx), "ROLLBACK") }()
	// NOTE: dates, times and intervals become attributes in their text
	// form, which these settings decide: ISO 8601 and UTC are what
	// policies read alike under every client's settings (see compile_datetime.go).
	if err := srv.Exec(ctx, identitySettings); err != nil {
		return nil, hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read identities",
			Detail:   fmt.Sprintf("Setting the date and time output upstream failed: %s.", err),
		}}
	}

	var rows []identityRow
	broken := map[string]string{}
	for _, src := range c.IdentitySources {
		cols, raw, err := srv.Query(ctx, src.Query)
		if err != nil {
			return nil, append(diags, &hcl.Diagnostic{
				Severity: hcl.DiagError,
				Summary:  "Identity query failed",
				Detail:   fmt.Sprintf("The query of identity %q failed upstream: %s.%s", src.Name, err, hintSentence(err)),
				Subject:  src.QueryRange.Ptr(),
			})
		}
		srcRows, srcDiags := c.identityRows(src, cols, raw)
		diags = append(diags, srcDiags...)
		if srcDiags.HasErrors() {
			return nil, diags
		}
		for _, r := range srcRows {
			if r.set == badRow {
				broken[r.login] = fmt.Sprintf("its row from identity %q is invalid", src.Name)
				continue
			}
			rows = append(rows, r)
		}
	}
	if t := c.Teams; t != nil && t.Table != nil {
		d := c.checkTeamsTable(ctx, srv)
		diags = append(diags, d...)
		if d.HasErrors() {
			return nil, diags
		}
	}
	ids := c.buildIdentities(rows, broken)
	diags = append(diags, c.unusedAttributes(ids)...)
	diags = append(diags, c.liftedCeilings(ids)...)
	if len(c.IdentitySources) > 0 {
		// NOTE: without, decoding reported them (crossCheck).
		diags = append(diags, c.unknownRuleUsers(ids)...)
	}
	if diags.HasErrors() {
		return nil, diags
	}
	return ids, diags
}

// unknownRuleUsers reports the users and groups rules name that no
// identity has, once identities are loaded (decoding cannot know them
// when identity blocks read users upstream): a warning, as the login may
// appear later, but an error for a restrictive rule naming a login that
// differs from a known one only in case, which restricts nobody.
func (c *Config) unknownRuleUsers(ids *Identities) hcl.Diagnostics {
	var diags hcl.Diagnostics
	logins := ids.Logins()
	for _, r := range c.Rules {
		for _, login := range r.Users {
			if _, ok := ids.users[login]; ok {
				continue
			}
			sev := hcl.DiagWarning
			detail := fmt.Sprintf("Rule %q names user %q, whom no user block or identity row defines: it applies to no one there yet.", r.Name, login)
			if i := slices.IndexFunc(logins, func(l string) bool { return strings.EqualFold(l, login) }); i >= 0 {
				detail += fmt.Sprintf(" Logins are compared exactly: did you mean %q?", logins[i])
				if r.Restrictive {
					sev = hcl.DiagError
					detail += " A restrictive rule naming no one restricts no one."
				}
			} else if s := suggest(login, logins); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			rng := r.DeclRange.Ptr()
			if a := r.src.usersAttr; a != nil {
				rng = listElementRange(a, login).Ptr()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: sev, Summary: "Unknown user", Detail: detail, Subject: rng})
		}
		for _, g := range r.Groups {
			if len(ids.members[g]) > 0 {
				continue
			}
			detail := fmt.Sprintf("No user is in group %q, so rule %q grants no row through it.", g, r.Name)
			if r.Restrictive {
				detail = fmt.Sprintf("No user is in group %q, so restrictive rule %q lets no row pass through it: only the rows of its other groups' members pass.", g, r.Name)
			}
			if s := suggest(g, sortedKeys(ids.members)); s != "" {
				detail += fmt.Sprintf(" Did you mean %q?", s)
			}
			rng := r.DeclRange.Ptr()
			if a := r.src.groupsAttr; a != nil {
				rng = listElementRange(a, g).Ptr()
			}
			diags = append(diags, &hcl.Diagnostic{Severity: hcl.DiagWarning, Summary: "Empty group", Detail: detail, Subject: rng})
		}
	}
	return diags
}

// checkTeamsTable reads the teams table, so that a wrong table or column
// name is reported now rather than as failing statements, and warns when
// the tree has a cycle (which the recursive scope tolerates).
func (c *Config) checkTeamsTable(ctx context.Context, srv Server) hcl.Diagnostics {
	t := c.Teams
	sql, err := teamsQuery(t)
	if err != nil {
		panic(fmt.Sprintf("policy: deparsing the teams query: %v", err))
	}
	cols, rows, err := srv.Query(ctx, sql)
	if err != nil {
		return hcl.Diagnostics{{
			Severity: hcl.DiagError,
			Summary:  "Cannot read the teams table",
			Detail:   fmt.Sprintf("Reading %s (%s, %s) failed upstream: %s.%s", t.Table, t.IDColumn, t.ParentColumn, err, hintSentence(err)),
			Subject:  t.DeclRange.Ptr(),
		}}
	}
	for i, f := range cols {
		if !slices.Contains(intOIDs, f.OID) {
			return hcl.Diagnostics{{
				Severity: hcl.DiagError,
				Summary:  "Invalid teams table",
				Detail: fmt.Sprintf("%s.%s must be an integer column.", t.Table,
					[]string{t.IDColumn, t.ParentColumn}[i]),
				Subject: t.DeclRange.Ptr(),
			}}
		}
	}
	parent := map[string]string{}
	for _, r := range rows {
		if r[0] != nil && r[1] != nil {
			parent[string(r[0])] = string(r[1])
		}
	}
	for _, id := range sortedKeys(parent) {
		seen := map[string]bool{id: true}
		for p, ok := parent[id]; ok; p, ok = parent[p] {
			if seen[p] {
				return hcl.Diagnostics{{
					Severity: hcl.DiagWarning,
					Summary:  "Teams table is not a tree",
					Detail: fmt.Sprintf("In %s, team %s is below itself (its parents loop). team_subtree still "+
						"terminates, but the loop's teams all see each other.", t.Table, p),
					Subject: t.DeclRange.Ptr(),
				}}
			}
			seen[p] = true
		}
	}
	return nil
}

// teamsQuery returns SELECT <id>, <parent> FROM <schema>.<table>, built as
// a tree so that configured names are never spliced into SQL text.
func teamsQuery(t *Teams) (string, error) {
	sel := &pg_query.SelectStmt{
		TargetList: []*pg_query.Node{
			pg_query.MakeResTargetNodeWithVal(columnRef(t.IDColumn), -1),
			pg_query.MakeResTargetNodeWithVal(columnRef(t.ParentColumn), -1),
		},
		FromClause:  []*pg_query.Node{rangeVar(*t.Table)},
		LimitOption: pg_query.LimitOption_LIMIT_OPTION_DEFAULT,
		Op:          pg_query.SetOperation_SETOP_NONE,
	}
	return deparseStmt(&pg_query.Node{Node: &pg_query.Node_SelectStmt{SelectStmt: sel}})
}

// liftedCeilings warns about the identity users whose roles lift the
// ceiling of one of them (liftedCeiling), one warning per pair of roles.
// Users whose roles a user block gives were warned about when the files
// were decoded.
func (c *Config) liftedCeilings(ids *Identities) hcl.Diagnostics {
	type pair struct{ unbounded, bounded, detail string }
	logins := map[pair][]string{}
	ranges := map[pair]hcl.Range{}
	var order []pair
	for _, login := range sortedKeys(ids.users) {
		if b := c.Users[login]; b != nil && len(b.Roles) > 0 {
			continue
		}
		u := ids.users[login]
		unbounded, bounded, detail := c.liftedCeiling(u.Roles)
		if detail == "" {
			continue
		}
		k := pair{unbounded, bounded, detail}
		if _, seen := logins[k]; !seen {
			order = append(order, k)
			ranges[k] = u.DeclRange
		}
		logins[k] = append(logins[k], login)
	}
	var diags hcl.Diagnostics
	for _, k := range order {
		l := logins[k]
		names := strings.Join(l[:min(len(l), 5)], ", ") + map[bool]string{true: ", …", false: ""}[len(l) > 5]
		diags = append(diags, &hcl.Diagnostic{
			Severity: hcl.DiagWarning,
			Summary:  "Ceiling lifted",
			Detail: fmt.Sprintf("%d %s (%s) %s role %q, whose scope is \"all\", and role %q, whose scope is %q: %s",
				len(l), plural(len(l), "user", "users"), names, plural(len(l), "holds", "hold"), k.unbounded, k.bounded, c.Roles[k.bounded].Scope,
				strings.Replace(k.detail, "this user", plural(len(l), "this user", "these users"), 1)),
			Subject: ranges[k].Ptr(),
		})
	}
	return diags
}

// unusedAttributes warns about me.<name> that no loaded user has: the
// rules and masks reading it then fail closed for everyone. (Without identity blocks, Load reports
// them as errors.)
func (c *Config) unusedAttributes(ids *Identities) hcl.Diagnostics {
	known := map[string]bool{}
	for _, n := range builtinAttributes {
		known[n] = true
	}
	for _, u := range ids.users {
		for n := range u.Attributes {
			known[n] = true
		}
	}
	var diags hcl.Diagnostics
	check := func(e *sqlExpr, where string) {
		if e == nil {
			return
		}
		for _, name := range sortedKeys(e.attrs) {
			if !known[name] {
				rng := e.attrs[name]
				detail := fmt.Sprintf("%s reads me.%s, but no user has that attribute (in user blocks or identity "+
					"columns %s), so every user lacks it (a rule reading it grants no row, a mask reading it shows NULL).", where, name, strings.Join(sortedKeys(known), ", "))
				if s := suggest(name, sortedKeys(known)); s != "" {
					detail += fmt.Sprintf(" Did you mean me.%s?", s)
				}
				diags = append(diags, &hcl.Diagnostic{
					Severity: hcl.DiagWarning,
					Summary:  "Unknown attribute",
					Detail:   detail,
					Subject:  rng.Ptr(),
				})
			}
		}
	}
	for _, r := range c.Rules {
		check(r.where, "Rule "+r.Name)
	}
	for _, t := range c.Tables {
		for _, name := range sortedKeys(t.Columns) {
			check(t.Columns[name].Mask.expr, fmt.Sprintf("The mask of %s.%s", t.Pattern, name))
		}
	}
	return diags
}

// hintSentence returns PostgreSQL's hint for err as a sentence to append
// to a diagnostic (" Hint: Perhaps you meant …"), or "".
//
// NOTE: the server's hint is where PostgreSQL says which column a
// misspelt one probably is; without it a DBA whose identity query names
// "regoin" is told only that it does not exist.
func hintSentence(err error) string {
	h := strings.TrimSpace(serverHint(err))
	if h == "" {
		return ""
	}
	if !strings.HasSuffix(h, ".") {
		h += "."
	}
	return " PostgreSQL's hint: " + h
}
