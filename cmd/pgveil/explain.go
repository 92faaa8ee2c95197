package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"

	"github.com/pgveil/pgveil/internal/printable"
	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy/server"
	"github.com/pgveil/pgveil/rewrite"
)

// cmdExplain shows what pgveil does with a statement for a user: the
// rewritten SQL, the rules that applied and the masked columns, or the
// refusal and the firewall rule behind it. It reads the identities and
// the catalog from the upstream, as serve does.
func cmdExplain(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("explain", flag.ContinueOnError)
	fs.SetOutput(stderr)
	configPath := fs.String("config", "", "configuration file or directory of *.hcl files (required)")
	user := fs.String("user", "", "the login to explain the statement for (required)")
	as := fs.String("as", "", "explain what the BI service --user sees acting for this `LOGIN` (act_for)")
	// NOTE: nil unless --groups or --group is given: then the directory
	// is not asked (offline, CI), even for no group (--groups "").
	var groupDNs []string
	addGroups := func(v string, sep bool) error {
		if groupDNs == nil {
			groupDNs = []string{}
		}
		parts := []string{v}
		if sep {
			parts = strings.Split(v, ";")
		}
		for _, dn := range parts {
			if dn = strings.TrimSpace(dn); dn != "" {
				groupDNs = append(groupDNs, dn)
			}
		}
		return nil
	}
	fs.Func("groups", "the directory groups, `DN;DN…`, of a login that logs in through the ldap block, instead of looking them up (\"\" for none)",
		func(v string) error { return addGroups(v, true) })
	fs.Func("group", "one directory group `DN` of the login, as --groups (repeatable)",
		func(v string) error { return addGroups(v, false) })
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: pgveil explain --config FILE --user LOGIN [--as LOGIN] [--groups DN;DN… | --group DN…] \"SQL\"")
		fmt.Fprintln(stderr, "A login that logs in through the ldap block gets the roles its directory groups give, as with serve:")
		fmt.Fprintln(stderr, "explain looks it up as bind_dn (ldap block with base_dn and bind_dn), or takes --groups/--group.")
		fmt.Fprintln(stderr, "With --as, the statement is explained for that login as the service --user acting for it sees it;")
		fmt.Fprintln(stderr, "--groups are then that login's.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if *configPath == "" || *user == "" || fs.NArg() != 1 {
		fs.Usage()
		return 2
	}
	cfg, ok := loadConfig(*configPath, stderr)
	if !ok {
		return 1
	}
	ctx := context.Background()
	enf, diags, err := server.LoadEnforcement(ctx, cfg)
	if len(diags) > 0 {
		_ = policy.WriteDiagnostics(stderr, nil, diags)
	}
	if err != nil {
		fmt.Fprintf(stderr, "pgveil explain: %v\n", err)
		return 1
	}
	// NOTE: who is the login whose policy rewrites the statement: the
	// person the service acts for, with --as. login is the engine's name
	// of that policy: a person of the directory's is compiled with her
	// groups, as serve compiles her.
	who, service := *user, ""
	switch {
	case *as == "":
	case *as == *user:
		// NOTE: --as the service's own login is the service: SET ROLE
		// to it acts as the service again (rewrite.ActToLogin), and is
		// refused, as any switch, to a login that is no service.
		if u, ok := enf.Identities.User(*user); !ok || !u.IsService() {
			fmt.Fprintf(stdout, "%s is not a BI service: its user block has no act_for\n", *user)
			return 1
		}
	default:
		who, service = *as, *user
	}
	login := who
	var up rewrite.Policy
	dir, err := explainDirectory(ctx, cfg, enf.Identities, who, service, groupDNs)
	var refusedAct *actRefused
	switch {
	case errors.As(err, &refusedAct):
		fmt.Fprintf(stdout, "%v\n", refusedAct.err)
		return 1
	case err != nil:
		fmt.Fprintf(stderr, "pgveil explain: %v\n", err)
		return 1
	}
	if dir != nil {
		dir.write(stdout, cfg)
	}
	if service != "" {
		// NOTE: as the proxy checks a switch (and each statement after
		// it): her directory groups when it reads them, else her user.
		if dir != nil && dir.groups != nil {
			err = enf.Identities.MayActForDirectory(service, who, dir.groups)
		} else {
			err = enf.Identities.MayActFor(service, who)
		}
		if err != nil {
			fmt.Fprintf(stdout, "%v\n", err)
			return 1
		}
		fmt.Fprintf(stdout, "acting: %s acts for %s (act_for); its statements are rewritten with %s's policy\n", service, who, who)
	}
	switch {
	case dir != nil && dir.groups != nil:
		login = enf.DirectoryLogin(who, dir.groups)
		if u, ok := enf.Identities.DirectoryUser(who, dir.groups); ok {
			up, err = cfg.CompileUser(u, enf.Identities)
		} else {
			err = fmt.Errorf("%w: the directory's groups give this login no role", policy.ErrNoAccess)
		}
	default:
		up, err = cfg.Compile(who, enf.Identities)
	}
	if err != nil {
		// NOTE: Compile's errors wrap ErrNoAccess, whose text opens them.
		if errors.Is(err, policy.ErrNoAccess) {
			fmt.Fprintf(stdout, "user %s: %v", who, err)
		} else {
			fmt.Fprintf(stdout, "user %s: no access: %v", who, err)
		}
		// NOTE: a DBA's typo of a login (the CLI only: a client failing
		// authentication is never told of other logins).
		if logins := enf.Identities.Logins(); dir == nil && !slices.Contains(logins, who) {
			if s := policy.Suggest(who, logins); s != "" && s != who {
				fmt.Fprintf(stdout, " (did you mean %q?)", s)
			}
		}
		fmt.Fprintln(stdout)
		return 1
	}
	// NOTE: through the engine, as a session's statement: the text shown
	// is the one pgveil forwards (and audits) the first time it sees the
	// statement, spliced where the engine splices.
	sql := fs.Arg(0)
	res, err := enf.Engine.Rewrite(ctx, login, 'Q', sql)
	if err == nil && res.Act != nil {
		// NOTE: the rewriter accepts any SET ROLE; serve refuses those of
		// a login that may not act for its target (checked as for a
		// session acting for no one: with --as, a switch is checked
		// against the service's act_for all the same).
		actor := *user
		if why := enf.Identities.SwitchRefusal(actor, res.Act.Login); why != nil {
			fmt.Fprintf(stdout, "REFUSED %s by firewall rule act_for\n  %s\n", rewrite.CodeInsufficientPrivilege, printableText("pgveil refused the statement: "+why.Error()+" (firewall rule act_for)"))
			return 0
		}
	}
	var refused *rewrite.Refused
	switch {
	case errors.As(err, &refused):
		fmt.Fprintf(stdout, "REFUSED %s by firewall rule %s\n  %s\n", refused.Code, refused.Rule, printableText(refused.Message))
		return 0
	case err != nil:
		fmt.Fprintf(stdout, "REFUSED: %s\n", printableText(err.Error()))
		return 0
	}
	shown := who
	if service != "" {
		shown += " (as " + service + " acting for " + who + ")"
	}
	fmt.Fprintf(stdout, "policy version: %s\nuser: %s\nstatements: %s\n", enf.Version, shown, strings.Join(res.Kinds, ", "))
	fmt.Fprintf(stdout, "governed tables: %s\nrules applied: %s\nmasked columns: %s\n",
		listOrNone(res.Tables), listOrNone(res.Rules), listOrNone(res.Masked))
	// NOTE: a hash mask of an integer or uuid key reads as its
	// pseudonym's type, not the column's: say so, or a DBA reading the
	// rewritten CAST wonders why a client sees bigint.
	for _, n := range servedTypes(up, enf.Engine.Catalog(), res.Masked) {
		fmt.Fprintf(stdout, "masked column type: %s\n", n)
	}
	ungranted, emptied := noRowTables(cfg, up, enf.Engine.Catalog(), res.Tables)
	// NOTE: a DBA reading "0 rows" from a join cannot tell a rule that
	// matched nothing from no rule at all: say which tables the user may
	// read no row of, whatever the data, and whether a rule applies.
	if len(ungranted) > 0 {
		fmt.Fprintf(stdout, "no row of: %s (no rule grants %s rows of them)\n", strings.Join(ungranted, ", "), who)
	}
	for _, e := range emptied {
		fmt.Fprintf(stdout, "no row of: %s (%s %s %s, but %s %s no row whatever the data: a scope or where reading an attribute %s lacks, "+
			"such as a team or groups, a column the table lacks, or the roles' ceilings)\n",
			e.table, oneOrMany(len(e.rules), "rule", "rules"), strings.Join(e.rules, ", "),
			oneOrMany(len(e.rules), "applies", "apply"), oneOrMany(len(e.rules), "grants", "grant"), who, who)
	}
	if res.Rewritten {
		fmt.Fprintf(stdout, "rewritten SQL:\n  %s\n", printableSQL(res.SQL))
		// A statement of a shape seen before is served from the shape's
		// template, which may read a governed table directly.
		if warm, err := enf.Engine.Warm(login, 'Q', sql); err == nil && warm != nil {
			fmt.Fprintf(stdout, "rewritten SQL, once a statement of this shape was seen before (reads directly):\n  %s\n", printableSQL(warm.SQL))
		}
	} else {
		fmt.Fprintf(stdout, "forwarded unchanged:\n  %s\n", printableSQL(res.SQL))
	}
	return 0
}

// printableSQL is printable, keeping the newlines and tabs that lay a
// statement out.
//
// NOTE: the operator explains what a governed user sent (copied from
// the trail, where jq -r decodes its escapes): its comments and
// literals are the user's, and must not act on the operator's terminal.
func printableSQL(s string) string {
	return printable.Escape(s, func(r rune) bool { return r == '\n' || r == '\t' })
}

// noRowTable is a table of noRowTables' whose permissive rules apply to
// the user but give the constant FALSE.
type noRowTable struct {
	table string
	// rules are the permissive rules that apply, in the policy's order.
	rules []string
}

// servedTypes describes the masked columns, of masked (as
// schema.table.column), whose masked value a client reads as another type
// than the column's (rewrite.Access.MaskTypes): "public.orders.customer_id
// reads as bigint (a hash pseudonym; the column is integer)".
func servedTypes(up rewrite.Policy, cat *rewrite.Catalog, masked []string) []string {
	if cat == nil {
		return nil
	}
	var notes []string
	for _, m := range masked {
		// NOTE: of the relations and columns m may name, the first that
		// the user's access masks to another type.
		for _, rc := range columnsOfName(cat, m) {
			typ := rewrite.AccessIn(up, cat, rc.rel).MaskTypes[rc.col.Name]
			if typ == nil {
				continue
			}
			// NOTE: a bigint or uuid column's pseudonym is served as the
			// column's own type: nothing to tell (a domain over one reads
			// as its base type, which is told).
			if rc.col.Type != typeName(typ) {
				notes = append(notes, fmt.Sprintf("%s reads as %s (a hash pseudonym; the column is %s)", m, typeName(typ), rc.col.Type))
			}
			break
		}
	}
	return notes
}

// relColumn is a relation and one of its columns.
type relColumn struct {
	rel *rewrite.Relation
	col rewrite.Column
}

// columnsOfName returns the relations and columns of cat that m, written
// schema.table.column unquoted (rewrite.Result.Masked), may name.
//
// NOTE: a quoted schema, table or column may hold dots ("Billing.EU"),
// so the name is not cut at its first or last dot but at each pair of
// dots in turn; more than one cut may name a column of the catalog.
func columnsOfName(cat *rewrite.Catalog, m string) []relColumn {
	var found []relColumn
	for i := 0; i < len(m); i++ {
		if m[i] != '.' {
			continue
		}
		for j := i + 1; j < len(m); j++ {
			if m[j] != '.' {
				continue
			}
			rel := cat.Relations[rewrite.QName{Schema: m[:i], Name: m[i+1 : j]}]
			if rel == nil {
				continue
			}
			for _, c := range rel.Columns {
				if c.Name == m[j+1:] {
					found = append(found, relColumn{rel, c})
				}
			}
		}
	}
	return found
}

// relationOfName finds the relation that n, written schema.table
// unquoted, names in cat, cutting it at each dot in turn (columnsOfName):
// nil when none does.
func relationOfName(cat *rewrite.Catalog, n string) *rewrite.Relation {
	for i := 0; i < len(n); i++ {
		if n[i] == '.' {
			if rel := cat.Relations[rewrite.QName{Schema: n[:i], Name: n[i+1:]}]; rel != nil {
				return rel
			}
		}
	}
	return nil
}

// typeName renders a type name of pg_catalog as format_type would:
// int8 as bigint.
func typeName(tn *pg_query.TypeName) string {
	names := tn.GetNames()
	if len(names) == 0 {
		return "?"
	}
	n := names[len(names)-1].GetString_().GetSval()
	if n == "int8" {
		return "bigint"
	}
	return n
}

// noRowTables returns the tables of names (as the engine lists governed
// tables) whose row scope for the user is FALSE whatever the data (noRow),
// a follower's named "through" its parent: ungranted
// where no permissive rule applies, emptied where one does but gives no
// row (a scope needing an attribute the user lacks, a where reading a
// column the table lacks, a role's ceiling).
// NOTE: the two are told apart because "no rule grants" sends a DBA to
// write a rule that already exists when the user's attribute is missing.
func noRowTables(cfg *policy.Config, up rewrite.Policy, cat *rewrite.Catalog, names []string) (ungranted []string, emptied []noRowTable) {
	if cat == nil {
		return nil, nil
	}
	permissive := map[string]bool{}
	for _, r := range cfg.Rules {
		if !r.Restrictive {
			permissive[r.Name] = true
		}
	}
	for _, n := range names {
		rel := relationOfName(cat, n)
		if rel == nil {
			continue
		}
		acc := rewrite.AccessIn(up, cat, rel)
		if acc.Mode != rewrite.Governed || acc.Filter == nil {
			continue
		}
		if !noRow(acc.Filter) {
			continue
		}
		var rules []string
		for _, r := range acc.Rules {
			if permissive[r] {
				rules = append(rules, r)
			}
		}
		if acc.Follows != nil {
			// Its rows are its parent's: say whose scope decided.
			n += " through " + acc.Follows.Parent.String()
		}
		if len(rules) == 0 {
			ungranted = append(ungranted, n)
		} else {
			emptied = append(emptied, noRowTable{table: n, rules: rules})
		}
	}
	return ungranted, emptied
}

// noRow reports whether the row scope f is FALSE whatever the data: the
// constant, an AND holding one, an OR of them only, or a follow (column =
// ANY (SELECT key FROM parent WHERE scope)) whose parent's scope is.
// NOTE: a follower of a parent the user may read no row of is scoped by
// a subquery that returns none, not by the constant: without folding
// it, explain would say nothing of the follower's empty reads.
func noRow(f *pg_query.Node) bool {
	switch {
	case f == nil:
		return false
	case f.GetAConst() != nil:
		b := f.GetAConst().GetBoolval()
		return b != nil && !b.Boolval
	case f.GetBoolExpr() != nil:
		e := f.GetBoolExpr()
		switch e.Boolop {
		case pg_query.BoolExprType_AND_EXPR:
			return slices.ContainsFunc(e.Args, noRow)
		case pg_query.BoolExprType_OR_EXPR:
			return len(e.Args) > 0 && !slices.ContainsFunc(e.Args, func(n *pg_query.Node) bool { return !noRow(n) })
		}
	case f.GetSubLink() != nil:
		sl := f.GetSubLink()
		sel := sl.GetSubselect().GetSelectStmt()
		return sl.SubLinkType == pg_query.SubLinkType_ANY_SUBLINK && sel != nil && sel.Op == pg_query.SetOperation_SETOP_NONE &&
			len(sel.FromClause) == 1 && sel.GetWhereClause() != nil && noRow(sel.GetWhereClause())
	}
	return false
}

// oneOrMany returns one when n is 1, else many.
func oneOrMany(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

func listOrNone(l []string) string {
	if len(l) == 0 {
		return "none"
	}
	return strings.Join(l, ", ")
}
