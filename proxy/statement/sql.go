package statement

import (
	"cmp"
	"slices"
	"strings"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/rewrite"
)

// This file holds what the Tracker knows of statements and cursors made
// with SQL (PREPARE, DECLARE, and what drops them), and what a name may
// hold whichever way it was made.

// namespace is one of the two namespaces of names the upstream keeps per
// session, whichever message or statement made the name: prepared
// statements (Parse, PREPARE) and portals (Bind, DECLARE).
type namespace int

const (
	nsStatement namespace = iota
	nsPortal
)

// namespaceOf returns the namespace of the name a SessionObject's Op
// acts on.
func namespaceOf(op string) namespace {
	switch op {
	case "declare", "fetch", "close":
		return nsPortal
	}
	return nsStatement
}

// sqlObject is a statement prepared with PREPARE or a cursor declared
// with DECLARE.
type sqlObject struct {
	// version is the policy version that checked it; "" when it may be
	// of any version.
	Version string
	// res is the Rewriter's result on the text that made it.
	Result *rewrite.Result
	// batch is the batch that made it.
	batch int64
}

// objChange is what a statement text does to prepared statements and
// cursors through SQL, applied once its batch is answered.
type objChange struct {
	batch   int64
	objs    []rewrite.SessionObject
	Version string
	// res is the Rewriter's result on the text.
	Result *rewrite.Result
	// several: the text holds several statements, so an error in its
	// batch does not say which of them ran.
	several bool
	failed  bool
}

// noteObjects queues the object changes of res, checked under version,
// run in batch number batch; several says whether other statements may
// run in the same batch. The changes answered so far are applied first,
// so that the queues stay as short as the batches in flight (mu held).
func (t *Tracker) noteObjects(res *rewrite.Result, version string, batch int64, several bool) {
	t.applyObjects()
	c := &objChange{batch: batch, objs: res.Objects, Version: version, Result: res, several: several}
	t.objPending = append(t.objPending, c)
	for _, o := range c.objs {
		if key, ok := creates(o); ok {
			q := t.creating[key]
			if q == nil {
				q = &aggQueue[struct{}]{}
				t.creating[key] = q
			}
			q.push(struct{}{}, leaf(version, res))
		}
	}
}

// creates returns the name, keyed by namespace, that o creates, or false
// for an object change that creates none.
func creates(o rewrite.SessionObject) (historyKey, bool) {
	switch o.Op {
	case "prepare":
		return historyKey{name: o.Name}, true
	case "declare":
		return historyKey{name: o.Name, portal: true}, true
	}
	return historyKey{}, false
}

// applyObjects applies the object changes of the batches answered so far
// (mu held): a batch without error did what it said; after an error, a
// single statement did nothing, while of several it is unknown which
// ran, so the objects they create may be of either version.
func (t *Tracker) applyObjects() {
	if len(t.objResolved) == 0 {
		return
	}
	done := t.objResolved
	t.objResolved = nil
	for _, c := range done {
		for _, o := range c.objs {
			if key, ok := creates(o); ok {
				// No longer in flight: noteObjects queued it, in order.
				if q := t.creating[key]; q != nil {
					q.pop()
					if q.len() == 0 {
						delete(t.creating, key)
					}
				}
			}
			ns := namespaceOf(o.Op)
			m := t.SQL[ns]
			switch {
			case c.failed && !c.several:
			case o.Op == "prepare" || o.Op == "declare":
				obj := &sqlObject{Version: c.Version, Result: c.Result, batch: c.batch}
				if old := m[o.Name]; c.failed && old != nil {
					// Perhaps the old object stays.
					obj.batch = old.batch
					if old.Version != obj.Version {
						obj.Version = ""
					}
				}
				remember(t, m, o.Name, obj)
				if !c.failed {
					t.supersede(ns, o.Name, c.batch)
				}
			case c.failed:
				// A drop that may not have run: keep what is known.
			case o.Op == "discard":
				for ns := range t.SQL {
					clearObjects(t.SQL[ns])
					t.supersedeAll(namespace(ns), c.batch)
				}
			case (o.Op == "deallocate" || o.Op == "close") && o.Name != "":
				delete(m, o.Name)
				t.supersede(ns, o.Name, c.batch)
			case o.Op == "deallocate" || o.Op == "close":
				clearObjects(m)
				t.supersedeAll(ns, c.batch)
			}
		}
	}
}

// clearObjects empties m, at no cost when it is empty already: a clear
// costs what the map once held, and a client may pipeline thousands of
// DEALLOCATE ALL.
func clearObjects(m map[string]*sqlObject) {
	if len(m) > 0 {
		clear(m)
	}
}

// supersede forgets the protocol's statement or portal name in ns when
// all the Tracker knows of it comes before batch, whose statement dropped
// or created the name with SQL and succeeded: that is what the upstream
// holds now (mu held).
func (t *Tracker) supersede(ns namespace, name string, batch int64) {
	if ns == nsStatement {
		if info := t.stmts[name]; info != nil && info.batch < batch {
			delete(t.stmts, name)
		}
		return
	}
	if e := t.portals[name]; e != nil && e.batch < batch {
		delete(t.portals, name)
	}
}

// supersedeAll is supersede for every name of ns a DEALLOCATE ALL, CLOSE
// ALL or DISCARD ALL of batch dropped: all but the unnamed ones, which
// they may keep (mu held). It takes from the front of heads[ns] the names
// whose history got a head before batch, instead of walking every name
// held: a client pipelining m of them, then n names, had the next event
// cost m × n (10,000 × 10,000: 2.7 s).
func (t *Tracker) supersedeAll(ns namespace, batch int64) {
	recs := t.heads[ns]
	n := 0
	for n < len(recs) && recs[n].batch < batch {
		t.supersede(ns, recs[n].name, batch)
		n++
	}
	t.heads[ns] = DropFront(recs, n)
}

// headRec is a name of a namespace whose history got a head of batch.
type headRec struct {
	batch int64
	name  string
}

// noteHead notes that the history of name in ns got a head of batch
// (mu held), for supersedeAll.
//
// NOTE: heads[ns] holds, oldest batch first, a record of the head of
// every name of ns but the unnamed one, and records of heads since
// replaced or forgotten, which supersede looks up and passes over. Heads
// come in the order of their batches (the batch being sent), so the
// records stay sorted; when the stale ones outnumber the names, heads
// is made again from the map, so that a client rebinding one portal
// does not grow it.
func (t *Tracker) noteHead(ns namespace, name string, batch int64) {
	if name == "" {
		return
	}
	t.heads[ns] = append(t.heads[ns], headRec{batch: batch, name: name})
	held := len(t.portals)
	if ns == nsStatement {
		held = len(t.stmts)
	}
	if len(t.heads[ns]) <= 2*held+keepCap {
		return
	}
	recs := make([]headRec, 0, 2*held)
	if ns == nsStatement {
		for name, info := range t.stmts {
			if name != "" {
				recs = append(recs, headRec{batch: info.batch, name: name})
			}
		}
	} else {
		for name, e := range t.portals {
			if name != "" {
				recs = append(recs, headRec{batch: e.batch, name: name})
			}
		}
	}
	slices.SortFunc(recs, func(a, b headRec) int { return cmp.Compare(a.batch, b.batch) })
	t.heads[ns] = recs
}

// candidates returns the summary of the policy versions and Rewriter's
// results of the things the upstream may hold under name in ns when a
// message of batch number at runs, whichever way they were made: Parse
// or PREPARE, Bind or DECLARE, answered or still in flight, in this
// order: the name's history of messages from the newest, what SQL made
// of it, the object changes in flight that create it from the oldest.
// An unknown name in a session that forgot names may hold anything: its
// summary is version "" and a nil result (mu held).
//
// NOTE: a message in flight in batch at runs before the one asking:
// when it fails, the server skips that one too, so what came before it
// no longer matters.
func (t *Tracker) candidates(ns namespace, name string, at int64) summary {
	t.applyObjects()
	sum, settled := t.history(ns, name, at)
	if o := t.SQL[ns][name]; o != nil && o.batch >= settled {
		sum = combine(sum, leaf(o.Version, o.Result))
	}
	if q := t.creating[historyKey{name: name, portal: ns == nsPortal}]; q != nil {
		sum = combine(sum, q.total())
	}
	if sum.n == 0 && t.forgot {
		sum = leaf("", nil)
	}
	return sum
}

// history returns the summary of what the history of name in ns (its
// Parse and Close, or Bind and Close, messages) says the upstream may
// hold when a message of batch at runs, from the newest message, and
// settled, the batch of the latest answered message that made or dropped
// it (-1 when none): an SQL object of an earlier batch is gone (mu
// held).
//
// NOTE: a message of batch at is the newest of its history, if any: the
// walk stops at it. Otherwise, with policies that reload, the name's
// flight tells in O(1) amortised what the walk would meet: the messages
// in flight, newest first, then the settled one.
func (t *Tracker) history(ns namespace, name string, at int64) (sum summary, settled int64) {
	if ns == nsPortal {
		return t.portalHistory(t.portals[name], at)
	}
	head := t.stmts[name]
	if head != nil && head.batch < at && head.fl != nil {
		return t.flightHistory(head.fl, ns, name)
	}
	done := t.done
	settled = -1
	for info := head; info != nil; info = info.prev {
		// A refused Parse went upstream as a marker that fails.
		held := info.confirmed && info.Refusal == nil
		inFlight := !info.confirmed && info.batch > done
		if !info.closed && info.Refusal == nil && (held || inFlight) {
			sum = combine(sum, info.ownSummary())
		}
		if held {
			settled = info.batch
			break
		}
		if inFlight && info.batch == at {
			break
		}
		if name == "" && !info.closed && !inFlight {
			break // a failed Parse of the unnamed statement dropped it
		}
	}
	return sum, settled
}

// portalHistory is history for a portal whose latest Bind or Close is
// head (mu held): a caller that holds it looks it up once.
func (t *Tracker) portalHistory(head *portalEntry, at int64) (sum summary, settled int64) {
	settled = -1
	if head != nil && head.batch < at && head.fl != nil {
		// NOTE: cleanup reads a name for statements only.
		return t.flightHistory(head.fl, nsPortal, "")
	}
	done := t.done
	for e := head; e != nil; e = e.prev {
		inFlight := !e.confirmed && e.batch > done
		if !e.closed && (e.confirmed || inFlight) {
			sum = combine(sum, e.Info.ownSummary())
		}
		if e.confirmed {
			settled = e.batch
			break
		}
		if inFlight && e.batch == at {
			break
		}
	}
	return sum, settled
}

// staleExecute is stale for an Execute of portal, of batch at, whose
// latest Bind or Close is e (mu held). When e is a Bind of the
// Execute's own batch and no SQL names a cursor (none held, none in
// flight, none answered and not applied yet), the walk of the history
// stops at e, in flight, and nothing else counts: the portal runs e's
// statement, of e's version, or nothing (the Bind failed, and the
// server skips the Execute). That is the Execute of every Bind, Execute,
// Sync; it spares it the look-ups of the general check.
func (t *Tracker) staleExecute(portal string, e *portalEntry, at int64, cur string) bool {
	if e != nil && !e.closed && e.batch == at && len(t.objResolved) == 0 && len(t.SQL[nsPortal]) == 0 && len(t.creating) == 0 {
		return e.Info.Version != cur
	}
	return t.stale(nsPortal, portal, at, cur)
}

// flightHistory is history from fl, the flight of the history of name
// in ns (mu held).
func (t *Tracker) flightHistory(fl *flight, ns namespace, name string) (sum summary, settled int64) {
	t.cleanup(fl, ns, name)
	sum, settled = fl.q.total(), -1
	if fl.has {
		sum, settled = combine(sum, fl.settledSum), fl.settledBatch
	}
	return sum, settled
}

// stale reports whether the upstream may hold under name in ns, for a
// message of batch at, something checked under another policy version
// than cur (mu held).
func (t *Tracker) stale(ns namespace, name string, at int64, cur string) bool {
	for _, v := range t.candidates(ns, name, at).versions {
		if v != cur {
			return true
		}
	}
	return false
}

// staleObjects returns a refusal when res, run in batch at, runs a
// prepared statement, or fetches from a portal, the upstream may hold
// under a name from another policy version than version, the one in
// force: whether Parse or PREPARE made the statement, Bind or DECLARE
// the portal (mu held).
func (t *Tracker) staleObjects(res *rewrite.Result, at int64, version string) *Refusal {
	if t.versions == nil {
		return nil
	}
	for _, o := range res.Objects {
		ns, ok := runsNamespace(o.Op)
		if !ok {
			continue
		}
		if t.stale(ns, o.Name, at, version) {
			return policyChanged("the statement or cursor " + quoteName(o.Name))
		}
	}
	return nil
}

// runsNamespace returns the namespace of the object an SQL statement's
// op runs (EXECUTE a statement, FETCH or MOVE a portal), or false for an
// op that runs none.
func runsNamespace(op string) (ns namespace, ok bool) {
	switch op {
	case "execute":
		return nsStatement, true
	case "fetch":
		return nsPortal, true
	}
	return 0, false
}

// withObjects returns res, or for a text run in batch at that runs
// prepared statements or fetches from cursors a copy of it that names
// also the tables, rules and columns they read, for the audit trail
// (mu held).
func (t *Tracker) withObjects(res *rewrite.Result, at int64) *rewrite.Result {
	if res == nil {
		return nil
	}
	out := res
	for _, o := range res.Objects {
		ns, ok := runsNamespace(o.Op)
		if !ok {
			continue
		}
		sum := t.candidates(ns, o.Name, at)
		if sum.reads == nil || !sum.many && sum.res == res {
			// No result, or only the text's own.
			continue
		}
		if out == res {
			cp := *res
			out = &cp
		}
		// NOTE: the text's own reads, when among them, add nothing.
		mergeReads(out, sum.reads)
	}
	return out
}

// mergeReads adds to dst the tables, rules and columns r reads. It makes
// new slices: dst's may be shared with a cached result.
func mergeReads(dst, r *rewrite.Result) {
	dst.Tables = union(dst.Tables, r.Tables)
	dst.Rules = union(dst.Rules, r.Rules)
	dst.Masked = union(dst.Masked, r.Masked)
	dst.MaskedRead = union(dst.MaskedRead, r.MaskedRead)
	dst.Columns = union(dst.Columns, r.Columns)
}

// union returns the sorted union of a and b: a itself when b is empty,
// otherwise a new slice, so that neither is ever written to.
func union(a, b []string) []string {
	if len(b) == 0 {
		return a
	}
	out := append(slices.Clone(a), b...)
	slices.Sort(out)
	return slices.Compact(out)
}

// quoteName quotes an identifier for a message or an audit record.
func quoteName(s string) string { return `"` + strings.ReplaceAll(s, `"`, `""`) + `"` }

// policyChanged refuses running what was checked under an older policy
// (firewall rule policy_changed).
func policyChanged(what string) *Refusal {
	return firewall.Deny("policy_changed", "the policy changed since %s was checked", what)
}

// sqlNamed describes, for the audit trail and the policy check, what a
// Bind or Execute that names a statement or portal pgveil did not see
// made runs: one prepared with PREPARE, a cursor declared with DECLARE,
// or one forgotten, for a message of batch at. Its version is one that is
// not in force when the name may hold one checked under such a policy
// (mu held).
func (t *Tracker) sqlNamed(ns namespace, name string, at int64) *Info {
	info := &Info{SQL: "EXECUTE " + quoteName(name)}
	if ns == nsPortal {
		info.SQL = "FETCH FROM " + quoteName(name)
	}
	cur := ""
	if t.versions != nil {
		cur = t.versions.PolicyVersion()
	}
	info.Version = cur
	sum := t.candidates(ns, name, at)
	for i := len(sum.versions) - 1; i >= 0; i-- {
		if v := sum.versions[i]; v != cur {
			info.Version = v
			break
		}
	}
	if sum.reads != nil {
		info.Result = &rewrite.Result{Kinds: []string{"execute"}}
		if ns == nsPortal {
			info.Result.Kinds[0] = "fetch"
		}
		mergeReads(info.Result, sum.reads)
	}
	return info
}

// StaleObjects is the event of a statement text about to run in batch
// at under version, the policy in force: it returns the refusal of res
// when it runs a statement or fetches from a cursor checked under
// another (staleObjects).
func (t *Tracker) StaleObjects(res *rewrite.Result, at int64, version string) *Refusal {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.staleObjects(res, at, version)
}
