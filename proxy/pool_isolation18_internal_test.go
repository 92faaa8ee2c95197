package proxy

import (
	"bytes"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/wire"
)

// TestPooledTagUnread holds a transaction-mode session on an event loop
// to keeping its backend when the CommandComplete that says whether its
// SET ran is forwarded unread (the loop's read ended inside it): dropped,
// the setting PostgreSQL kept would reach the next session on the
// backend.
func TestPooledTagUnread(t *testing.T) {
	t.Run("a SET tag forwarded unread keeps the backend rather than drop the setting", func(t *testing.T) {
		tag, _ := (&pgproto3.CommandComplete{CommandTag: []byte("SET")}).Encode(nil)
		in := wire.NewReader(bytes.NewReader(tag[:len(tag)-2]), 64, 1<<20)
		if err := in.ReadOnce(len(tag)); err != nil {
			t.Fatal(err)
		}
		pl := newPoolLink(nil, "t18")
		ss := &session{pl: pl, lp: &loopState{}, uin: in, log: zap.NewNop()}
		ss.txStatus.Store('I')
		q, _ := (&pgproto3.Query{String: "SET TimeZone = 'Asia/Tokyo'"}).Encode(nil)
		pl.mu.Lock()
		pl.noteSetting(&pendingSetting{batch: 1, set: &pooledSetting{name: "timezone", query: q}}, true)
		pl.mu.Unlock()
		if how, end := ss.upstreamHeader('C', len(tag)); how != upstreamForward || end != nil {
			t.Fatalf("the CommandComplete: %v, %v; want it forwarded", how, end)
		}
		pl.mu.Lock()
		ss.settleSettings(1)
		pl.mu.Unlock()
		if pl.keeps == "" {
			t.Errorf("the session gives its backend back, settings %d: a SET PostgreSQL kept would reach the next session", len(pl.settings))
		}
	})
}

// TestPooledSwitchTagUnread holds a switch followed as a kept setting
// (pendingSetting.act) whose SET tag an event loop forwarded unread to
// keeping its backend: pgveil then takes the switch for not made while
// PostgreSQL made it, and the backend, whose pgveil.act_for names the
// viewer, must not go back to the pool recorded as the session's
// settings or as none. (An event loop waits for a whole CommandComplete
// while a switch is followed, so this is defence in depth.)
func TestPooledSwitchTagUnread(t *testing.T) {
	t.Run("a switch's SET tag forwarded unread keeps the backend rather than give back a stale pgveil.act_for", func(t *testing.T) {
		tag, _ := (&pgproto3.CommandComplete{CommandTag: []byte("SET")}).Encode(nil)
		in := wire.NewReader(bytes.NewReader(tag[:len(tag)-2]), 64, 1<<20)
		if err := in.ReadOnce(len(tag)); err != nil {
			t.Fatal(err)
		}
		pl := newPoolLink(nil, "t22h")
		ss := &session{pl: pl, lp: &loopState{}, uin: in, log: zap.NewNop(), srv: &Server{}}
		ss.txStatus.Store('I')
		q, _ := (&pgproto3.Query{String: "SET pgveil.act_for TO 'marie'"}).Encode(nil)
		pl.mu.Lock()
		pl.noteSetting(&pendingSetting{batch: 1, set: &pooledSetting{name: "pgveil.act_for", query: q}, act: true}, true)
		pl.mu.Unlock()
		ss.noteSwitch()
		ss.acting.Store(&actState{login: "marie", info: &SessionInfo{User: "marie"}})
		if how, end := ss.upstreamHeader('C', len(tag)); how != upstreamForward || end != nil {
			t.Fatalf("the CommandComplete: %v, %v; want it forwarded", how, end)
		}
		ss.actSettle('I')
		pl.mu.Lock()
		ss.settleSettings(1)
		pl.mu.Unlock()
		if !ss.actTrack.unknown.Load() {
			t.Errorf("the session acts for %q, known: PostgreSQL's pgveil.act_for is marie, and the tool's viewer", ss.actingFor())
		}
		if pl.keeps == "" {
			t.Errorf("the session gives its backend back acting for %q, settings %d: PostgreSQL's pgveil.act_for is marie", ss.actingFor(), len(pl.settings))
		}
	})
}
