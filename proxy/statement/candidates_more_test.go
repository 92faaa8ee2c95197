package statement

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// moreRewriter is diffRewriter with DISCARD ALL, and with the names of
// SQL objects cut to 63 bytes, as the parser cuts identifiers.
type moreRewriter struct{ diffRewriter }

func (r *moreRewriter) rewrite(st *Statement) (*rewrite.Result, *Refusal) {
	res, ref := r.diffRewriter.rewrite(st)
	if res == nil {
		return res, ref
	}
	if st.Text == "DISCARD ALL" {
		res.Kinds = []string{"discard"}
		res.Objects = []rewrite.SessionObject{{Op: "discard"}}
	}
	for i := range res.Objects {
		res.Objects[i].Name = ServerName(res.Objects[i].Name)
	}
	return res, ref
}

// TestCandidatesDifferentialMore is TestCandidatesDifferential over what
// it leaves out: DISCARD ALL, names past 63 bytes and their prefixes, a
// Query pipelined after extended messages (skipped after their error,
// its ReadyForQuery then closing two batches), Close and Bind messages
// too short to name anything, and Closes of names never used.
func TestCandidatesDifferentialMore(t *testing.T) {
	for seed := range uint64(400) {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { runDifferentialMore(t, seed) })
	}
}

func runDifferentialMore(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 11))
	rw := &moreRewriter{diffRewriter{seqRewriter{Version: "v1"}}}
	tr := NewTracker(seed%2 == 0, rw)
	var sent int64
	type munit struct {
		ans                      byte
		fail, sync, qsync, query bool
	}
	var queue []munit
	extSince, failing, failingQ := false, false, false
	skippedBatches := int64(0)
	long := strings.Repeat("x", 63)
	stmtNames := []string{"", "s1", long, long + "a", long + "b", "never"}
	portalNames := []string{"", "p", long, long + "c", "never"}
	pick := func(s []string) string { return s[rng.IntN(len(s))] }
	sqlTexts := []string{"PREPARE s1 AS SELECT a", "PREPARE " + long + "z AS SELECT b", "EXECUTE s1", "EXECUTE " + long,
		"DEALLOCATE s1", "DEALLOCATE " + long + "q", "DEALLOCATE ALL", "DECLARE p CURSOR FOR SELECT c", "DECLARE " + long + "y CURSOR FOR SELECT d",
		"FETCH p", "FETCH " + long, "CLOSE p", "CLOSE " + long, "CLOSE ALL", "DISCARD ALL", "SELECT e", "deny f", "COMMIT"}
	check := func(step int, ev string) {
		tr.mu.Lock()
		defer tr.mu.Unlock()
		for _, ns := range []namespace{nsStatement, nsPortal} {
			names := stmtNames
			if ns == nsPortal {
				names = portalNames
			}
			for _, name := range names {
				name = ServerName(name)
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
		if extSince {
			tr.OnBatchClosed(sent)
		} else {
			tr.OnSimpleBatchClosed(sent)
		}
		st := &Statement{Source: SourceQuery, Text: text}
		res, r := rw.rewrite(st)
		if r == nil {
			r = tr.StaleObjects(res, sent, st.PolicyVersion)
		}
		if r != nil {
			res = nil
		}
		tr.OnStatement(st, res, r)
		queue = append(queue, munit{ans: 'C', fail: r != nil, query: true}, munit{sync: true, qsync: extSince})
	}
	for step := range 500 {
		ev := ""
		switch k := rng.IntN(22); {
		case k < 8 && len(queue) > 0:
			u := queue[0]
			queue = queue[1:]
			switch {
			case u.sync && u.qsync && failing:
				// A Query after an error in its extended batch: skipped,
				// with no ReadyForQuery of its own.
				ev = "Q skipped"
				skippedBatches++
			case u.sync:
				ev = fmt.Sprintf("Z (%d)", 1+skippedBatches)
				tr.OnReadyForQuery(1, 1+skippedBatches, 'I')
				skippedBatches = 0
				if !u.qsync || failingQ {
					// A Query's error does not skip what follows.
					failing, failingQ = false, false
				}
			case failing:
				ev = "skipped"
			case u.fail || rng.IntN(8) == 0:
				ev = "error"
				tr.OnError()
				tr.OnAnswer('E', 1, "XX000", "error", u.fail)
				failing, failingQ = true, u.query
			default:
				ev = string(u.ans)
				tr.OnAnswer(u.ans, 1, "", "", false)
			}
		case k < 10:
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
			queue = append(queue, munit{ans: '1', fail: r != nil})
			extSince = true
		case k < 14:
			portal, name := pick(portalNames), pick(stmtNames)
			ev = "B " + portal + " " + name
			ok := rng.IntN(20) != 0
			plan := tr.OnBind(portal, name, ok)
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
				queue = append(queue, munit{ans: '1'})
			}
			if len(inject) > 0 {
				queue[len(queue)-len(inject)].ans = '3'
			}
			queue = append(queue, munit{ans: '2', fail: r != nil || !ok})
			extSince = true
		case k < 16:
			portal := pick(portalNames)
			ev = "E " + portal
			p := tr.OnExecute(portal)
			tr.OnExecuteDecided(p, p.Refusal)
			queue = append(queue, munit{ans: 'C', fail: p.Refusal != nil})
			extSince = true
		case k < 18:
			kind, name := byte('S'), pick(stmtNames)
			if rng.IntN(2) == 0 {
				kind, name = 'P', pick(portalNames)
			}
			ok := rng.IntN(20) != 0
			ev = fmt.Sprintf("C%c %s %v", kind, name, ok)
			tr.OnClose(kind, name, ok)
			queue = append(queue, munit{ans: '3', fail: !ok})
			extSince = true
		case k < 21 && extSince:
			ev = "S"
			sent++
			tr.OnBatchClosed(sent)
			queue = append(queue, munit{sync: true})
			extSince = false
		case k == 21:
			ev = "reload"
			rw.mu.Lock()
			rw.Version = []string{"v1", "v2", "v3"}[rng.IntN(3)]
			rw.mu.Unlock()
		}
		check(step, ev)
	}
}
