package policy

import (
	"cmp"
	"crypto/sha256"
	"fmt"
	"hash"
	"iter"
	"maps"
	"slices"
	"strconv"

	"github.com/pgveil/pgveil/internal/scram"
)

// Identities are the users, teams and groups resolved from user blocks and
// identity queries: who may log in, and what policies know about each
// user. Build them with Config.LoadIdentities or Config.HCLIdentities.
//
// NOTE: Identities are immutable once built and safe for concurrent use;
// the *User values they return are shared and must not be modified.
type Identities struct {
	// cfg is the configuration the identities were resolved for.
	cfg *Config
	// users maps a login to the merged user, for every login that is not
	// broken.
	users map[string]*User
	// broken maps a login to why it has no access at all (e.g. two
	// identity rows for it).
	broken map[string]string
	// members maps a group to the sorted logins of its members.
	members map[string][]string
	// folded holds the loose spelling (looseLogin) of every login users,
	// broken and the user blocks name: a directory login spelled like one
	// of them, but not exactly, is refused (DirectoryUser).
	folded map[string]bool
	// digest covers the identity rows, for Config.Version.
	digest [32]byte
	// mockIterations is the PBKDF2 iteration count most verifiers ask
	// for (MockIterations).
	mockIterations int
}

// identityRow is what one identity row says about a login.
type identityRow struct {
	// source is the identity block the row comes from.
	source *IdentitySource
	// login is the row's login.
	login string
	// verifier is the row's password (set has fieldPassword).
	verifier scram.Verifier
	// roles, team and groups are set when set says so.
	roles  []string
	team   *int64
	groups []string
	// attrs are the row's non-NULL free attributes.
	attrs map[string]Value
	// set says which fields the row has (non-NULL columns).
	set userFields
}

// HCLIdentities returns the identities of the user blocks alone, without
// running any identity query: for configurations without identity blocks,
// tests, and `pgveil check` without an upstream. Scopes over a teams table
// still work: the tree is read by the rewritten statements themselves.
func (c *Config) HCLIdentities() *Identities {
	return c.buildIdentities(nil, nil)
}

// buildIdentities merges identity rows and user blocks. broken lists
// logins already known to be unusable (bad rows).
//
// Merging: rows of different identity blocks about one login are combined
// field by field, and two blocks giving one field different values break
// the login (fail closed: no access). Then the user block of that login,
// if any, wins field by field (a free attribute is a field).
func (c *Config) buildIdentities(rows []identityRow, broken map[string]string) *Identities {
	ids := &Identities{cfg: c, users: map[string]*User{}, broken: map[string]string{}, members: map[string][]string{}}
	maps.Copy(ids.broken, broken)
	slices.SortStableFunc(rows, func(a, b identityRow) int { return cmp.Compare(a.login, b.login) })
	ids.digest = rowsDigest(rows, ids.broken)

	// owner remembers which identity block set each field of each login.
	owner := map[string]map[string]*IdentitySource{}
	for _, row := range rows {
		if _, bad := ids.broken[row.login]; bad {
			continue
		}
		u := ids.users[row.login]
		if u == nil {
			u = &User{Login: row.login, DeclRange: row.source.DeclRange, Attributes: map[string]Value{}}
			ids.users[row.login] = u
			owner[row.login] = map[string]*IdentitySource{}
		}
		if problem := mergeRow(u, row, owner[row.login]); problem != "" {
			ids.broken[row.login] = problem
		}
	}
	for login := range ids.broken {
		delete(ids.users, login)
	}
	for login, hu := range c.Users {
		if _, bad := ids.broken[login]; bad {
			continue
		}
		u := ids.users[login]
		if u == nil {
			u = &User{Login: login, Attributes: map[string]Value{}}
			ids.users[login] = u
		}
		u.DeclRange = hu.DeclRange
		// The method comes from the user block only: an identity row
		// cannot turn a password login into a certificate login.
		u.Auth = hu.Auth
		u.ActFor = hu.ActFor
		u.MaxConnections = hu.MaxConnections
		u.MaxPoolBackends = hu.MaxPoolBackends
		// NOTE: a field counts as set when the block sets it, or when it is
		// non-empty (a Config built in Go has no record of what was set).
		set := hu.set
		if hu.HasPassword() {
			set |= fieldPassword
		}
		if hu.Roles != nil {
			set |= fieldRoles
		}
		if hu.Team != nil {
			set |= fieldTeam
		}
		if hu.Groups != nil {
			set |= fieldGroups
		}
		if set&fieldPassword != 0 {
			u.Verifier = hu.Verifier
		}
		if set&fieldRoles != 0 {
			u.Roles = hu.Roles
		}
		if set&fieldTeam != 0 {
			u.Team = hu.Team
		}
		if set&fieldGroups != 0 {
			u.Groups = hu.Groups
		}
		maps.Copy(u.Attributes, hu.Attributes)
		u.set |= set
	}
	for login, u := range ids.users {
		for _, g := range u.Groups {
			ids.members[g] = append(ids.members[g], login)
		}
	}
	for g := range ids.members {
		slices.Sort(ids.members[g])
	}
	ids.mockIterations = commonIterations(ids.users)
	ids.folded = make(map[string]bool, len(ids.users)+len(ids.broken))
	for _, logins := range []iter.Seq[string]{maps.Keys(ids.users), maps.Keys(ids.broken), maps.Keys(c.Users)} {
		for login := range logins {
			ids.folded[looseLogin(login)] = true
		}
	}
	return ids
}

// mergeRow merges row into u; owner records which identity block set each
// field. It returns why the login is broken when two blocks disagree.
func mergeRow(u *User, row identityRow, owner map[string]*IdentitySource) string {
	conflict := ""
	claim := func(field string, same bool) bool {
		prev, taken := owner[field]
		if taken && !same && conflict == "" {
			conflict = fmt.Sprintf("identity blocks %q and %q give different %s", prev.Name, row.source.Name, field)
		}
		if !taken {
			owner[field] = row.source
		}
		return !taken
	}
	if row.set&fieldPassword != 0 && claim("password", u.Verifier.String() == row.verifier.String()) {
		u.Verifier = row.verifier
	}
	if row.set&fieldRoles != 0 && claim("roles", slices.Equal(u.Roles, row.roles)) {
		u.Roles = row.roles
	}
	if row.set&fieldTeam != 0 && claim("team", u.Team != nil && *u.Team == *row.team) {
		u.Team = row.team
	}
	if row.set&fieldGroups != 0 && claim("groups", slices.Equal(u.Groups, row.groups)) {
		u.Groups = row.groups
	}
	for _, name := range sortedKeys(row.attrs) {
		v := row.attrs[name]
		if claim("attribute "+name, u.Attributes[name].equal(v)) {
			u.Attributes[name] = v
		}
	}
	u.set |= row.set
	return conflict
}

// rowsDigest hashes the identity rows and broken logins canonically:
// rows sorted by login, fields in a fixed order.
func rowsDigest(rows []identityRow, broken map[string]string) [32]byte {
	h := sha256.New()
	writeField(h, "pgveil identities v1")
	for _, r := range rows {
		writeField(h, "row")
		writeField(h, r.source.Name)
		writeField(h, r.login)
		writeField(h, strconv.Itoa(int(r.set)))
		if r.set&fieldPassword != 0 {
			writeField(h, r.verifier.String())
		}
		writeField(h, stringsValue(r.roles).String())
		if r.team != nil {
			writeField(h, strconv.FormatInt(*r.team, 10))
		}
		writeField(h, stringsValue(r.groups).String())
		for _, name := range sortedKeys(r.attrs) {
			writeField(h, name)
			writeField(h, r.attrs[name].String())
		}
	}
	for _, login := range sortedKeys(broken) {
		writeField(h, "broken")
		writeField(h, login)
		writeField(h, broken[login])
	}
	var out [32]byte
	copy(out[:], h.Sum(nil))
	return out
}

// writeField writes s to h length-prefixed, so that field boundaries are
// unambiguous.
func writeField(h hash.Hash, s string) {
	h.Write([]byte(strconv.Itoa(len(s)) + ":" + s))
}

// MockIterations returns the PBKDF2 iteration count the SCRAM exchange of
// an unknown login asks for: the one most users' verifiers ask for (the
// larger of two as common), scram.DefaultIterations without any.
//
// NOTE: the server-first-message of a configured login names its
// verifier's count: an unknown login's must name the same, or one
// exchange tells whether a login exists (`pgveil passwd --iterations`).
func (ids *Identities) MockIterations() int { return ids.mockIterations }

// commonIterations returns the iteration count most verifiers of users
// ask for, the larger of two as common; scram.DefaultIterations when no
// user has one.
func commonIterations(users map[string]*User) int {
	counts := map[int]int{}
	for _, u := range users {
		if u.HasPassword() {
			counts[u.Verifier.Iterations]++
		}
	}
	best, most := scram.DefaultIterations, 0
	for n, c := range counts {
		if c > most || c == most && n > best {
			best, most = n, c
		}
	}
	return best
}

// User returns the user who may authenticate as login, whose Verifier
// (or certificate, with auth = "cert") the proxy checks: false when the
// login is unknown, broken, has no password while it needs one, or has no
// role (Compile would refuse it anyway), so that such
// logins fail authentication exactly like unknown ones.
func (ids *Identities) User(login string) (*User, bool) {
	u, ok := ids.users[login]
	if !ok || !u.CanAuthenticate() || !slices.ContainsFunc(u.Roles, func(r string) bool { return ids.cfg.Roles[r] != nil }) {
		return nil, false
	}
	return u, true
}

// Logins returns every usable login, sorted, with or without a password.
func (ids *Identities) Logins() []string { return sortedKeys(ids.users) }

// lookup returns the merged user of login, or why the login has no
// access.
func (ids *Identities) lookup(login string) (*User, string) {
	if why, bad := ids.broken[login]; bad {
		return nil, why
	}
	u, ok := ids.users[login]
	if !ok {
		return nil, "it is defined by no user block and no identity row"
	}
	return u, ""
}
