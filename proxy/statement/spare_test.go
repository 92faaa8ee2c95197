package statement

import (
	"fmt"
	"math/rand"
	"strconv"
	"strings"
	"testing"
)

// This file drives the Tracker through random sessions (simRun): a
// client that sends Parse, Bind, Execute, Close, Sync and Query messages
// of a few names, pipelined or not, policy reloads between any two of
// them, and an upstream that answers them in order, fails one now and
// then and skips the rest of its batch after an error.

// simDescribe writes an execution with everything the audit trail takes.
func simDescribe(f Finished) string {
	x := f.Exec
	if x == nil {
		return ""
	}
	s := "audit " + x.Info.Version + " " + x.Info.SQL + " params=" + x.Params
	if x.Info.Refusal != nil {
		s += " denied " + x.Info.Refusal.Rule
	}
	return s + fmt.Sprintf(" rows=%d st=%s note=%s", x.Rows, x.SQLState, f.Note)
}

// simEvent is machine.event, with the Bind's parameter values and what
// the audit trail records of each execution in full.
func (m *machine) simEvent(t *testing.T, ev string, params string) string {
	f := strings.Fields(ev)
	name := func(i int) string {
		if f[i] == "-" {
			return ""
		}
		return f[i]
	}
	tr := m.t
	switch f[0] {
	case "B":
		plan := tr.OnBindParams(name(1), name(2), params, true)
		inject := plan.Inject
		var r *Refusal
		if plan.Again != nil {
			res, rr := m.check(t, plan.Again)
			r = rr
			inject = tr.OnReprepared(name(1), plan.Again, res, r)
		}
		var out []string
		if len(inject) > 0 {
			out = append(out, "inject "+describeInjected(inject))
		}
		if r != nil {
			out = append(out, describeRefusal(r))
		}
		return strings.Join(out, ", ")
	case "E":
		p := tr.OnExecute(name(1))
		tr.OnExecuteDecided(p, p.Refusal)
		if p.Refusal != nil {
			return describeRefusal(p.Refusal)
		}
		return "runs " + p.Info.Version + " " + p.Info.SQL + " params=" + p.params
	case "1", "2", "3", "D", "C":
		swallow, done := tr.OnAnswer(f[0][0], 1, "", "", false)
		if swallow {
			return "swallowed"
		}
		return simDescribe(Finished{Exec: done})
	case "E!":
		tr.OnError()
		code, refused := f[1], f[1] == "marker"
		if refused {
			code = ""
		}
		_, done := tr.OnAnswer('E', 1, code, "error", refused)
		return simDescribe(Finished{Exec: done})
	case "Z":
		var out []string
		for _, x := range tr.OnReadyForQuery(1, 1, 'I') {
			out = append(out, simDescribe(x))
		}
		return strings.Join(out, ", ")
	}
	return m.event(t, ev)
}

// simTexts are the texts the random sessions send: refused ones, ones
// refused under one version only, and the SQL that makes, runs and
// drops statements and cursors of the names Parse and Bind use.
var simTexts = []string{"SELECT 1", "SELECT 2", "SELECT 3 deny", "SELECT 4 forbid-v2", "SELECT 5 forbid-v1",
	"DECLARE p", "DECLARE -", "FETCH p", "CLOSE p", "PREPARE s1", "EXECUTE s1", "DEALLOCATE s1", "COMMIT"}

// simRun drives one random session, seeded with seed, and returns its
// transcript; after, if not nil, runs after each event. The Tracker
// audits when audit is set, gets parameter values for each Bind with
// withParams, and follows no policy versions when static is set.
func simRun(t *testing.T, seed int64, audit bool, withParams bool, static bool, after func(tr *Tracker, ev string)) string {
	rng := rand.New(rand.NewSource(seed))
	rw := &seqRewriter{Version: "v1"}
	m := &machine{t: NewTracker(audit, rw), rw: rw}
	if static {
		m.t = NewTracker(true, nil)
	}
	var tr strings.Builder
	var q []string // answers the server will give, in order
	bound := 0
	stmts := []string{"s1", "s2", "-", "s3"}
	portals := []string{"p", "q", "-", "r", "t", "u", "v", "w", "x", "y"}
	steps := 40 + rng.Intn(400)
	inErr := false
	for i := 0; i < steps || len(q) > 0; i++ {
		if i < steps && (len(q) == 0 || rng.Intn(3) > 0) {
			// a client event
			var ev string
			params := ""
			switch k := rng.Intn(20); {
			case k < 3:
				ev = "P " + stmts[rng.Intn(len(stmts))] + " " + simTexts[rng.Intn(len(simTexts))]
			case k < 8:
				ev = "B " + portals[rng.Intn(1+rng.Intn(len(portals)))] + " " + stmts[rng.Intn(len(stmts))]
				bound++
				if withParams {
					params = "$1=" + strconv.Itoa(bound)
				}
			case k < 12:
				ev = "E " + portals[rng.Intn(1+rng.Intn(len(portals)))]
			case k < 13:
				ev = "CS " + stmts[rng.Intn(len(stmts))]
			case k < 14:
				ev = "CP " + portals[rng.Intn(1+rng.Intn(len(portals)))]
			case k < 17:
				ev = "S"
			case k < 18:
				ev = "Q " + simTexts[rng.Intn(len(simTexts))]
			default:
				ev = "reload v" + strconv.Itoa(1+rng.Intn(3))
			}
			out := m.simEvent(t, ev, params)
			fmt.Fprintf(&tr, "%s [%s]: %s\n", ev, params, out)
			if after != nil {
				after(m.t, ev)
			}
			// what the server will answer
			f := strings.Fields(ev)
			refused := strings.Contains(out, "refused")
			switch f[0] {
			case "P":
				if refused {
					q = append(q, "E! marker")
				} else {
					q = append(q, "1")
				}
			case "B":
				if strings.Contains(out, "CS(") {
					q = append(q, "3")
				}
				if strings.Contains(out, "P(") {
					q = append(q, "1")
				}
				if refused {
					q = append(q, "E! marker")
				} else {
					q = append(q, "2")
				}
			case "E":
				if refused {
					q = append(q, "E! marker")
				} else {
					q = append(q, "D", "C")
				}
			case "CS", "CP":
				q = append(q, "3")
			case "S":
				q = append(q, "Z")
			case "Q":
				if refused {
					q = append(q, "E! marker", "Z")
				} else {
					q = append(q, "C", "Z")
				}
			}
			continue
		}
		if len(q) == 0 {
			continue
		}
		a := q[0]
		q = q[1:]
		if inErr && a != "Z" {
			continue // skipped after an error
		}
		if a == "Z" {
			inErr = false
		} else if a == "E! marker" {
			inErr = true
		} else if a != "D" && rng.Intn(8) == 0 {
			a = "E! 42000"
			inErr = true
		}
		out := m.simEvent(t, a, "")
		fmt.Fprintf(&tr, "  %s: %s\n", a, out)
		if after != nil {
			after(m.t, a)
		}
	}
	// close the last batch
	return tr.String()
}

// TestTrackerSpareUnreachable checks, after each event of random
// sessions, that the portal entry the Tracker keeps for the next Bind
// (Tracker.spare) is one nothing else points to: no portal's history, no
// flight, no Bind awaiting its answer, no kept parameter values. A
// spare still reachable would give one Bind's statement, version or
// values to another portal's Execute, or skip a policy_changed refusal.
func TestTrackerSpareUnreachable(t *testing.T) {
	reuses := 0
	for seed := int64(0); seed < 200; seed++ {
		for _, params := range []bool{false, true} {
			simRun(t, seed, true, params, false, func(tr *Tracker, ev string) {
				if tr.spare == nil {
					return
				}
				reuses++
				if where := tr.pointsTo(tr.spare); where != "" {
					t.Fatalf("seed %d, params %v, after %q: the spare entry is still reachable from %s", seed, params, ev, where)
				}
			})
		}
	}
	if reuses == 0 {
		t.Fatal("no session had a spare entry: the test no longer reaches the reuse")
	}
}

// pointsTo says what of the Tracker's state points to e, "" for nothing
// (the test's only: it walks everything).
func (t *Tracker) pointsTo(e *portalEntry) string {
	inFlight := func(fl *flight) bool {
		if fl == nil {
			return false
		}
		for _, items := range [][]aggItem[historyEntry]{fl.q.front, fl.q.back} {
			for _, it := range items {
				if it.v.e == e {
					return true
				}
			}
		}
		return false
	}
	for name, head := range t.portals {
		for p := head; p != nil; p = p.prev {
			if p == e {
				return fmt.Sprintf("the history of portal %q", name)
			}
			if inFlight(p.fl) {
				return fmt.Sprintf("the flight of portal %q", name)
			}
		}
	}
	for _, a := range t.awaitingBinds {
		if a.e == e {
			return "a Bind awaiting its answer"
		}
	}
	for _, k := range t.kept {
		if k.e == e {
			return "the kept parameter values"
		}
	}
	return ""
}
