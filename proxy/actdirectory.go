package proxy

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/internal/ldapauth"
	"github.com/pgveil/pgveil/policy"
)

// actDirectoryAuthorizer is an actAuthorizer that knows which end users
// log in through the LDAP directory (server.Policies): a service acting
// for one gets the roles her groups give her now, read as the ldap
// block's bind DN, as her own login would.
type actDirectoryAuthorizer interface {
	// ActsThroughDirectory reports whether target's groups must be read
	// in the directory before a service may act for it.
	ActsThroughDirectory(target string) bool
	// ActForReachesDirectory returns the refusal MayActForDirectory
	// would give whatever target's groups, nil when some could admit
	// her: then only is the directory asked.
	ActForReachesDirectory(service, target string) error
	// MayActForDirectory is MayActFor for such a target, whose
	// directory groups are groupDNs.
	MayActForDirectory(service, target string, groupDNs []string) error
}

// actLookupAge bounds how long a directory answer about an end user
// serves the switches of BI services to her: BI tools switch before
// every query, and the directory is asked once per person and minute at
// most. A reload forgets every answer (Server.RefreshDirectory).
const actLookupAge = time.Minute

// actLookupEntries bounds the answers actDirectory keeps.
const actLookupEntries = 4096

// actDirectory caches the directory's answers about the end users BI
// services act for, by login.
//
// NOTE: mu guards epoch and entries and is never held across a lookup:
// the first session asking about a login looks it up on its own
// goroutine and context, and sessions asking meanwhile wait for its
// answer (or their own end), not for the lock. An answer saying the
// directory is unavailable is not kept: the next switch asks again, and
// nothing older than actLookupAge or than the last reload ever admits a
// switch.
type actDirectory struct {
	mu      sync.Mutex
	epoch   uint64
	entries map[string]*actLookup
}

// actLookup is one lookup of a login, in flight until done is closed.
// NOTE: res and err are written before done is closed, never after; at
// is read and written under actDirectory.mu only.
type actLookup struct {
	done  chan struct{}
	epoch uint64
	at    time.Time
	res   *ldapauth.Result
	err   error
	// abandoned reports that the lookup ended with the context of the
	// session that ran it (its session ended): no answer about the
	// login, which those waiting on it ask again on their own context.
	// NOTE: written before done is closed, as res and err.
	abandoned bool
	// ldap is the ldap block the lookup reads the directory with: its
	// answer serves only lookups with the same block (not one a reload
	// replaced, whatever the order of the reload and the lookup).
	ldap *policy.LDAP
}

// actLookupWaiting, when set (tests), is called when a session waits
// for a lookup of login another session runs.
var actLookupWaiting func(login string)

// answered reports whether e's lookup ended.
func (e *actLookup) answered() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// fresh reports whether e answered less than actLookupAge ago.
func (e *actLookup) fresh() bool {
	return e.answered() && time.Since(e.at) < actLookupAge
}

// clear forgets every answer (a reload): lookups in flight finish for
// those waiting on them, and are not kept.
func (d *actDirectory) clear() {
	d.mu.Lock()
	d.epoch++
	d.entries = nil
	d.mu.Unlock()
}

// currentEpoch returns how many times clear ran.
func (d *actDirectory) currentEpoch() uint64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.epoch
}

// cached reports whether a fresh answer about login, read with the
// ldap block l, is at hand, so that a lookup would not wait for the
// directory.
func (d *actDirectory) cached(l *policy.LDAP, login string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[login]
	return e != nil && e.ldap == l && e.fresh()
}

// lookup returns the directory's answer about login: a fresh one kept,
// the one of a lookup in flight, or its own, read as l's bind DN under
// ctx. The error is ctx's end, or the lookup's; a lookup in flight
// that ends with its own session's context is no answer, and is asked
// again under ctx.
func (d *actDirectory) lookup(ctx context.Context, l *policy.LDAP, login string) (*actLookup, error) {
	for {
		e, err, again := d.lookupOnce(ctx, l, login)
		if !again {
			return e, err
		}
	}
}

// lookupOnce is one attempt of lookup; again reports that it waited for
// a lookup abandoned by the session that ran it, to be asked again.
func (d *actDirectory) lookupOnce(ctx context.Context, l *policy.LDAP, login string) (_ *actLookup, _ error, again bool) {
	d.mu.Lock()
	e := d.entries[login]
	if e != nil && (e.ldap != l || e.answered() && !e.fresh()) {
		e = nil
	}
	leader := e == nil
	if leader {
		e = &actLookup{done: make(chan struct{}), epoch: d.epoch, ldap: l}
		if d.entries == nil {
			d.entries = make(map[string]*actLookup)
		}
		d.evict()
		d.entries[login] = e
	}
	d.mu.Unlock()
	if leader {
		res, err := l.Directory.Lookup(ctx, login)
		d.mu.Lock()
		e.res, e.err, e.at = res, err, time.Now()
		e.abandoned = err != nil && !errors.Is(err, ldapauth.ErrNotFound) && ctx.Err() != nil
		if err != nil && !errors.Is(err, ldapauth.ErrNotFound) && d.entries[login] == e {
			delete(d.entries, login)
		}
		d.mu.Unlock()
		close(e.done)
		return e, e.err, false
	}
	if actLookupWaiting != nil {
		actLookupWaiting(login)
	}
	select {
	case <-e.done:
		if e.abandoned {
			// NOTE: the session that looked up ended; this one must not
			// be refused for it (nor wait forever: the entry is gone,
			// and it asks the directory itself), unless it ended too.
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%w: %v", ldapauth.ErrUnavailable, err), false
			}
			return nil, nil, true
		}
		return e, e.err, false
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", ldapauth.ErrUnavailable, ctx.Err()), false
	}
}

// actLookupTries bounds the lookups of one switch that a reload
// replacing the ldap block during each makes it ask again.
const actLookupTries = 3

// errNotKept is lookupCurrent's error when it may take only an answer
// kept and none is.
var errNotKept = errors.New("no fresh answer kept")

// kept returns the fresh answer about login read with l, and its error
// (nil or ldapauth.ErrNotFound), or errNotKept: it never waits, for the
// directory or a lookup in flight.
func (d *actDirectory) kept(l *policy.LDAP, login string) (*actLookup, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.entries[login]
	if e == nil || e.ldap != l || !e.fresh() {
		return nil, errNotKept
	}
	return e, e.err
}

// errNoLDAPBlock is lookupCurrent's error when a reload removed the ldap
// block during the lookup.
var errNoLDAPBlock = errors.New("no ldap block")

// lookupCurrent is lookup with l, the ldap block in force (current) when
// the switch came: when a reload replaced it during the lookup (maybe
// after it forgot the answers), it asks again with the new one.
// NOTE: actLookupTries times at most, then the directory is unavailable
// for this switch: reloads coming faster than the directory answers
// must not keep a session asking forever.
//
// keptOnly (an event loop) takes only a fresh answer kept, never waits:
// errNotKept when there is none.
func (d *actDirectory) lookupCurrent(ctx context.Context, l *policy.LDAP, current func() *policy.LDAP, login string, keptOnly bool) (*actLookup, error) {
	for try := 1; ; try++ {
		var e *actLookup
		var err error
		if keptOnly {
			e, err = d.kept(l, login)
		} else {
			e, err = d.lookup(ctx, l, login)
		}
		next := current()
		if err != nil || next == l {
			return e, err
		}
		if next == nil {
			return nil, errNoLDAPBlock
		}
		if try == actLookupTries {
			return nil, fmt.Errorf("%w: the ldap block was replaced by a reload during each of %d lookups", ldapauth.ErrUnavailable, try)
		}
		l = next
	}
}

// evict makes room for one entry: answers too old first, then any
// answered one (mu held).
func (d *actDirectory) evict() {
	if len(d.entries) < actLookupEntries {
		return
	}
	for k, e := range d.entries {
		if e.answered() && !e.fresh() {
			delete(d.entries, k)
		}
	}
	for k, e := range d.entries {
		if len(d.entries) < actLookupEntries {
			return
		}
		if e.answered() {
			delete(d.entries, k)
		}
	}
}

// actTarget is what the directory said of an end user a service acts
// for: her groups' DNs, read in the cache epoch epoch; refused, when set,
// is why the session may not act for her with them (a reload found she
// left the directory).
// NOTE: never written to once made.
type actTarget struct {
	login   string
	groups  []string
	epoch   uint64
	refused string
}

// actWouldLookUp reports whether a switch to login would wait for the
// directory: an event loop hands the statement to a worker first.
func (ss *session) actWouldLookUp(login string) bool {
	da, ok := ss.srv.rewriter.(actDirectoryAuthorizer)
	if !ok || login == "" || login == ss.info.User || len(login) > maxLoginLen || !da.ActsThroughDirectory(login) ||
		da.ActForReachesDirectory(ss.info.User, login) != nil {
		return false
	}
	return !ss.srv.actDir.cached(ss.srv.directory.LDAP(), login)
}

// mayActThroughDirectory returns a refusal when the session may not act
// for login, which logs in through the directory, with the groups the
// directory holds for it; otherwise it keeps them for the switch
// (actFound). false when login does not log in through the directory
// (client relay).
func (ss *session) mayActThroughDirectory(login string) (*Refusal, bool) {
	da, ok := ss.srv.rewriter.(actDirectoryAuthorizer)
	if !ok || !da.ActsThroughDirectory(login) {
		return nil, false
	}
	// NOTE: before asking the directory: a login that is no service
	// must not make pgveil look people up.
	if u, ok := ss.srv.users(ss.info.User); !ok || !u.IsService() {
		return ActRefusal(ss.info.User + " is not a BI service: its user block has no act_for"), true
	}
	if len(login) > maxLoginLen {
		// NOTE: no one logs in under it (startup refuses longer logins),
		// so no one is acted for under it either; nor may a service
		// make pgveil send the directory, and keep, names of any length.
		return ActRefusal(fmt.Sprintf("%s may not act for a login of %d bytes: logins have at most %d", ss.info.User, len(login), maxLoginLen)), true
	}
	if err := da.ActForReachesDirectory(ss.info.User, login); err != nil {
		// NOTE: the same refusal for a name the directory holds or not.
		return ActRefusal(err.Error()), true
	}
	l := ss.srv.directory.LDAP()
	if l == nil {
		return ActRefusal(fmt.Sprintf("%s may not act for %q: no ldap block", ss.info.User, login)), true
	}
	// NOTE: an event loop never waits for the directory, nor for a
	// lookup in flight: it takes a fresh answer kept, or refuses (check
	// and trackExecute hand the message to a worker first when none is,
	// but the answer may age, or a reload forget it, meanwhile).
	inline := ss.lp != nil && ss.lp.inline
	e, err := ss.srv.actDir.lookupCurrent(ss.ctx, l, ss.srv.directory.LDAP, login, inline)
	switch {
	case errors.Is(err, errNotKept):
		return ActRefusal(fmt.Sprintf("%s may not act for %q: its directory groups are not read yet; send the switch again", ss.info.User, login)), true
	case errors.Is(err, errNoLDAPBlock):
		return ActRefusal(fmt.Sprintf("%s may not act for %q: no ldap block", ss.info.User, login)), true
	case errors.Is(err, ldapauth.ErrNotFound):
		ss.actNoLonger(login, e)
		return ActRefusal(fmt.Sprintf("%s may not act for %q: no such person in the directory", ss.info.User, login)), true
	case err != nil:
		// NOTE: quoted, as a name the directory did not answer about
		// may be a secret typed by mistake: a redacted audit trail
		// (redact_literals) scrubs the quoted parts of a refusal.
		ss.log.Warn("could not read the directory groups of a user a service acts for", zap.String("acting_for", login), zap.Error(err))
		return ActRefusal(fmt.Sprintf("%s may not act for %q: pgveil could not read its groups in the LDAP directory; try again later", ss.info.User, login)), true
	}
	if err := da.MayActForDirectory(ss.info.User, login, e.res.Groups); err != nil {
		ss.actNoLonger(login, e)
		return ActRefusal(err.Error()), true
	}
	ss.actFound = &actTarget{login: login, groups: e.res.Groups, epoch: e.epoch}
	return nil, true
}

// actNoLonger refuses, until it switches again, the statements of a
// session acting for login through the directory when a switch to her
// again was refused by the directory's answer e (she left it, or the
// groups she left no longer let the service act for her): the groups the
// session acted under are older than e, and must not serve on.
// NOTE: not for an unavailable directory: then the session keeps them,
// as a directory login's own session does. The transaction of a switch
// (actTx) that would give her back her older groups at its rollback, or
// when the switch is not made upstream, gives her back refused too: a
// block that switched away from her, then to her again refused, must not
// act for her with them after its ROLLBACK.
func (ss *session) actNoLonger(login string, e *actLookup) {
	if e == nil {
		return
	}
	refused := func(old *actTarget) *actTarget {
		return &actTarget{login: login, groups: old.groups, epoch: e.epoch,
			refused: "a switch to it again was refused by the directory's newer answer: switch to it again, or to another user"}
	}
	a := &ss.actTrack
	a.mu.Lock()
	if t := a.tx; t != nil {
		if t.before == login && t.beforeDir != nil && t.beforeDir.refused == "" {
			t.beforeDir = refused(t.beforeDir)
		}
		if t.prev == login && t.prevDir != nil && t.prevDir.refused == "" {
			t.prevDir = refused(t.prevDir)
		}
	}
	a.mu.Unlock()
	cur := ss.acting.Load()
	if cur == nil || cur.dir == nil || cur.login != login {
		return
	}
	ss.actAgain(login, refused(cur.dir))
}

// actStateFor returns the state of a session acting for login, with
// t, the directory's answer about login, when it logs in through the
// directory (nil otherwise).
func (ss *session) actStateFor(login string, t *actTarget) *actState {
	info := ss.info
	info.User, info.Service, info.Roles = login, ss.info.User, nil
	st := &actState{login: login, info: &info}
	if t != nil && t.login == login {
		info.ActingDirectory, info.ActingGroups, info.ActingRefused = true, t.groups, t.refused
		if t.refused == "" && t.epoch != ss.srv.actDir.currentEpoch() {
			// A rollback back to groups read before a reload.
			info.ActingRefused = "its directory groups were read before a policy reload: switch to it again"
		}
		st.dir, st.gen = t, ss.actGroupsGen.Add(1)
	}
	return st
}

// refreshActing reads again, at a reload, the directory groups of the
// end users sessions act for through the directory (RefreshDirectory's
// results by login); a session whose end user's groups changed acts for
// her with the new ones from its next statement, and one whose end user
// left the directory is refused until it switches. A session whose end
// user could not be looked up keeps the groups it had, as a directory
// login's own session does.
func refreshActing(acting []*session, found func(login string) (*ldapauth.Result, error), epoch uint64) {
	for _, ss := range acting {
		a := ss.acting.Load()
		if a == nil || a.dir == nil {
			continue
		}
		res, err := found(a.login)
		t := &actTarget{login: a.login, epoch: epoch}
		switch {
		case errors.Is(err, ldapauth.ErrNotFound):
			t.refused = "it is no longer in the directory"
		case err != nil:
			continue
		default:
			t.groups = res.Groups
		}
		if ss.acting.CompareAndSwap(a, ss.actStateFor(a.login, t)) {
			ss.log.Info("directory groups of the acting user read again at a policy reload",
				zap.String("acting_for", a.login), zap.Strings("groups", t.groups), zap.Strings("previous", a.dir.groups))
		}
	}
}
