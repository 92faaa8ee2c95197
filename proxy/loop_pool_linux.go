package proxy

import (
	"errors"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/pgveil/pgveil/proxy/wire"
)

// Transaction-mode sessions on the event loops.
//
// Such a session has no upstream socket of its own: it holds a pooled
// backend for each transaction. The backend is registered on the
// session's loop, and stays registered there once the session lets it
// go, in the loop's free backends (loopBackends.idle): the next session
// of the loop that needs one takes it without a system call, as
// PgBouncer's single loop does. A backend leaves the loop for the pool
// when a session elsewhere waits for one, when the pool asks for the
// loop's free backends (reclaim), when it was idle too long, or when it
// must not be reused; a free backend the server closes or writes to is
// seen by the loop and closed.
//
// A session that finds no free backend waits in the pool's queue without
// a goroutine (pool.acquireNow), its message buffered; the pool posts it
// the backend, a slot to dial one on a worker, or its timeout.
//
// NOTE: a backend's registration (home, hslot, hgen, hfd, hev) and
// holder belong to its home loop while it is there; a backend in the
// pool's free list, or held by a session on goroutines, is registered on
// no loop. A backend is taken off its loop's epoll instance before it
// leaves the loop or is closed, so that its descriptor's number, reused
// for another socket, is never registered on its behalf.

// loopBackends are the pool's backends registered on a loop.
type loopBackends struct {
	// slots holds them by the slot their epoll data names; gens counts
	// each slot's reuses, so that an event of a backend gone does not
	// reach the slot's next one.
	slots []*backend
	gens  []uint32
	free  []int32
	// idle are those no session holds, by pool key, the most recently
	// used last; nidle counts them, and idleCount mirrors nidle for
	// other goroutines (reclaim).
	idle      map[string][]*backend
	nidle     int
	idleCount atomic.Int32
	// reclaiming reports that a reclaim is posted and not yet run.
	reclaiming atomic.Bool
}

// backendSlotBase numbers backend slots in the epoll data: slot i is
// backendSlotBase-i, below the sessions' slots and wakeSlot.
const backendSlotBase = -2

// returnUnused gives back a backend the session took and did not use:
// one of its loop stays there.
// NOTE: a backend registered on a loop is only ever taken on it.
func (pl *poolLink) returnUnused(b *backend) {
	if l := b.home; l != nil {
		b.holder = nil
		l.keepOrGiveBack(pl, b, false)
		return
	}
	pl.pool.release(b)
}

// backendMode sets the modes of a backend the session takes: the loop
// reads it; the writer is the loop's, or a worker's, which waits.
func (lp *loopState) backendMode(b *backend) { wire.SetNonBlocking(b.io, true, !lp.busy) }

// register puts b, from the pool, on the loop's epoll instance.
func (l *eventLoop) register(b *backend) error {
	fd, ok := wire.RawFD(b.io)
	if !ok {
		return errors.New("the upstream connection is not a plain socket")
	}
	lb := &l.lb
	slot, gen := takeSlot(&lb.slots, &lb.gens, &lb.free)
	b.hslot, b.hgen, b.hfd, b.hev = slot, gen, fd, unix.EPOLLIN
	if err := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, l.bdata(b, b.hev)); err != nil {
		lb.free = append(lb.free, slot)
		b.hev = 0
		return err
	}
	lb.slots[slot] = b
	b.home = l
	return nil
}

// unregister takes b off the loop's epoll instance.
func (l *eventLoop) unregister(b *backend) {
	_ = epollCtl(l.epfd, unix.EPOLL_CTL_DEL, b.hfd, nil)
	l.lb.slots[b.hslot] = nil
	l.lb.free = append(l.lb.free, b.hslot)
	b.home, b.holder, b.hev, b.hfd = nil, nil, 0, -1
}

// bdata returns the epoll_event of a backend of the loop.
func (l *eventLoop) bdata(b *backend, events uint32) *unix.EpollEvent {
	return &unix.EpollEvent{Events: events, Fd: backendSlotBase - b.hslot, Pad: int32(b.hgen<<1 | dirUpstream)}
}

// binterest registers a backend of the loop for want. Registered for
// nothing, it still reports a hang-up, which its holder reads to its
// end (its session ends), so it stays registered.
func (l *eventLoop) binterest(b *backend, want uint32) {
	if want == b.hev {
		return
	}
	_ = epollCtl(l.epfd, unix.EPOLL_CTL_MOD, b.hfd, l.bdata(b, want))
	b.hev = want
}

// backendOf returns the backend an event names, nil when it is gone.
func (l *eventLoop) backendOf(ev unix.EpollEvent) *backend {
	i := int(backendSlotBase - ev.Fd)
	if i < 0 || i >= len(l.lb.slots) {
		return nil
	}
	b := l.lb.slots[i]
	if b == nil || uint32(ev.Pad)>>1 != b.hgen {
		return nil
	}
	return b
}

// freeBackendEvents closes the free backends with events in a batch
// before the batch's other events are handled, so that none of them is
// taken by a session once the server closed it. It marks the events
// it handled.
func (l *eventLoop) freeBackendEvents(evs []unix.EpollEvent) {
	for i := range evs {
		if evs[i].Fd > backendSlotBase {
			continue
		}
		if b := l.backendOf(evs[i]); b != nil && b.holder == nil {
			l.dropLocal(b, "it was closed or written to while idle")
			evs[i].Events = 0
		}
	}
}

// backendEvent handles an event of a backend of the loop: its holder's
// upstream direction.
func (l *eventLoop) backendEvent(ev unix.EpollEvent) {
	b := l.backendOf(ev)
	if b == nil {
		return
	}
	ss := b.holder
	if ss == nil {
		l.dropLocal(b, "it was closed or written to while idle")
		return
	}
	l.serve(ss, func() { l.upstreamEvent(ss, ev.Events) })
}

// takeLocal takes a free backend of the loop for a session of key.
// It takes none while the session's login is at its cap.
func (l *eventLoop) takeLocal(pl *poolLink) *backend {
	lb := &l.lb
	list := lb.idle[pl.key]
	n := len(list)
	if n == 0 || !pl.login.take() {
		return nil
	}
	b := list[n-1]
	list[n-1] = nil
	lb.idle[pl.key] = list[:n-1]
	lb.nidle--
	lb.idleCount.Store(int32(lb.nidle))
	pl.pool.localFree.Add(-1)
	b.login = pl.login
	return b
}

// keepOrGiveBack settles a backend a session of the loop let go of:
// kept free on the loop, unless the pool has a use for it or it must
// not be reused. A waiter of its key on this loop gets it at once.
// Waiters at their login's cap alone are no use for it
// (waitersServable): it stays on the loop.
//
// NOTE: b leaves its login's count before nwait is read (poolLogin): a
// session of that login queued at its cap is then seen here, or sees
// the room made. Likewise b counts in localFree before nwait is read
// again (keepLocal): a session that queued meanwhile, the pool full, is
// then seen here, or sees b and reclaims it.
func (l *eventLoop) keepOrGiveBack(pl *poolLink, b *backend, failed bool) {
	p := pl.pool
	b.holder = nil
	if failed || b.spoiled || b.stmtsUnknown || b.overfull() {
		l.unregister(b)
		pl.giveBack(b, failed)
		return
	}
	b.uncount()
	for {
		if p.nwait.Load() > 0 {
			if w := p.takeWaiter(b.key, l); w != nil {
				b.login = w.login
				if w.loop == l {
					// NOTE: run after this batch of events, with no
					// wake-up. The waiter holds it from now: an event of
					// it meanwhile is its session's, not a free
					// backend's.
					b.holder = w.ss
					l.postSelf(loopPost{ss: w.ss, kind: postGrant, b: b})
					return
				}
				l.unregister(b)
				w.give(b)
				return
			}
			if p.waitersServable() {
				// Others wait, for other keys: the pool decides.
				l.unregister(b)
				p.release(b)
				return
			}
		}
		if l.keepLocal(p, b) {
			return
		}
	}
}

// keepLocal keeps b free on the loop, and reports true; or, should a
// session under its login's cap have queued in the pool meanwhile,
// takes it back and reports false, for keepOrGiveBack to look at the
// waiters again.
//
// NOTE: waitersServable reads the waiters under the pool's lock after b
// counts in localFree: a session that queues, the pool full, after
// that read reads localFree (reclaim) after it, and sees b.
func (l *eventLoop) keepLocal(p *pool, b *backend) bool {
	if beforeKeepLocal != nil {
		beforeKeepLocal()
	}
	if b.hev != unix.EPOLLIN {
		l.binterest(b, unix.EPOLLIN)
	}
	b.idleSince = time.Now()
	lb := &l.lb
	if lb.idle == nil {
		lb.idle = map[string][]*backend{}
	}
	lb.idle[b.key] = append(lb.idle[b.key], b)
	lb.nidle++
	lb.idleCount.Store(int32(lb.nidle))
	p.localFree.Add(1)
	if p.nwait.Load() == 0 || !p.waitersServable() {
		return true
	}
	// NOTE: the last of its key, appended above; the loop's alone.
	list := lb.idle[b.key]
	list[len(list)-1] = nil
	lb.idle[b.key] = list[:len(list)-1]
	lb.nidle--
	lb.idleCount.Store(int32(lb.nidle))
	p.localFree.Add(-1)
	return false
}

// beforeKeepLocal, nil but in tests, runs as keepOrGiveBack decided to
// keep a backend free on its loop, no waiter having been seen.
var beforeKeepLocal func()

// dropLocal closes a free backend of the loop.
func (l *eventLoop) dropLocal(b *backend, why string) {
	if b.home != l || b.holder != nil {
		panic("pgveil: closing a backend as free on a loop that does not hold it free")
	}
	lb := &l.lb
	list := lb.idle[b.key]
	for i, x := range list {
		if x == b {
			lb.idle[b.key] = append(list[:i], list[i+1:]...)
			lb.nidle--
			lb.idleCount.Store(int32(lb.nidle))
			l.srv.pool.localFree.Add(-1)
			break
		}
	}
	l.unregister(b)
	l.srv.pool.drop(b, why)
}

// releaseLocal gives the loop's free backends to the pool, which asked
// for them (reclaim); with all, it closes them instead (the loop stops).
func (l *eventLoop) releaseLocal(closing bool) {
	lb := &l.lb
	lb.reclaiming.Store(false)
	if lb.nidle == 0 {
		return
	}
	p := l.srv.pool
	for key, list := range lb.idle {
		for _, b := range list {
			l.unregister(b)
			p.localFree.Add(-1)
			if closing {
				p.drop(b, "the server is shutting down")
			} else {
				p.release(b)
			}
		}
		delete(lb.idle, key)
	}
	lb.nidle = 0
	lb.idleCount.Store(0)
}

// sweepBackends closes the loop's free backends idle longer than the
// pool's idle timeout.
func (l *eventLoop) sweepBackends(now time.Time) {
	p := l.srv.pool
	if p == nil || l.lb.nidle == 0 || p.idleTimeout <= 0 {
		return
	}
	var old []*backend
	for _, list := range l.lb.idle {
		for _, b := range list {
			if now.Sub(b.idleSince) >= p.idleTimeout {
				old = append(old, b)
			}
		}
	}
	for _, b := range old {
		l.dropLocal(b, "it was idle longer than upstream.pool.idle_timeout")
	}
}

// reclaim asks every loop with free backends to give them to the pool:
// an acquire waits, with the pool full.
func (ls *eventLoops) reclaim() {
	if ls == nil {
		return
	}
	for _, l := range ls.loops {
		if l.lb.idleCount.Load() > 0 && l.lb.reclaiming.CompareAndSwap(false, true) {
			l.post(loopPost{kind: postCall, fn: func() { l.releaseLocal(false) }})
		}
	}
}

// holdStep says what pumpClient does with a client message once
// pooledHold ran.
type holdStep int

const (
	// holdGo: the session holds a backend; the message goes on.
	holdGo holdStep = iota
	// holdNext: the message was answered; on to the next.
	holdNext
	// holdStop: the session waits (the pool, a worker) or ended.
	holdStop
)

// pooledHold makes sure a transaction-mode session holds a backend, on
// the loop, before the client message of type typ is handled (hold):
// a free one, or the one the pool gave it after a wait; otherwise the
// session waits in the pool without a goroutine, or a worker dials one.
func (l *eventLoop) pooledHold(ss *session, typ byte, total int) holdStep {
	lp, pl := ss.lp, ss.pl
	if lp.held {
		return holdGo
	}
	if lp.waiter != nil {
		return holdStop
	}
	if ss.holdHeld() {
		lp.held = true
		return holdGo
	}
	var b *backend
	switch lp.grant {
	case grantBackend:
		b = lp.grantB
		lp.grant, lp.grantB = grantNone, nil
	case grantSlot:
		lp.grant = grantNone
		lp.dialSlot = true
		l.toWorker(ss)
		return holdStop
	case grantTimeout:
		lp.grant = grantNone
		err := errPoolTimeout
		if lp.wait.capped {
			err = errPoolTimeoutCapped
		}
		if e := ss.answerNoBackend(typ, total, err); e != nil {
			ss.end(*e)
			return holdStop
		}
		return holdNext
	default:
		if typ == 'X' {
			ss.end(sessionEnd{reason: "client terminated the session"})
			return holdStop
		}
		if strayMessage(typ) {
			if ss.cin.Buffered() < total {
				// Skipped with waiting reads.
				l.toWorker(ss)
				return holdStop
			}
			if err := ss.cin.Skip(total); err != nil {
				ss.end(ss.clientFailed(err))
				return holdStop
			}
			return holdNext
		}
		if b = l.takeLocal(pl); b != nil {
			break
		}
		w := &lp.wait
		if w.deliver == nil {
			w.loop, w.ss, w.login = l, ss, pl.login
			w.deliver = func(b *backend, timedOut bool) {
				l.post(loopPost{ss: ss, kind: postGrant, b: b, timedOut: timedOut})
			}
		}
		var queued bool
		var err error
		b, queued, err = pl.pool.acquireNow(pl.key, w)
		switch {
		case err != nil:
			if e := ss.answerNoBackend(typ, total, err); e != nil {
				ss.end(*e)
				return holdStop
			}
			return holdNext
		case queued:
			lp.waiter = w
			return holdStop
		case b == nil:
			// Room for a backend more: a worker dials it.
			l.toWorker(ss)
			return holdStop
		}
	}
	if b.home == l {
		// NOTE: before anything can fail: an event of a backend with
		// no holder would close it as a free one.
		b.holder = ss
	}
	parseName, e := ss.parseNameOf(typ, total)
	if e == nil {
		var held bool
		held, e = ss.attach(b, typ, parseName)
		if e == nil && !held {
			e = &sessionGone
		}
	} else {
		pl.returnUnused(b)
	}
	if e != nil {
		ss.end(*e)
		return holdStop
	}
	lp.held = true
	if !l.loopAttach(ss) {
		return holdStop
	}
	return holdGo
}

// granted takes the pool's answer to a session's wait: the session's
// message, still buffered, goes on with it. A session that ended
// meanwhile gives the backend or slot back.
func (l *eventLoop) granted(ss *session, b *backend, timedOut bool) {
	lp := ss.lp
	lp.waiter = nil
	if lp.freed || lp.ended.Load() {
		l.giveBackGrant(ss, b, timedOut)
		return
	}
	switch {
	case timedOut:
		lp.grant = grantTimeout
	case b == nil:
		lp.grant = grantSlot
	default:
		lp.grant, lp.grantB = grantBackend, b
	}
	l.serve(ss, func() { l.pumpClient(ss) })
}

// giveBackGrant returns to the pool what it gave a session that ended.
func (l *eventLoop) giveBackGrant(ss *session, b *backend, timedOut bool) {
	switch {
	case timedOut:
	case b == nil:
		ss.pl.pool.freeSlot(ss.pl.login)
	case b.home == l:
		// Handed over on this loop (keepOrGiveBack): still registered.
		l.keepOrGiveBack(ss.pl, b, false)
	default:
		ss.pl.pool.release(b)
	}
}

// loopAttach puts the backend a transaction-mode session took on the
// loop: registered on its epoll instance already when it was free here,
// registered now when it comes from the pool. It reports false, having
// ended the session, when it cannot.
func (l *eventLoop) loopAttach(ss *session) bool {
	lp, pl := ss.lp, ss.pl
	pl.mu.Lock()
	b := pl.b
	pl.mu.Unlock()
	if b == nil {
		// Ended meanwhile.
		return false
	}
	if b.home != l {
		if err := l.register(b); err != nil {
			ss.end(sessionEnd{resp: fatal(CodeInternalError, "pgveil: internal error; the session was ended", ""),
				reason: "registering an upstream connection on the event loop failed", err: err, warn: true})
			return false
		}
	}
	b.holder, lp.ub = ss, b
	return true
}

// loopDetach lets a transaction-mode session's backend go, as detach
// does: it stays on the loop, free for the loop's next session, unless
// the pool has a use for it (keepOrGiveBack). It reports whether it
// did.
func (l *eventLoop) loopDetach(ss *session) bool {
	lp := ss.lp
	if lp.ub == nil || lp.busy || lp.cRemain > 0 {
		// A worker writes to it (workerDone asks again), or a client
		// message is streaming to it (pumpClient asks again).
		return false
	}
	b, failed, settled := ss.letGo(false)
	if b == nil {
		return false
	}
	if settled != nil {
		ss.settled(settled)
	}
	if b != lp.ub {
		panic("pgveil: a pooled session let go of a backend its loop did not register")
	}
	lp.ub = nil
	lp.uRemain, lp.uSkip, lp.uWant = 0, false, 0
	l.keepOrGiveBack(ss.pl, b, failed)
	return true
}

// pooledWorkerHold is workerStep's part for a transaction-mode session:
// it waits for a backend if the loop could not take one (hold), or skips
// a message of a batch that found none. It reports whether the message
// goes on, or the step's end.
func (ss *session) pooledWorkerHold(typ byte, total int) (sessionEnd, bool) {
	pl, lp := ss.pl, ss.lp
	if pl.failing {
		if e, err := ss.skipFailed(typ, total); e != nil {
			return *e, false
		} else if err != nil {
			return ss.clientFailed(err), false
		}
		return sessionEnd{}, false
	}
	if !lp.held {
		withSlot := lp.dialSlot
		lp.dialSlot = false
		held, e := ss.holdWith(typ, total, withSlot)
		if e != nil {
			return *e, false
		}
		if !held {
			return sessionEnd{}, false
		}
	}
	lp.held = false
	return sessionEnd{}, true
}

// loopAttachTaken registers the backend a worker took for the session,
// if it did; it reports false when the session ended.
func (l *eventLoop) loopAttachTaken(ss *session) bool {
	pl := ss.pl
	pl.mu.Lock()
	b := pl.b
	pl.mu.Unlock()
	if b == nil {
		return true
	}
	return l.loopAttach(ss)
}
