package proxy_test

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pgveil/pgveil/proxy/internal/proxytest"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/pgveil/pgveil/policy"
	"github.com/pgveil/pgveil/proxy"
)

// cancelHolder is a TCP forwarder in front of the test cluster that
// relays every connection but the first carrying a CancelRequest: it
// reads that one whole and holds its connection, unanswered, until the
// test lets it through (deliver). It stands for an upstream that does
// not answer a cancel connection promptly: a full accept queue, a
// partition.
type cancelHolder struct {
	t    *testing.T
	ln   net.Listener
	held chan heldCancel
	// holding reports that it holds, or held, a cancel request.
	holding atomic.Bool
	wg      sync.WaitGroup
	mu      sync.Mutex
	// conns are the connections it relays, closed at the test's end.
	conns []net.Conn
}

// heldCancel is a cancel connection the forwarder holds, and the
// CancelRequest it carried.
type heldCancel struct {
	c   net.Conn
	req []byte
}

const cancelRequestCode = 80877102

func startCancelHolder(t *testing.T) *cancelHolder {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h := &cancelHolder{t: t, ln: ln, held: make(chan heldCancel, 1)}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			h.track(c)
			h.wg.Add(1)
			go func() { defer h.wg.Done(); h.handle(c) }()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		h.mu.Lock()
		for _, c := range h.conns {
			c.Close()
		}
		h.mu.Unlock()
		h.wg.Wait()
	})
	return h
}

func (h *cancelHolder) addr() string { return h.ln.Addr().String() }

func (h *cancelHolder) track(c net.Conn) {
	h.mu.Lock()
	h.conns = append(h.conns, c)
	h.mu.Unlock()
}

func (h *cancelHolder) handle(c net.Conn) {
	var head [8]byte
	if _, err := io.ReadFull(c, head[:]); err != nil {
		return
	}
	if binary.BigEndian.Uint32(head[4:]) == cancelRequestCode && h.holding.CompareAndSwap(false, true) {
		req := make([]byte, 16)
		copy(req, head[:])
		if _, err := io.ReadFull(c, req[8:]); err != nil {
			return
		}
		h.held <- heldCancel{c: c, req: req}
		return
	}
	up, err := net.Dial("tcp", proxytest.Cluster.Addr())
	if err != nil {
		return
	}
	h.track(up)
	if _, err := up.Write(head[:]); err != nil {
		return
	}
	h.pipe(c, up)
}

// pipe copies a to b and b to a until either ends, then closes both.
func (h *cancelHolder) pipe(a, b net.Conn) {
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		_, _ = io.Copy(a, b)
		a.Close()
		b.Close()
	}()
	_, _ = io.Copy(b, a)
	a.Close()
	b.Close()
}

// deliver lets a held cancel request through to the test cluster.
func (h *cancelHolder) deliver(hc heldCancel) {
	h.t.Helper()
	up, err := net.Dial("tcp", proxytest.Cluster.Addr())
	if err != nil {
		h.t.Fatal(err)
	}
	h.track(up)
	if _, err := up.Write(hc.req); err != nil {
		h.t.Fatal(err)
	}
	h.wg.Add(1)
	go func() { defer h.wg.Done(); h.pipe(hc.c, up) }()
}

// stillOpen reports whether pgveil still waits on a held cancel
// connection: it has neither closed it nor written to it.
func stillOpen(t *testing.T, c net.Conn) bool {
	t.Helper()
	rc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var n int
	var rerr error
	var b [1]byte
	if err := rc.Read(func(fd uintptr) bool {
		n, _, rerr = unix.Recvfrom(int(fd), b[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		return true
	}); err != nil {
		t.Fatal(err)
	}
	return n < 0 && errors.Is(rerr, unix.EAGAIN)
}

// loopOf returns the index of the event loop relaying the session of
// pid, once it is on one.
//
// NOTE: a session moves onto its loop after its client was told it is
// ready: a client may see ReadyForQuery before the move (it failed once
// under -race in CI).
func loopOf(t *testing.T, s *proxy.Server, pid uint32) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if l := proxy.LoopOf(s, pid); l >= 0 {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatal("the session is not on an event loop")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestEndedSessionCancelsOffItsLoop: the cancel request a session's end
// sends for the statement it leaves running goes on a goroutine of its
// own. It went on the ending session's event loop, which relays many
// sessions: every session of the loop waited for the cancel connection
// (a dial, maybe a TLS handshake) and, while the upstream left it
// unanswered, up to the cancel's 5s timeout. A BI user closing a
// dashboard mid-query froze the loop's other users.
//
// The session's place under its login's cap and, in transaction mode,
// its backend's slot in the pool are given back only once the cancel is
// delivered: the statement runs until then.
func TestEndedSessionCancelsOffItsLoop(t *testing.T) {
	for _, mode := range []string{policy.PoolSession, policy.PoolTransaction} {
		t.Run("in "+mode+" mode", func(t *testing.T) {
			proxytest.OnEveryRelay(t, func(t *testing.T, relay string) { testEndedSessionCancelsOffItsLoop(t, mode, relay) })
		})
	}
}

func testEndedSessionCancelsOffItsLoop(t *testing.T, mode, relay string) {
	proxytest.NoLeaks(t)
	// NOTE: the ending session's cancel waits far longer than the test
	// takes: what the test sees while it is held does not depend on
	// the machine's speed.
	t.Cleanup(proxy.SetEndCancelTimeout(time.Minute))
	h := startCancelHolder(t)
	reg := prometheus.NewRegistry()
	pooled := mode == policy.PoolTransaction
	p, _ := proxytest.StartDemoWith(t, "../configs/demo.hcl", func(c *policy.Config) {
		c.Upstream.Address = h.addr()
		c.Listen.Relay = relay
		c.Users["hq"].MaxConnections = 1
		if pooled {
			c.Upstream.Pool = policy.Pool{Mode: policy.PoolTransaction, Size: 2, WaitTimeout: time.Minute, IdleTimeout: time.Minute}
		}
	}, func(o *proxy.Options) { o.Metrics = proxy.NewMetrics(reg) })
	ctx := context.Background()

	ender := p.SimpleConn(t, "hq")
	other := p.SimpleConn(t, "marie")
	if relay == policy.RelayEventLoop {
		loop := loopOf(t, p.Server, ender.PgConn().PID())
		// Sessions go round the loops: one of the next few shares
		// the ender's.
		for i := 0; loopOf(t, p.Server, other.PgConn().PID()) != loop; i++ {
			if i > 2*runtime.GOMAXPROCS(0) {
				t.Fatal("no session shares the ender's event loop")
			}
			other = p.SimpleConn(t, "marie")
		}
	}
	if got, err := one(ctx, other, "SELECT 'warm'"); err != nil || got != "warm" {
		t.Fatalf("%q, %v", got, err)
	}

	mark := fmt.Sprintf("end cancel %s %s %d", mode, relay, time.Now().UnixNano())
	fe := ender.PgConn().Frontend()
	fe.Send(&pgproto3.Query{String: "SELECT pg_sleep(60), '" + mark + "'"})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	proxytest.WaitRunning(t, mark)
	// The client hangs up mid-statement.
	ender.PgConn().Conn().Close()
	var held heldCancel
	select {
	case held = <-h.held:
	case <-time.After(10 * time.Second):
		t.Fatal("pgveil sent no cancel request for the ended session's statement")
	}

	t.Run("another session of the loop is served while the cancel waits", func(t *testing.T) {
		got, err := one(ctx, other, "SELECT 'served'")
		if err != nil || got != "served" {
			t.Fatalf("%q, %v", got, err)
		}
		if !stillOpen(t, held.c) {
			t.Fatal("the statement was served only once pgveil gave up its cancel request: it waited for it")
		}
	})

	t.Run("the ended session still counts under its login's cap until the cancel is delivered", func(t *testing.T) {
		c, err := pgx.Connect(ctx, p.URL("hq", "demo-hq", nil))
		var pe *pgconn.PgError
		if err == nil {
			c.Close(ctx)
		}
		if !errors.As(err, &pe) || pe.Code != "53300" {
			t.Fatalf("a second session of hq (max_connections = 1): want 53300, got %v", err)
		}
	})

	var waiting chan error
	if pooled {
		third := p.SimpleConn(t, "lea")
		t.Run("the ended session's backend keeps its slot in the pool until the cancel is delivered", func(t *testing.T) {
			if _, err := other.Exec(ctx, "BEGIN"); err != nil {
				t.Fatal(err)
			}
			if _, err := one(ctx, other, "SELECT 'holding'"); err != nil {
				t.Fatal(err)
			}
			waiting = make(chan error, 1)
			go func() {
				got, err := one(ctx, third, "SELECT 'after the cancel'")
				if err == nil && got != "after the cancel" {
					err = fmt.Errorf("got %q", got)
				}
				waiting <- err
			}()
			proxytest.Eventually(t, 10*time.Second, "a third session to wait for a backend", func() bool {
				return gauge(t, reg, "pgveil_pool_waiting") == 1
			})
		})
	}
	if !stillOpen(t, held.c) {
		t.Fatal("pgveil gave up its cancel request while the test looked")
	}

	h.deliver(held)
	t.Run("once delivered, the statement stops and the places free up", func(t *testing.T) {
		proxytest.Eventually(t, 10*time.Second, "the ended session's statement to stop upstream", func() bool {
			return directCount0(t, mark) == 0
		})
		proxytest.Eventually(t, 10*time.Second, "hq to connect again", func() bool {
			c, err := pgx.Connect(ctx, p.URL("hq", "demo-hq", nil))
			if err != nil {
				return false
			}
			c.Close(ctx)
			return true
		})
		if waiting != nil {
			if err := <-waiting; err != nil {
				t.Fatal(err)
			}
			if _, err := other.Exec(ctx, "COMMIT"); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// directCount0 counts the statements running upstream whose text holds
// mark.
func directCount0(t *testing.T, mark string) int {
	t.Helper()
	var n int
	fmt.Sscan(proxytest.Direct(t, "SELECT count(*) FROM pg_stat_activity WHERE strpos(query, '"+mark+"') > 0 AND query NOT LIKE '%pg_stat_activity%'")[0][0], &n)
	return n
}
