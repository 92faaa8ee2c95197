package statement

import (
	"fmt"
	"strings"
	"testing"
)

// newHeldMachine returns a machine whose Tracker audits and follows
// policy versions, as a server with an audit trail and reloads has it.
func newHeldMachine() *machine {
	rw := &seqRewriter{Version: "v1"}
	return &machine{rw: rw, t: NewTracker(true, rw)}
}

// run feeds m the events, separated by "|".
func (m *machine) run(t *testing.T, events string) {
	t.Helper()
	for _, ev := range strings.Split(events, "|") {
		m.event(t, strings.TrimSpace(ev))
	}
}

// history returns the length of the history of the statement name.
func (m *machine) history(name string) int {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	n := 0
	for info := m.t.stmts[name]; info != nil; info = info.prev {
		n++
	}
	return n
}

// portalHistory returns the length of the history of the portal name.
func (m *machine) portalHistory(name string) int {
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	n := 0
	for e := m.t.portals[name]; e != nil; e = e.prev {
		n++
	}
	return n
}

// TestHeldParseSameNameAfterError: Parses of one name in a failed batch
// (the red team's TestDoSParseSameNameNoSync) keep nothing: the name's
// history and what the Tracker holds stay flat, and nothing is held
// once the batch is answered.
func TestHeldParseSameNameAfterError(t *testing.T) {
	m := newHeldMachine()
	text := "SELECT " + strings.Repeat("x", 256<<10)
	m.run(t, "P a "+text+" | P bad deny")
	_, before := m.t.Held()
	for i := 0; i < 1000; i++ {
		m.event(t, "P a "+text)
	}
	msgs, bytes := m.t.Held()
	if h := m.history("a"); h > 1 || bytes != before || msgs > 2 || m.t.Over() {
		t.Fatalf("after 1000 Parses of a: history %d, held %d messages %d bytes (%d before), over %v", h, msgs, bytes, before, m.t.Over())
	}
	m.run(t, "S | 1 | E! marker | Z")
	if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 {
		t.Fatalf("answered: held %d messages %d bytes", msgs, bytes)
	}
	if h := m.history("a"); h != 1 {
		t.Fatalf("answered: history of a %d", h)
	}
}

// TestHeldBindAfterError: Binds of the unnamed portal to one statement
// in a failed batch (TestDoSBindAfterErrorNoSync) keep nothing, and the
// queues let their arrays go once answered.
func TestHeldBindAfterError(t *testing.T) {
	for _, portal := range []string{"-", "p"} {
		m := newHeldMachine()
		m.run(t, "P s SELECT 1 | P bad deny")
		for i := 0; i < 100000; i++ {
			m.event(t, "B "+portal+" s")
		}
		msgs, _ := m.t.Held()
		if h := m.portalHistory(strings.Trim(portal, "-")); h != 1 || msgs > 3 || m.t.Over() {
			t.Fatalf("portal %s: after 100000 Binds: history %d, held %d messages, over %v", portal, h, msgs, m.t.Over())
		}
		m.run(t, "S | 1 | E! marker | Z")
		if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 {
			t.Fatalf("answered: held %d messages %d bytes", msgs, bytes)
		}
		if c := cap(m.t.awaitingBinds) + cap(m.t.awaiting) + cap(m.t.batchPC) + cap(m.t.pending); c > keepCap {
			t.Fatalf("answered: the queues keep %d entries of capacity", c)
		}
	}
}

// TestHeldOverMessages: Binds of distinct portals in a failed batch each
// wait for an answer that never comes; past MaxHeldMessages the Tracker
// is Over. Once the batch is answered nothing is held.
func TestHeldOverMessages(t *testing.T) {
	m := newHeldMachine()
	m.run(t, "P s SELECT 1 | P bad deny")
	i := 0
	for ; !m.t.Over() && i < 2*MaxHeldMessages; i++ {
		m.event(t, fmt.Sprintf("B p%d s", i))
	}
	if !m.t.Over() || i < MaxHeldMessages-10 || i > MaxHeldMessages+10 {
		t.Fatalf("over %v after %d Binds (bound %d)", m.t.Over(), i, MaxHeldMessages)
	}
	m.run(t, "S | 1 | E! marker | Z")
	if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 {
		t.Fatalf("answered: held %d messages %d bytes", msgs, bytes)
	}
	if c := cap(m.t.awaitingBinds); c > keepCap {
		t.Fatalf("answered: awaitingBinds keeps %d entries of capacity", c)
	}
}

// TestHeldOverBytes: Parses of distinct names, each of a large text, in
// a failed batch: past MaxHeldBytes the Tracker is Over.
func TestHeldOverBytes(t *testing.T) {
	m := newHeldMachine()
	text := "SELECT " + strings.Repeat("x", 1<<20)
	m.run(t, "P bad deny")
	i := 0
	for ; !m.t.Over() && i < 1000; i++ {
		m.event(t, fmt.Sprintf("P s%d %s", i, text))
	}
	// Each holds the client's text and the rewritten one.
	if want := MaxHeldBytes / (2 << 20); !m.t.Over() || i > want+1 {
		t.Fatalf("over %v after %d Parses of 1 MiB (want about %d)", m.t.Over(), i, want)
	}
	m.run(t, "S | E! marker | Z")
	if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 {
		t.Fatalf("answered: held %d messages %d bytes", msgs, bytes)
	}
	// The failed Parses keep no texts.
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	for name, info := range m.t.stmts {
		if name != "bad" && info.SQL != "" {
			t.Fatalf("%s keeps its text after its batch failed", name)
		}
	}
}

// TestHeldCompaction: Closes and Parses of one name alternated in a
// failed batch are followed while it is in flight (any may be answered),
// and dropped from the name's history at its ReadyForQuery.
func TestHeldCompaction(t *testing.T) {
	m := newHeldMachine()
	m.run(t, "P a SELECT 0 | S | 1 | Z | P bad deny")
	for i := 1; i <= 1000; i++ {
		m.run(t, fmt.Sprintf("CS a | P a SELECT %d", i))
	}
	if h := m.history("a"); h != 2001 {
		t.Fatalf("in flight: history of a %d, want 2001", h)
	}
	m.run(t, "S | E! marker | Z")
	if h := m.history("a"); h > 2 {
		t.Fatalf("answered: history of a %d", h)
	}
	if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 {
		t.Fatalf("answered: held %d messages %d bytes", msgs, bytes)
	}
	m.run(t, "reload v2")
	if got := m.event(t, "B p a"); got != "inject CS(a) P(a: /*v2*/ SELECT 0)" {
		t.Fatalf("B p a: %s", got)
	}
}

// TestHeldJDBCBatch: a pipelined batch as PgJDBC sends it (a Bind and
// an Execute per statement, then a Sync) holds what is in flight, and a
// long one whose answers the client reads as they come holds only
// those not answered yet.
func TestHeldJDBCBatch(t *testing.T) {
	m := newHeldMachine()
	m.run(t, "P S_1 INSERT 1 | S | 1 | Z")
	for i := 0; i < 300; i++ {
		m.run(t, "B - S_1 | E -")
	}
	if msgs, _ := m.t.Held(); msgs != 600 || m.t.Over() {
		t.Fatalf("300 statements in flight: held %d messages, over %v", msgs, m.t.Over())
	}
	m.event(t, "S")
	for i := 0; i < 300; i++ {
		m.run(t, "2 | C")
	}
	m.event(t, "Z")
	if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 {
		t.Fatalf("answered: held %d messages %d bytes", msgs, bytes)
	}
	// Longer than the bound, answered as it goes.
	for i := 0; i < MaxHeldMessages; i++ {
		m.run(t, "B - S_1 | E - | 2 | C")
	}
	if msgs, _ := m.t.Held(); msgs > 2 || m.t.Over() {
		t.Fatalf("a long batch answered as it goes: held %d messages, over %v", msgs, m.t.Over())
	}
}

// TestDropFrontShrinks: a queue emptied, or left with far less than its
// capacity, lets its array go.
func TestDropFrontShrinks(t *testing.T) {
	s := make([]int, 100000)
	if r := DropFront(s, len(s)); r != nil {
		t.Fatalf("emptied: cap %d", cap(r))
	}
	r := DropFront(s, len(s)-10)
	if len(r) != 10 || cap(r) > 20 {
		t.Fatalf("10 left: len %d cap %d", len(r), cap(r))
	}
	// More stay than go: resliced, no copy.
	if r := DropFront(make([]int, 100), 10); len(r) != 90 || cap(r) != 90 {
		t.Fatalf("90 left: len %d cap %d", len(r), cap(r))
	}
	small := make([]int, 10, keepCap)
	if r := DropFront(small, 5); cap(r) != keepCap || len(r) != 5 {
		t.Fatalf("a small queue: len %d cap %d", len(r), cap(r))
	}
}

// TestHeldSimpleQueries: Queries pipelined with no extended message
// since the last Sync each get a ReadyForQuery of their own: a client
// that sends them faster than it reads the answers is bounded by those
// answers, not by MaxHeldMessages. The same Queries after an extended
// message, which an error there makes the server skip, count.
func TestHeldSimpleQueries(t *testing.T) {
	m := newHeldMachine()
	n := MaxHeldMessages + 1000
	for i := 0; i < n; i++ {
		m.sent++
		m.t.OnSimpleBatchClosed(m.sent)
		st := &Statement{Source: SourceQuery, Text: "SELECT 1"}
		res, r := m.check(t, st)
		m.t.OnStatement(st, res, r)
	}
	if msgs, bytes := m.t.Held(); msgs != 0 || bytes != 0 || m.t.Over() {
		t.Fatalf("%d simple Queries in flight: held %d messages %d bytes, over %v", n, msgs, bytes, m.t.Over())
	}
	m.t.OnReadyForQuery(1, int64(n), 'I')
	if m.t.simpleHeld != 0 || len(m.t.pending) != 0 || len(m.t.batchPC) != 0 {
		t.Fatalf("answered: simpleHeld %d pending %d batchPC %d", m.t.simpleHeld, len(m.t.pending), len(m.t.batchPC))
	}
	m.run(t, "P s SELECT 1 | P bad deny")
	for i := 0; i < n && !m.t.Over(); i++ {
		m.event(t, "Q SELECT 1")
	}
	if !m.t.Over() {
		t.Fatalf("%d Queries after an extended message: not over", n)
	}
}
