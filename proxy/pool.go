package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/wire"
)

// poolAppName is the application_name backends of the pool start with;
// each session then names its user on the backend it takes (appTag).
const poolAppName = "pgveil:pool"

// errPoolTimeout is acquireFor's answer when no backend became free within
// the pool's wait timeout.
var errPoolTimeout = errors.New("no upstream connection became free")

// errPoolTimeoutCapped is errPoolTimeout (errors.Is) for a session whose
// login's cap held it back during the wait (poolWaiter.capped).
var errPoolTimeoutCapped = fmt.Errorf("%w while its login was at its cap", errPoolTimeout)

// errClientGone is acquireFor's answer when the client it waits for
// closed its connection meanwhile.
var errClientGone = errors.New("the client closed its connection while waiting for an upstream connection")

// pool shares upstream backends between the sessions of a server in
// transaction mode (upstream.pool.mode = "transaction"). Every backend is
// the service account with the pinned settings; a session holds one for
// a transaction (pooled.go) and gives it back when idle.
//
// Backends are grouped by key, the startup parameters a client forwards
// (DateStyle, TimeZone, extra_float_digits…): a session only ever runs on
// a backend started with its own.
//
// NOTE: a backend goes back to the pool only clean: idle, nothing
// outstanding, and no session state left on it (Result.Keeps, named
// prepared statements, a change of the acting user). Any other backend
// a session lets go of is closed, never reused.
type pool struct {
	srv *Server
	log *zap.Logger
	// size caps open; wait bounds acquire; idleTimeout closes backends
	// idle that long.
	size        int
	wait        time.Duration
	idleTimeout time.Duration
	// idleTx ends sessions holding a backend idle in a transaction that
	// long (pool_idle.go); 0 never does.
	idleTx time.Duration

	mu sync.Mutex
	// NOTE: idle, open, waiters and closed are guarded by mu.
	// idle holds the free backends by key, the most recently used last.
	idle map[string][]*backend
	// nidle counts the backends of idle.
	nidle int
	// open counts the backends open, held or being dialled: never more
	// than size.
	open int
	// waiters are the acquires waiting for a backend, oldest first.
	waiters []*poolWaiter
	closed  bool
	// params are the ParameterStatus values a backend of each key
	// reported at its start: what a new session of that key is told,
	// without taking a backend. At most maxPoolParamKeys keys.
	params map[string]map[string]string
	// stop ends the janitor and watchIdleTransactions.
	stop chan struct{}
	// nwait mirrors len(waiters), and localFree counts the free backends
	// the event loops keep registered (loop_pool_linux.go), for reading
	// without mu.
	nwait     atomic.Int32
	localFree atomic.Int64
	// expiry ends the waits of event-loop sessions (acquireNow) whose
	// deadline passed: one timer for the pool, armed while one of them
	// waits, rather than one per wait. Waiters queue oldest first and all
	// wait as long, so the first of them has the nearest deadline.
	// NOTE: expiryArmed is guarded by mu; a grant leaves the timer be, to
	// fire for nothing at worst once per wait timeout.
	expiry      *time.Timer
	expiryArmed bool
	// logins are the counts of the capped logins with a session, by
	// login (upstream.pool.max_per_user, a user block's
	// max_pool_backends).
	// NOTE: guarded by mu; with no cap it stays empty and every
	// poolLink.login nil.
	logins map[string]*poolLogin
}

// poolLogin counts the backends the sessions of one login hold, against
// upstream.pool.max_per_user: a backend held (backend.login), or a slot
// of open granted to one of them for a backend it dials.
//
// NOTE: held changes without mu on an event loop's fast path (takeLocal,
// keepOrGiveBack); take never lets it pass max. A session that finds
// its login at its cap queues and then looks at held again, under mu;
// one that lowers held without mu then looks at pool.nwait. Go's
// atomics being sequentially consistent, one of the two sees the other:
// no waiter misses the release that makes room for it.
type poolLogin struct {
	name string
	// max is the cap, the one in force at the start of the login's
	// latest session (a user block's max_pool_backends may change at a
	// reload).
	max  atomic.Int32
	held atomic.Int32
	// sessions counts the poolLinks that point here (guarded by
	// pool.mu): the count is forgotten with the last of them.
	sessions int
}

// take counts a backend or slot more for lg, unless lg is at its cap.
// A nil lg (no cap) always takes.
func (lg *poolLogin) take() bool {
	if lg == nil {
		return true
	}
	for {
		n := lg.held.Load()
		if n >= lg.max.Load() {
			return false
		}
		if lg.held.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// put gives back what take counted.
func (lg *poolLogin) put() {
	if lg != nil && lg.held.Add(-1) < 0 {
		panic("pgveil: a login's pooled backends counted below zero")
	}
}

// room reports whether lg may take one more.
func (lg *poolLogin) room() bool { return lg == nil || lg.held.Load() < lg.max.Load() }

// loginOf returns the count of login's backends, for a session of it
// whose login may hold max at once; nil when max is 0 (no cap).
// forgetLogin gives it back at the session's end. A cap raised (a
// reload's max_pool_backends) first serves the login's sessions waiting
// at the old one, while the pool has room.
//
// NOTE: nothing else would: those waiting at a cap are served as their
// login lets a backend go, and the new session would be served ahead
// of them.
func (p *pool) loginOf(login string, max int) *poolLogin {
	if max <= 0 {
		return nil
	}
	p.mu.Lock()
	lg := p.logins[login]
	if lg == nil {
		lg = &poolLogin{name: login}
		p.logins[login] = lg
	}
	var served []poolGrant
	left := false
	if lg.max.Swap(int32(max)) < int32(max) {
		served, left = p.serveRaised(lg)
	}
	lg.sessions++
	p.mu.Unlock()
	for _, g := range served {
		p.give(g)
	}
	if left {
		// NOTE: the pool full, the login's waiters left are served
		// from the free backends the event loops kept while they
		// waited at the old cap (waitersServable): release serves them.
		p.reclaim()
	}
	return lg
}

// serveRaised takes out of the waiters those of lg that its raised cap
// lets take a free backend of their key, or dial while the pool has
// room, oldest first, each counted for lg, for the caller to give once
// mu is released (mu held). left reports that the pool's being full
// left one of them waiting although the raised cap has room for it.
func (p *pool) serveRaised(lg *poolLogin) (served []poolGrant, left bool) {
	for i := 0; i < len(p.waiters) && !p.closed; {
		w := p.waiters[i]
		if w.login != lg {
			i++
			continue
		}
		if len(p.idle[w.key]) == 0 && p.open >= p.size {
			return served, lg.room()
		}
		if !lg.take() {
			w.capped = true
			break
		}
		p.removeWaiter(i)
		served = append(served, p.grantFor(w))
	}
	return served, false
}

// poolGrant is what a waiter taken out of the waiters gets: b, a free
// backend of its key, or with b nil a slot of open (grantFor).
type poolGrant struct {
	w *poolWaiter
	b *backend
}

// grantFor serves w, taken out of the waiters and counted for its
// login: with a free backend of its key when there is one, otherwise
// with a slot of open, counted here, for a backend it dials (mu held,
// the pool with room unless a free backend of w's key waits). The
// caller gives it once mu is released (give).
//
// NOTE: a free backend of a waiter's key is there only when the
// waiter's login was at its cap as it went free (release); once room
// is made the waiter takes it rather than dialling another.
func (p *pool) grantFor(w *poolWaiter) poolGrant {
	if b := p.popIdle(w.key); b != nil {
		return poolGrant{w: w, b: b}
	}
	p.open++
	return poolGrant{w: w}
}

// give hands g.w its grant (mu released): a free backend that went
// dead while free is closed, and its slot given instead.
func (p *pool) give(g poolGrant) {
	b := g.b
	if b == nil {
		g.w.give(nil)
		return
	}
	if !b.alive() {
		b.close()
		p.log.Info("upstream connection closed", zap.Uint32("backend_pid", b.up.backend()), zap.String("reason", "it was closed while idle"))
		g.w.give(nil)
		return
	}
	b.login = g.w.login
	g.w.give(b)
}

// forgetLogin is the end of a session's use of lg (loginOf). The count
// is forgotten with the last session of its login, unless a backend or
// slot given back late (an event loop's grant to a session that ended)
// still counts: it then stays, at worst idle, for the login's next
// session.
func (p *pool) forgetLogin(lg *poolLogin) {
	if lg == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if lg.sessions--; lg.sessions <= 0 && lg.held.Load() == 0 {
		delete(p.logins, lg.name)
	}
}

// uncount takes b off the count of the login holding it, if any.
func (b *backend) uncount() {
	if lg := b.login; lg != nil {
		b.login = nil
		lg.put()
	}
}

// backend is one upstream connection of the pool, with its buffers.
type backend struct {
	key string
	up  *upstreamConn
	// io is what in and out read and write: NewRawIO's, which an event
	// loop switches to non-blocking (wire.SetNonBlocking).
	io  io.ReadWriter
	in  *wire.Reader
	out *wire.Writer
	// idleSince is when it last went back to the pool (guarded by
	// pool.mu).
	idleSince time.Time
	// prepared holds the upstream names of the prepared statements it
	// holds, least recently used first (backendStmts); unnamedBy is the session whose unnamed statement it holds,
	// nil when it may hold another's, and unnamedGen which of that
	// session's unnamed statements, its poolLink.unnamedGen then
	// (pooled_stmt.go).
	// NOTE: all belong to the session holding the backend, under its
	// poolLink.mu.
	prepared   backendStmts
	unnamedBy  *poolLink
	unnamedGen uint64
	// settings are the SETs in force on it, as poolLink.settingsKey
	// (pooled_settings.go): "" for its startup settings. appTag is the
	// poolLink.appTag last run on it, "" while its application_name is
	// its startup one.
	settings string
	appTag   string
	// spoiled reports that it may still send answers no session awaits:
	// a cancel request was sent to it (runningUpstream), or a COPY that
	// failed left Syncs in doubt (settleCopy). It is closed, not reused.
	spoiled bool
	// stmtsUnknown reports that a DEALLOCATE ALL may have run on it
	// unseen (its CommandComplete was forwarded unread): which prepared
	// statements it holds is not known. It is closed, not reused.
	// NOTE: the holding session's, under its poolLink.mu.
	stmtsUnknown bool

	// home is the event loop whose epoll instance has it registered, nil
	// when none has; hslot and hgen are its slot there and the slot's
	// generation, hfd its descriptor, hev the events registered, and
	// holder the session of home holding it, nil while it is free there
	// (loop_pool_linux.go).
	// NOTE: all home's, while it is there.
	home   *eventLoop
	hslot  int32
	hgen   uint32
	hfd    int
	hev    uint32
	holder *session

	// login is the count of the login whose session holds it (its
	// held counts it), nil while it is free or no login is capped.
	// NOTE: whoever holds the backend's, as the backend; set when a
	// session takes it, cleared (uncount) as it goes free or closes.
	login *poolLogin
}

// poolWaiter is an acquire waiting for a backend of key.
type poolWaiter struct {
	key string
	// login is the count of the waiting session's login, nil for none:
	// the waiter is served only while take succeeds for it.
	login *poolLogin
	// grant receives a backend of key, or nil: a slot of open counted
	// for the waiter, which dials.
	grant chan *backend
	// deliver, when not nil, replaces grant for a session on an event
	// loop, which waits without a goroutine (acquireNow): it is called,
	// with no lock held, with what grant would receive, or with
	// timedOut once the wait timeout passed first.
	deliver func(b *backend, timedOut bool)
	// deadline is when deliver's wait times out (pool.expiry); loop and
	// ss are the event loop and the session waiting.
	deadline time.Time
	loop     *eventLoop
	ss       *session
	// capped reports that its login's cap held the waiter back during
	// its wait: it queued at the cap, or a backend or slot went past it
	// for that. A 53300 at the wait's end then names the cap even if
	// the login has room by then (answerNoBackend).
	// NOTE: guarded by pool.mu while w is queued; the waiting session's
	// once it is not (acquireNow sets it afresh for each wait).
	capped bool
}

// give hands w a backend, or nil for a slot.
func (w *poolWaiter) give(b *backend) {
	if w.deliver != nil {
		w.deliver(b, false)
		return
	}
	w.grant <- b
}

func newPool(s *Server) *pool {
	c := s.cfg.Upstream.Pool
	p := &pool{
		srv: s, log: s.log.With(zap.String("component", "pool")),
		size: c.Size, wait: c.WaitTimeout, idleTimeout: c.IdleTimeout, idleTx: c.IdleTransactionTimeout,
		idle:   map[string][]*backend{},
		params: map[string]map[string]string{},
		stop:   make(chan struct{}),
		logins: map[string]*poolLogin{},
	}
	if p.size <= 0 {
		p.size = 20
	}
	if p.wait <= 0 {
		p.wait = 5 * time.Second
	}
	if p.idleTimeout > 0 {
		go p.janitor()
	}
	if p.idleTx > 0 {
		go p.watchIdleTransactions()
	}
	return p
}

// poolKey is the key of the backends a client with the forwarded
// startup parameters forward may run on.
func poolKey(forward map[string]string) string {
	if len(forward) == 0 {
		return ""
	}
	names := make([]string, 0, len(forward))
	for k := range forward {
		names = append(names, k)
	}
	sort.Strings(names)
	var b strings.Builder
	for _, k := range names {
		b.WriteString(k)
		b.WriteByte(0)
		b.WriteString(forward[k])
		b.WriteByte(0)
	}
	return b.String()
}

// acquireFor returns a backend started with the forwarded parameters
// forward, whose poolKey is key: a free one of that key, a new one while
// the pool has room, or, the pool full, the first that becomes free
// within the wait timeout. It returns errPoolTimeout when none does, or
// ctx's error. It is for a session of the login lg counts (nil for
// no cap), whose client watch watches (nil for none). While lg is at its
// cap the session waits as for a full pool, and is served once its
// login lets a backend go. Should the channel watch returns close, the
// client having closed its connection while the session waits, it gives
// up the wait and returns errClientGone. watch's stop is closed when the wait ends.
//
// NOTE: a session waiting here reads nothing from its client, so nothing
// else notices that the client left: the wait would go on to its timeout,
// and a backend freed meanwhile would go to it ahead of the live
// sessions queued after it (a red team's loop of connect, send, close
// filled the queue with them).
func (p *pool) acquireFor(ctx context.Context, key string, forward map[string]string, lg *poolLogin, watch func(stop <-chan struct{}) <-chan struct{}) (*backend, error) {
	// NOTE: made at the first wait only: most acquires do not wait.
	var timer *time.Timer
	// heldBack: the login's cap held a wait of this acquire back.
	heldBack := false
	var gone <-chan struct{}
	var stopWatch chan struct{}
	defer func() {
		if timer != nil {
			timer.Stop()
		}
		if stopWatch != nil {
			close(stopWatch)
		}
	}()
	for {
		st := p.acquireStep(key, lg)
		switch {
		case st.err != nil:
			return nil, st.err
		case st.idle != nil:
			b := st.idle
			b.login = lg
			if b.alive() {
				return b, nil
			}
			p.drop(b, "it was closed while idle")
			continue
		case st.dial:
			if st.victim != nil {
				st.victim.close()
			}
			return p.dial(ctx, key, forward, lg)
		case st.wait == nil:
			// Its login let a backend go meanwhile (poolLogin).
			continue
		}
		w, capped := st.wait, st.capped
		if !capped {
			p.reclaim()
		}
		if timer == nil {
			timer = time.NewTimer(p.wait)
			if watch != nil {
				stopWatch = make(chan struct{})
				gone = watch(stopWatch)
			}
		}

		select {
		case b := <-w.grant:
			if b == nil {
				return p.dial(ctx, key, forward, lg)
			}
			if b.alive() {
				return b, nil
			}
			heldBack = heldBack || w.capped
			p.drop(b, "it was closed while idle")
			continue
		case <-ctx.Done():
			p.giveUp(w)
			return nil, ctx.Err()
		case <-gone:
			p.giveUp(w)
			return nil, errClientGone
		case <-timer.C:
			p.giveUp(w)
			// NOTE: read after giveUp, which took mu: w is out of the
			// waiters, capped written for the last time.
			if heldBack || w.capped {
				return nil, errPoolTimeoutCapped
			}
			return nil, errPoolTimeout
		}
	}
}

// acquireNext is what acquireFor does next, as acquireStep decided it
// under the pool's lock: return err; take idle, a free backend of the
// key (counted for the login); dial, in a slot counted in open, once
// victim (a free backend of another key making room, if any) is closed;
// wait on wait, queued (capped: at the login's cap); or, none of these,
// try again.
// NOTE: capped is a copy: once queued, wait.capped is guarded by the
// pool's lock, which the caller no longer holds.
type acquireNext struct {
	err    error
	idle   *backend
	dial   bool
	victim *backend
	wait   *poolWaiter
	capped bool
}

// acquireStep takes, under the pool's lock, the next step of an acquire
// of a backend of key for the login lg counts (acquireFor).
// NOTE: the lock is released by a defer, on every path, a panic
// included: a panic under it would otherwise leave the pool locked for
// every session. Nothing here dials, closes or waits: the caller does
// that with the lock released.
func (p *pool) acquireStep(key string, lg *poolLogin) (next acquireNext) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return acquireNext{err: errors.New("the server is shutting down")}
	}
	capped := !lg.take()
	if !capped {
		if b := p.popIdle(key); b != nil {
			return acquireNext{idle: b}
		}
		if p.open >= p.size && p.nidle > 0 {
			// Full, but with free backends of other keys: the least
			// recently used makes room.
			next.victim = p.popOldest()
			p.open--
		}
		if p.open < p.size {
			p.open++
			next.dial = true
			return next
		}
		lg.put()
	}
	w := &poolWaiter{key: key, login: lg, grant: make(chan *backend, 1), capped: capped}
	p.addWaiter(w)
	if capped && lg.room() {
		// Its login let a backend go meanwhile (poolLogin): try again.
		p.removeWaiter(len(p.waiters) - 1)
		return acquireNext{}
	}
	return acquireNext{wait: w, capped: capped}
}

// acquireNow is acquireFor for a session on an event loop, which must not
// wait: it returns a free backend of key; or, the pool full, queues w,
// whose deliver, loop and ss the caller set, so that deliver is called
// once a backend or a slot is the session's, or the wait timeout
// passed; or neither when the pool has room for another backend, which
// a worker then dials (acquireFor). It reports whether it queued w. A
// session whose login (w.login) is at its cap queues too.
// NOTE: w is the caller's again once deliver was called or withdraw
// returned true.
func (p *pool) acquireNow(key string, w *poolWaiter) (*backend, bool, error) {
	for {
		b, queued, capped, again, err := p.acquireNowStep(key, w)
		switch {
		case again:
			continue
		case b != nil:
			b.login = w.login
			if b.alive() {
				return b, false, nil
			}
			p.drop(b, "it was closed while idle")
			continue
		case queued && !capped:
			p.reclaim()
		}
		return nil, queued, err
	}
}

// acquireNowStep takes, under the pool's lock, one step of acquireNow:
// an idle backend of key (b), w queued (queued; capped: at its login's
// cap), nothing (the pool has room: a worker dials), or again when w's
// login let a backend go meanwhile.
// NOTE: the lock is released by a defer, on every path, a panic
// included (see acquireStep). capped is a copy: once queued, w.capped is
// guarded by the pool's lock, which the caller no longer holds.
func (p *pool) acquireNowStep(key string, w *poolWaiter) (b *backend, queued, capped, again bool, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, false, false, false, errors.New("the server is shutting down")
	}
	capped = !w.login.take()
	if !capped {
		if b := p.popIdle(key); b != nil {
			return b, false, false, false, nil
		}
		// NOTE: not kept: the worker counts it again (acquireFor).
		w.login.put()
		if p.open < p.size || p.nidle > 0 {
			return nil, false, false, false, nil
		}
	}
	w.key, w.deadline, w.capped = key, time.Now().Add(p.wait), capped
	p.addWaiter(w)
	if capped && w.login.room() {
		// Its login let a backend go meanwhile (poolLogin).
		p.removeWaiter(len(p.waiters) - 1)
		return nil, false, capped, true, nil
	}
	if !p.expiryArmed {
		p.expiryArmed = true
		if p.expiry == nil {
			p.expiry = time.AfterFunc(p.wait, p.expire)
		} else {
			p.expiry.Reset(p.wait)
		}
	}
	return nil, true, capped, false, nil
}

// expire ends the waits of event-loop sessions whose deadline passed,
// and arms expiry for the next one (pool.expiry's function).
func (p *pool) expire() {
	now := time.Now()
	var late []*poolWaiter
	p.mu.Lock()
	p.expiryArmed = false
	kept := p.waiters[:0]
	var next time.Time
	for _, w := range p.waiters {
		switch {
		case w.deliver == nil:
		case !w.deadline.After(now):
			late = append(late, w)
			continue
		case next.IsZero():
			next = w.deadline
		}
		kept = append(kept, w)
	}
	clear(p.waiters[len(kept):])
	p.waiters = kept
	p.nwait.Store(int32(len(kept)))
	if !next.IsZero() && !p.closed {
		p.expiryArmed = true
		p.expiry.Reset(next.Sub(now))
	}
	p.mu.Unlock()
	for _, w := range late {
		w.deliver(nil, true)
	}
}

// withdraw takes w out of the waiters, and reports whether it was still
// there: false when it was given a backend or a slot meanwhile.
func (p *pool) withdraw(w *poolWaiter) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.waiters {
		if x == w {
			p.removeWaiter(i)
			return true
		}
	}
	return false
}

// loopAffinity is how much later than the oldest waiter of a key a
// waiter on the event loop that freed a backend may have queued and
// still be served first (takeWaiter).
//
// NOTE: sessions queue in bursts, one loop's batch of events after the
// other's, so the window must span a few bursts to find a waiter on the
// loop at all. Under pgbench -S -c 500 on 50 backends and two loops,
// 1 ms changed nothing, 5 ms halved the backends that crossed loops,
// and 20 ms left a third of them, with lower proxy CPU per transaction
// in 7 of 7 A/B pairs (median 46 against 49 µs) and the same latency
// spread (p99 118.6 ms both, maximum 148 against 156 ms).
const loopAffinity = 20 * time.Millisecond

// takeWaiter takes a waiter of key out of the waiters, for a backend of
// key that the event loop l freed (nil: none did), and counts the
// backend for its login; nil when none waits. A waiter whose login is
// at its cap is not served, nor counted as the oldest.
// It is the oldest, unless a waiter on l queued within loopAffinity of
// it: that one then takes the backend without its crossing loops (an
// epoll_ctl pair and a wake-up).
//
// NOTE: a waiter is passed over only for those that queued less than
// loopAffinity after it, each served once: it waits a bounded while
// longer, never forever. Waits on goroutines (acquireFor) have no deadline
// and are always served in turn.
func (p *pool) takeWaiter(key string, l *eventLoop) *poolWaiter {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil
	}
	for {
		i := p.pickWaiter(key, l)
		if i < 0 {
			return nil
		}
		w := p.waiters[i]
		if !w.login.take() {
			// Its login took a backend on a loop meanwhile.
			w.capped = true
			continue
		}
		p.removeWaiter(i)
		return w
	}
}

// pickWaiter is takeWaiter's choice, -1 for none (mu held).
func (p *pool) pickWaiter(key string, l *eventLoop) int {
	oldest := -1
	for i, w := range p.waiters {
		if w.key != key {
			continue
		}
		if !w.login.room() {
			w.capped = true
			continue
		}
		if oldest < 0 {
			oldest = i
			if l == nil || w.loop == l || w.deliver == nil {
				break
			}
			continue
		}
		if w.deliver == nil || w.deadline.Sub(p.waiters[oldest].deadline) > loopAffinity {
			break
		}
		if w.loop == l {
			oldest = i
			break
		}
	}
	return oldest
}

// waitersServable reports whether a waiter may be served now: one whose
// login is under its cap. An event loop keeps a backend its session let
// go of, rather than give it to the pool, while none is
// (keepOrGiveBack).
//
// NOTE: a waiter at its cap is served by whoever makes room for it, its
// login letting a backend or slot go (release, freeSlot, a loop's
// keepOrGiveBack) or its cap raised (loginOf), never by a free backend
// of the pool: one kept on a loop meanwhile costs it nothing.
func (p *pool) waitersServable() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, w := range p.waiters {
		if w.login.room() {
			return true
		}
	}
	return false
}

// addWaiter queues w (mu held).
func (p *pool) addWaiter(w *poolWaiter) {
	p.waiters = append(p.waiters, w)
	p.nwait.Store(int32(len(p.waiters)))
}

// removeWaiter takes the i-th waiter out (mu held).
func (p *pool) removeWaiter(i int) {
	p.waiters = append(p.waiters[:i], p.waiters[i+1:]...)
	p.nwait.Store(int32(len(p.waiters)))
}

// reclaim asks the event loops for the free backends they keep, for an
// acquire that waits.
func (p *pool) reclaim() {
	if p.localFree.Load() > 0 && p.srv != nil {
		p.srv.loops.reclaim()
	}
}

// giveUp withdraws w; a grant it received meanwhile goes to the next
// waiter.
func (p *pool) giveUp(w *poolWaiter) {
	p.mu.Lock()
	for i, x := range p.waiters {
		if x == w {
			p.removeWaiter(i)
			p.mu.Unlock()
			return
		}
	}
	p.mu.Unlock()
	// Granted after all: pass it on.
	if b := <-w.grant; b != nil {
		p.release(b)
	} else {
		p.freeSlot(w.login)
	}
}

// dial opens a backend for key in a slot of open already counted, for a
// session of the login lg counts (counted for it already too).
func (p *pool) dial(ctx context.Context, key string, forward map[string]string, lg *poolLogin) (*backend, error) {
	p.mu.Lock()
	closed := p.closed
	p.mu.Unlock()
	if closed {
		p.freeSlot(lg)
		return nil, errors.New("the server is shutting down")
	}
	up, err := p.srv.dialBackend(ctx, poolAppName, forward, true)
	if err != nil {
		p.freeSlot(lg)
		return nil, err
	}
	rw := wire.NewRawIO(up.conn)
	b := &backend{key: key, up: up, io: rw, prepared: newBackendStmts(), login: lg,
		in:  wire.NewReader(rw, upstreamReadBuf, maxUpstreamMessage),
		out: wire.NewWriter(rw, upstreamWrite)}
	b.in.Preload(up.buffered)
	up.buffered = nil
	p.mu.Lock()
	if _, ok := p.params[key]; !ok {
		if len(p.params) >= maxPoolParamKeys {
			// Any other: a session of a key forgotten takes a backend
			// to learn them again.
			for k := range p.params {
				delete(p.params, k)
				break
			}
		}
		p.params[key] = up.params
	}
	p.mu.Unlock()
	if ce := p.log.Check(zap.DebugLevel, "upstream connection opened"); ce != nil {
		ce.Write(zap.Uint32("backend_pid", up.backend()))
	}
	return b, nil
}

// release gives a clean backend back: to the oldest waiter of its key,
// or, when others wait, its slot to the oldest of them; otherwise to
// the free backends. Waiters whose login is at its cap are passed over;
// the login of the session that let b go has one backend less first,
// so that b goes to a waiter of that login before any new dial.
func (p *pool) release(b *backend) {
	if b.home != nil {
		panic("pgveil: a backend went back to the pool registered on an event loop")
	}
	// NOTE: before mu, as in freeSlot: a count below zero panics with
	// the pool's lock free, for the session's relay to recover.
	b.uncount()
	p.mu.Lock()
	if p.closed {
		p.open--
		p.mu.Unlock()
		b.close()
		return
	}
	for i, w := range p.waiters {
		if w.key != b.key {
			continue
		}
		if !w.login.take() {
			w.capped = true
			continue
		}
		p.removeWaiter(i)
		b.login = w.login
		p.mu.Unlock()
		w.give(b)
		return
	}
	for i, w := range p.waiters {
		if !w.login.take() {
			w.capped = true
			continue
		}
		// Only other keys wait: the oldest gets a free backend of its
		// key, or a slot, b's unless the pool has room (a login at its
		// cap made that waiter wait).
		p.removeWaiter(i)
		if p.open < p.size || len(p.idle[w.key]) > 0 {
			g := p.grantFor(w)
			p.idleBackend(b)
			p.mu.Unlock()
			p.give(g)
		} else {
			p.mu.Unlock()
			b.close()
			w.give(nil)
		}
		return
	}
	p.idleBackend(b)
	p.mu.Unlock()
}

// idleBackend adds b to the free backends (mu held).
func (p *pool) idleBackend(b *backend) {
	b.idleSince = time.Now()
	p.idle[b.key] = append(p.idle[b.key], b)
	p.nidle++
}

// drop closes a backend that must not be reused and frees its slot.
func (p *pool) drop(b *backend, why string) {
	lg := b.login
	b.login = nil
	b.close()
	p.log.Info("upstream connection closed", zap.Uint32("backend_pid", b.up.backend()), zap.String("reason", why))
	p.freeSlot(lg)
}

// freeSlot gives a slot of open, counted for the login lg (nil for
// none), to the oldest waiter whose login is under its cap, or back.
// A free backend of that waiter's key goes to it instead, the slot
// back (grantFor).
func (p *pool) freeSlot(lg *poolLogin) {
	// NOTE: before mu: a count below zero panics (put), and a panic with
	// mu held would leave every session of the pool waiting for it.
	lg.put()
	p.mu.Lock()
	if !p.closed {
		for i, w := range p.waiters {
			if !w.login.take() {
				w.capped = true
				continue
			}
			p.removeWaiter(i)
			p.open--
			g := p.grantFor(w)
			p.mu.Unlock()
			p.give(g)
			return
		}
	}
	p.open--
	p.mu.Unlock()
}

// popIdle takes the most recently used free backend of key (mu held).
func (p *pool) popIdle(key string) *backend {
	l := p.idle[key]
	if len(l) == 0 {
		return nil
	}
	b := l[len(l)-1]
	l[len(l)-1] = nil
	if len(l) == 1 {
		delete(p.idle, key)
	} else {
		p.idle[key] = l[:len(l)-1]
	}
	p.nidle--
	return b
}

// popOldest takes the free backend idle the longest, of any key (mu
// held, nidle > 0).
func (p *pool) popOldest() *backend {
	var oldest *backend
	for _, l := range p.idle {
		if oldest == nil || l[0].idleSince.Before(oldest.idleSince) {
			oldest = l[0]
		}
	}
	l := p.idle[oldest.key]
	if len(l) == 1 {
		delete(p.idle, oldest.key)
	} else {
		p.idle[oldest.key] = append(l[:0:0], l[1:]...)
	}
	p.nidle--
	return oldest
}

// janitor closes backends idle longer than idleTimeout.
func (p *pool) janitor() {
	tick := time.NewTicker(max(p.idleTimeout/4, time.Second))
	defer tick.Stop()
	for {
		select {
		case <-p.stop:
			return
		case now := <-tick.C:
			var old []*backend
			p.mu.Lock()
			for key, l := range p.idle {
				n := 0
				for n < len(l) && now.Sub(l[n].idleSince) >= p.idleTimeout {
					n++
				}
				if n == 0 {
					continue
				}
				old = append(old, l[:n]...)
				if n == len(l) {
					delete(p.idle, key)
				} else {
					p.idle[key] = append(l[:0:0], l[n:]...)
				}
				p.nidle -= n
				p.open -= n
			}
			p.mu.Unlock()
			for _, b := range old {
				b.close()
			}
		}
	}
}

// close closes the free backends and makes every later release close its
// backend; held backends close with their sessions.
func (p *pool) close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	var all []*backend
	for _, l := range p.idle {
		all = append(all, l...)
	}
	p.open -= p.nidle
	p.idle, p.nidle = map[string][]*backend{}, 0
	waiters := p.waiters
	p.waiters = nil
	p.nwait.Store(0)
	if p.expiry != nil {
		p.expiry.Stop()
	}
	p.mu.Unlock()
	close(p.stop)
	for _, b := range all {
		b.close()
	}
	for _, w := range waiters {
		// Woken with a slot, they dial into a closed pool's count;
		// their session is ending anyway. The slot counts for their
		// login, as any slot given: dial gives it back.
		if w.login != nil {
			w.login.held.Add(1)
		}
		w.give(nil)
	}
}

// maxPoolParamKeys bounds pool.params: every distinct set of startup
// parameters is a key, and clients choose them.
const maxPoolParamKeys = 1024

// startParams returns the ParameterStatus values backends of key
// report at their start, once one has started.
func (p *pool) startParams(key string) (map[string]string, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m, ok := p.params[key]
	return m, ok
}

// stats reports the pool's backends: open (held, free or being
// dialled), free, and the acquires waiting.
func (p *pool) stats() (open, free, waiting int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.open, p.nidle + int(p.localFree.Load()), len(p.waiters)
}

func (b *backend) close() { b.up.conn.Close() }

// alive reports whether a free backend may serve a session: its
// connection neither closed nor holding anything unread (a FATAL sent
// at a server shutdown, say).
func (b *backend) alive() bool {
	if b.in.Buffered() != 0 {
		return false
	}
	if quiet, ok := wire.Quiet(b.io); ok {
		return quiet
	}
	return connQuiet(b.up.conn)
}

// loginWaitError is waitError for a session of login whose cap lg held
// it back: it held as many backends as lg lets it when its wait ended
// (atCap), or did during the wait, the pool then full as it ended;
// setting names the cap.
func (p *pool) loginWaitError(login string, lg *poolLogin, setting string, atCap bool) *clientError {
	if !atCap {
		return &clientError{resp: errorResponse("ERROR", CodeTooManyConnections,
			fmt.Sprintf("pgveil found no free upstream connection within %s", p.wait),
			fmt.Sprintf("User %q held %s of the transaction pool during the wait, the most one login may hold at once, and all %d connections of the pool were in use as it ended.", login, connectionCount(lg.max.Load()), p.size),
			fmt.Sprintf("This is the per-login cap %s, within upstream.pool.size. Retry once the user's other transactions end, or raise %s or upstream.pool.size.", setting, setting))}
	}
	return &clientError{resp: errorResponse("ERROR", CodeTooManyConnections,
		fmt.Sprintf("pgveil found no free upstream connection within %s", p.wait),
		fmt.Sprintf("User %q holds %s of the transaction pool, the most one login may hold at once.", login, connectionCount(lg.max.Load())),
		fmt.Sprintf("This is the per-login cap %s; other users are still served. Retry once the user's other transactions end, or raise %s.", setting, setting))}
}

// timeoutError is the error for a session of login whose wait ended
// with err, errPoolTimeout or errPoolTimeoutCapped, and whether it names
// the cap lg (setting): when its login is at the cap as the wait ends,
// or the cap held it back during the wait, whether or not the pool was
// full too: that is what the user can act on.
// NOTE: a login's count falls, before mu, as its backends go back, so
// that a login held back by its cap most of the wait may have room at
// its end: the waiter's capped, not the count then, says it was.
func (p *pool) timeoutError(login string, lg *poolLogin, setting string, err error) (*clientError, bool) {
	atCap := !lg.room()
	if atCap || (lg != nil && errors.Is(err, errPoolTimeoutCapped)) {
		return p.loginWaitError(login, lg, setting, atCap), true
	}
	return p.waitError(), false
}

// connectionCount spells n connections for a message: "1 connection",
// "2 connections".
func connectionCount(n int32) string {
	if n == 1 {
		return "1 connection"
	}
	return fmt.Sprintf("%d connections", n)
}

// waitError is the error a client gets when no backend became free.
func (p *pool) waitError() *clientError {
	return &clientError{resp: errorResponse("ERROR", CodeTooManyConnections,
		fmt.Sprintf("pgveil found no free upstream connection within %s", p.wait),
		fmt.Sprintf("All %d connections of the transaction pool are in use.", p.size),
		"Retry later, or raise upstream.pool.size (within PostgreSQL's max_connections) or upstream.pool.wait_timeout.")}
}
