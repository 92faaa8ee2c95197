package statement

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// candidatesWalk is candidates as it was before it kept summaries: a
// walk of the name's whole history of messages in flight and of every
// object change in flight, calling fn with each thing the upstream may
// hold under name in ns when a message of batch at runs. It is the
// reference TestCandidatesDifferential holds candidates to (mu held).
func (t *Tracker) candidatesWalk(ns namespace, name string, at int64, fn func(version string, res *rewrite.Result)) {
	t.applyObjects()
	found := false
	done := t.done
	settled := int64(-1)
	if ns == nsStatement {
		for info := t.stmts[name]; info != nil; info = info.prev {
			held := info.confirmed && info.Refusal == nil
			inFlight := !info.confirmed && info.batch > done
			if !info.closed && info.Refusal == nil && (held || inFlight) {
				found = true
				fn(info.Version, info.Result)
			}
			if held {
				settled = info.batch
				break
			}
			if inFlight && info.batch == at {
				break
			}
			if name == "" && !info.closed && !inFlight {
				break
			}
		}
	} else {
		for e := t.portals[name]; e != nil; e = e.prev {
			inFlight := !e.confirmed && e.batch > done
			if !e.closed && (e.confirmed || inFlight) {
				found = true
				fn(e.Info.Version, e.Info.Result)
			}
			if e.confirmed {
				settled = e.batch
				break
			}
			if inFlight && e.batch == at {
				break
			}
		}
	}
	if o := t.SQL[ns][name]; o != nil && o.batch >= settled {
		found = true
		fn(o.Version, o.Result)
	}
	create := "prepare"
	if ns == nsPortal {
		create = "declare"
	}
	for _, cs := range [2][]*objChange{t.objResolved, t.objPending} {
		for _, c := range cs {
			for _, o := range c.objs {
				if o.Op == create && o.Name == name {
					found = true
					fn(c.Version, c.Result)
				}
			}
		}
	}
	if !found && t.forgot {
		fn("", nil)
	}
}

// diffRewriter checks texts as seqRewriter does, and reports "DEALLOCATE
// ALL" and "CLOSE ALL" as the engine does, with no name.
type diffRewriter struct{ seqRewriter }

func (r *diffRewriter) rewrite(st *Statement) (*rewrite.Result, *Refusal) {
	res, ref := r.seqRewriter.rewrite(st)
	if res != nil && len(res.Objects) == 1 && res.Objects[0].Name == "ALL" {
		res.Objects[0].Name = ""
	}
	if res != nil {
		// Reads, so that summaries merge some.
		res.Tables = []string{"t_" + st.Text[len(st.Text)-1:]}
	}
	return res, ref
}

// unit is what the simulated server does next: answer a message (ans,
// or an error when fail), or a Sync (sync).
type unit struct {
	ans        byte
	fail, sync bool
}

// TestCandidatesDifferential drives a Tracker with random sessions
// against a simulated server that answers in order, fails some messages
// and skips the rest of their batch, and checks after every event that
// candidates, which keeps summaries, reports what the walk it replaced
// reports (candidatesWalk), for every name, namespace and batch asked.
func TestCandidatesDifferential(t *testing.T) {
	for seed := range uint64(300) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runDifferential(t, seed) })
	}
}

func runDifferential(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 7))
	rw := &diffRewriter{seqRewriter{Version: "v1"}}
	tr := NewTracker(seed%2 == 0, rw)
	var sent int64
	var queue []unit
	extSince := false // extended messages since the last Sync
	failing := false
	stmtNames := []string{"", "s1", "s2"}
	portalNames := []string{"", "p", "q"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	sqlTexts := []string{"PREPARE s1 AS SELECT a", "PREPARE s2 AS SELECT b", "EXECUTE s1", "EXECUTE s2",
		"DEALLOCATE s1", "DEALLOCATE ALL", "DECLARE p CURSOR FOR SELECT c", "DECLARE q CURSOR FOR SELECT d",
		"FETCH p", "FETCH q", "CLOSE p", "CLOSE ALL", "SELECT e", "deny f", "COMMIT"}
	check := func(step int, ev string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, ns := range []namespace{nsStatement, nsPortal} {
			names := stmtNames
			if ns == nsPortal {
				names = portalNames
			}
			for _, name := range names {
				for _, at := range []int64{tr.sent, tr.sent + 1} {
					var want summary
					tr.candidatesWalk(ns, name, at, func(v string, r *rewrite.Result) { want = combine(want, leaf(v, r)) })
					got := tr.candidates(ns, name, at)
					if !sameSummary(got, want) {
						t.Fatalf("step %d (%s): candidates(%d, %q, %d) = %+v, the walk says %+v", step, ev, ns, name, at, got, want)
					}
				}
			}
		}
		checkHeads(t, tr)
	}
	query := func(text string) {
		sent++
		tr.OnSimpleBatchClosed(sent)
		st := &Statement{Source: SourceQuery, Text: text}
		res, r := rw.rewrite(st)
		if r == nil {
			r = tr.StaleObjects(res, sent, st.PolicyVersion)
		}
		if r != nil {
			res = nil
		}
		tr.OnStatement(st, res, r)
		queue = append(queue, unit{ans: 'C', fail: r != nil}, unit{sync: true})
	}
	for step := range 400 {
		ev := ""
		switch k := rng.IntN(20); {
		case k < 8 && len(queue) > 0:
			// The server's next step.
			u := queue[0]
			queue = queue[1:]
			switch {
			case u.sync:
				ev = "Z"
				tr.OnReadyForQuery(1, 1, 'I')
				failing = false
			case failing:
				ev = "skipped"
			case u.fail || rng.IntN(8) == 0:
				ev = "error"
				tr.OnError()
				tr.OnAnswer('E', 1, "XX000", "error", u.fail)
				failing = true
			default:
				ev = string(u.ans)
				tr.OnAnswer(u.ans, 1, "", "", false)
			}
		case k < 10 && !extSince:
			ev = "Q"
			query(sqlTexts[rng.IntN(len(sqlTexts))])
		case k < 12:
			name := pick(stmtNames)
			text := sqlTexts[rng.IntN(len(sqlTexts))]
			ev = "P " + name + " " + text
			st := &Statement{Source: SourceParse, Name: name, Text: text}
			res, r := rw.rewrite(st)
			if r == nil {
				r = tr.StaleObjects(res, sent+1, st.PolicyVersion)
			}
			if r != nil {
				res = nil
			}
			tr.OnStatement(st, res, r)
			queue = append(queue, unit{ans: '1', fail: r != nil})
			extSince = true
		case k < 14:
			portal, name := pick(portalNames), pick(stmtNames)
			ev = "B " + portal + " " + name
			plan := tr.OnBind(portal, name, true)
			inject := plan.Inject
			var r *Refusal
			if plan.Again != nil {
				res, ref := rw.rewrite(plan.Again)
				r = ref
				if r != nil {
					res = nil
				}
				inject = tr.OnReprepared(portal, plan.Again, res, r)
			}
			for range inject {
				queue = append(queue, unit{ans: '1'})
			}
			if len(inject) > 0 {
				queue[len(queue)-len(inject)].ans = '3' // the Close
			}
			queue = append(queue, unit{ans: '2', fail: r != nil})
			extSince = true
		case k < 16:
			portal := pick(portalNames)
			ev = "E " + portal
			p := tr.OnExecute(portal)
			tr.OnExecuteDecided(p, p.Refusal)
			queue = append(queue, unit{ans: 'C', fail: p.Refusal != nil})
			extSince = true
		case k < 17:
			kind, name := byte('S'), pick(stmtNames)
			if rng.IntN(2) == 0 {
				kind, name = 'P', pick(portalNames)
			}
			ev = fmt.Sprintf("C%c %s", kind, name)
			tr.OnClose(kind, name, true)
			queue = append(queue, unit{ans: '3'})
			extSince = true
		case k < 19 && extSince:
			ev = "S"
			sent++
			tr.OnBatchClosed(sent)
			queue = append(queue, unit{sync: true})
			extSince = false
		case k == 19:
			ev = "reload"
			rw.mu.Lock()
			rw.Version = []string{"v1", "v2", "v3"}[rng.IntN(3)]
			rw.mu.Unlock()
		}
		check(step, ev)
	}
}

// sameSummary reports whether a and b say the same to candidates'
// callers.
func sameSummary(a, b summary) bool {
	if a.n != b.n || !slices.Equal(a.versions, b.versions) || a.many != b.many || a.res != b.res {
		return false
	}
	if (a.reads == nil) != (b.reads == nil) {
		return false
	}
	return a.reads == nil || slices.Equal(a.reads.Tables, b.reads.Tables) && slices.Equal(a.reads.Rules, b.reads.Rules) &&
		slices.Equal(a.reads.Masked, b.reads.Masked) && slices.Equal(a.reads.Columns, b.reads.Columns)
}

// checkHeads checks the invariant of heads (noteHead): sorted by batch,
// and a record of the head of every name but the unnamed ones (mu held).
func checkHeads(t *testing.T, tr *Tracker) {
	t.Helper()
	for ns := range tr.heads {
		recs := tr.heads[ns]
		if !slices.IsSortedFunc(recs, func(a, b headRec) int { return int(a.batch - b.batch) }) {
			t.Fatalf("heads[%d] not sorted: %v", ns, recs)
		}
		has := map[headRec]bool{}
		for _, r := range recs {
			has[r] = true
		}
		if ns == int(nsStatement) {
			for name, info := range tr.stmts {
				if name != "" && !has[headRec{batch: info.batch, name: name}] {
					t.Fatalf("no record of the head of statement %q (batch %d): %v", name, info.batch, recs)
				}
			}
		} else {
			for name, e := range tr.portals {
				if name != "" && !has[headRec{batch: e.batch, name: name}] {
					t.Fatalf("no record of the head of portal %q (batch %d): %v", name, e.batch, recs)
				}
			}
		}
	}
}
