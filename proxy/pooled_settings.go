package proxy

import (
	"bytes"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5/pgproto3"
	"go.uber.org/zap"

	"github.com/pgveil/pgveil/proxy/statement"
	"github.com/pgveil/pgveil/proxy/wire"
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
//
// A SET or RESET sent alone inside a transaction block (or, in the
// extended protocol, after nothing but BEGIN in its batch, as PgJDBC
// sends it with autocommit off) takes effect when the block commits and
// is undone when it rolls back: the session notes it (txSets) and reads
// the CommandComplete tags until the block ends (txEnd). A COMMIT keeps
// the block's settings, a ROLLBACK drops them; a block rewound to a
// savepoint, chained or prepared leaves what PostgreSQL kept unknown,
// and the session keeps its backend.
//
// A SET or RESET of the extended protocol is noted at its Parse and
// takes effect at the first Execute of a portal bound from it
// (pooledExecute), in that Execute's place among the session's settings:
// one never run changes nothing.
//
// A change of the acting user (actfor.go) is the SET or RESET of
// pgveil.act_for pgveil forwards in its place, and follows the session
// the same way when sent alone outside a transaction block with nothing
// else in flight (pendingSetting.act), as Metabase, Superset and PgJDBC
// send it: before 2026-12 every switch kept the backend, and a BI service
// bracketing each query with SET ROLE … SET ROLE NONE held one per
// connection. A switch in any other shape keeps the backend.
//
// Any other SET keeps the session on its backend (keepBackend), which is
// closed at the session's end.
//
// NOTE: the replay sends the text pgveil forwarded for the client's SET,
// as the rewriter made it; RESET ALL returns a backend to its startup
// values, the pinned settings among them. A backend whose settings read
// as the session's texts gets no replay, so the texts must give the
// values whatever came before them: a SET that keeps part of the last
// value (DateStyle, SET SESSION CHARACTERISTICS) follows the earlier
// ones instead of replacing them (applySetting), and SET … FROM
// CURRENT, which names no value, is refused.

// pooledSetting is a setting a transaction-mode session changed.
type pooledSetting struct {
	// name is the setting, lowercase, as rewrite.Result.Keeps names it.
	name string
	// query is the Query message that sets it upstream, encoded.
	query []byte
}

// pendingSetting is a SET or RESET noted, awaiting the end of its
// transaction.
type pendingSetting struct {
	// batch is the number of the batch that sends it.
	batch int64
	// set is the setting a SET changes; nil for a RESET, whose settings
	// are resets (rewrite.Result.Resets).
	set    *pooledSetting
	resets []string
	// parsed reports a SET or RESET of the extended protocol, noted at
	// its Parse: it takes effect only if a portal of it runs, and then
	// in the order of that Execute (pooledExecute), which ran reports.
	// NOTE: ran is guarded by poolLink.mu. Before 2026-12 the setting
	// counted from its Parse, and a RESET parsed and never run, or a SET
	// run in a later batch of its block after a RESET, left the session
	// believing the backend's settings were its texts while they were
	// not: another user's session of those texts took the backend, and
	// the first session's time zone with it.
	parsed, ran bool
	// act reports a change of the acting user: a switch, whose set or
	// resets are of pgveil.act_for, or a RESET ALL while acting for a
	// user (resetAct). It is noted only alone in an implicit
	// transaction (pendSetting), and kept only when that implicit
	// transaction committed (settleSettings): in any other shape the
	// session keeps its backend, whose pgveil.act_for then follows
	// ss.acting as it did before 2026-12.
	// NOTE: ss.acting decides the rows; the backend's pgveil.act_for,
	// among the session's settings, is replayed on every backend it
	// takes, and a backend of other texts gets RESET ALL first, so that
	// SHOW pgveil.act_for answers the viewer on each and no other
	// session sees it.
	act bool
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

// statelessKinds are the kinds of statement that, with no Keeps, leave
// nothing on a backend: a pool's reset (asyncpg sends SELECT
// pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL on every
// release) is then a RESET like any other.
var statelessKinds = map[string]bool{"set": true, "select": true, rewrite.KindClose: true, rewrite.KindUnlisten: true}

// leavesNoState reports whether every statement of kinds is of
// statelessKinds.
func leavesNoState(kinds []string) bool {
	for _, k := range kinds {
		if !statelessKinds[k] {
			return false
		}
	}
	return len(kinds) > 0
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
	if src == SourceQuery {
		ss.noteHolds(res, src)
	}
	unnamed := src == SourceParse && parseName == ""
	if unnamed {
		pl.unnamedSet = 0
		ss.unnamedParsed()
	}
	act := res.Act != nil || ss.acting.Load() != nil && slices.Contains(res.Resets, rewrite.ResetAll)
	if res.Act != nil && len(res.Kinds) != 1 {
		// After a BEGIN, SAVEPOINT or RELEASE in its text: in a block.
		ss.keepBackend("a change of the acting user in a transaction block")
		return
	}
	if src == SourceQuery && res.Act == nil && ss.pendSetList(res) {
		return
	}
	name, isSet := singleSet(res)
	isReset := len(res.Keeps) == 0 && len(res.Resets) > 0 && leavesNoState(res.Kinds)
	resets := res.Resets
	if res.Act != nil {
		// What pgveil forwards in its place: SET pgveil.act_for = '…',
		// or, back to the login, its RESET (or SET … TO DEFAULT).
		name, isSet = rewrite.ActSetting, res.Act.Login != ""
		isReset = !isSet
		resets = nil
		if isReset {
			resets = []string{rewrite.ActSetting}
		}
	}
	switch {
	case isSet || isReset:
		p := &pendingSetting{resets: resets, batch: ss.sent.Load(), parsed: src == SourceParse, act: act}
		if src != SourceQuery {
			p.batch++
		}
		if unnamed {
			pl.unnamedSet = p.batch
		}
		if isSet {
			q, err := (&pgproto3.Query{String: res.SQL}).Encode(nil)
			if err != nil {
				ss.keepBackend("SET " + name)
				return
			}
			p.set = &pooledSetting{name: name, query: q}
		}
		if act && (ss.batchBegins || !ss.pendSetting(p, src, parseName)) {
			// NOTE: only the shape BI tools send (pendSetting); in a
			// block or pipelined, the backend stays the session's.
			ss.keepBackend("a change of the acting user in a transaction block or pipelined after other statements")
		} else if !act && !ss.pendSetting(p, src, parseName) && !ss.pendTxSetting(p, src, parseName) {
			what := "SET " + name
			if isReset {
				what = "RESET"
			}
			ss.keepBackend(what + " pipelined after other statements")
		} else if unnamed {
			pl.mu.Lock()
			pl.unnamedPend = p
			pl.mu.Unlock()
		}
	case len(res.Keeps) > 0:
		ss.keepBackend(res.Keeps[0])
	case len(res.Resets) > 0:
		ss.keepBackend("RESET among other statements")
	}
}

// bindUnnamed follows a Bind of the unnamed statement (client relay):
// when that statement is a SET or RESET parsed in an earlier batch, what
// it leaves is known to none of the checks above, which follow its
// Parse's batch; the session keeps its backend.
func (ss *session) bindUnnamed() {
	if b := ss.pl.unnamedSet; b != 0 && b != ss.sent.Load()+1 {
		ss.keepBackend("SET or RESET of the unnamed statement run again in a later batch")
	}
}

// unnamedParsed forgets, at a Parse of the unnamed statement, the
// setting noted for the one it replaces: a Bind of the unnamed statement
// binds another statement from now on (client relay).
func (ss *session) unnamedParsed() {
	if pl := ss.pl; pl != nil {
		pl.mu.Lock()
		pl.unnamedPend = nil
		pl.mu.Unlock()
	}
}

// pooledBind follows a Bind of portal from the statement stmt (client
// relay): a portal of the unnamed statement noted as a setting runs that
// setting when executed; any other Bind of the portal's name makes it
// another statement's.
//
// NOTE: setPortals is keyed by the name PostgreSQL keys the portal by
// (statement.ServerName): two spellings of a name longer than 63 bytes
// are one portal upstream. Keyed by the client's spelling, a RESET
// portal closed and rebound under the other spelling counted as run
// when its name ran a SET LOCAL, and a SET run under the other spelling
// did not count: the session's time zone reached the next user.
func (ss *session) pooledBind(portal, stmt string) {
	pl := ss.pl
	portal = statement.ServerName(portal)
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if stmt == "" && pl.deallocUnnamed != 0 && pl.deallocUnnamed == pl.unnamedGen {
		// A portal of DEALLOCATE ALL (pooled_stmt.go).
		if pl.deallocPortals == nil {
			pl.deallocPortals = map[string]int64{}
		}
		pl.deallocPortals[portal] = ss.sent.Load() + 1
	} else {
		delete(pl.deallocPortals, portal)
	}
	if stmt == "" && pl.unnamedPend != nil {
		if pl.setPortals == nil {
			pl.setPortals = map[string]*pendingSetting{}
		}
		pl.setPortals[portal] = pl.unnamedPend
		return
	}
	delete(pl.setPortals, portal)
}

// pooledExecute follows an Execute of portal forwarded upstream (client
// relay); res is the statement the portal runs, nil when not known. When
// the portal is of a noted SET or RESET, the setting takes effect there,
// after those noted before this Execute. A portal runs a SET once:
// PostgreSQL refuses to run it again.
//
// NOTE: an Execute that may end the transaction, while a portal of a
// noted SET waits for its own, may leave that portal to fail: the
// session keeps its backend (setPortalsEnd).
func (ss *session) pooledExecute(portal string, res *rewrite.Result) {
	pl := ss.pl
	if pl == nil {
		return
	}
	portal = statement.ServerName(portal)
	pl.mu.Lock()
	if _, ok := pl.deallocPortals[portal]; ok {
		// A DEALLOCATE ALL: the session forgets its statements now,
		// the backend at its answer (forgetAll). A portal runs it once.
		delete(pl.deallocPortals, portal)
		pl.forgetAll(ss.sent.Load() + 1)
	}
	p := pl.setPortals[portal]
	if p == nil {
		pl.mu.Unlock()
		if res == nil || res.EndsTransaction {
			ss.setPortalsEnd("an Execute that may end the transaction")
		}
		return
	}
	defer pl.mu.Unlock()
	delete(pl.setPortals, portal)
	if p.ran {
		return
	}
	if p.act && ss.batchBegins {
		// Run in the block a BEGIN of its batch opened.
		if pl.keeps == "" {
			pl.keeps = "a change of the acting user in a transaction block"
			ss.log.Info("session keeps its upstream connection to its end", zap.String("because", pl.keeps))
		}
	}
	i := slices.Index(pl.txSets, p)
	if i < 0 {
		// Its transaction already ended, and the portal with it.
		return
	}
	p.ran = true
	pl.txSets = append(slices.Delete(pl.txSets, i, i+1), p)
}

// setPortalsEnd follows a client message that may end the transaction,
// and its portals with it (a Sync, a Query, a COMMIT or ROLLBACK
// executed), named by what (client relay): a portal of a noted SET or
// RESET not executed yet may then run, or fail, after the client relay
// counted it, and whether the setting took effect is no longer known
// from the client's messages. The session keeps its backend.
func (ss *session) setPortalsEnd(what string) {
	pl := ss.pl
	if pl == nil {
		return
	}
	pl.mu.Lock()
	n := len(pl.setPortals)
	clear(pl.setPortals)
	// NOTE: not the portals of DEALLOCATE ALL: one executed later in
	// the same transaction block, after a Sync or another Execute, runs
	// it too. Unmarked, the backend relay did not read its answer: the
	// backend stayed marked as holding every statement it held before,
	// another session's Bind of its own failed 26000 there. They are
	// forgotten at the end of their transaction (onBatchAnswered).
	pl.mu.Unlock()
	if n > 0 {
		ss.keepBackend("a portal of a SET or RESET not executed before " + what)
	}
}

// pendSetting notes p when its statement runs alone at the start of an
// implicit transaction: outside a transaction block, nothing else in
// flight, and for the extended protocol the unnamed statement, first of
// its batch. It reports whether it did.
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
	if inFlight != 0 || pl.wasOpen || len(pl.txSets) > 0 {
		return false
	}
	pl.noteSetting(p, true)
	return true
}

// pendTxSetting notes p as a setting of the open transaction block when
// its statement surely runs there, and reports whether it did: it is
// alone in flight, first of its batch for a Query, and the block was
// open at the last ReadyForQuery or,
// for the unnamed statement of the extended protocol, only BEGINs
// precede it in its batch. (A batch whose BEGIN did not open a block
// ends idle with no COMMIT seen: settleSettings then keeps the
// backend.)
func (ss *session) pendTxSetting(p *pendingSetting, src Source, parseName string) bool {
	pl := ss.pl
	status := ss.txStatus.Load()
	inFlight := ss.sent.Load() - ss.done.Load()
	switch src {
	case SourceQuery:
		inFlight-- // the Query itself
		if status != 'T' {
			return false
		}
	case SourceParse:
		// NOTE: othersInBatch counts this Parse already, and no BEGIN;
		// a RESET ALL's Parse it does not count (relayParse). Before
		// 2026-12 a RESET ALL parsed after one other statement of its
		// batch passed for the first: run after a ROLLBACK there, it
		// was dropped with the block while PostgreSQL committed it, and
		// the backend, recorded as holding the session's settings,
		// went without them to another user who sent the same texts.
		first := 1
		if slices.Contains(p.resets, rewrite.ResetAll) {
			first = 0
		}
		if parseName != "" || ss.othersInBatch != first || ss.batchRefused || status == 'E' {
			return false
		}
	default:
		return false
	}
	if inFlight != 0 {
		return false
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	// NOTE: a Query after extended-protocol messages of its batch runs
	// after them: a ROLLBACK among them leaves it outside the block, in
	// an implicit transaction of its own that commits it (wasOpen).
	if pl.txImplicit || src == SourceQuery && pl.wasOpen {
		return false
	}
	pl.noteSetting(p, false)
	return true
}

// setListKinds are the kinds of statement a Query of SETs may hold
// (rewrite.SetList).
var setListKinds = map[string]bool{"set": true, rewrite.KindShow: true, "transaction": true}

// pendSetList notes the SETs of res, a Query of several SETs and SHOWs
// after one BEGIN at most (rewrite.SetList), each as a setting of its
// own, when the text surely runs as a whole at the start of a
// transaction: with nothing else in flight, outside a transaction block
// (an implicit transaction, or the block its BEGIN opens), or in the
// open block. It reports whether it did; a session whose text it does
// not note keeps its backend, as for any SET pipelined with other
// statements. psqlODBC sends SET DateStyle = 'ISO';SET
// extra_float_digits = 2;show transaction_isolation on every connection,
// which kept a backend for every psqlODBC session (client relay).
func (ss *session) pendSetList(res *rewrite.Result) bool {
	if len(res.Kinds) < 2 || len(res.Resets) > 0 || len(res.Keeps) == 0 || res.Act != nil {
		return false
	}
	for _, k := range res.Kinds {
		if !setListKinds[k] {
			return false
		}
	}
	sets, begins, ok := rewrite.SetList(res.SQL)
	if !ok || len(sets) != len(res.Keeps) {
		// A SET that leaves nothing to keep (of a pinned setting's own
		// value) among them: which one is not known.
		return false
	}
	batch := ss.sent.Load()
	pend := make([]*pendingSetting, 0, len(sets))
	for i, sql := range sets {
		name, ok := strings.CutPrefix(res.Keeps[i], "SET ")
		if !ok {
			return false
		}
		q, err := (&pgproto3.Query{String: sql}).Encode(nil)
		if err != nil {
			return false
		}
		pend = append(pend, &pendingSetting{batch: batch, set: &pooledSetting{name: name, query: q}})
	}
	status := ss.txStatus.Load()
	// NOTE: the Query itself is in flight.
	if ss.sent.Load()-ss.done.Load() != 1 || status == 'E' {
		return false
	}
	pl := ss.pl
	pl.mu.Lock()
	defer pl.mu.Unlock()
	if pl.wasOpen || status == 'I' && len(pl.txSets) > 0 || status == 'T' && pl.txImplicit {
		return false
	}
	// Outside a block and without BEGIN, an implicit transaction; else
	// the block that is open, or that the BEGIN opens.
	implicit := status == 'I' && !begins
	for _, p := range pend {
		pl.noteSetting(p, implicit)
	}
	return true
}

// noteSetting adds p to the noted settings, those of an implicit
// transaction or of a block (mu held).
func (pl *poolLink) noteSetting(p *pendingSetting, implicit bool) {
	pl.txSets = append(pl.txSets, p)
	pl.txImplicit = implicit
	pl.watchTags.Store(true)
}

// txEnd is what the CommandComplete tags said of the transaction since
// its first noted setting: commit and rollback report a COMMIT or
// ROLLBACK tag (ROLLBACK TO SAVEPOINT's too, and COMMIT's in a failed
// block), other a PREPARE TRANSACTION or a tag not read (tagUnread),
// and set a SET or RESET run.
type txEnd struct {
	commit, rollback, other, set bool
}

// decodesTag reports whether the backend relay decodes a CommandComplete
// of total bytes: while noted settings await their transaction's end,
// and on an event loop only when it is buffered whole.
func (ss *session) decodesTag(total int) bool {
	return ss.watchesTags() && total <= maxDecodedUpstream && (ss.lp == nil || ss.uin.Buffered() >= total)
}

// watchesTags reports whether the backend relay reads CommandComplete
// tags: for noted settings awaiting their transaction's end, or for a
// change of the acting user awaiting its own (actfor_tx.go).
func (ss *session) watchesTags() bool {
	pl := ss.pl
	return pl != nil && (pl.watchTags.Load() || pl.watchDealloc.Load()) || ss.actTrack.watching.Load()
}

// tagUnread notes a CommandComplete the backend relay forwards unread
// while noted settings await their transaction's end (an event loop's
// read ended inside it): what it said is not known, and settleSettings
// keeps the backend rather than guess (backend relay).
// NOTE: a SET tag missed would drop a setting PostgreSQL kept, and
// leave it to the next session on the backend.
func (ss *session) tagUnread() {
	if ss.actTrack.watching.Load() {
		ss.actTagUnread()
	}
	pl := ss.pl
	if pl == nil {
		return
	}
	if pl.watchDealloc.Load() {
		pl.mu.Lock()
		pl.deallocUnread = true
		pl.mu.Unlock()
	}
	if !pl.watchTags.Load() {
		return
	}
	pl.mu.Lock()
	pl.txEnd.other = true
	pl.mu.Unlock()
}

// onCommandComplete notes the tag of msg, a CommandComplete (header
// included), for settleSettings and actSettle (backend relay).
func (ss *session) onCommandComplete(msg []byte) {
	tag, _, _ := bytes.Cut(msg[wire.HeaderLen:], []byte{0})
	if ss.actTrack.watching.Load() {
		ss.actTag(string(tag))
	}
	pl := ss.pl
	if pl == nil {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	e := &pl.txEnd
	switch string(tag) {
	case "COMMIT":
		e.commit = true
	case "ROLLBACK":
		e.rollback = true
	case "PREPARE TRANSACTION":
		e.other = true
	case "SET", "RESET":
		e.set = true
	case "DEALLOCATE ALL":
		pl.deallocatedAll()
	}
}

// settleSettings applies, drops or gives up on the noted settings at a
// ReadyForQuery, done batches answered, once their transaction ended or
// was rewound (backend relay; mu held).
//
// NOTE: a setting dropped that PostgreSQL kept would reach the next
// session on the backend. What the tags and the status say:
//   - a COMMIT and no ROLLBACK: the settings were committed, whatever
//     began after (COMMIT AND CHAIN, a pipelined BEGIN);
//   - a ROLLBACK and no COMMIT, ending idle: the whole transaction rolled
//     back, and the settings with it;
//   - no tag, ending idle: an implicit transaction committed, or rolled
//     back on an error, its setting with it; a block cannot end so. A
//     SET prepared and never run (Parse, Sync), in a block or not, is no
//     setting (pendingSetting.ran): its portals ended with the
//     transaction, and a Bind of it in a later batch keeps the backend
//     (bindUnnamed);
//   - no tag, in a block: the block is still open, or, for an implicit
//     transaction, a BEGIN later in its batch made it a block, which now
//     decides;
//   - anything else (a ROLLBACK still in a block, rewound to a
//     savepoint; both tags; a PREPARE TRANSACTION): not known, and the
//     session keeps its backend.
func (ss *session) settleSettings(done int64) {
	pl := ss.pl
	failed := pl.batchErr
	pl.batchErr = false
	if len(pl.txSets) == 0 || pl.txImplicit && pl.txSets[0].batch > done {
		return
	}
	e := pl.txEnd
	idle := ss.txStatus.Load() == 'I'
	apply, unknown, actInBlock := false, false, false
	switch {
	case e.other || e.commit && e.rollback:
		unknown = true
	case e.commit:
		// NOTE: a switch committed in a block (a BEGIN later in its
		// batch) is not the shape a switch follows the session in.
		apply = true
		actInBlock = slices.ContainsFunc(pl.txSets, func(p *pendingSetting) bool { return p.act })
	case e.rollback:
		unknown = !idle
	case idle:
		apply = pl.txImplicit && !failed && e.set
		unknown = !pl.txImplicit
	default:
		pl.txImplicit = false
		return
	}
	if pl.txSets[len(pl.txSets)-1].batch > done {
		// NOTE: the client relay saw done counted at the ReadyForQuery
		// and noted its next batch's setting before this settle: that
		// setting is not of the transaction that ended, and its portal
		// may run after the portals are forgotten below. Before
		// 2026-12 it was dropped, or counted unrun, with the ended
		// transaction's settings, and a SET it ran after reached the
		// next session on the backend.
		apply, unknown = false, true
	}
	why := ""
	if apply {
		for _, p := range pl.txSets {
			if p.parsed && !p.ran {
				// Parsed, never run: nothing changed upstream.
				continue
			}
			if w := pl.applySetting(p); w != "" && why == "" {
				why = w
			}
		}
		pl.settingsChanged()
	}
	clear(pl.txSets)
	pl.txSets, pl.txEnd, pl.txImplicit = pl.txSets[:0], txEnd{}, false
	pl.unnamedPend = nil
	clear(pl.setPortals)
	pl.watchTags.Store(false)
	if unknown {
		why = "SET in a transaction that was not simply committed or rolled back"
	} else if actInBlock {
		why = "a change of the acting user in a transaction block"
	}
	if why != "" && pl.keeps == "" {
		pl.keeps = why
		ss.log.Info("session keeps its upstream connection to its end", zap.String("because", pl.keeps))
	}
}

// applySetting makes p, which took effect, one of the session's
// settings (mu held). It returns why the session must keep its backend
// from now on, "" when it need not.
//
// NOTE: the replay runs the session's settings in order after RESET
// ALL, and a backend whose settings read as the session's texts gets
// none: so the texts must give the value PostgreSQL holds, whatever
// came before them, in this session or in another that sent the same
// texts. A SET of a partialSettings setting keeps part of what came
// before: it follows the earlier ones rather than replacing them. A
// RESET of a default_transaction_ setting leaves what SET SESSION
// CHARACTERISTICS set of the others: it follows them too. Only an
// earlier SET of the very same text is dropped: the later one sets all
// it set. (Before 2026-12 each replaced the last of its name: a session
// that sent SET DateStyle = 'German' then 'ISO' held ISO, DMY on a
// backend whose texts read SET DateStyle = 'ISO', and a psqlODBC
// session, whose texts are that, got it with no RESET ALL.)
func (pl *poolLink) applySetting(p *pendingSetting) string {
	why := ""
	if p.set != nil {
		if pl.readBefore(p.set.name) {
			why = "SET " + p.set.name + " after a SET that read an earlier one"
		}
		if partialSettings[p.set.name] {
			// The same text again sets all the earlier one set:
			// PgJDBC's setReadOnly, toggled, piles up no settings.
			pl.forgetQuery(p.set.query)
		} else {
			pl.forgetSetting(p.set.name)
		}
		pl.settings = append(pl.settings, p.set)
	}
	for _, r := range p.resets {
		if (r == rewrite.ResetAll || r == "application_name") && pl.b != nil {
			// Back to the backend's startup name.
			pl.b.appTag = ""
		}
		if r == rewrite.ResetAll {
			pl.settings = nil
			continue
		}
		if pl.readBefore(r) && why == "" {
			why = "RESET " + r + " after a SET that read an earlier one"
		}
		pl.forgetSetting(r)
		if strings.HasPrefix(r, "default_transaction_") && pl.hasSetting("session characteristics") {
			q, ok := resetQueries[r]
			if !ok {
				why = "RESET " + r + " after SET SESSION CHARACTERISTICS"
				continue
			}
			pl.settings = append(pl.settings, &pooledSetting{name: r, query: q})
		}
	}
	if len(pl.settings) > maxPooledSettings && why == "" {
		why = fmt.Sprintf("more than %d settings to replay", maxPooledSettings)
	}
	return why
}

// readsSetting maps a setting whose SET reads another setting's value
// to that other: SET TIME ZONE INTERVAL '-2 hours 30 minutes' reads its
// interval as IntervalStyle says (sql_standard carries the leading sign
// to every field: -02:30, not -01:30), and so does a SET TimeZone to a
// string that begins with the word interval, spelt in any escapes: any
// SET of TimeZone counts.
//
// NOTE: the replay moves a later SET of the setting read behind the
// setting that read an earlier value of it, which then reads the later
// one: the session keeps its backend instead (readBefore).
var readsSetting = map[string]string{"timezone": "intervalstyle"}

// readBefore reports whether a setting of the session read a value of
// name that one of the session's settings, before it, set (mu held):
// a SET or RESET of name now would change what replaying it gives.
func (pl *poolLink) readBefore(name string) bool {
	set := false
	for _, s := range pl.settings {
		switch {
		case s.name == name:
			set = true
		case set && readsSetting[s.name] == name:
			return true
		}
	}
	return false
}

// partialSettings are the settings whose SET may keep part of the value
// before it: SET DateStyle = 'ISO' keeps the field order (DMY, MDY) and
// SET DateStyle = 'DMY' the output format; SET SESSION CHARACTERISTICS
// sets only the default_transaction_ settings it names.
var partialSettings = map[string]bool{"datestyle": true, "session characteristics": true}

// maxPooledSettings bounds the settings a session replays: past it, as
// a session that sends SET DateStyle again and again piles them up, it
// keeps its backend instead.
const maxPooledSettings = 64

// resetQueries are the Query messages that RESET each setting SET
// SESSION CHARACTERISTICS may set, encoded.
var resetQueries = func() map[string][]byte {
	m := map[string][]byte{}
	for _, name := range []string{"default_transaction_isolation", "default_transaction_read_only", "default_transaction_deferrable"} {
		m[name], _ = (&pgproto3.Query{String: "RESET " + name}).Encode(nil)
	}
	return m
}()

// settingsChanged records the session's settings as those of the
// backend it holds (mu held).
func (pl *poolLink) settingsChanged() {
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
//
// The session's appTag comes first, so that a SET application_name of
// its own wins; when only the tag differs, it alone is sent.
func (pl *poolLink) replaySettings(b *backend, out []byte) ([]byte, int) {
	n := 0
	switch {
	case b.settings != pl.settingsKey:
		if b.settings != "" {
			out = append(out, resetAll...)
			n++
		}
		if pl.appTag != "" {
			out = append(out, pl.appTag...)
			n++
		}
		for _, s := range pl.settings {
			out = append(out, s.query...)
			n++
		}
	case pl.appTag != "" && b.appTag != pl.appTag && !pl.hasSetting("application_name"):
		out = append(out, pl.appTag...)
		n++
	}
	b.settings, b.appTag = pl.settingsKey, pl.appTag
	return out, n
}

// makeAppTag makes the session's appTag: application_name naming its
// user and the client's own application_name, as a session-mode
// connection has it from its startup.
//
// NOTE: bytes outside printable ASCII become '?', as PostgreSQL cleans a
// startup application_name: the tag then reads as it does in session
// mode, and is always valid UTF-8.
func (pl *poolLink) makeAppTag(user, app string) error {
	name := []byte(truncateAppName("pgveil:" + user + ":" + app))
	for i, c := range name {
		if c < 32 || c > 126 {
			name[i] = '?'
		}
	}
	sql, err := rewrite.ApplicationNameSQL(string(name))
	if err != nil {
		return err
	}
	q, err := (&pgproto3.Query{String: sql}).Encode(nil)
	pl.appTag = string(q)
	return err
}

// forgetQuery drops the session's settings whose Query is q (mu held).
func (pl *poolLink) forgetQuery(q []byte) {
	kept := pl.settings[:0]
	for _, s := range pl.settings {
		if !bytes.Equal(s.query, q) {
			kept = append(kept, s)
		}
	}
	clear(pl.settings[len(kept):])
	pl.settings = kept
}

// hasSetting reports whether the session set name (mu held).
func (pl *poolLink) hasSetting(name string) bool {
	for _, s := range pl.settings {
		if s.name == name {
			return true
		}
	}
	return false
}

// heldCursor is a WITH HOLD cursor a transaction-mode session declared:
// its name and the batch that declared it.
type heldCursor struct {
	name  string
	batch int64
	// more counts the cursors declared past maxHeldNotices, which this
	// entry, the last, stands for too; batch is then the latest of
	// theirs.
	// NOTE: a client may declare any number of cursors in one block:
	// before 2026-12 each was kept here and told of in a notice of its
	// own, all encoded into one buffer at the block's COMMIT.
	more int64
}

// maxHeldNotices bounds the cursors told of by name at once: the rest
// are counted in one more notice.
const maxHeldNotices = 16

// noteHolds notes the WITH HOLD cursors res declares, forwarded from src,
// for holdNotices (client relay): a Query's at once, a prepared
// statement's at each Execute of it (track.go), not at its Parse, which
// declares nothing. keepBackend keeps the backend already.
func (ss *session) noteHolds(res *rewrite.Result, src Source) {
	pl := ss.pl
	if pl == nil || res == nil {
		return
	}
	batch := ss.sent.Load()
	if src != SourceQuery {
		batch++
	}
	if mayRollBack(res) {
		// A ROLLBACK, or ROLLBACK TO SAVEPOINT, may undo the cursors
		// its block declared, and this text's own: none is told of.
		// NOTE: before 2026-12 a block's ROLLBACK ended idle, and its
		// cursors were told of as kept. Forgetting too many (one
		// declared before the savepoint, or in an earlier transaction
		// whose answer is still on its way) misses a notice; the
		// backend is kept all the same.
		if pl.held.Load() {
			pl.mu.Lock()
			pl.holds = pl.holds[:0]
			pl.held.Store(false)
			pl.mu.Unlock()
		}
		return
	}
	for _, k := range res.Keeps {
		name, ok := strings.CutPrefix(k, "DECLARE ")
		if name, ok = strings.CutSuffix(name, " WITH HOLD"); !ok {
			continue
		}
		pl.mu.Lock()
		if n := len(pl.holds); n < maxHeldNotices {
			pl.holds = append(pl.holds, heldCursor{name: name, batch: batch})
		} else {
			pl.holds[n-1].more++
			pl.holds[n-1].batch = batch
		}
		pl.held.Store(true)
		pl.mu.Unlock()
	}
}

// mayRollBack reports whether res may hold a ROLLBACK or ROLLBACK TO
// SAVEPOINT: it ends a transaction, and not with its only transaction
// statement, a COMMIT. Result.TransactionEnd names only the last end,
// and every transaction statement is of kind "transaction": a text of
// more may rewind to a savepoint before its COMMIT.
// NOTE: so a block sent in one text (BEGIN; DECLARE … WITH HOLD;
// COMMIT) gets no notice: a miss, never a false one.
func mayRollBack(res *rewrite.Result) bool {
	if !res.EndsTransaction {
		return false
	}
	if res.TransactionEnd != rewrite.EndCommit {
		return true
	}
	n := 0
	for _, k := range res.Kinds {
		if k == "transaction" {
			n++
		}
	}
	return n > 1
}

// holdNotices returns, encoded, a NoticeResponse for each WITH HOLD
// cursor of the batches answered up to done whose transaction has ended
// (txStatus 'I'): the client learns, once per cursor, as its COMMIT (or
// its own implicit transaction) is answered, that the session keeps
// its backend to its end, which transaction pooling otherwise hides
// (backend relay). A cursor whose transaction failed ('E') is forgotten:
// it does not outlive it. Past maxHeldNotices, one notice counts the
// rest.
// NOTE: every ReadyForQuery of a pooled session comes here: with no
// cursor noted it reads one atomic, and locks nothing.
func (ss *session) holdNotices(done int64, txStatus byte) []byte {
	pl := ss.pl
	if pl == nil || txStatus == 'T' || !pl.held.Load() {
		return nil
	}
	pl.mu.Lock()
	var due []heldCursor
	kept := pl.holds[:0]
	for _, h := range pl.holds {
		if h.batch <= done {
			due = append(due, h)
		} else {
			kept = append(kept, h)
		}
	}
	pl.holds = kept
	pl.held.Store(len(kept) > 0)
	pl.mu.Unlock()
	if txStatus != 'I' {
		return nil
	}
	var out []byte
	for _, h := range due {
		msg := "pgveil keeps this session's upstream connection until the session ends: the cursor " + rewrite.QuoteIdent(h.name) +
			" was declared WITH HOLD, and transaction pooling cannot give a connection holding a cursor to another session"
		if h.more > 0 {
			msg = fmt.Sprintf("pgveil keeps this session's upstream connection until the session ends: the cursor %s and %d more were declared WITH HOLD, "+
				"and transaction pooling cannot give a connection holding a cursor to another session", rewrite.QuoteIdent(h.name), h.more)
		}
		n := &pgproto3.NoticeResponse{Severity: "NOTICE", SeverityUnlocalized: "NOTICE", Code: "00000", Message: msg}
		b, err := n.Encode(out)
		if err != nil {
			continue
		}
		out = b
	}
	return out
}

// dropHolds forgets the WITH HOLD cursors of batch, which failed: its
// implicit transaction, or its block, rolls them back, and no notice
// tells of them (backend relay, at an ErrorResponse).
// NOTE: one declared before a savepoint that a later statement of its
// batch failed and rolled back to is forgotten too: the client misses a
// notice, never gets a false one; the backend is kept all the same.
// So are the earlier cursors the last entry counts (heldCursor.more).
func (ss *session) dropHolds(batch int64) {
	pl := ss.pl
	if !pl.held.Load() {
		return
	}
	pl.mu.Lock()
	defer pl.mu.Unlock()
	pl.holds = slices.DeleteFunc(pl.holds, func(h heldCursor) bool { return h.batch == batch })
	pl.held.Store(len(pl.holds) > 0)
}
