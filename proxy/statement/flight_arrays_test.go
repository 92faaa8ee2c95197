package statement

import (
	"testing"
	"unsafe"
)

// TestFlightLetsItsArraysGo: a client pipelines many batches that each
// prepare and close one name (a flight of that many messages), then
// reads the answers. Once nothing is in flight, the name's flight must
// not keep the arrays its queue grew to: the client can do it again for
// each of the names the Tracker remembers (maxTrackedNames), and what
// the session keeps would grow with each, past MaxHeldBytes, uncounted.
func TestFlightLetsItsArraysGo(t *testing.T) {
	m := newHeldMachine()
	const n = 20000
	for _, name := range []string{"a", "b", "c"} {
		for range n {
			m.run(t, "P "+name+" SELECT 1 | CS "+name+" | S")
		}
		for range n {
			m.run(t, "1 | 3 | Z")
		}
	}
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	if msgs := m.t.heldMessages(); msgs != 0 {
		t.Fatalf("answered: %d messages held", msgs)
	}
	total := 0
	for _, name := range []string{"a", "b", "c"} {
		head := m.t.stmts[name]
		if head == nil || head.fl == nil {
			t.Fatalf("no flight for %s", name)
		}
		// Asking what the name holds cleans its flight up.
		m.t.history(nsStatement, name, m.t.sent+1)
		q := &head.fl.q
		kept := cap(q.front) + cap(q.back)
		total += kept
		t.Logf("%s: flight holds %d items, arrays of %d", name, q.len(), kept)
	}
	if total > 3*keepCap {
		t.Fatalf("with nothing in flight, the flights of 3 names keep arrays of %d items in all (about %d KiB): "+
			"each pipeline of %d messages of a name leaves its array behind", total, total*int(sizeofAggItem())>>10, n)
	}
}

// sizeofAggItem is the size of an item of a flight's queue.
func sizeofAggItem() uintptr {
	var it aggItem[historyEntry]
	return unsafe.Sizeof(it)
}
