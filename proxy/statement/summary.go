package statement

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pgveil/pgveil/rewrite"
)

// This file holds what candidates reports of the things a name may hold
// (summary), and the queue that keeps the summary of its items as they
// come and go (aggQueue): a check of a name must not cost what is in
// flight under it, which a client grows by pipelining.

// summary is what candidates reports of a run of things the upstream may
// hold under a name, each a policy version and a Rewriter's result,
// folded in the order candidates meets them: what its callers read of
// them, the same whichever way they are grouped (combine is
// associative).
//
// NOTE: a summary is never written to once made: combine makes a new one
// or returns one of its own, and queues share them.
type summary struct {
	// n counts the things folded: 0 is none.
	n int
	// versions are their distinct policy versions, in the order of the
	// last thing of each: the last one not in force is what sqlNamed
	// reports (as its callback once did, taking the last it saw).
	versions []string
	// reads merges the tables, rules, masked and read columns of their
	// results that are not nil, each sorted without duplicates; nil when
	// all are nil.
	reads *rewrite.Result
	// res is the one result that is not nil when all that are not nil
	// are the same (nil when none is), unless many: withObjects merges
	// only results other than the text's own.
	res  *rewrite.Result
	many bool
}

// noReads is the reads of a result that reads nothing, shared.
var noReads = &rewrite.Result{}

// leaf returns the summary of one thing, of version and res.
func leaf(version string, res *rewrite.Result) summary {
	s := summary{n: 1, versions: oneVersion(version), res: res}
	if res != nil {
		s.reads = res
		if len(res.Tables)+len(res.Rules)+len(res.Masked)+len(res.MaskedRead)+len(res.Columns) == 0 {
			s.reads = noReads
		} else if !sortedSet(res.Tables) || !sortedSet(res.Rules) || !sortedSet(res.Masked) || !sortedSet(res.MaskedRead) || !sortedSet(res.Columns) {
			s.reads = &rewrite.Result{Tables: normal(res.Tables), Rules: normal(res.Rules), Masked: normal(res.Masked),
				MaskedRead: normal(res.MaskedRead), Columns: normal(res.Columns)}
		}
	}
	return s
}

// versionSlices holds a slice of each policy version seen, shared by the
// summaries of every session (they never write to it): a check must not
// allocate one for each message. versionSlicesLen counts its entries.
//
// NOTE: a version is not only the policy's: the proxy tags it with the
// end user a BI service acts for and the generation of a login's
// directory groups, so the versions a server sees grow with its acting
// users, not only with its reloads. Past maxVersionSlices the cache is
// emptied: the slices it handed out stay valid, never written to, and
// the versions in use are cached again at their next message.
var (
	versionSlices    sync.Map
	versionSlicesLen atomic.Int64
)

// maxVersionSlices bounds versionSlices.
const maxVersionSlices = 4096

// oneVersion returns []string{v}, shared.
func oneVersion(v string) []string {
	if s, ok := versionSlices.Load(v); ok {
		return s.([]string)
	}
	if versionSlicesLen.Load() >= maxVersionSlices {
		versionSlices.Clear()
		versionSlicesLen.Store(0)
	}
	s, loaded := versionSlices.LoadOrStore(v, []string{v})
	if !loaded {
		versionSlicesLen.Add(1)
	}
	return s.([]string)
}

// combine returns the summary of a's things, then b's.
func combine(a, b summary) summary {
	if a.n == 0 {
		return b
	}
	if b.n == 0 {
		return a
	}
	out := summary{n: a.n + b.n, versions: joinVersions(a.versions, b.versions)}
	switch {
	case a.reads == nil || a.reads == b.reads:
		out.reads = b.reads
	case b.reads == nil:
		out.reads = a.reads
	default:
		out.reads = unionReads(a.reads, b.reads)
	}
	out.res = a.res
	if out.res == nil {
		out.res = b.res
	}
	out.many = a.many || b.many || a.res != nil && b.res != nil && a.res != b.res
	return out
}

// unionReads returns the reads of a and b merged: a or b itself when it
// holds the other's, as it mostly does (a pipeline of one statement), so
// that summaries share it instead of making one at each combine.
func unionReads(a, b *rewrite.Result) *rewrite.Result {
	u := rewrite.Result{
		Tables: unionSorted(a.Tables, b.Tables), Rules: unionSorted(a.Rules, b.Rules),
		Masked: unionSorted(a.Masked, b.Masked), MaskedRead: unionSorted(a.MaskedRead, b.MaskedRead),
		Columns: unionSorted(a.Columns, b.Columns),
	}
	for _, r := range [2]*rewrite.Result{a, b} {
		if same(u.Tables, r.Tables) && same(u.Rules, r.Rules) && same(u.Masked, r.Masked) &&
			same(u.MaskedRead, r.MaskedRead) && same(u.Columns, r.Columns) {
			return r
		}
	}
	return &rewrite.Result{Tables: u.Tables, Rules: u.Rules, Masked: u.Masked, MaskedRead: u.MaskedRead, Columns: u.Columns}
}

// same reports whether x and y are the same slice, or both empty.
func same(x, y []string) bool {
	return len(x) == len(y) && (len(x) == 0 || &x[0] == &y[0])
}

// joinVersions returns the distinct versions of a then b, each at its
// last place: a's that b lacks, then b's. It returns a or b when that is
// all of them.
func joinVersions(a, b []string) []string {
	var keep []string
	for _, v := range a {
		if !slices.Contains(b, v) {
			keep = append(keep, v)
		}
	}
	if len(keep) == 0 {
		return b
	}
	if len(keep) == len(a) && len(b) == 0 {
		return a
	}
	return append(keep, b...)
}

// sortedSet reports whether s is sorted, without duplicates.
func sortedSet(s []string) bool {
	for i := 1; i < len(s); i++ {
		if s[i-1] >= s[i] {
			return false
		}
	}
	return true
}

// normal returns s sorted without duplicates: s itself when it is.
func normal(s []string) []string {
	if sortedSet(s) {
		return s
	}
	return slices.Compact(slices.Sorted(slices.Values(s)))
}

// unionSorted returns the union of a and b, both sorted without
// duplicates, sorted without duplicates: a or b itself when it holds the
// other, so that a queue of summaries of the same reads shares them.
func unionSorted(a, b []string) []string {
	i, j, extraA, extraB := 0, 0, 0, 0
	for i < len(a) && j < len(b) {
		switch {
		case a[i] == b[j]:
			i++
			j++
		case a[i] < b[j]:
			i++
			extraA++
		default:
			j++
			extraB++
		}
	}
	extraA += len(a) - i
	extraB += len(b) - j
	if extraB == 0 {
		return a
	}
	if extraA == 0 {
		return b
	}
	out := make([]string, 0, len(a)+extraB)
	i, j = 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || i < len(a) && a[i] < b[j]:
			out = append(out, a[i])
			i++
		case i == len(a) || b[j] < a[i]:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			i++
			j++
		}
	}
	return out
}

// aggQueue is a queue of items, each with its own summary, that tells
// the summary of all its items in O(1), in their order (oldest first),
// or, newestFirst, in the reverse: items come at the back and go from
// the front, and each moves once from back to front, where it keeps the
// summary of itself and of the items behind it in front. An item costs
// a bounded number of combines, amortised, however long the queue.
//
// NOTE: front holds the oldest items, the oldest last, each with sum the
// fold of itself and the front items after it (newer); back holds the
// newest, oldest first, and backSum their fold. Nothing else.
type aggQueue[T any] struct {
	front, back []aggItem[T]
	backSum     summary
	newestFirst bool
}

// aggItem is an item of an aggQueue: v, its own summary, and in front
// the fold of it and the newer items in front.
type aggItem[T any] struct {
	v        T
	own, sum summary
}

// join folds the summaries of older items and of newer ones in the
// queue's order.
func (q *aggQueue[T]) join(older, newer summary) summary {
	if q.newestFirst {
		return combine(newer, older)
	}
	return combine(older, newer)
}

// push adds v, of summary own, at the back.
func (q *aggQueue[T]) push(v T, own summary) {
	q.back = append(q.back, aggItem[T]{v: v, own: own})
	q.backSum = q.join(q.backSum, own)
}

// len returns the number of items.
func (q *aggQueue[T]) len() int { return len(q.front) + len(q.back) }

// oldest returns the oldest item; the queue must not be empty.
func (q *aggQueue[T]) oldest() T {
	if n := len(q.front); n > 0 {
		return q.front[n-1].v
	}
	return q.back[0].v
}

// pop drops the oldest item; the queue must not be empty.
func (q *aggQueue[T]) pop() {
	if len(q.front) == 0 {
		for i := len(q.back) - 1; i >= 0; i-- {
			it := q.back[i]
			it.sum = it.own
			if n := len(q.front); n > 0 {
				it.sum = q.join(it.own, q.front[n-1].sum)
			}
			q.front = append(q.front, it)
		}
		clear(q.back)
		q.back, q.backSum = q.back[:0], summary{}
	}
	n := len(q.front) - 1
	q.front[n] = aggItem[T]{}
	q.front = q.front[:n]
	if n == 0 && cap(q.front) > keepCap {
		// Let the array go: a long pipeline must not leave it held.
		q.front = nil
	}
	if n == 0 && len(q.back) == 0 && cap(q.back) > keepCap {
		// The back's too, once the queue is empty: a flight outlives
		// its pipeline, for as long as the session remembers the name.
		q.back = nil
	}
}

// total returns the summary of all the items.
func (q *aggQueue[T]) total() summary {
	var f summary
	if n := len(q.front); n > 0 {
		f = q.front[n-1].sum
	}
	return q.join(f, q.backSum)
}

// flight is what candidates knows of the history of one name (a chain of
// Info, or of portalEntry, linked by prev), kept as its messages are
// sent and answered: a check must not walk every message of the name
// still in flight (an Execute in a later batch than its portal's Binds
// walked every one of them, 25,000 deep 31 times the cost at 100).
//
// NOTE: q holds the chain's messages in the order they were sent, the
// oldest first, less those answered that cleanup took from its front,
// each with the summary of what it may hold while in flight (none for a
// Close, or a refused Parse). PostgreSQL answers in order, so once
// cleanup ran, q holds exactly the messages in flight, and settled the
// latest answered one that made or dropped the name (the protocol's
// statement or portal the upstream holds, or its Close): what the walk
// of the chain (Tracker.history) meets. Every message of a chain of two
// or more is pushed to the flight of its prev (pushStmt, pushPortal),
// the chain's first with its second: compact and settle only cut from
// the chain messages cleanup takes too. A portal's message after a
// settled one (a confirmed message that begins its chain) is not
// pushed: its chain of two is walked, and its next message, if any
// comes while it is in flight, pushes all three (pushPortal). A
// history whose head has no flight is walked: one of a single message,
// a portal's of two that begins settled, or one a message was not
// pushed to (never, unless a change forgets a push: it then costs what
// it did, and says what it did).
type flight struct {
	q aggQueue[historyEntry]
	// has: settled is known; its batch and the summary of what it holds
	// (none when it is a Close).
	has          bool
	settledBatch int64
	settledSum   summary
}

// historyEntry is a message of a name's history: a Parse or Close of a
// statement (info) or a Bind or Close of a portal (e).
type historyEntry struct {
	info *Info
	e    *portalEntry
}

// pushStmt adds info, the new head of the history of a statement, to its
// flight (mu held); only when policies reload, where histories hold
// messages in flight. A history of one message has none: its walk is
// one step. Its second message makes one, with the first.
func (t *Tracker) pushStmt(info *Info) {
	p := info.prev
	if t.versions == nil || p == nil {
		return
	}
	if p.fl == nil {
		if p.prev != nil {
			return // not pushed (NOTE of flight): its history is walked
		}
		p.fl = &flight{q: aggQueue[historyEntry]{newestFirst: true}}
		p.fl.q.push(historyEntry{info: p}, stmtSummary(p))
	}
	info.fl = p.fl
	info.fl.q.push(historyEntry{info: info}, stmtSummary(info))
}

// stmtSummary is the summary of what a Parse or Close of a statement,
// in flight, may leave upstream: none for a Close or a refused Parse.
func stmtSummary(info *Info) summary {
	if info.closed || info.Refusal != nil {
		return summary{}
	}
	return info.ownSummary()
}

// pushPortal is pushStmt for e, the new head of the history of a
// portal, but for a history whose message before e is settled: a
// confirmed message with nothing before it (compact cut it), the
// steady state of a client that waits for each answer. That history's
// walk is two steps: e gets no flight, and the message after it, if e
// is still in flight then, makes one of the three (NOTE of flight). A
// flight for e cost each Bind a push, and the ReadyForQuery after it a
// cleanup.
func (t *Tracker) pushPortal(e *portalEntry) {
	p := e.prev
	if t.versions == nil || p == nil || p.confirmed && p.prev == nil {
		return
	}
	if p.fl == nil {
		r := p.prev
		switch {
		case r == nil:
			p.fl = &flight{q: aggQueue[historyEntry]{newestFirst: true}}
		case r.confirmed && r.prev == nil:
			// p was not pushed, after a settled message: the flight
			// starts with both.
			p.fl = &flight{q: aggQueue[historyEntry]{newestFirst: true}}
			r.fl = p.fl
			p.fl.q.push(historyEntry{e: r}, portalSummary(r))
		default:
			return
		}
		p.fl.q.push(historyEntry{e: p}, portalSummary(p))
	}
	e.fl = p.fl
	e.fl.q.push(historyEntry{e: e}, portalSummary(e))
}

// portalSummary is the summary of what a Bind or Close of a portal, in
// flight, may leave upstream: none for a Close.
func portalSummary(e *portalEntry) summary {
	if e.closed {
		return summary{}
	}
	return e.Info.ownSummary()
}

// cleanup takes from the front of fl, the flight of the history of name
// in ns, the messages answered: the upstream confirmed them, or their
// batch is answered without (mu held). It keeps the latest that made or
// dropped the name as settled, as the walk of the chain stops there; a
// failed Parse of the unnamed statement dropped it, and what came before
// no longer counts.
func (t *Tracker) cleanup(fl *flight, ns namespace, name string) {
	for fl.q.len() > 0 {
		it := fl.q.oldest()
		if ns == nsStatement {
			info := it.info
			if !info.confirmed && info.batch > t.done {
				return
			}
			fl.q.pop()
			switch {
			case info.confirmed && info.Refusal == nil:
				fl.has, fl.settledBatch, fl.settledSum = true, info.batch, summary{}
				if !info.closed {
					fl.settledSum = info.ownSummary()
				}
			case name == "" && !info.closed:
				fl.has, fl.settledSum = false, summary{}
			}
			continue
		}
		e := it.e
		if !e.confirmed && e.batch > t.done {
			return
		}
		fl.q.pop()
		if e.confirmed {
			fl.has, fl.settledBatch, fl.settledSum = true, e.batch, summary{}
			if !e.closed {
				fl.settledSum = e.Info.ownSummary()
			}
		}
	}
}
