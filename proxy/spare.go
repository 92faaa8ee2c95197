package proxy

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/wire"
)

// spareResetTimeout bounds the reset of a kept backend.
const spareResetTimeout = 5 * time.Second

// spares keeps, in session mode, the backends of sessions that ended
// cleanly, for later sessions of the same user, application and startup
// parameters (upstream.pool.keep_idle): a client that connects often, as
// BI tools do, then finds a backend already started, authenticated and
// warm, as PgBouncer's session pooling gives.
//
// NOTE: a backend is kept only when its session ended with the client's
// Terminate while the backend was idle outside a transaction, with
// nothing outstanding and no byte of it read but not relayed (keepable).
// It is then reset with DISCARD ALL, sent as a simple query, which also
// drops the unnamed prepared statement, and kept only when the server
// answered with exactly that command's tag and ReadyForQuery idle, and
// nothing else but ParameterStatus and notices. Only a session of the
// same key takes it: what the reset might not cover (an extension's own
// session state) is at worst the same user's.
type spares struct {
	log     *zap.Logger
	metrics *Metrics
	// max caps the backends kept; idleTimeout closes one kept that long.
	max         int
	idleTimeout time.Duration

	mu sync.Mutex
	// NOTE: idle, n, resetting and closed are guarded by mu.
	// idle holds the kept backends by key, the most recently kept last.
	idle map[string][]spare
	// n counts the backends of idle.
	n int
	// resetting holds the connections being reset, for close to
	// interrupt.
	resetting map[net.Conn]struct{}
	closed    bool
	// janitor closes the backends kept past idleTimeout, and those the
	// server closed (spareCheck); armed while n > 0.
	janitor *time.Timer
	// wg counts the resets running.
	wg sync.WaitGroup
}

// spare is one kept backend.
type spare struct {
	up    *upstreamConn
	since time.Time
}

// newSpares returns the spares of a session-mode server, nil when it
// keeps no backend.
func newSpares(log *zap.Logger, metrics *Metrics, max int, idleTimeout time.Duration) *spares {
	if max <= 0 {
		return nil
	}
	return &spares{log: log, metrics: metrics, max: max, idleTimeout: idleTimeout, idle: map[string][]spare{}, resetting: map[net.Conn]struct{}{}}
}

// count returns how many backends are kept; 0 for nil.
func (sp *spares) count() int {
	if sp == nil {
		return 0
	}
	sp.mu.Lock()
	defer sp.mu.Unlock()
	return sp.n
}

// spareKey is the key of a session's backend: the user, the client's
// application_name and the startup parameters it forwards, which make
// the backend's startup packet and so the values DISCARD ALL resets to.
func spareKey(user, app string, forward map[string]string) string {
	// NOTE: none of them holds a NUL byte (they come from a startup
	// packet's C strings), which makes the key unambiguous.
	return user + "\x00" + app + "\x00" + poolKey(forward)
}

// take returns a kept backend of key, still open and quiet, or nil.
func (sp *spares) take(key string) *upstreamConn {
	if sp == nil {
		return nil
	}
	for {
		sp.mu.Lock()
		list := sp.idle[key]
		if len(list) == 0 {
			sp.mu.Unlock()
			return nil
		}
		s := list[len(list)-1]
		list[len(list)-1] = spare{}
		if list = list[:len(list)-1]; len(list) == 0 {
			delete(sp.idle, key)
		} else {
			sp.idle[key] = list
		}
		sp.n--
		sp.mu.Unlock()
		if time.Since(s.since) < sp.idleTimeout && connQuiet(s.up.conn) {
			s.up.kept = true
			sp.metrics.keptBackendReused()
			return s.up
		}
		// Closed by the server, or sent something while kept.
		s.up.conn.Close()
	}
}

// keep resets up, the backend of a session of key that ended keepable,
// in a goroutine of its own, and keeps it when the reset succeeds.
func (sp *spares) keep(key string, up *upstreamConn) {
	sp.mu.Lock()
	if sp.closed {
		sp.mu.Unlock()
		up.conn.Close()
		return
	}
	sp.resetting[up.conn] = struct{}{}
	sp.wg.Add(1)
	sp.mu.Unlock()
	go func() {
		defer sp.wg.Done()
		err := resetBackend(up)
		sp.mu.Lock()
		delete(sp.resetting, up.conn)
		if err == nil && !sp.closed {
			sp.add(key, up)
			sp.mu.Unlock()
			return
		}
		sp.mu.Unlock()
		if err != nil {
			sp.log.Info("closing an ended session's backend: its reset failed", zap.Error(err))
		}
		up.conn.Close()
	}()
}

// add keeps up under key, closing the backend kept the longest when
// max are kept already.
// NOTE: sp.mu is held.
func (sp *spares) add(key string, up *upstreamConn) {
	if sp.n >= sp.max {
		var oldKey string
		var oldest time.Time
		for k, list := range sp.idle {
			if t := list[0].since; oldKey == "" || t.Before(oldest) {
				oldKey, oldest = k, t
			}
		}
		sp.removeFirst(oldKey).conn.Close()
	}
	sp.idle[key] = append(sp.idle[key], spare{up: up, since: time.Now()})
	sp.n++
	first := min(sp.idleTimeout, spareCheck)
	if sp.janitor == nil {
		sp.janitor = time.AfterFunc(first, sp.expire)
	} else if sp.n == 1 {
		sp.janitor.Reset(first)
	}
}

// removeFirst removes and returns the backend of key kept the longest.
// NOTE: sp.mu is held; key has one.
func (sp *spares) removeFirst(key string) *upstreamConn {
	list := sp.idle[key]
	up := list[0].up
	if len(list) == 1 {
		delete(sp.idle, key)
	} else {
		sp.idle[key] = append(list[:0:0], list[1:]...)
	}
	sp.n--
	return up
}

// spareCheck is how often the kept backends are looked at for those the
// server closed or wrote to (a restart, pg_terminate_backend): closed
// then, rather than held open and counted by pgveil_kept_backends until
// their idle timeout.
const spareCheck = 5 * time.Second

// expire closes the backends kept longer than idleTimeout and those no
// longer quiet (connQuiet), and arms the janitor again: for the next one
// to pass idleTimeout, or spareCheck, whichever comes first.
func (sp *spares) expire() {
	var closing []*upstreamConn
	sp.mu.Lock()
	now := time.Now()
	next := time.Duration(0)
	for k, list := range sp.idle {
		// NOTE: the order of list (oldest first) is kept.
		live := list[:0]
		for _, s := range list {
			if now.Sub(s.since) >= sp.idleTimeout || !connQuiet(s.up.conn) {
				closing = append(closing, s.up)
				sp.n--
				continue
			}
			live = append(live, s)
		}
		clear(list[len(live):])
		if len(live) == 0 {
			delete(sp.idle, k)
			continue
		}
		sp.idle[k] = live
		if d := sp.idleTimeout - now.Sub(live[0].since); next == 0 || d < next {
			next = d
		}
	}
	if next > spareCheck {
		next = spareCheck
	}
	if next > 0 && !sp.closed {
		sp.janitor.Reset(next)
	}
	sp.mu.Unlock()
	for _, up := range closing {
		up.conn.Close()
	}
}

// close closes every kept backend, interrupts the resets running and
// waits for them; nothing is kept afterwards.
func (sp *spares) close() {
	if sp == nil {
		return
	}
	sp.mu.Lock()
	sp.closed = true
	if sp.janitor != nil {
		sp.janitor.Stop()
	}
	var closing []net.Conn
	for _, list := range sp.idle {
		for _, s := range list {
			closing = append(closing, s.up.conn)
		}
	}
	for c := range sp.resetting {
		closing = append(closing, c)
	}
	sp.idle, sp.n = map[string][]spare{}, 0
	sp.mu.Unlock()
	for _, c := range closing {
		c.Close()
	}
	sp.wg.Wait()
}

// dropAll closes every kept backend, and reports whether there was one:
// a dial the server refused for want of connection slots may then try
// again.
func (sp *spares) dropAll() bool {
	if sp == nil {
		return false
	}
	sp.mu.Lock()
	idle := sp.idle
	sp.idle, sp.n = map[string][]spare{}, 0
	sp.mu.Unlock()
	for _, list := range idle {
		for _, s := range list {
			s.up.conn.Close()
		}
	}
	return len(idle) > 0
}

// resetBackend runs DISCARD ALL on up and checks the answer (see spares).
// The ParameterStatus values the server reports update up.params, which
// the next session is told.
func resetBackend(up *upstreamConn) error {
	c := up.conn
	if err := c.SetDeadline(time.Now().Add(spareResetTimeout)); err != nil {
		return err
	}
	q, err := (&pgproto3.Query{String: "DISCARD ALL"}).Encode(nil)
	if err != nil {
		return err
	}
	if _, err := c.Write(q); err != nil {
		return fmt.Errorf("sending DISCARD ALL: %w", err)
	}
	r := wire.NewReader(c, 512, 1<<20)
	discarded := false
	for {
		typ, total, err := r.Header()
		if err != nil {
			return fmt.Errorf("reading the answer to DISCARD ALL: %w", err)
		}
		msg, err := r.Message(total)
		if err != nil {
			return fmt.Errorf("reading the answer to DISCARD ALL: %w", err)
		}
		body := msg[wire.HeaderLen:]
		switch typ {
		case 'C':
			if discarded || !bytes.Equal(body, []byte("DISCARD ALL\x00")) {
				return fmt.Errorf("DISCARD ALL answered with the tag %q", bytes.TrimRight(body, "\x00"))
			}
			discarded = true
		case 'S':
			var ps pgproto3.ParameterStatus
			if err := ps.Decode(body); err != nil {
				return fmt.Errorf("decoding a parameter status: %w", err)
			}
			if up.params[ps.Name] != ps.Value {
				// NOTE: a copy: the sessions that started on the backend
				// may still read the map they were told.
				params := make(map[string]string, len(up.params)+1)
				for k, v := range up.params {
					params[k] = v
				}
				params[ps.Name] = ps.Value
				up.params = params
			}
		case 'N', 'A':
			// A notice, or a notification of a channel the session
			// listened to: nobody to tell.
		case 'Z':
			if !discarded || len(body) != 1 || body[0] != 'I' {
				return errors.New("DISCARD ALL did not end idle")
			}
			if r.Buffered() > 0 {
				return errors.New("the server sent more after DISCARD ALL")
			}
			return c.SetDeadline(time.Time{})
		case 'E':
			var e pgproto3.ErrorResponse
			_ = e.Decode(body)
			return fmt.Errorf("DISCARD ALL failed: %s: %s", e.Code, e.Message)
		default:
			return fmt.Errorf("unexpected message %q in the answer to DISCARD ALL", typ)
		}
	}
}
