package proxy

import (
	"slices"
	"strings"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/rewrite"
)

// actAuthorizer is a Rewriter that knows which logins may act for which
// users (server.Policies): a session of any other Rewriter never acts for
// anyone.
type actAuthorizer interface {
	// MayActFor returns nil when service may act for target now, or why
	// not.
	MayActFor(service, target string) error
}

// actState is the end user a BI service's session acts for.
type actState struct {
	// login is the end user.
	login string
	// info is the session's SessionInfo as the Rewriter sees it while
	// acting: User is the end user, Service the session's login.
	info *SessionInfo
	// dir is the directory's answer about login when it logs in through
	// the directory (info.ActingDirectory), nil otherwise; gen, unique in
	// the session, tags the version of statements checked under it.
	dir *actTarget
	gen uint64
}

// actTag separates, in the version a tracked statement was checked
// under, the policy version from the end user the session acted for: a
// switch of the acting user counts like a policy change, so that a
// statement prepared or a portal bound for one user never runs for
// another (see tracker).
const actTag = "\x00act_for:"

// versionFor returns the version of a statement checked under policy
// version v for login ("" when the session acts as itself).
func versionFor(v, login string) string {
	if login == "" {
		return v
	}
	return v + actTag + login
}

// splitVersion splits what versionFor joined: the policy version and the
// end user.
func splitVersion(v string) (version, actingFor string) {
	version, actingFor, _ = strings.Cut(v, actTag)
	return splitGroupsVersion(version), actingFor
}

// actVersions is the session's statement.PolicyVersioner: the Rewriter's policy
// version tagged with the generation of the session's directory groups
// and the end user the session acts for.
type actVersions struct {
	base statement.PolicyVersioner
	ss   *session
}

// PolicyVersion returns the version statements are checked under now.
// It is made again only when what it is made of changed (versionMemo):
// the tracker asks at each Bind and Execute, and a session of a
// directory login, or acting for an end user, had a string made each
// time.
func (v actVersions) PolicyVersion() string {
	base := v.base.PolicyVersion()
	d := v.ss.directory.Load()
	a := v.ss.acting.Load()
	gen := groupsGen(d, a)
	if d == nil && a == nil {
		// The policy's version, untagged.
		return base
	}
	if m := v.ss.versionMemo.Load(); m != nil && m.gen == gen && m.acting == a && m.base == base {
		return m.version
	}
	login := ""
	if a != nil {
		login = a.login
	}
	out := versionFor(groupsVersion(base, gen), login)
	v.ss.versionMemo.Store(&versionMemo{base: base, gen: gen, acting: a, version: out})
	return out
}

// versionMemo is the version actVersions made last, and what it made it
// of: the Rewriter's policy version, the generation of the directory
// groups (0 before a reload read them) and the acting user's state,
// which actAs makes anew at each change (so the same pointer is the
// same change).
// NOTE: never written to once stored.
type versionMemo struct {
	base    string
	gen     uint64
	acting  *actState
	version string
}

// actingFor returns the end user the session acts for, "" when it acts
// as its own login.
func (ss *session) actingFor() string {
	if a := ss.acting.Load(); a != nil {
		return a.login
	}
	return ""
}

// rewriterInfo returns the SessionInfo the Rewriter gets: the session's
// own, or the end user's while acting for one; with the directory groups
// in force, whose generation it returns too (see groupsVersion).
func (ss *session) rewriterInfo() (*SessionInfo, uint64) {
	info := &ss.info
	a := ss.acting.Load()
	if a != nil {
		info = a.info
	}
	// NOTE: one load of each, so the groups checked and the generation
	// the statement is tagged with are the same.
	d := ss.directory.Load()
	if d != nil {
		c := *info
		c.DirectoryGroups = d.groups
		return &c, groupsGen(d, a)
	}
	return info, groupsGen(d, a)
}

// groupsGen is the generation of the directory groups a statement is
// checked under: the session's own (d) and those of the end user it acts
// for (a). Each only grows in a session, so their sum changes at each
// change of either, and a statement prepared under other groups is
// checked again.
func groupsGen(d *directoryGroups, a *actState) uint64 {
	var gen uint64
	if d != nil {
		gen = d.gen
	}
	if a != nil {
		gen += a.gen
	}
	return gen
}

// ActRefusal is a refusal of the firewall rule act_for.
func ActRefusal(why string) *Refusal {
	return firewall.New("act_for", "pgveil refused the statement: "+why+" (firewall rule act_for)")
}

// withKind returns r with the kinds of res, the statement it refuses,
// when r names none (the proxy's own refusals, as act_for's, are made
// without the rewriter's kind): the audit trail's kind field says what
// a denied statement was, and `audit search --kind set` finds refused
// switches. A copy: r may be shared.
func withKind(r *Refusal, res *rewrite.Result) *Refusal {
	if r == nil || r.Kind != "" || res == nil || len(res.Kinds) == 0 {
		return r
	}
	cp := *r
	cp.Kind = strings.Join(res.Kinds, ",")
	return &cp
}

// mayAct returns a refusal when the session may not make the change a
// (client relay).
func (ss *session) mayAct(a *rewrite.Act) *Refusal {
	ss.actFound = nil
	auth, ok := ss.srv.rewriter.(actAuthorizer)
	if !ok || ss.track == nil || ss.track.Versions() == nil {
		return ActRefusal("this server does not let sessions act for other users")
	}
	if a.Login == "" || a.Login == ss.info.User {
		// Back to the login: refused, like any change of role, to
		// logins that never act for anyone; but always made by a
		// session acting for a user (or not knowing whom), even when a
		// reload took act_for off its login, whose statements are all
		// refused until then.
		if ss.acting.Load() != nil || ss.actTrack.unknown.Load() {
			return nil
		}
		if u, ok := ss.srv.users(ss.info.User); !ok || !u.IsService() {
			return ActRefusal(ss.info.User + " is not a BI service: its user block has no act_for")
		}
		return nil
	}
	if r, ok := ss.mayActThroughDirectory(a.Login); ok {
		return r
	}
	if err := auth.MayActFor(ss.info.User, a.Login); err != nil {
		return ActRefusal(err.Error())
	}
	return nil
}

// switchReady returns a refusal when a change of the acting user cannot
// be made now: it must be the only thing in flight, so that the upstream
// runs it at once, after every statement checked for the previous user
// and before any checked for the next (client relay). pending is true
// for an Execute, whose batch the client has not closed yet; only
// BEGINs (and the switch's own Parse) may precede it there, which fail only where the switch's
// statement fails too (a failed transaction, see applyAct), and no
// message of the batch may have been refused: the server would skip the
// switch.
func (ss *session) switchReady(pending bool) *Refusal {
	inFlight := ss.sent.Load() - ss.done.Load()
	if !pending {
		inFlight-- // the Query itself
	}
	if inFlight > 0 || pending && (ss.othersInBatch > 0 || ss.batchRefused) {
		return ActRefusal("a change of the acting user must not be pipelined after other statements: wait for their results first")
	}
	return nil
}

// applyAct makes the change a, checked by mayAct and switchReady, unless
// the session is in a failed transaction: the upstream then fails the
// statement forwarded in its place, as PostgreSQL fails a SET ROLE
// there, and nothing changes. Its transaction is followed until it
// commits or rolls back (actfor_tx.go) (client relay).
func (ss *session) applyAct(a *rewrite.Act) {
	if ss.txStatus.Load() == 'E' {
		return
	}
	// NOTE: before noteSwitch, which takes the switch as known.
	unknown := ss.actTrack.unknown.Load()
	ss.noteSwitch()
	ss.actAsFrom(a.Login, ss.actFound, actReason(a), unknown)
}

// actReason is the reason an act_for record gives for the change a:
// "set role", "reset role" (RESET ROLE, SET ROLE NONE, DEFAULT or the
// login itself, rewrite.ActToLogin), "set
// pgveil.act_for", "reset pgveil.act_for" or "reset all".
func actReason(a *rewrite.Act) string {
	switch {
	case a.Via == "reset all":
		return a.Via
	case a.Login == "":
		return "reset " + a.Via
	}
	return "set " + a.Via
}

// actAs makes the session act for login; "" or its own login ends the
// impersonation (client relay; backend relay for a rollback, actSettle).
// A change is an act_for record of the audit trail, reason saying what
// made it (auditActFor).
// t is the directory's answer about login when it logs in through the
// directory (mayActThroughDirectory), nil otherwise.
func (ss *session) actAs(login string, t *actTarget, reason string) {
	ss.actAsFrom(login, t, reason, ss.actTrack.unknown.Load())
}

// actAsFrom is actAs, unknown saying whether whom the session acted for
// was not known (a ROLLBACK TO a savepoint pgveil did not follow): the
// act_for record then says so, and is written even when login is the
// end user pgveil last knew of, whom PostgreSQL may not have acted for.
func (ss *session) actAsFrom(login string, t *actTarget, reason string, unknown bool) {
	prev := ss.actingFor()
	if login == ss.info.User {
		login = ""
	}
	if login == prev {
		ss.actAgain(login, t)
		if unknown {
			ss.auditActFor(login, prev, reason, true)
		}
		return
	}
	defer ss.auditActFor(login, prev, reason, unknown)
	ss.actTrack.gen.Add(1)
	if login == "" {
		ss.acting.Store(nil)
	} else {
		ss.acting.Store(ss.actStateFor(login, t))
	}
	ss.log.Info("acting user changed", zap.String("acting_for", login), zap.String("previous", prev))
}

// actAgain applies a switch to the end user the session already acts
// for, login, when the directory's answer about her, t, differs from the
// one the session acts under: a BI tool switches to its viewer before
// every query, and the groups she left in the directory stop applying
// once the answer it acts under is older than actLookupAge, not only at
// a reload. Not a change of the acting user: no act_for record.
func (ss *session) actAgain(login string, t *actTarget) {
	cur := ss.acting.Load()
	if login == "" || t == nil || t.login != login || cur == nil || cur.dir == nil {
		return
	}
	if cur.info.ActingRefused == "" && t.refused == "" && cur.dir.epoch == t.epoch && slices.Equal(cur.dir.groups, t.groups) {
		return
	}
	ss.actTrack.gen.Add(1)
	ss.acting.Store(ss.actStateFor(login, t))
	ss.log.Info("directory groups of the acting user read again at a switch",
		zap.String("acting_for", login), zap.Strings("groups", t.groups), zap.Strings("previous", cur.dir.groups))
}

// resetAct returns the change of the acting user res makes when it holds
// a RESET ALL while the session acts for an end user: back to its login.
// PostgreSQL's RESET ALL resets pgveil.act_for, which pgveil forwards in
// place of every switch, so the tool, the upstream session and SHOW
// pgveil.act_for then say the session acts for no one: pgveil follows,
// as for a RESET ROLE, and as transactionally (a ROLLBACK undoes it).
// nil for any other text, or a session acting as its login (client
// relay).
// NOTE: a change like a switch, checked by mayAct and switchReady and
// made by applyAct; actGate still checks the text first, as it checks
// every text but a switch's own.
func (ss *session) resetAct(res *rewrite.Result) *rewrite.Act {
	if res == nil || res.Act != nil || ss.acting.Load() == nil || !slices.Contains(res.Resets, rewrite.ResetAll) {
		return nil
	}
	return &rewrite.Act{Via: "reset all"}
}

// resetEndsText returns a refusal when a text holding a RESET ALL that
// ends acting for a user (resetAct) is not one the switch's tracking
// reads: the RESET ALL must be the text's only SET or RESET, and its last
// statement, and the text must end no transaction. (Statements before
// the RESET ALL run for the viewer, as checked: asyncpg's reset, "SELECT
// pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL", passes,
// as does "BEGIN; RESET ALL".)
// NOTE: a statement after it was checked for the viewer but runs once
// the tool believes it acts for no one: a SET application_name would
// name the viewer (tagSet) on the service's session. A SET before it
// would answer the tag actTag takes for the switch's, and a COMMIT or
// ROLLBACK before it would settle the switch's transaction (actSettle)
// with the one it ended: after "COMMIT; BEGIN; RESET ALL" and a
// ROLLBACK, pgveil served the service's rows while PostgreSQL and SHOW
// pgveil.act_for said the session acted for the viewer again.
func resetEndsText(res *rewrite.Result) *Refusal {
	sets := 0
	for _, k := range res.Kinds {
		if k == "set" {
			sets++
		}
	}
	if sets != 1 || res.Kinds[len(res.Kinds)-1] != "set" || res.EndsTransaction {
		return ActRefusal("while the session acts for a user, RESET ALL ends it: it must be the last statement of its text, the only SET or RESET there, in a text that ends no transaction")
	}
	return nil
}

// resetsAll reports whether res is a text of one RESET ALL.
func resetsAll(res *rewrite.Result) bool {
	return res != nil && len(res.Kinds) == 1 && slices.Contains(res.Resets, rewrite.ResetAll)
}

// discardEnds applies DISCARD ALL's end of the impersonation for res,
// forwarded in a Query or an Execute, when it surely runs: alone in its
// text, nothing else in flight, outside a transaction block (where
// PostgreSQL refuses DISCARD ALL). Otherwise the session keeps acting for
// the end user, the narrower choice (client relay).
func (ss *session) discardEnds(res *rewrite.Result, pending bool) {
	if ss.acting.Load() != nil && discardsAll(res) && ss.switchReady(pending) == nil && ss.txStatus.Load() == 'I' {
		ss.actAs("", nil, "discard all")
	}
}

// discardsAll reports whether res is a text of one DISCARD ALL.
func discardsAll(res *rewrite.Result) bool {
	if res == nil || len(res.Kinds) != 1 {
		return false
	}
	for _, o := range res.Objects {
		if o.Op == "discard" {
			return true
		}
	}
	return false
}
