package proxy

import (
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/rewrite"
)

// Settings in transaction mode.
//
// A SET outlives its transaction, on a backend the session may not hold
// next time. A SET (or RESET) the session sends alone, outside a
// transaction block and with nothing else in flight, is known to have
// taken effect when its batch ends idle without an error: the session
// then keeps it (pooledSetting) and replays it, after a RESET ALL, on
// any backend it takes whose settings are not its own (backend.settings).
// Any other SET keeps the session on its backend (keepBackend), which is
// closed at the session's end.
//
// NOTE: the replay sends the text pgveil forwarded for the client's SET,
// as the rewriter made it; RESET ALL returns a backend to its startup
// values, the pinned settings among them.

// pooledSetting is a setting a transaction-mode session changed.
type pooledSetting struct {
	// name is the setting, lowercase, as rewrite.Result.Keeps names it.
	name string
	// query is the Query message that sets it upstream, encoded.
	query []byte
}

// pendingSetting is a SET or RESET awaiting the ReadyForQuery of its
// batch.
type pendingSetting struct {
	batch int64
	// set is the setting a SET changes; nil for a RESET, whose settings
	// are resets (rewrite.Result.Resets).
	set    *pooledSetting
	resets []string
}

// resetAll is the Query that returns a backend to its startup settings.
var resetAll, _ = (&pgproto3.Query{String: "RESET ALL"}).Encode(nil)

// singleSet returns the setting res changes when it is one SET of a
// setting a session may keep, and whether it is.
func singleSet(res *rewrite.Result) (string, bool) {
	if len(res.Kinds) != 1 || res.Kinds[0] != "set" || len(res.Keeps) != 1 || res.Act != nil {
		return "", false
	}
	return strings.CutPrefix(res.Keeps[0], "SET ")
}

// notePoolState follows, in a transaction-mode session, what the
// statement res, forwarded from src (the prepared statement parseName
// for a Parse), leaves on the backend: a SET or RESET it can replay, or
// state that keeps the backend to the session's end. Protocol-level
// prepared statements follow the session (pooled_stmt.go).
func (ss *session) notePoolState(res *rewrite.Result, src Source, parseName string) {
	pl := ss.pl
	if pl == nil {
		return
	}
	if _, ok := ss.srv.rewriter.(PassThrough); ok {
		// Nothing parsed: nothing known of what the text leaves.
		ss.keepBackend("statements forwarded unparsed")
		return
	}
	if res.Act != nil {
		ss.keepBackend("a change of the acting user")
		return
	}
	name, isSet := singleSet(res)
	isReset := len(res.Kinds) == 1 && res.Kinds[0] == "set" && len(res.Keeps) == 0 && len(res.Resets) > 0
	switch {
	case isSet || isReset:
		p := &pendingSetting{resets: res.Resets, batch: ss.sent.Load()}
		if src != SourceQuery {
			p.batch++
		}
		if isSet {
			q, err := (&pgproto3.Query{String: res.SQL}).Encode(nil)
			if err != nil {
				ss.keepBackend("SET " + name)
				return
			}
			p.set = &pooledSetting{name: name, query: q}
		}
		if !ss.pendSetting(p, src, parseName) {
			what := "SET " + name
			if isReset {
				what = "RESET"
			}
			ss.keepBackend(what + " inside a transaction block or a pipeline")
		}
	case len(res.Keeps) > 0:
		ss.keepBackend(res.Keeps[0])
	case len(res.Resets) > 0:
		ss.keepBackend("RESET among other statements")
	}
}

// pendSetting makes p the session's pending setting when its statement
// runs alone: outside a transaction block, nothing else in flight, and
// for the extended protocol the unnamed statement, first of its batch.
// It reports whether it did.
func (ss *session) pendSetting(p *pendingSetting, src Source, parseName string) bool {
	pl := ss.pl
	if ss.txStatus.Load() != 'I' {
		return false
	}
	inFlight := ss.sent.Load() - ss.done.Load()
	switch src {
	case SourceQuery:
		inFlight-- // the Query itself
	case SourceParse:
		if parseName != "" {
			return false
		}
	default:
		return false
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if inFlight != 0 || pl.wasOpen || pl.pendingSet != nil {
		return false
	}
	pl.pendingSet = p
	return true
}

// settleSetting applies or drops the pending setting once its batch,
// done, is answered: applied when the batch ended idle without an error
// (backend relay, at a ReadyForQuery; mu held).
func (ss *session) settleSetting(done int64) {
	pl := ss.pl
	failed := pl.batchErr
	pl.batchErr = false
	p := pl.pendingSet
	if p == nil || p.batch > done {
		return
	}
	pl.pendingSet = nil
	if failed || ss.txStatus.Load() != 'I' {
		return
	}
	if p.set != nil {
		pl.forgetSetting(p.set.name)
		pl.settings = append(pl.settings, p.set)
	}
	for _, r := range p.resets {
		if r == rewrite.ResetAll {
			pl.settings = nil
			continue
		}
		pl.forgetSetting(r)
		if strings.HasPrefix(r, "default_transaction_") {
			pl.forgetSetting("session characteristics")
		}
	}
	var b strings.Builder
	for _, s := range pl.settings {
		b.Write(s.query)
	}
	pl.settingsKey = b.String()
	if pl.b != nil {
		pl.b.settings = pl.settingsKey
	}
}

// forgetSetting drops the session's setting name (mu held).
func (pl *poolLink) forgetSetting(name string) {
	kept := pl.settings[:0]
	for _, s := range pl.settings {
		if s.name != name {
			kept = append(kept, s)
		}
	}
	clear(pl.settings[len(kept):])
	pl.settings = kept
}

// replaySettings appends to out what gives the backend b the session's
// settings, when its own differ: RESET ALL, then the session's SETs. It
// returns out and the number of Queries appended (mu held).
func (pl *poolLink) replaySettings(b *backend, out []byte) ([]byte, int) {
	if b.settings == pl.settingsKey {
		return out, 0
	}
	n := 0
	if b.settings != "" {
		out = append(out, resetAll...)
		n++
	}
	for _, s := range pl.settings {
		out = append(out, s.query...)
		n++
	}
	b.settings = pl.settingsKey
	return out, n
}
