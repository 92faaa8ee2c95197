package proxy

import (
	"errors"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/pgveil/pgveil/proxy/wire"
)

// eventLoops relays the plaintext sessions of a Server on a few event
// loops instead of two goroutines each: one goroutine per loop (as many
// as loopCount says), each waiting on its own epoll instance for the
// sockets of its sessions. A
// loop reads a socket only when it is readable, handles every message it
// can at once, flushes, and waits again: a transaction costs the two
// system calls each way it needs, no receive that finds nothing, and no
// goroutine hand-offs.
//
// A message a loop must not handle inline goes to a worker goroutine,
// which runs the goroutine path's code for it with waiting reads and
// writes, then hands the session back:
//   - a statement the Rewriter cannot answer from its caches (a parse
//     takes milliseconds, and every session of the loop would wait);
//   - a Bind, Execute or Close the tracker reads that is larger than the
//     read buffer, which streams instead of being buffered whole.
//
// TLS sessions, and upstream connections inside TLS, keep the goroutine
// path: crypto/tls needs its own reads.
//
// NOTE: each direction of a session has one owner at a time. The upstream
// direction (uin, and cout under coutMu) is always its loop's. The client
// direction (cin, uout) is the loop's, or a worker's while lp.busy; the
// hand-over goes through the loop's post queue, a happens-before edge.
type eventLoops struct {
	srv   *Server
	start sync.Once
	loops []*eventLoop
	// err is why the loops could not start; sessions then relay on
	// goroutines.
	err  error
	next atomic.Uint32
	stop sync.Once
	// deferred counts the client messages loops handed to workers.
	deferred atomic.Uint64
}

// eventLoop is one loop: its epoll instance and the sessions on it.
type eventLoop struct {
	srv  *Server
	epfd int
	// epf holds epfd for Go's poller, and erc waits on it (wait).
	epf *os.File
	erc syscall.RawConn
	// wake is an eventfd that post writes to wake the loop.
	wake int
	mu   sync.Mutex
	// posts are what other goroutines ask of the loop.
	// NOTE: guarded by mu; stopping too.
	posts    []loopPost
	stopping bool
	// done is closed when the loop has stopped.
	done chan struct{}

	// NOTE: the fields below are the loop goroutine's own.
	// slots holds the sessions by the slot their epoll data names; gens
	// counts each slot's reuses, so that an event of a session gone does
	// not reach the slot's next one.
	slots  []*session
	gens   []uint32
	free   []int32
	events []unix.EpollEvent
	// lastSweep is when sweep last ran.
	lastSweep time.Time
	// lb are the pool's backends registered on the loop, in transaction
	// mode (loop_pool_linux.go).
	lb loopBackends
	// poll asks epoll for events without waiting, and ready is how many
	// it got (wait).
	poll  func(fd uintptr) bool
	ready int
}

// sweepEvery is how often a loop gives back the buffers of sessions that
// have been idle since the previous sweep: an idle session holds no
// buffer, and a busy one does not take and give back its buffers at
// every message.
const sweepEvery = time.Second

// loopState is an event-loop session's share of its loop.
type loopState struct {
	loop *eventLoop
	slot int32
	gen  uint32
	// cfd and ufd are the client's and the upstream's sockets, out of
	// Go's poller (wire.TakeFD); ufd is nil in transaction mode.
	cfd, ufd *wire.FD
	// ub is, in transaction mode, the pooled backend the session holds,
	// registered on the loop, nil between transactions (loopAttach).
	// held reports that hold ran for the client message a worker is
	// handed.
	ub   *backend
	held bool
	// waiter is, in transaction mode, the session's wait for a backend
	// in the pool, nil when it waits for none: the message that waits
	// stays buffered, with at most a buffer's worth of what follows it,
	// until the pool's answer (postGrant) sets grant, and grantB, for the
	// message's next turn (pooledHold). wait is what waiter points to,
	// made once per session. dialSlot tells a worker that the pool
	// counted a slot for a backend it dials.
	waiter   *poolWaiter
	grant    grantKind
	grantB   *backend
	wait     poolWaiter
	dialSlot bool
	// cev and uev are the events each socket is registered for; 0 when
	// it is not registered (see interest).
	cev, uev uint32
	// busy reports that a worker owns the client direction.
	busy bool
	// inline is set while the loop handles a client message itself:
	// statements are then answered from the Rewriter's caches or left
	// for a worker (rewriteNow).
	inline bool
	// cRemain and uRemain count the bytes still to come of a client or
	// upstream message being streamed through; uSkip drops the upstream
	// one instead.
	cRemain, uRemain int
	// cTyp is the type of the client message cRemain streams: in
	// transaction mode its batch stays open (unhold) until its last byte
	// went upstream, so that the backend stays the session's meanwhile.
	cTyp  byte
	uSkip bool
	// cWant and uWant are the size of the message each reader waits for
	// whole, so that its next read makes room for it.
	cWant, uWant int
	// ended is set by end, from any goroutine: the loop then frees the
	// session once no worker holds it.
	ended atomic.Bool
	// freed reports that the loop freed the session (loop only).
	freed bool
	// active reports an event since the last sweep; holding reports
	// buffers that the sweep has not given back.
	active, holding bool
}

// loopPost is something another goroutine asks of a loop.
type loopPost struct {
	ss   *session
	kind postKind
	// end is how a worker's step ended the session (reason "" when it
	// did not).
	end sessionEnd
	// fn is run on the loop (postCall).
	fn func()
	// b and timedOut are the pool's answer to a session's wait
	// (postGrant): a backend, a slot (nil), or the wait timeout.
	b        *backend
	timedOut bool
}

// grantKind is the pool's answer to an event-loop session's wait.
type grantKind int

const (
	grantNone grantKind = iota
	// grantBackend: grantB is the session's.
	grantBackend
	// grantSlot: the session may dial a backend, on a worker.
	grantSlot
	// grantTimeout: no backend became free within the wait timeout.
	grantTimeout
)

type postKind int

const (
	// postAdd puts a session on the loop.
	postAdd postKind = iota
	// postWorkerDone gives the client direction back from a worker.
	postWorkerDone
	// postEnded says that the session ended.
	postEnded
	// postCall runs fn on the loop: tests read loop-owned state so.
	postCall
	// postGrant answers a transaction-mode session's wait for a backend.
	postGrant
)

// epoll data: the slot in Fd, the generation and direction in Pad.
const (
	dirClient   = 0
	dirUpstream = 1
	// wakeSlot marks the loop's eventfd.
	wakeSlot = -1
)

func newEventLoops(s *Server) *eventLoops { return &eventLoops{srv: s} }

// adopt moves ss, which has just started, onto a loop when it can run
// there, and reports whether it did; a session that cannot (TLS, a
// socket of another kind, loops that could not start) relays on
// goroutines as before.
func (ls *eventLoops) adopt(ss *session) bool {
	if ls == nil || ss.info.TLS || !wire.Takeable(ss.client) || (ss.pl == nil && !wire.Takeable(ss.up.conn)) {
		return false
	}
	ls.start.Do(ls.startLoops)
	if ls.err != nil || len(ls.loops) == 0 {
		// No loop started, or they stopped: the server is closing.
		return false
	}
	ss.lpMu.Lock()
	defer ss.lpMu.Unlock()
	if ss.ending {
		// end ran first and closed the connections: the goroutine
		// path finds them closed and finishes the session.
		return false
	}
	cfd, err := wire.TakeFD(ss.client)
	if err != nil {
		return false
	}
	var ufd *wire.FD
	if ss.pl == nil {
		ufd, err = wire.TakeFD(ss.up.conn)
	}
	if err != nil {
		// The client's socket is out of Go's poller already: the
		// session cannot go back. End it.
		ss.log.Warn("moving the session onto an event loop failed", zap.Error(err))
		cfd.Shutdown()
		cfd.Close()
		ss.up.conn.Close()
		ss.ending = true
		go ss.srv.afterLoopFailure(ss)
		return true
	}
	l := ls.loops[ls.next.Add(1)%uint32(len(ls.loops))]
	ss.lp = &loopState{loop: l, cfd: cfd, ufd: ufd}
	ss.cin.SetSource(cfd)
	ss.cout.SetDest(cfd)
	if ufd != nil {
		ss.uin.SetSource(ufd)
		ss.uout.SetDest(ufd)
	}
	l.post(loopPost{ss: ss, kind: postAdd})
	return true
}

// startLoops starts the loops: loopCount of them.
func (ls *eventLoops) startLoops() {
	n := loopCount(runtime.GOMAXPROCS(0), ls.srv.pool != nil)
	for i := 0; i < n; i++ {
		l, err := newEventLoop(ls.srv)
		if err != nil {
			ls.err = err
			ls.srv.log.Warn("event loops unavailable; sessions relay on goroutines", zap.Error(err))
			for _, l := range ls.loops {
				l.requestStop()
			}
			ls.loops = nil
			return
		}
		ls.loops = append(ls.loops, l)
		go l.run()
	}
}

// loopCount returns how many event loops a server runs with procs
// processors: one per processor in transaction mode, half as many in
// session mode (at least one).
//
// NOTE: measured on a 2-core machine with pgbench -S -c 8 in session
// mode, two loops gave the TPS of one and cost 18% more proxy CPU per
// transaction: each loop sleeps between messages, and waking the other
// loop's goroutine hands a processor between threads. In transaction
// mode, with 500 clients on 50 backends, the loops are busy and two gave
// more TPS than one (9.2k against 7.6k).
func loopCount(procs int, transactionMode bool) int {
	if transactionMode {
		return procs
	}
	return max(1, procs/2)
}

// stopAll stops the loops once the server has no session left on them,
// and waits for them.
func (ls *eventLoops) stopAll() {
	if ls == nil {
		return
	}
	ls.stop.Do(func() {
		ls.start.Do(func() {}) // no loop starts after this
		for _, l := range ls.loops {
			l.requestStop()
		}
		for _, l := range ls.loops {
			<-l.done
		}
	})
}

func newEventLoop(s *Server) (*eventLoop, error) {
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return nil, err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return nil, err
	}
	ev := unix.EpollEvent{Events: unix.EPOLLIN, Fd: wakeSlot}
	if err := epollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &ev); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	// The epoll instance is itself readable when events are ready: the
	// loop waits for it in Go's poller (see wait).
	if err := unix.SetNonblock(epfd, true); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return nil, err
	}
	epf := os.NewFile(uintptr(epfd), "epoll")
	erc, err := epf.SyscallConn()
	if err != nil {
		epf.Close()
		unix.Close(wake)
		return nil, err
	}
	return &eventLoop{srv: s, epfd: epfd, epf: epf, erc: erc, wake: wake, done: make(chan struct{}), events: make([]unix.EpollEvent, 128)}, nil
}

// postSelf queues p from the loop itself: takePosts runs it after the
// batch of events being handled, with no wake-up.
func (l *eventLoop) postSelf(p loopPost) {
	l.mu.Lock()
	l.posts = append(l.posts, p)
	l.mu.Unlock()
}

// post queues p for the loop and wakes it.
func (l *eventLoop) post(p loopPost) {
	l.mu.Lock()
	l.posts = append(l.posts, p)
	first := len(l.posts) == 1
	l.mu.Unlock()
	if first {
		l.wakeUp()
	}
}

// requestStop asks the loop to stop once it holds no session.
func (l *eventLoop) requestStop() {
	l.mu.Lock()
	l.stopping = true
	l.mu.Unlock()
	l.wakeUp()
}

func (l *eventLoop) wakeUp() {
	one := uint64(1)
	_, _ = unix.Write(l.wake, (*[8]byte)(unsafe.Pointer(&one))[:])
}

// run is the loop's goroutine.
func (l *eventLoop) run() {
	defer close(l.done)
	defer l.epf.Close()
	defer unix.Close(l.wake)
	l.lastSweep = time.Now()
	_ = l.epf.SetReadDeadline(l.lastSweep.Add(sweepEvery))
	for {
		n := l.wait()
		if l.lb.nidle > 0 {
			l.freeBackendEvents(l.events[:n])
		}
		for i := 0; i < n; i++ {
			ev := l.events[i]
			switch {
			case ev.Events == 0:
				// Handled by freeBackendEvents.
			case ev.Fd == wakeSlot:
				var b [8]byte
				_, _ = unix.Read(l.wake, b[:])
			case ev.Fd <= backendSlotBase:
				l.backendEvent(ev)
			default:
				l.event(ev)
			}
		}
		if l.takePosts() {
			if l.srv.pool != nil {
				l.releaseLocal(true)
			}
			return
		}
		if n == 0 {
			// The sweep is due (see wait).
			l.sweep()
		}
	}
}

// sweep gives back the buffers of the sessions idle since the last
// sweep, and closes free backends idle too long.
func (l *eventLoop) sweep() {
	l.sweepBackends(l.lastSweep)
	for _, ss := range l.slots {
		if ss == nil {
			continue
		}
		lp := ss.lp
		if lp.active || lp.busy || !lp.holding {
			lp.active = false
			continue
		}
		ss.cin.Idle()
		if upstreamOn(ss) {
			ss.uin.Idle()
			ss.uout.Idle()
		}
		ss.coutMu.Lock()
		ss.cout.Idle()
		ss.coutMu.Unlock()
		lp.holding = false
	}
}

// wait returns the number of ready events, 0 when the sweep is due. It
// asks epoll without waiting, in a raw system call; when nothing is
// ready, the loop's goroutine waits for its epoll instance to become
// readable in Go's own poller, like any goroutine reading a socket: the
// thread gives its processor back before it sleeps. (A goroutine
// sleeping in epoll_wait(2) itself would keep its processor until the
// scheduler's monitor took it, which wakes another thread to take it
// over: two extra thread switches each time the loop waits.)
func (l *eventLoop) wait() int {
	if l.poll == nil {
		// NOTE: made once: a closure passed to Read escapes, and
		// would be allocated at every wait.
		l.poll = func(fd uintptr) bool {
			r, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_PWAIT, fd, uintptr(unsafe.Pointer(&l.events[0])), uintptr(len(l.events)), 0, 0, 0)
			if e != 0 {
				// EINTR: ask again once readable.
				return false
			}
			l.ready = int(r)
			return l.ready > 0
		}
	}
	l.ready = 0
	err := l.erc.Read(l.poll)
	switch {
	case err == nil:
		return l.ready
	case errors.Is(err, os.ErrDeadlineExceeded):
		l.lastSweep = time.Now()
		_ = l.epf.SetReadDeadline(l.lastSweep.Add(sweepEvery))
		return 0
	default:
		// Never expected of a valid epoll instance.
		panic("pgveil: waiting on the event loop's epoll instance: " + err.Error())
	}
}

// takePosts handles what other goroutines asked, and reports whether the
// loop is to stop.
func (l *eventLoop) takePosts() bool {
	var stopping bool
	for {
		l.mu.Lock()
		posts := l.posts
		l.posts = nil
		stopping = l.stopping
		l.mu.Unlock()
		if len(posts) == 0 {
			// NOTE: a post handled may queue another on its loop
			// (postSelf), with no wake-up: it runs in this round.
			break
		}
		for _, p := range posts {
			l.handlePost(p)
		}
	}
	if !stopping {
		return false
	}
	for _, ss := range l.slots {
		if ss != nil {
			return false
		}
	}
	return true
}

// handlePost does what a post asks.
func (l *eventLoop) handlePost(p loopPost) {
	if p.kind == postCall {
		p.fn()
		return
	}
	if p.ss == nil {
		return
	}
	switch p.kind {
	case postAdd:
		l.add(p.ss)
	case postWorkerDone:
		l.workerDone(p.ss, p.end)
	case postEnded:
		l.maybeFree(p.ss)
	case postGrant:
		l.granted(p.ss, p.b, p.timedOut)
	}
}

// takeSlot returns a free slot of items, a loop's sessions or backends,
// and the slot's new generation; gens counts each slot's reuses, so that
// an event of the slot's last holder does not reach its next one.
func takeSlot[T any](items *[]T, gens *[]uint32, free *[]int32) (int32, uint32) {
	var slot int32
	if n := len(*free); n > 0 {
		slot, *free = (*free)[n-1], (*free)[:n-1]
	} else {
		var zero T
		slot = int32(len(*items))
		*items = append(*items, zero)
		*gens = append(*gens, 0)
	}
	// NOTE: 31 bits, the room the epoll data leaves beside the direction.
	(*gens)[slot] = ((*gens)[slot] + 1) & 0x7fffffff
	return slot, (*gens)[slot]
}

// add registers a session's sockets and relays what was buffered before
// it came.
func (l *eventLoop) add(ss *session) {
	lp := ss.lp
	slot, gen := takeSlot(&l.slots, &l.gens, &l.free)
	l.slots[slot] = ss
	lp.slot, lp.gen = slot, gen
	lp.cev = unix.EPOLLIN
	cerr := epollCtl(l.epfd, unix.EPOLL_CTL_ADD, lp.cfd.Sysfd(), l.data(lp, dirClient, lp.cev))
	var uerr error
	if lp.ufd != nil {
		lp.uev = unix.EPOLLIN
		uerr = epollCtl(l.epfd, unix.EPOLL_CTL_ADD, lp.ufd.Sysfd(), l.data(lp, dirUpstream, lp.uev))
	}
	if cerr != nil || uerr != nil {
		ss.end(sessionEnd{resp: fatal(CodeInternalError, "pgveil: internal error; the session was ended", ""),
			reason: "registering the session's sockets failed", err: errors.Join(cerr, uerr), warn: true})
		l.maybeFree(ss)
		return
	}
	l.serve(ss, func() {
		l.pumpUpstream(ss)
		l.pumpClient(ss)
		// The buffers of startup go back: many clients connect and
		// wait.
		l.idleBuffers(ss)
	})
}

// epollCtl is epoll_ctl(2) as a raw system call: it never blocks, and the
// scheduler's hand-off that a system call it knows of may cause costs
// more than the call (see wire.NewRawIO).
func epollCtl(epfd, op, fd int, ev *unix.EpollEvent) error {
	_, _, e := syscall.RawSyscall6(unix.SYS_EPOLL_CTL, uintptr(epfd), uintptr(op), uintptr(fd), uintptr(unsafe.Pointer(ev)), 0, 0)
	if e != 0 {
		return e
	}
	return nil
}

// data returns the epoll_event of a session's socket.
func (l *eventLoop) data(lp *loopState, dir int, events uint32) *unix.EpollEvent {
	return &unix.EpollEvent{Events: events, Fd: lp.slot, Pad: int32(lp.gen<<1 | uint32(dir))}
}

// event handles one ready socket.
func (l *eventLoop) event(ev unix.EpollEvent) {
	slot := ev.Fd
	if slot < 0 || int(slot) >= len(l.slots) {
		return
	}
	ss := l.slots[slot]
	if ss == nil || uint32(ev.Pad)>>1 != ss.lp.gen {
		return
	}
	lp := ss.lp
	l.serve(ss, func() {
		readable := ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0
		if ev.Pad&1 == dirClient {
			if ev.Events&unix.EPOLLOUT != 0 {
				l.flushClient(ss)
			}
			if readable && !lp.busy && !lp.ended.Load() {
				switch err := ss.cin.ReadOnce(lp.cWant); {
				case err == nil:
					l.pumpClient(ss)
				case errors.Is(err, wire.ErrWouldBlock):
				default:
					ss.end(ss.clientReadFailed(err))
				}
			}
			return
		}
		l.upstreamEvent(ss, ev.Events)
	})
}

// upstreamEvent handles events of a session's upstream socket, or of the
// backend it holds.
func (l *eventLoop) upstreamEvent(ss *session, events uint32) {
	lp := ss.lp
	if !upstreamOn(ss) {
		return
	}
	if events&unix.EPOLLOUT != 0 && !lp.busy {
		if err := ss.uout.Flush(); err != nil {
			ss.end(ss.upstreamGone(err))
			return
		}
		l.pumpClient(ss)
	}
	if events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !lp.ended.Load() && upstreamOn(ss) {
		switch err := ss.uin.ReadOnce(lp.uWant); {
		case err == nil:
			l.pumpUpstream(ss)
		case errors.Is(err, wire.ErrWouldBlock):
		default:
			ss.end(ss.upstreamReadFailed(err))
		}
	}
}

// serve runs fn for ss on the loop, containing a panic to that session,
// then frees the session if it ended or registers the events it now
// waits for.
func (l *eventLoop) serve(ss *session, fn func()) {
	ss.lp.active, ss.lp.holding = true, true
	if e := ss.contain("event loop", func() sessionEnd { fn(); return sessionEnd{} }); e.reason != "" {
		ss.lp.inline = false
		ss.end(e)
	}
	if ss.lp.ended.Load() {
		l.maybeFree(ss)
		return
	}
	l.rearm(ss)
}

// pumpClient handles the client messages buffered, as far as it may
// inline, and flushes what it sent upstream.
func (l *eventLoop) pumpClient(ss *session) {
	lp := ss.lp
	if lp.busy {
		return
	}
	for !lp.ended.Load() {
		if lp.cRemain > 0 {
			n, err := ss.cin.ForwardBuffered(lp.cRemain, ss.uout)
			if err != nil {
				ss.end(ss.upstreamGone(err))
				return
			}
			if lp.cRemain -= n; lp.cRemain > 0 {
				lp.cWant = 0
				break
			}
			if ss.pl != nil {
				ss.unhold(false, lp.cTyp)
				lp.held = false
			}
			continue
		}
		if upstreamOn(ss) && ss.uout.Pending() >= upstreamWrite {
			// The upstream is not reading: stop until it does.
			break
		}
		if ss.cin.Buffered() < wire.HeaderLen {
			lp.cWant = wire.HeaderLen
			break
		}
		typ, total, err := ss.cin.Header()
		if err != nil {
			ss.end(ss.clientReadFailed(err))
			return
		}
		if !frontendType(typ) {
			// Refused at its type, as the goroutine relay does: its
			// body may never come (frontendType).
			ss.end(invalidFrontendType(typ))
			return
		}
		if ss.cin.Buffered() < total {
			switch {
			case ss.clientPassThrough(typ):
				if e := ss.clientHeader(typ); e != nil {
					ss.end(*e)
					return
				}
				if ss.pl != nil {
					if ss.pl.failing {
						// Skipped with waiting reads.
						l.toWorker(ss)
						return
					}
					switch l.pooledHold(ss, typ, total) {
					case holdStop:
						return
					case holdNext:
						continue
					}
					// NOTE: held until its last byte (above): a backend
					// let go of in the middle would get the rest of it
					// for its next session, read there as messages
					// (review: SQL run for another user's session).
					lp.cTyp = typ
				}
				// Streamed, not handled by clientMessage.
				ss.noteExtended(typ)
				lp.cRemain = total
				continue
			case (typ == 'B' || typ == 'E' || typ == 'C') && total > clientReadBuf:
				if e := ss.clientHeader(typ); e != nil {
					ss.end(*e)
					return
				}
				l.toWorker(ss)
				return
			}
			lp.cWant = total
			break
		}
		if e := ss.clientHeader(typ); e != nil {
			ss.end(*e)
			return
		}
		if pl := ss.pl; pl != nil && pl.failing {
			if e, err := ss.skipFailed(typ, total); e != nil {
				ss.end(*e)
				return
			} else if err != nil {
				ss.end(ss.clientFailed(err))
				return
			}
			continue
		}
		if ss.pl != nil {
			switch l.pooledHold(ss, typ, total) {
			case holdStop:
				return
			case holdNext:
				continue
			}
		}
		before := ss.sent.Load()
		lp.inline = true
		e, err := ss.clientMessage(typ, total)
		lp.inline = false
		if ss.pl != nil && !errors.Is(err, errDeferred) {
			ss.unhold(ss.sent.Load() != before, typ)
			lp.held = false
		}
		switch {
		case errors.Is(err, errDeferred):
			l.toWorker(ss)
			return
		case e != nil:
			ss.end(*e)
			return
		case err != nil:
			ss.end(ss.clientFailed(err))
			return
		}
	}
	if !upstreamOn(ss) {
		return
	}
	if err := ss.uout.Flush(); err != nil {
		ss.end(ss.upstreamGone(err))
		return
	}
	if ss.pl != nil && lp.cRemain == 0 {
		// The batch's last answer may have come while a message was
		// streamed and held the backend: let it go now.
		l.loopDetach(ss)
	}
}

// upstreamOn reports whether an event-loop session has an upstream
// socket on its loop: always in session mode, while it holds a backend
// in transaction mode. Without one, uin and uout are not the session's
// (loop only).
func upstreamOn(ss *session) bool { return ss.lp.ufd != nil || ss.lp.ub != nil }

// pumpUpstream handles the upstream messages buffered and flushes what
// it sent the client.
func (l *eventLoop) pumpUpstream(ss *session) {
	lp := ss.lp
	if !upstreamOn(ss) {
		return
	}
	for !lp.ended.Load() && upstreamOn(ss) {
		if lp.uRemain > 0 {
			var n int
			var err error
			if lp.uSkip {
				n, err = ss.uin.ForwardBuffered(lp.uRemain, nil)
			} else {
				ss.coutMu.Lock()
				n, err = ss.uin.ForwardBuffered(lp.uRemain, ss.cout)
				ss.coutMu.Unlock()
			}
			if err != nil {
				ss.end(ss.clientWriteFailed(err))
				return
			}
			if lp.uRemain -= n; lp.uRemain > 0 {
				lp.uWant = 0
				break
			}
			continue
		}
		ss.coutMu.Lock()
		full := ss.cout.Pending() >= clientWriteBuf
		ss.coutMu.Unlock()
		if full {
			// The client is not reading: stop until it does.
			break
		}
		if ss.uin.Buffered() < wire.HeaderLen {
			lp.uWant = wire.HeaderLen
			break
		}
		typ, total, err := ss.uin.Header()
		if err != nil {
			ss.end(ss.upstreamReadFailed(err))
			return
		}
		if typ == 'Z' || typ == 'E' || typ == 'S' || typ == 'N' && ss.srv.scrub || typ == 'C' && (ss.watchesTags() || ss.auditsTags()) {
			if total <= maxDecodedUpstream && ss.uin.Buffered() < total {
				lp.uWant = total
				break
			}
		}
		if pl := ss.pl; pl != nil {
			if pl.swallow > 0 {
				// The answers to prepareOnTake's batch.
				if (typ == 'E' || typ == 'Z') && total <= maxDecodedUpstream {
					if err := ss.swallowTaken(typ, total); err != nil {
						ss.end(ss.upstreamReadFailed(err))
						return
					}
				} else {
					lp.uRemain, lp.uSkip = total, true
				}
				continue
			}
			if ss.pooledNote(typ) {
				// A ParseComplete the client did not ask for.
				lp.uRemain, lp.uSkip = total, true
				continue
			}
		}
		how, e := ss.upstreamHeader(typ, total)
		switch how {
		case upstreamEnds:
			ss.end(*e)
			return
		case upstreamDecode:
			msg, _ := ss.uin.Message(total)
			e, err := ss.upstreamMessage(typ, msg)
			ss.uin.Release()
			if err != nil {
				ss.end(ss.clientWriteFailed(err))
				return
			}
			if e != nil {
				ss.end(*e)
				return
			}
			if typ == 'Z' && ss.pl != nil {
				ss.onBatchAnswered(ss.done.Load())
				l.loopDetach(ss)
			}
		default:
			lp.uRemain, lp.uSkip = total, how == upstreamSkip
		}
	}
	ss.coutMu.Lock()
	err := ss.cout.Flush()
	ss.coutMu.Unlock()
	if err != nil {
		ss.end(ss.clientWriteFailed(err))
		return
	}
	if ss.pl != nil && lp.ub == nil {
		// Between transactions: most sessions of a pool are idle, and
		// an idle one holds no buffer.
		l.idleBuffers(ss)
	}
}

// idleBuffers gives back the client buffers of a session that holds
// nothing in them.
func (l *eventLoop) idleBuffers(ss *session) {
	ss.cin.Idle()
	ss.coutMu.Lock()
	ss.cout.Idle()
	ss.coutMu.Unlock()
}

// flushClient writes what waits for the client, and relays the upstream
// again once the client took it.
func (l *eventLoop) flushClient(ss *session) {
	ss.coutMu.Lock()
	err := ss.cout.Flush()
	pending := ss.cout.Pending()
	ss.coutMu.Unlock()
	if err != nil {
		ss.end(ss.clientWriteFailed(err))
		return
	}
	if pending < clientWriteBuf {
		l.pumpUpstream(ss)
	}
}

// toWorker hands the client direction to a worker goroutine for the next
// message.
func (l *eventLoop) toWorker(ss *session) {
	l.srv.loops.deferred.Add(1)
	lp := ss.lp
	lp.busy = true
	lp.cfd.SetReadWait(true)
	if lp.ufd != nil {
		lp.ufd.SetWriteWait(true)
	} else if lp.ub != nil {
		wire.SetNonBlocking(lp.ub.io, true, false)
	}
	go func() {
		e := ss.contain("client relay", ss.workerStep)
		l.post(loopPost{ss: ss, kind: postWorkerDone, end: e})
	}()
}

// workerStep handles the next client message with waiting reads and
// writes, and flushes what it sent upstream. Its sessionEnd has an empty
// reason when the session goes on.
func (ss *session) workerStep() sessionEnd {
	typ, total, err := ss.cin.Header()
	if err != nil {
		return ss.clientReadFailed(err)
	}
	if ss.pl != nil {
		if e, goOn := ss.pooledWorkerHold(typ, total); !goOn {
			return e
		}
	}
	before := ss.sent.Load()
	e, err := ss.clientMessage(typ, total)
	if ss.pl != nil {
		ss.unhold(ss.sent.Load() != before, typ)
	}
	if e != nil {
		return *e
	} else if err != nil {
		return ss.clientFailed(err)
	}
	if err := ss.uout.Flush(); err != nil {
		return ss.upstreamGone(err)
	}
	return sessionEnd{}
}

// workerDone takes the client direction back from a worker.
func (l *eventLoop) workerDone(ss *session, e sessionEnd) {
	lp := ss.lp
	lp.busy = false
	lp.cfd.SetReadWait(false)
	if lp.ufd != nil {
		lp.ufd.SetWriteWait(false)
	}
	if e.reason != "" {
		ss.end(e)
	}
	if ss.pl == nil {
		l.serve(ss, func() { l.pumpClient(ss) })
		return
	}
	l.serve(ss, func() {
		if lp.ub == nil && !lp.ended.Load() && !l.loopAttachTaken(ss) {
			return
		}
		if lp.ub != nil {
			wire.SetNonBlocking(lp.ub.io, true, true)
			// A ReadyForQuery may have come while the worker wrote.
			l.loopDetach(ss)
			l.pumpUpstream(ss)
		}
		l.pumpClient(ss)
	})
}

// rearm registers the events the session waits for now: the client's
// messages unless a worker holds them or the upstream is not reading,
// the upstream's unless the client is not reading, and room to write
// where bytes wait.
func (l *eventLoop) rearm(ss *session) {
	lp := ss.lp
	ss.coutMu.Lock()
	coutPending := ss.cout.Pending()
	ss.coutMu.Unlock()
	var cev, uev uint32
	on := upstreamOn(ss)
	if !lp.busy {
		up := 0
		if on {
			up = ss.uout.Pending()
		}
		if up > 0 {
			uev |= unix.EPOLLOUT
		}
		// NOTE: a session waiting for a backend still reads its client,
		// up to a buffer's worth, so that its end is seen and the
		// socket need not leave the epoll instance and come back.
		if up < upstreamWrite && (lp.waiter == nil || ss.cin.Buffered() < clientReadBuf) {
			cev |= unix.EPOLLIN
		}
	}
	if coutPending > 0 {
		cev |= unix.EPOLLOUT
	}
	if coutPending < clientWriteBuf {
		uev |= unix.EPOLLIN
	}
	_ = l.interest(lp, dirClient, lp.cfd.Sysfd(), &lp.cev, cev)
	switch {
	case lp.ufd != nil:
		_ = l.interest(lp, dirUpstream, lp.ufd.Sysfd(), &lp.uev, uev)
	case lp.ub != nil:
		l.binterest(lp.ub, uev)
	}
}

// interest registers a socket for events, where it is registered for cur.
// A socket waiting for nothing leaves the epoll instance (cur becomes
// unregistered): epoll reports a hang-up even to a socket registered for
// no event, and the loop would spin on it while a worker holds the
// client or while the client does not read.
func (l *eventLoop) interest(lp *loopState, dir int, fd int, cur *uint32, want uint32) error {
	var err error
	switch {
	case want == *cur:
	case want == 0:
		err = epollCtl(l.epfd, unix.EPOLL_CTL_DEL, fd, nil)
	case *cur == 0:
		err = epollCtl(l.epfd, unix.EPOLL_CTL_ADD, fd, l.data(lp, dir, want))
	default:
		err = epollCtl(l.epfd, unix.EPOLL_CTL_MOD, fd, l.data(lp, dir, want))
	}
	*cur = want
	return err
}

// maybeFree frees an ended session once no worker holds it: its sockets
// leave the loop and close, and the rest of its end runs on a goroutine
// of its own (the audit trail may make it wait).
func (l *eventLoop) maybeFree(ss *session) {
	lp := ss.lp
	if lp.freed || lp.busy || !lp.ended.Load() {
		return
	}
	lp.freed = true
	if int(lp.slot) < len(l.slots) && l.slots[lp.slot] == ss {
		_ = l.interest(lp, dirClient, lp.cfd.Sysfd(), &lp.cev, 0)
		if lp.ufd != nil {
			_ = l.interest(lp, dirUpstream, lp.ufd.Sysfd(), &lp.uev, 0)
		}
		l.slots[lp.slot] = nil
		l.free = append(l.free, lp.slot)
	}
	lp.cfd.Close()
	if lp.ufd != nil {
		if ss.keepUp && ss.uin.Buffered() == 0 {
			// Back to a net.Conn, for the spares' reset and the
			// session that takes it next.
			c, err := lp.ufd.GiveBack()
			if err == nil {
				ss.keptConn = c
			} else {
				ss.log.Warn("keeping the backend of an ended session failed", zap.Error(err))
				ss.keepUp = false
			}
		} else {
			ss.keepUp = false
			lp.ufd.Close()
		}
	}
	if pl := ss.pl; pl != nil {
		lp.ub = nil
		if b := pl.heldAtEnd(); b != nil && b.home == l {
			// Off the epoll instance: it may close now, which
			// settleEnd does once its cancel, if any, is done.
			l.unregister(b)
		}
		if w := lp.waiter; w != nil && pl.pool.withdraw(w) {
			// Otherwise the pool's answer is on its way (granted).
			lp.waiter = nil
		}
		if lp.grant != grantNone {
			l.giveBackGrant(ss, lp.grantB, lp.grant == grantTimeout)
			lp.grant, lp.grantB = grantNone, nil
		}
	}
	go ss.srv.afterLoop(ss)
}

// endLoop is end's part for an event-loop session: the final message,
// then both sockets shut down, which wakes a worker waiting on either,
// and the loop told.
func (lp *loopState) endLoop(ss *session, resp []byte) {
	ss.coutMu.Lock()
	if resp != nil && ss.cout.Write(resp) == nil {
		_ = ss.cout.Flush()
	}
	ss.coutMu.Unlock()
	lp.cfd.Shutdown()
	if lp.ufd != nil && !ss.keepUp {
		lp.ufd.Shutdown()
	}
	lp.ended.Store(true)
	lp.loop.post(loopPost{ss: ss, kind: postEnded})
}
