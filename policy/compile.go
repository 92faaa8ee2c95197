package policy

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	pg_query "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/proto"

	"github.com/pgveil/pgveil/internal/pgtree"
	"github.com/pgveil/pgveil/rewrite"
)

// ErrNoAccess is wrapped by the errors of Compile: the login may not use
// pgveil at all.
var ErrNoAccess = errors.New("no access")

// UserPolicy is one user's compiled policy, the rewrite.Policy Compile
// returns.
//
// NOTE: a UserPolicy is immutable and safe for concurrent use. The nodes
// in the Access values it returns may be shared between calls: callers
// copy what they modify.
type UserPolicy struct {
	// cfg is the configuration the policy was compiled from.
	cfg *Config
	// user is the merged user; roles are its roles, in name order.
	user  *User
	roles []*Role
	// key is the policy key (see Key).
	key string
	// statements, classes and functions are the union over the roles.
	statements         map[rewrite.StatementKind]bool
	classes, functions map[string]bool
	// ceiling lists the roles whose scope bounds the rows, nil when one
	// role has scope "all" (no ceiling).
	ceiling []*Role
	// ownRows lists the roles with own_rows = true.
	ownRows []*Role
	// rules are the enabled rules applying to the user, in file order.
	rules []boundRule
	// peers are the logins sharing a group with the user, sorted.
	peers []string
	// maskExprs holds the bound expression of each expression mask.
	//
	// NOTE: none for a mask reading an attribute the user lacks: the
	// column is masked with NULL.
	maskExprs map[*Column]*pg_query.Node
}

// boundRule is a rule applying to the user, its where bound to the user.
type boundRule struct {
	rule *Rule
	// where is the bound predicate; nil for a scope rule.
	where *pg_query.Node
	// members are the logins of a ScopeGroups rule's groups, sorted.
	members []string
}

// Compile returns the policy of login (a *UserPolicy), resolved against
// ids (from LoadIdentities or HCLIdentities of the same configuration). It
// returns an error wrapping ErrNoAccess when the login has no access at
// all: it is unknown, its identity rows are invalid, or it has no role.
func (c *Config) Compile(login string, ids *Identities) (rewrite.Policy, error) {
	p, err := c.compile(login, ids)
	if err != nil {
		return nil, err // NOTE: not a nil *UserPolicy in a non-nil interface.
	}
	return p, nil
}

// UserPolicy implements rewrite.Policy.
var _ rewrite.Policy = (*UserPolicy)(nil)

// compile is Compile, returning the concrete policy.
func (c *Config) compile(login string, ids *Identities) (*UserPolicy, error) {
	if ids == nil || ids.cfg != c {
		panic("policy: Compile needs the Identities of the same Config")
	}
	u, why := ids.lookup(login)
	if u == nil {
		return nil, fmt.Errorf("%w: login %q: %s", ErrNoAccess, login, why)
	}
	return c.compileUser(u, ids)
}

// CompileUser is Compile for a user DirectoryUser returned, whose roles
// and groups come from the directory rather than from ids alone.
func (c *Config) CompileUser(u *User, ids *Identities) (rewrite.Policy, error) {
	if ids == nil || ids.cfg != c {
		panic("policy: CompileUser needs the Identities of the same Config")
	}
	p, err := c.compileUser(u, ids)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// compileUser compiles the policy of u.
func (c *Config) compileUser(u *User, ids *Identities) (*UserPolicy, error) {
	login := u.Login
	key := c.policyKey(ids, login)
	if u.directory {
		// NOTE: no login holds a NUL byte (startup parameters end at
		// one), so this never names another login's policy.
		key = c.policyKey(ids, fmt.Sprintf("\x00directory\x00%q\x00%q\x00%q", login, u.Roles, u.Groups))
	}
	p := &UserPolicy{
		cfg: c, user: u,
		key:        key,
		statements: map[rewrite.StatementKind]bool{}, classes: map[string]bool{}, functions: map[string]bool{},
		maskExprs: map[*Column]*pg_query.Node{},
	}
	for _, name := range u.Roles {
		if r := c.Roles[name]; r != nil {
			p.roles = append(p.roles, r)
		}
	}
	slices.SortFunc(p.roles, func(a, b *Role) int { return cmp.Compare(a.Name, b.Name) })
	p.roles = slices.Compact(p.roles)
	if len(p.roles) == 0 {
		if c.rolesFromDirectoryOnly(u) {
			return nil, fmt.Errorf("%w: login %q has no role outside its own session: %s", ErrNoAccess, login, directoryRolesHint)
		}
		return nil, fmt.Errorf("%w: login %q has no role", ErrNoAccess, login)
	}
	unbounded := false
	for _, r := range p.roles {
		for _, k := range r.Statements {
			p.statements[k] = true
		}
		for _, cl := range r.Columns {
			p.classes[cl] = true
		}
		for _, f := range r.Functions {
			p.functions[f] = true
		}
		if r.Scope == ScopeAll {
			unbounded = true
		}
		p.ceiling = append(p.ceiling, r)
		if r.OwnRows {
			p.ownRows = append(p.ownRows, r)
		}
	}
	if unbounded {
		p.ceiling = nil
	}
	seen := map[string]bool{}
	for _, g := range u.Groups {
		for _, m := range ids.members[g] {
			seen[m] = true
		}
	}
	p.peers = sortedKeys(seen)
	for _, r := range c.Rules {
		if !r.Enabled || !p.appliesTo(r) {
			continue
		}
		br := boundRule{rule: r}
		switch {
		case r.where != nil && p.lacksAttribute(r.where):
			// NOTE: NULL keeps a comparison from being true, not an
			// expression reading past it (concat(me.x, '%'), COALESCE,
			// a CASE's ELSE, IS NULL): a rule reading an attribute the
			// user lacks grants no row, and restricts to none.
			br.where = boolConst(false)
		case r.where != nil:
			br.where = bind(r.where, p.attr)
		}
		if r.Scope == ScopeGroups {
			members := map[string]bool{}
			for _, g := range r.Groups {
				for _, m := range ids.members[g] {
					members[m] = true
				}
			}
			br.members = sortedKeys(members)
		}
		p.rules = append(p.rules, br)
	}
	for _, t := range c.Tables {
		for _, col := range t.Columns {
			switch {
			case col.Mask.expr != nil && p.lacksAttribute(col.Mask.expr):
				// NOTE: as for rules: a CASE falling to an ELSE that
				// shows the column must not show it to a user lacking
				// the attribute. The mask is NULL (maskNode).
			case col.Mask.expr != nil:
				p.maskExprs[col] = bind(col.Mask.expr, p.attr)
			}
		}
	}
	return p, nil
}

// appliesTo reports whether rule r is about the user: it names the
// user's login or one of the user's roles.
func (p *UserPolicy) appliesTo(r *Rule) bool {
	if slices.Contains(r.Users, p.user.Login) {
		return true
	}
	for _, role := range p.roles {
		if slices.Contains(r.Roles, role.Name) {
			return true
		}
	}
	return false
}

// attr returns the user's attribute name: the built-in login, team,
// groups and roles, or a free attribute; the missing Value when unset.
func (p *UserPolicy) attr(name string) Value {
	u := p.user
	switch name {
	case "login":
		return Value{kind: kindString, text: u.Login}
	case "team":
		if u.Team != nil {
			return intValue(*u.Team)
		}
		return Value{}
	case "groups":
		return stringsValue(u.Groups)
	case "roles":
		names := make([]string, len(p.roles))
		for i, r := range p.roles {
			names[i] = r.Name
		}
		return stringsValue(names)
	}
	return u.Attributes[name]
}

// lacksAttribute reports whether e reads an attribute the user lacks
// (me.team without a team, a free attribute no user block or identity
// row gives them).
func (p *UserPolicy) lacksAttribute(e *sqlExpr) bool {
	for name := range e.attrs {
		if p.attr(name).IsMissing() {
			return true
		}
	}
	return false
}

// Login returns the login the policy is for.
func (p *UserPolicy) Login() string { return p.user.Login }

// Key identifies the compiled policy: the hex SHA-256 of the policy
// version (configuration files and identity rows), the environment
// variables the configuration read, and the login. Two policies with
// equal keys rewrite every statement identically.
func (p *UserPolicy) Key() string { return p.key }

// ApplicationNamePrefix is what the user's application_name starts with
// upstream, as pgveil writes it at startup: SET application_name keeps
// it (see rewrite's sessionTagger).
func (p *UserPolicy) ApplicationNamePrefix() string { return "pgveil:" + p.user.Login + ":" }

// AllowStatement reports whether one of the user's roles lists statement
// kind k; when none does, reason says so.
func (p *UserPolicy) AllowStatement(k rewrite.StatementKind) (bool, string) {
	if p.statements[k] {
		return true, ""
	}
	return false, fmt.Sprintf("user %q may not run %s statements: none of the roles %s lists %q in its statements",
		p.user.Login, strings.ReplaceAll(string(k), "_", " "), p.roleList(), k)
}

// roleList renders the user's roles for messages.
func (p *UserPolicy) roleList() string {
	names := make([]string, len(p.roles))
	for i, r := range p.roles {
		names[i] = r.Name
	}
	return strings.Join(names, ", ")
}

// AllowFunction reports whether one of the user's roles lists the
// function schema.name.
func (p *UserPolicy) AllowFunction(schema, name string) bool {
	if schema == "information_schema" && informationSchemaHelpers[name] {
		return true
	}
	return p.functions[schema+"."+name]
}

// informationSchemaHelpers are the functions PostgreSQL defines in
// information_schema for its own views. Drivers call them directly in
// their metadata queries (PgJDBC's getPrimaryKeys and getIndexInfo use
// _pg_expandarray; DBeaver and DataGrip the type helpers). Each is a pure
// function of its arguments or of pg_catalog rows; none reads a user
// table, so every user may call them, as any pg_catalog function.
var informationSchemaHelpers = map[string]bool{
	"_pg_expandarray": true, "_pg_index_position": true, "_pg_truetypid": true, "_pg_truetypmod": true,
	"_pg_char_max_length": true, "_pg_char_octet_length": true, "_pg_numeric_precision": true,
	"_pg_numeric_precision_radix": true, "_pg_numeric_scale": true, "_pg_datetime_precision": true,
	"_pg_interval_type": true,
}

// Relation returns how rel is governed for the user:
//   - pg_catalog and information_schema relations are Open;
//   - a relation that neither it nor any of its ancestors matches a table
//     block follows its schema's default: Denied unless a schema block
//     says allow;
//   - otherwise it is Governed by the most specific table block matching
//     it or an ancestor (an exact name beats a pattern, then more literal
//     characters win, then the relation itself beats its ancestors).
//
// A governed relation's filter is
//
//	((P1 OR P2 …) AND R1 AND R2 … AND Ceiling) OR OwnRows
//
// where P are the enabled permissive rules applying to the relation and
// the user, R the restrictive ones, Ceiling the OR of the user's roles'
// scopes (left out when one is "all"), and OwnRows owner_column =
// me.login when a role has own_rows. No permissive rule means no row, not
// a denial. Columns whose class none of the user's roles lists are masked.
func (p *UserPolicy) Relation(rel *rewrite.Relation) rewrite.Access {
	return p.RelationIn(nil, rel)
}

// UserPolicy implements rewrite.CatalogPolicy.
var _ rewrite.CatalogPolicy = (*UserPolicy)(nil)

// RelationIn is Relation, rel a relation of the snapshot cat: a table
// that follows another (Table.Follows) is scoped by the parent as cat
// holds it. Without cat (nil), such a table shows no row.
func (p *UserPolicy) RelationIn(cat *rewrite.Catalog, rel *rewrite.Relation) rewrite.Access {
	acc := p.relation(rel, nil, &follower{cat: cat})
	if acc.Mode != rewrite.Denied {
		// NOTE: the keys other tables follow this one on: a scoped
		// writer may not move them (rewrite.Access.FollowedKeys). The
		// follow reads a parent's partitions and inheritance children
		// too (FROM without ONLY): theirs are followed keys as well. A
		// followed partition's rows are its root's (and its ancestors'),
		// which an UPDATE of the root writes: theirs too.
		for _, t := range p.cfg.Tables {
			f := t.Follows
			if f == nil {
				continue
			}
			// NOTE: an UPDATE of the root's partition keys moves a row
			// into the followed partition, its key with it: the columns
			// that decide a partition's rows (BoundBy) are followed too.
			var bound []string
			if cat != nil && cat.Relations[f.Table] != nil && slices.Contains(cat.Relations[f.Table].Ancestors, rel.QName) {
				bound = append([]string{f.Key}, cat.Relations[f.Table].BoundBy...)
			} else if f.Table == rel.QName || slices.Contains(rel.Ancestors, f.Table) {
				bound = []string{f.Key}
			}
			for _, k := range bound {
				if acc.FollowedKeys == nil {
					acc.FollowedKeys = map[string]bool{}
				}
				acc.FollowedKeys[k] = true
			}
		}
		if p.cfg.policyInputTree(rel) {
			acc.ReadOnly = fmt.Sprintf("table %s is read by the policy itself (the teams tree, an identity query or a "+
				"rule's subquery): writing it could change what users may see, so pgveil refuses every write of it", rel.QName)
		} else if in := p.cfg.writesPolicyInput(rel); in != nil {
			acc.ReadOnly = fmt.Sprintf("a write of %s may write %s (a rule of it, or a view's base table), which is read by "+
				"the policy itself: writing it could change what users may see, so pgveil refuses every write of it", rel.QName, in.QName)
		}
	}
	return acc
}

// writesPolicyInput returns a policy input (policyInputTree) a write of
// rel may write, or nil: what a rule of rel names (CREATE RULE … DO ALSO
// UPDATE), the base relations of a view (an automatically updatable
// view, an INSTEAD rule), at any depth.
//
// NOTE: rel's Reads, followed down only: a relation that merely reads
// the same table as a view of a policy input is not one. It errs on the
// safe side: a rule that only reads a policy input makes rel read-only
// too. A materialized view is not written through (REFRESH writes the
// view alone). Triggers are not in the catalog snapshot: a trigger
// function writing a policy input is the DBA's to avoid.
func (c *Config) writesPolicyInput(rel *rewrite.Relation) *rewrite.Relation {
	seen := map[*rewrite.Relation]bool{rel: true}
	var walk func(r *rewrite.Relation) *rewrite.Relation
	walk = func(r *rewrite.Relation) *rewrite.Relation {
		if r.Kind == 'm' {
			return nil
		}
		for _, w := range r.Reads {
			if seen[w] {
				continue
			}
			seen[w] = true
			if c.policyInputTree(w) {
				return w
			}
			if in := walk(w); in != nil {
				return in
			}
		}
		return nil
	}
	return walk(rel)
}

// policyInput reports whether the policy itself reads the relation q: the
// teams table, a relation an identity query or a rule's or mask's
// subquery names. An identity query's unqualified name matches q in any
// schema.
func (c *Config) policyInput(q rewrite.QName) bool {
	c.inputsOnce.Do(func() { c.inputs = c.policyInputs() })
	return c.inputs[q] || c.inputs[rewrite.QName{Name: q.Name}]
}

// policyInputs returns the relations the policy itself reads (see
// policyInput), as the configuration holds them now.
//
// NOTE: uncached, for the decoder's warnings while the configuration is
// still being built; serving reads policyInput's cached set.
func (c *Config) policyInputs() map[rewrite.QName]bool {
	inputs := map[rewrite.QName]bool{}
	if t := c.Teams; t != nil && t.Table != nil {
		inputs[*t.Table] = true
	}
	for _, src := range c.IdentitySources {
		for _, n := range queryRelations(src.Query) {
			inputs[n] = true
		}
	}
	for _, r := range c.Rules {
		if r.where != nil {
			for _, n := range r.where.tables {
				inputs[n] = true
			}
		}
	}
	for _, t := range c.Tables {
		for _, col := range t.Columns {
			if e := col.Mask.expr; e != nil {
				for _, n := range e.tables {
					inputs[n] = true
				}
			}
		}
	}
	return inputs
}

// policyInputTree reports whether rel, one of its ancestors or one of its
// descendants is a policy input, or is read by a view that is one (at any
// depth): a write of a partition is a write of its parent's rows, and the
// reverse, and a write of a table changes the views reading it.
func (c *Config) policyInputTree(rel *rewrite.Relation) bool {
	return c.policyInputFrom(rel, map[*rewrite.Relation]bool{})
}

// policyInputFrom is policyInputTree; seen holds the relations asked
// about on the way.
func (c *Config) policyInputFrom(rel *rewrite.Relation, seen map[*rewrite.Relation]bool) bool {
	if seen[rel] {
		return false
	}
	seen[rel] = true
	if c.policyInput(rel.QName) || slices.ContainsFunc(rel.Ancestors, c.policyInput) {
		return true
	}
	if slices.ContainsFunc(rel.Descendants, func(d *rewrite.Relation) bool { return c.policyInputFrom(d, seen) }) {
		return true
	}
	return slices.ContainsFunc(rel.ReadBy, func(v *rewrite.Relation) bool { return c.policyInputFrom(v, seen) })
}

// queryRelations returns the relations sql names anywhere (FROM items,
// CTEs, subqueries), schema "" for an unqualified one; none when it does
// not parse.
func queryRelations(sql string) []rewrite.QName {
	tree, err := pg_query.Parse(sql)
	if err != nil {
		return nil
	}
	var out []rewrite.QName
	pgtree.Walk(tree, func(m proto.Message) bool {
		if rv, ok := m.(*pg_query.RangeVar); ok {
			out = append(out, rewrite.QName{Schema: rv.Schemaname, Name: rv.Relname})
		}
		return true
	})
	return out
}

// relation is Relation; seen holds the views whose reads are being
// followed (readsPastPolicy).
func (p *UserPolicy) relation(rel *rewrite.Relation, seen map[*rewrite.Relation]bool, fw *follower) rewrite.Access {
	if catalogSchemas[rel.Schema] {
		return rewrite.Access{Mode: rewrite.Open}
	}
	t, problem := p.cfg.tableFor(rel)
	if problem == "" {
		problem = p.cfg.inheritedOtherwise(rel, t)
	}
	if problem != "" {
		return rewrite.Access{Mode: rewrite.Denied, Reason: problem}
	}
	if t != nil && !t.Pattern.Exact() {
		// NOTE: a view a pattern governs was not named by the DBA: it
		// may read only what the same block governs.
		if why := p.readsPastPolicy(rel, t, seen); why != "" {
			return rewrite.Access{Mode: rewrite.Denied, Reason: why}
		}
	}
	if t == nil {
		if s := p.cfg.Schemas[rel.Schema]; s != nil && s.Allow {
			if why := p.readsPastPolicy(rel, nil, seen); why != "" {
				return rewrite.Access{Mode: rewrite.Denied, Reason: why}
			}
			return rewrite.Access{Mode: rewrite.Open}
		}
		return rewrite.Access{Mode: rewrite.Denied, Reason: fmt.Sprintf(
			"table %s is not governed by any table block and schema %s denies ungoverned tables "+
				"(add a table block for it, or schema %q { default = \"allow\" })", rel.QName, rel.Schema, rel.Schema)}
	}
	columns := make(map[string]bool, len(rel.Columns))
	for _, c := range rel.Columns {
		columns[c.Name] = true
	}
	has := func(c string) bool { return columns[c] }
	sc := &scopeContext{table: t, has: has, p: p}

	var perm, restr []*pg_query.Node
	var names []string
	for _, br := range p.rules {
		if !br.rule.covers(rel) {
			continue
		}
		var pred *pg_query.Node
		switch {
		case br.where == nil:
			pred = sc.predicate(br.rule.Scope, br.members)
		case hasAll(has, br.rule.where.columns):
			// NOTE: date and time constants are rendered for the
			// relation's column types, so that no DateStyle or TimeZone
			// changes the rows; a rule reading one pgveil cannot render
			// (an attribute's value) grants no row, as for a missing one.
			var ok bool
			if pred, ok = pinDatetimes(br.where, rel); !ok {
				pred = boolConst(false)
			}
		default:
			// NOTE: a column the relation lacks could resolve to a column
			// of the client's outer query: fail closed.
			pred = boolConst(false)
		}
		names = append(names, br.rule.Name)
		if br.rule.Restrictive {
			restr = append(restr, pred)
		} else {
			perm = append(perm, pred)
		}
	}
	var ceil []*pg_query.Node
	if p.ceiling != nil && !t.Reference {
		var scopes []*pg_query.Node
		for _, r := range p.ceiling {
			scopes = append(scopes, sc.predicate(r.Scope, nil))
			names = append(names, "role."+r.Name+".scope")
		}
		ceil = []*pg_query.Node{or(scopes...)}
	}
	conj := append(append([]*pg_query.Node{or(perm...)}, restr...), ceil...)
	fence := !t.Pushdown
	var follows *rewrite.Follow
	if t.Follows != nil {
		follow := boolConst(false)
		var parentRules []string
		if has(t.Follows.Column) {
			var parentFence bool
			follow, parentRules, parentFence = fw.predicate(p, t.Follows, columnOf(rel, t.Follows.Column))
			// NOTE: a comparison of the child's column pushed into its
			// scope reaches the parent's key through the follow: a
			// fenced parent fences its children (Table.Pushdown).
			fence = fence || parentFence
		}
		// NOTE: the parent's scope holds its ceilings: the follow is not
		// bounded again by the child's own, which, without a team or
		// owner column, would be FALSE. The child's rules' rows are.
		// Flattened: PostgreSQL's parser merges an AND (an OR) that is
		// the left operand of another, so a nested one would not parse
		// back into the tree the rewriter checked.
		granted := or(flatten(pg_query.BoolExprType_OR_EXPR, follow, and(append([]*pg_query.Node{or(perm...)}, ceil...)...))...)
		if len(restr) == 0 && !isBoolConst(follow, false) {
			// NOTE: nothing narrows the follow: every row whose column
			// equals a visible parent row's key is visible (a DELETE of
			// the parent reaches no other: rewrite.Access.Follows).
			follows = &rewrite.Follow{Parent: t.Follows.Table, Column: t.Follows.Column, Key: t.Follows.Key}
		}
		conj = append(flatten(pg_query.BoolExprType_AND_EXPR, granted), restr...)
		// NOTE: the parent's rules decide the child's rows too: the
		// audit and explain name them.
		names = append(append(names, "follows."+t.Follows.Table.String()), parentRules...)
	}
	filter := and(conj...)
	if len(p.ownRows) > 0 {
		if own := sc.owner(); own != nil {
			filter = or(filter, eq(own, literal(p.attr("login"))))
			for _, r := range p.ownRows {
				names = append(names, "role."+r.Name+".own_rows")
			}
		}
	}
	// NOTE: the rules' date and time constants are pinned above; the
	// scopes, ceilings and own rows hold none.
	acc := rewrite.Access{Mode: rewrite.Governed, Filter: filter, Rules: names, NoPushdown: fence, Follows: follows}
	if isBoolConst(filter, true) {
		acc.Filter = nil
	}
	for _, c := range rel.Columns {
		col := t.Columns[c.Name]
		if col == nil || p.classes[col.Class] {
			continue
		}
		if acc.Masks == nil {
			acc.Masks = map[string]*pg_query.Node{}
		}
		typ, _ := c.MaskCast()
		m, ok := pinDatetimes(maskNode(&col.Mask, c.Name, typ, p.maskExprs[col], has), rel)
		if !ok {
			m = nullConst()
		}
		acc.Masks[c.Name] = m
		// NOTE: a hash mask of an integer or uuid column is a pseudonym
		// of its own type (hashPseudonym), served as that type.
		if _, pt := hashPseudonym(typ); col.Mask.Kind == MaskHash && pt != nil {
			if acc.MaskTypes == nil {
				acc.MaskTypes = map[string]*pg_query.TypeName{}
			}
			acc.MaskTypes[c.Name] = pt
		}
	}
	// NOTE: a stored generated column computed from a masked column is a
	// function of the real value (upper(email), a tsvector of a comment
	// and a contact): it is masked as NULL for this user too, in the
	// result, in comparisons and in RETURNING, whatever its own block
	// says: its own partial, hash or expression mask would run on that
	// real value (the first characters of a name masked NULL). Bases are
	// never generated (PostgreSQL forbids it), so their masks are final.
	for _, c := range rel.Columns {
		for _, base := range rel.Generated[c.Name] {
			if _, masked := acc.Masks[base]; masked {
				acc.Masks[c.Name] = nullConst()
				delete(acc.MaskTypes, c.Name)
				break
			}
		}
	}
	// NOTE: a partition holds the rows whose key values its bound (and
	// its ancestors') admits, and the bounds are in the catalog: reading
	// it by name, ONLY or not, is a predicate on a masked key column's
	// real value.
	for _, c := range rel.BoundBy {
		if _, masked := acc.Masks[c]; masked {
			return rewrite.Access{Mode: rewrite.Denied, Reason: fmt.Sprintf(
				"table %s is a partition, and a partition key above it reads the column %s, which you may not read: "+
					"which rows it holds would tell that value (query the partitioned table)", rel.QName, c)}
		}
	}
	return acc
}

// covers reports whether one of the rule's tables matches rel or one of
// its ancestors.
func (r *Rule) covers(rel *rewrite.Relation) bool {
	for _, pat := range r.Tables {
		if pat.Match(rel.QName) {
			return true
		}
		for _, a := range rel.Ancestors {
			if pat.Match(a) {
				return true
			}
		}
	}
	return false
}

// readsPastPolicy says why rel, a view or materialized view governed by
// no table block (t nil) in a schema that allows ungoverned tables, or by
// the pattern block t, is denied to the user, "" when it is not. A view
// runs with the service account's rights, so it shows what it reads past
// that relation's own policy. It is denied when it reads, directly or
// through other views, a relation governed otherwise (by another block,
// or at all when t is nil) or denied, a pg_catalog relation the firewall
// hides or masks, or when it calls a function the user may not call.
// seen holds the views on the way, against cycles.
func (p *UserPolicy) readsPastPolicy(rel *rewrite.Relation, t *Table, seen map[*rewrite.Relation]bool) string {
	if len(rel.Reads) == 0 && len(rel.Calls) == 0 {
		return ""
	}
	if seen == nil {
		seen = map[*rewrite.Relation]bool{}
	}
	seen[rel] = true
	for _, r := range rel.Reads {
		switch {
		case seen[r] || r.Schema == "information_schema":
			continue
		case r.Schema == "pg_catalog":
			if rewrite.CatalogRelationAllowed(r.Name) {
				continue
			}
		default:
			rt, problem := p.cfg.tableFor(r)
			switch {
			case problem != "":
			case rt == nil:
				if acc := p.relation(r, seen, &follower{}); acc.Mode == rewrite.Open {
					continue
				}
			}
			// NOTE: a relation governed by the view's own pattern block is
			// not read alike either: masks match by column name and rules
			// by relation, and the view's author chose its names.
		}
		return fmt.Sprintf("view %s reads %s, which is governed, denied or hidden: a view runs with the service account's rights, "+
			"past that relation's policy (govern the view with a table block of its own)", rel.QName, r.QName)
	}
	for _, f := range rel.Calls {
		switch {
		case f.Schema == "information_schema":
			continue
		case f.Schema == "pg_catalog":
			if rewrite.CatalogFunctionAllowed(f.Name) {
				continue
			}
		case p.AllowFunction(f.Schema, f.Name):
			continue
		}
		return fmt.Sprintf("view %s calls %s, which you may not call: a view runs with the service account's rights, "+
			"and the function may read what you may not (govern the view with a table block of its own)", rel.QName, f)
	}
	return ""
}

// inheritedOtherwise says why rel, governed by t (nil for none), is
// denied because of its descendants, "" when it is not: a scan of rel
// reads its inheritance children's and partitions' rows under rel's
// policy, so a descendant governed by another table block, or covered by
// other rules, would be read past its own. ONLY rel is denied too: a
// partitioned table holds no row of its own.
func (c *Config) inheritedOtherwise(rel *rewrite.Relation, t *Table) string {
	if len(rel.Descendants) == 0 {
		return ""
	}
	// NOTE: cached by relation OID for the relation of the latest
	// catalog snapshot that asked: a table with thousands of partitions
	// costs their blocks' and rules' patterns, and every statement the
	// rewrite caches miss asks again. One entry per OID keeps at most one
	// snapshot's relation alive.
	if e, ok := c.inherited.Load(rel.OID); ok && e.(inheritedEntry).rel == rel {
		return e.(inheritedEntry).why
	}
	why := c.descendantGovernedOtherwise(rel, t)
	c.inherited.Store(rel.OID, inheritedEntry{rel: rel, why: why})
	return why
}

// allows reports whether schema's relations without a table block are
// open.
func (c *Config) allows(schema string) bool {
	s := c.Schemas[schema]
	return s != nil && s.Allow
}

// inheritedEntry is inheritedOtherwise's answer for rel.
type inheritedEntry struct {
	rel *rewrite.Relation
	why string
}

// descendantGovernedOtherwise is inheritedOtherwise, uncached.
// NOTE: one memo of lines for all the descendants: they share their
// ancestors, and a lattice of multiple inheritance would otherwise cost
// each descendant's walk of its own ancestors again.
func (c *Config) descendantGovernedOtherwise(rel *rewrite.Relation, t *Table) string {
	memo := map[*rewrite.Relation]line{}
	for _, d := range rel.Descendants {
		dt, problem := c.tableIn(d, memo)
		// NOTE: ungoverned both, they must be in schemas alike: an
		// open parent would show a partition its schema denies.
		alike := dt != nil || c.allows(d.Schema) == c.allows(rel.Schema)
		if problem == "" && dt == t && alike && slices.IndexFunc(c.Rules, func(r *Rule) bool { return r.covers(d) != r.covers(rel) }) < 0 {
			continue
		}
		return fmt.Sprintf("table %s has inheritance children or partitions governed otherwise than it (%s): "+
			"query them one by one, or govern them alike (the table block and rules of %s cover them as they cover %s)",
			rel.QName, d.QName, rel.QName, rel.QName)
	}
	return ""
}

// tableFor returns the table block governing rel: the most specific block
// matching rel or one of its ancestors; on a tie, the one matching the
// nearest relation (rel itself first). Two equally specific blocks
// matching the same relation are ambiguous: problem says so; so are two
// lines of inheritance (through two parents) whose blocks disagree and
// are equally specific, however near: both lines' scans read rel's rows,
// each under its own block. A relation the snapshot refuses
// (Relation.Refused) has none, and problem says why.
func (c *Config) tableFor(rel *rewrite.Relation) (*Table, string) {
	return c.tableIn(rel, map[*rewrite.Relation]line{})
}

// tableIn is tableFor with the lines of relations already walked (memo,
// see lineOf), which depend on c and the snapshot alone.
func (c *Config) tableIn(rel *rewrite.Relation, memo map[*rewrite.Relation]line) (*Table, string) {
	if rel.Refused != "" {
		return nil, rel.Refused
	}
	l := c.lineOf(rel, memo)
	if len(l.best) > 1 {
		return nil, fmt.Sprintf("table %s is matched by equally specific table blocks %s: "+
			"add a table block naming it exactly", l.at, tableLabels(l.best))
	}
	if l.tied != nil {
		return nil, fmt.Sprintf("table %s inherits from %s and %s, governed by equally specific table blocks %s and %s: "+
			"add a table block naming it exactly", rel.QName, l.at, l.tiedAt, tableLabels(l.best), tableLabels(l.tied))
	}
	if len(l.best) == 0 {
		return nil, ""
	}
	return l.best[0], ""
}

// line is the table blocks governing a relation through its lines of
// inheritance (tableFor).
type line struct {
	// best are the most specific blocks, matching at; none when rank is
	// -1.
	best []*Table
	rank int
	at   rewrite.QName
	// tied, when not nil, are equally specific blocks other than best's,
	// matching tiedAt on another line of inheritance.
	tied   []*Table
	tiedAt rewrite.QName
}

// lineOf returns rel's line: its own blocks when they are as specific as
// any of its parents' lines', else the most specific of those.
// NOTE: memo keeps a diamond's shared ancestors to one visit each. A
// relation without Parents but with Ancestors (built by hand, not read
// from a catalog) is read as one line, nearest first.
func (c *Config) lineOf(rel *rewrite.Relation, memo map[*rewrite.Relation]line) line {
	if l, ok := memo[rel]; ok {
		return l
	}
	var parents []line
	switch {
	case rel.Parents != nil:
		for _, p := range rel.Parents {
			parents = append(parents, c.lineOf(p, memo))
		}
	case len(rel.Ancestors) > 0:
		l := line{rank: -1}
		for i := len(rel.Ancestors) - 1; i >= 0; i-- {
			l = c.joinLines(rel.Ancestors[i], []line{l})
		}
		parents = []line{l}
	}
	l := c.joinLines(rel.QName, parents)
	memo[rel] = l
	return l
}

// joinLines returns the line of q given its parents' lines: q's own
// blocks win a tie (nearest first); two parents' lines of equal rank
// whose blocks differ (any of them, not only the first) are tied.
func (c *Config) joinLines(q rewrite.QName, parents []line) line {
	l := line{rank: -1}
	if gov := c.governing(q); len(gov) > 0 {
		l = line{best: gov, rank: gov[0].Pattern.specificity(), at: q}
	}
	own := l.rank
	for _, p := range parents {
		switch {
		case p.rank > l.rank:
			l = p
		case p.rank == l.rank && p.rank > own && l.tied == nil:
			if p.tied != nil {
				l = p
			} else if !slices.Equal(p.best, l.best) {
				// NOTE: all of best, not its first: a parent two
				// blocks match alike is ambiguous whichever line
				// pg_inherits lists first.
				l.tied, l.tiedAt = p.best, p.at
			}
		}
	}
	return l
}
