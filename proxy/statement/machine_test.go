package statement

import (
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/pgveil/pgveil/internal/firewall"
	"github.com/pgveil/pgveil/rewrite"
)

// machine feeds events to a Tracker directly, as the relays would, with
// no goroutines and no sockets. The statements' texts are checked by a
// seqRewriter, whose version is the policy in force.
type machine struct {
	t  *Tracker
	rw *seqRewriter
	// sent counts the batches closed, as session.sent.
	sent int64
}

// check runs the Rewriter on st as the session does, returning its
// result or its refusal.
func (m *machine) check(t *testing.T, st *Statement) (*rewrite.Result, *Refusal) {
	t.Helper()
	return m.rw.rewrite(st)
}

// seqRewriter is the policy of the machine's sequences, as the proxy's
// sequence tests have it: it refuses texts that hold "deny", and those
// that hold "forbid-" and the version in force, and prefixes every other
// text with the version that checked it.
type seqRewriter struct {
	mu      sync.Mutex
	Version string
}

// PolicyVersion implements PolicyVersioner.
func (r *seqRewriter) PolicyVersion() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.Version
}

// rewrite checks st under the version in force.
func (r *seqRewriter) rewrite(st *Statement) (*rewrite.Result, *Refusal) {
	v := r.PolicyVersion()
	st.PolicyVersion = v
	if strings.Contains(st.Text, "deny") || strings.Contains(st.Text, "forbid-"+v) {
		return nil, firewall.Deny("statement_kind", "pgveil refused the statement")
	}
	res := &rewrite.Result{SQL: "/*" + v + "*/ " + st.Text, Kinds: []string{"select"}}
	if strings.HasPrefix(st.Text, "COMMIT") {
		res.Kinds = []string{"transaction"}
	}
	// PREPARE, EXECUTE, DEALLOCATE, DECLARE, FETCH and CLOSE of one
	// name, as the engine reports them.
	if f := strings.Fields(st.Text); len(f) >= 2 {
		switch op := strings.ToLower(f[0]); op {
		case "prepare", "execute", "deallocate", "declare", "fetch", "close":
			res.Kinds = []string{op}
			res.Objects = []rewrite.SessionObject{{Op: op, Name: f[1]}}
		}
	}
	return res, nil
}

// event feeds the Tracker one event and describes what it told the
// session to do ("" for nothing). Client events: "P name text" (a Parse;
// name "-" is the unnamed statement), "Q text" (a Query), "B portal
// name", "E portal", "CS name", "CP name", "S" (a Sync). Upstream
// answers: "1", "2", "3" (ParseComplete, BindComplete, CloseComplete),
// "D" (a row), "C" (CommandComplete), "E! sqlstate" (an error; sqlstate
// "marker" for a refusal's marker), "Z" (ReadyForQuery; "Z T" or "Z E"
// inside a transaction block, idle otherwise). And "reload v"
// puts policy version v in force, "end" ends the session.
func (m *machine) event(t *testing.T, ev string) string {
	t.Helper()
	f := strings.Fields(ev)
	name := func(i int) string {
		if f[i] == "-" {
			return ""
		}
		return f[i]
	}
	rest := func(i int) string { return strings.Join(f[i:], " ") }
	tr := m.t
	switch f[0] {
	case "reload":
		m.rw.mu.Lock()
		m.rw.Version = f[1]
		m.rw.mu.Unlock()
		return ""
	case "P":
		st := &Statement{Source: SourceParse, Name: name(1), Text: rest(2)}
		res, r := m.check(t, st)
		if r == nil {
			r = m.stale(res, m.sent+1, st.PolicyVersion)
		}
		if r != nil {
			res = nil
		}
		tr.OnStatement(st, res, r)
		return describeRefusal(r)
	case "Q":
		m.sent++
		tr.OnBatchClosed(m.sent)
		st := &Statement{Source: SourceQuery, Text: rest(1)}
		res, r := m.check(t, st)
		if r == nil {
			r = m.stale(res, m.sent, st.PolicyVersion)
		}
		if r != nil {
			res = nil
		}
		tr.OnStatement(st, res, r)
		return describeRefusal(r)
	case "B":
		plan := tr.OnBind(name(1), name(2), true)
		inject := plan.Inject
		var r *Refusal
		if plan.Again != nil {
			var res *rewrite.Result
			res, r = m.check(t, plan.Again)
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
		return "runs " + p.Info.Version + " " + p.Info.SQL
	case "CS", "CP":
		tr.OnClose(f[0][1], name(1), true)
		return ""
	case "S":
		m.sent++
		tr.OnBatchClosed(m.sent)
		return ""
	case "1", "2", "3", "D", "C":
		swallow, done := tr.OnAnswer(f[0][0], 1, "", "", false)
		if swallow {
			return "swallowed"
		}
		return describeFinished(Finished{Exec: done})
	case "E!":
		tr.OnError()
		code, refused := f[1], f[1] == "marker"
		if refused {
			code = ""
		}
		_, done := tr.OnAnswer('E', 1, code, "error", refused)
		return describeFinished(Finished{Exec: done})
	case "Z":
		var out []string
		status := byte('I')
		if len(f) > 1 {
			status = f[1][0]
		}
		for _, x := range tr.OnReadyForQuery(1, 1, status) {
			out = append(out, describeFinished(x))
		}
		return strings.Join(out, ", ")
	case "end":
		var out []string
		for _, x := range tr.OnEnd() {
			out = append(out, describeFinished(Finished{Exec: x, Note: "interrupted"}))
		}
		return strings.Join(out, ", ")
	}
	t.Fatalf("unknown event %q", ev)
	return ""
}

// stale refuses res, run in batch at under version, as relayQuery and
// relayParse do.
func (m *machine) stale(res *rewrite.Result, at int64, version string) *Refusal {
	if m.t.versions == nil {
		return nil
	}
	m.t.mu.Lock()
	defer m.t.mu.Unlock()
	return m.t.staleObjects(res, at, version)
}

// describeRefusal writes "refused rule", or "" for no refusal.
func describeRefusal(r *Refusal) string {
	if r == nil {
		return ""
	}
	return "refused " + r.Rule
}

// describeInjected writes injected messages as CS(name) and
// P(name: text).
func describeInjected(msgs []pgproto3.FrontendMessage) string {
	var parts []string
	for _, m := range msgs {
		switch m := m.(type) {
		case *pgproto3.Close:
			parts = append(parts, "C"+string(m.ObjectType)+"("+m.Name+")")
		case *pgproto3.Parse:
			parts = append(parts, "P("+m.Name+": "+m.Query+")")
		default:
			parts = append(parts, fmt.Sprintf("%T", m))
		}
	}
	return strings.Join(parts, " ")
}

// describeFinished writes an Execution the audit trail records as
// "audit decision: sql", with its rows, upstream error and note; "" for
// none.
func describeFinished(f Finished) string {
	x := f.Exec
	if x == nil {
		return ""
	}
	s := "audit allowed: "
	if x.Info.Refusal != nil {
		s = "audit denied " + x.Info.Refusal.Rule + ": "
	}
	s += x.Info.SQL
	if x.Rows > 0 {
		s += fmt.Sprintf(" rows=%d", x.Rows)
	}
	if x.SQLState != "" {
		s += " " + x.SQLState
	}
	if f.Note != "" {
		s += " (" + f.Note + ")"
	}
	return s
}

// TestTrackerMachine feeds sequences of events to the Tracker's state
// machine directly: the client's Parse, Bind, Execute, Close, Sync and
// Query messages, the upstream's answers and errors, and policy reloads.
// Each sequence lists what the Tracker tells the session to do at the
// events where it does something: the messages to inject before a Bind,
// the refusals, the answers to swallow, the executions to audit.
func TestTrackerMachine(t *testing.T) {
	tests := []struct {
		name string
		// static: the policies cannot reload (the Tracker only audits).
		static bool
		// events, separated by "|" (see machine.event).
		events string
		// want lists "event: what the session must do", for the events
		// where it must do something.
		want []string
	}{
		{
			name:   "a statement prepared, bound and run under one policy runs as checked",
			events: "P s1 SELECT 1 | B p s1 | E p | S | 1 | 2 | D | C | Z",
			want: []string{
				"E p: runs v1 SELECT 1",
				"Z: audit allowed: SELECT 1 rows=1",
			},
		},
		{
			name:   "without reloads nothing is prepared again nor swallowed",
			static: true,
			events: "P s1 SELECT 1 | S | 1 | Z | reload v2 | B p s1 | E p | S | 2 | D | C | Z",
			want: []string{
				"E p: runs v1 SELECT 1",
				"Z: audit allowed: SELECT 1 rows=1",
			},
		},
		{
			name: "a statement prepared under an older policy is prepared again at its next Bind, its answers swallowed",
			events: "P s1 SELECT 1 | S | 1 | Z | reload v2 | B p s1 | E p | S | 3 | 1 | 2 | D | C | Z" +
				" | B q s1 | E q | S | 2 | C | Z",
			want: []string{
				"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
				"E p: runs v2 SELECT 1",
				"3: swallowed",
				"1: swallowed",
				"Z: audit allowed: SELECT 1 rows=1",
				"E q: runs v2 SELECT 1",
				"Z: audit allowed: SELECT 1",
			},
		},
		{
			name: "a statement the policy in force refuses is closed and refused in the Bind's place",
			events: "P s1 SELECT 1 forbid-v2 | S | 1 | Z | reload v2 | B p s1 | E p | S | 3 | E! marker | Z" +
				" | B q s1",
			want: []string{
				"B p s1: inject CS(s1), refused statement_kind",
				"E p: runs v2 SELECT 1 forbid-v2",
				"3: swallowed",
				"Z: audit denied statement_kind: SELECT 1 forbid-v2",
			},
		},
		{
			name:   "a portal bound under an older policy is refused at its Execute",
			events: "P s1 SELECT 1 | B p s1 | S | 1 | 2 | Z | reload v2 | E p | S | E! marker | Z",
			want: []string{
				"E p: refused policy_changed",
				"Z: audit denied policy_changed: SELECT 1",
			},
		},
		{
			name: "an error skips the rest of its batch: the executions skipped are audited as not executed",
			events: "E nope | P s1 SELECT 1 | B p s1 | E p | S | E! 34000 | Z" +
				" | B q s1",
			want: []string{
				`E nope: runs v1 FETCH FROM "nope"`,
				"E p: runs v1 SELECT 1",
				`Z: audit allowed: FETCH FROM "nope" 34000, audit allowed: SELECT 1 (not executed: an earlier message of its batch failed)`,
				// The skipped Parse says nothing of what the name holds:
				// closed first.
				"B q s1: inject CS(s1)",
			},
		},
		{
			name: "a failed Parse of a taken name keeps the earlier statement, prepared again after a reload",
			events: "P s1 SELECT 1 | S | 1 | Z | P s1 SELECT 2 | S | E! 42P05 | Z" +
				" | reload v2 | B p s1",
			want: []string{"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)"},
		},
		{
			name: "a Close skipped after an error leaves the statement, prepared again after a reload",
			events: "P s1 SELECT 1 | S | 1 | Z | E nope | CS s1 | S | E! 34000 | Z" +
				" | reload v2 | B p s1",
			want: []string{
				`E nope: runs v1 FETCH FROM "nope"`,
				`Z: audit allowed: FETCH FROM "nope" 34000`,
				"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
			},
		},
		{
			name:   "a Close answered before a reload leaves nothing to prepare again",
			events: "P s1 SELECT 1 | CS s1 | S | 1 | 3 | Z | reload v2 | B p s1",
		},
		{
			name: "a portal Close skipped after an error leaves the portal, refused after a reload",
			events: "P s1 SELECT 1 | B p s1 | S | 1 | 2 | Z | E nope | CP p | S | E! 34000 | Z" +
				" | reload v2 | E p",
			want: []string{
				`E nope: runs v1 FETCH FROM "nope"`,
				`Z: audit allowed: FETCH FROM "nope" 34000`,
				"E p: refused policy_changed",
			},
		},
		{
			name:   "a portal Close answered leaves a name nothing holds",
			events: "P s1 SELECT 1 | B p s1 | S | 1 | 2 | Z | CP p | S | 3 | Z | reload v2 | E p",
			want:   []string{`E p: runs v2 FETCH FROM "p"`},
		},
		{
			name:   "a Bind pipelined in the Parse's own batch trusts the Parse in flight",
			events: "P s1 SELECT 1 | B p s1 | E p | S | reload v2 | B q s1 | S | 1 | 2 | D | C | Z",
			want: []string{
				"E p: runs v1 SELECT 1",
				"B q s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
				"Z: audit allowed: SELECT 1 rows=1",
			},
		},
		{
			name: "a Bind pipelined a batch after an unanswered Parse prepares it again, and the answers follow",
			events: "P s1 SELECT 1 | S | B p s1 | E p | S" +
				" | 1 | Z | 3 | 1 | 2 | D | C | Z",
			want: []string{
				"B p s1: inject CS(s1) P(s1: /*v1*/ SELECT 1)",
				"E p: runs v1 SELECT 1",
				"3: swallowed",
				"1: swallowed",
				"Z: audit allowed: SELECT 1 rows=1",
			},
		},
		{
			name:   "a reload while a Parse is in flight prepares it again under the policy in force",
			events: "P s1 SELECT 1 | S | reload v2 | B p s1 | 1 | Z | 3 | 1 | 2",
			want:   []string{"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)", "3: swallowed", "1: swallowed"},
		},
		{
			name:   "an injection the server skipped after an error is dropped at its ReadyForQuery",
			events: "P s1 SELECT 1 | S | 1 | Z | reload v2 | E nope | B p s1 | S | E! 34000 | Z | B q s1",
			want: []string{
				`E nope: runs v2 FETCH FROM "nope"`,
				"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
				`Z: audit allowed: FETCH FROM "nope" 34000`,
				// The upstream still holds the statement of v1.
				"B q s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
			},
		},
		{
			name:   "the unnamed statement prepared under an older policy is prepared again",
			events: "P - SELECT 1 | S | 1 | Z | reload v2 | B - - | E - | S | 3 | 1 | 2 | C | Z",
			want: []string{
				"B - -: inject CS() P(: /*v2*/ SELECT 1)",
				"E -: runs v2 SELECT 1",
				"3: swallowed",
				"1: swallowed",
				"Z: audit allowed: SELECT 1",
			},
		},
		{
			// A failed Parse dropped it, a skipped one kept the one
			// before: which, the answers do not tell.
			name: "an unanswered Parse of the unnamed statement leaves it unknown: closed before the next Bind",
			events: "P - SELECT 1 | S | 1 | Z | P - SELECT deny | S | E! marker | Z" +
				" | reload v2 | B - -",
			want: []string{
				"P - SELECT deny: refused statement_kind",
				"Z: audit denied statement_kind: SELECT deny",
				"B - -: inject CS()",
			},
		},
		{
			name: "a Parse of the unnamed statement skipped after an error leaves the one before, closed before the next Bind",
			events: "P - SELECT 1 | S | 1 | Z | reload v2 | P f SELECT 2 | B - f | E - | P - SELECT 3 | S | 1 | 2 | E! 22012 | Z" +
				" | B - - | E - | S | 3 | E! 26000 | Z",
			want: []string{
				"E -: runs v2 SELECT 2",
				"Z: audit allowed: SELECT 2 22012",
				"B - -: inject CS()",
				"E -: runs v2 SELECT 2",
				"3: swallowed",
				// The Bind fails (26000): its Execute is skipped.
				"Z: audit allowed: SELECT 2 26000",
			},
		},
		{
			name: "a statement prepared with SQL under an older policy is refused at its EXECUTE",
			events: "Q PREPARE q AS SELECT 1 | C | Z | Q EXECUTE q | D | C | Z" +
				" | reload v2 | Q EXECUTE q | E! marker | Z",
			want: []string{
				"Z: audit allowed: PREPARE q AS SELECT 1", "Z: audit allowed: EXECUTE q rows=1",
				"Q EXECUTE q: refused policy_changed", "Z: audit denied policy_changed: EXECUTE q",
			},
		},
		{
			name:   "a PREPARE in flight counts as held: an EXECUTE pipelined after a reload is refused",
			events: "Q PREPARE q AS SELECT 1 | reload v2 | Q EXECUTE q",
			want:   []string{"Q EXECUTE q: refused policy_changed"},
		},
		{
			name: "a PREPARE that fails keeps the earlier statement and its policy",
			events: "Q PREPARE q AS SELECT 1 | C | Z | reload v2 | Q PREPARE q AS SELECT 2 | E! 42P05 | Z" +
				" | Q EXECUTE q",
			want: []string{
				"Z: audit allowed: PREPARE q AS SELECT 1", "Z: audit allowed: PREPARE q AS SELECT 2 42P05",
				"Q EXECUTE q: refused policy_changed",
			},
		},
		{
			name: "a statement deallocated and prepared again under the policy in force runs",
			events: "Q PREPARE q AS SELECT 1 | C | Z | reload v2 | Q DEALLOCATE q | C | Z" +
				" | Q PREPARE q AS SELECT 1 | C | Z | Q EXECUTE q",
			want: []string{
				"Z: audit allowed: PREPARE q AS SELECT 1", "Z: audit allowed: DEALLOCATE q",
				"Z: audit allowed: PREPARE q AS SELECT 1",
			},
		},
		{
			name: "a cursor declared with SQL under an older policy is refused at its Execute and its FETCH",
			events: "Q DECLARE c CURSOR FOR SELECT 1 | C | Z | E c | S | D | C | Z" +
				" | reload v2 | E c | Q FETCH c",
			want: []string{
				"Z: audit allowed: DECLARE c CURSOR FOR SELECT 1",
				`E c: runs v1 FETCH FROM "c"`,
				`Z: audit allowed: FETCH FROM "c" rows=1`,
				"E c: refused policy_changed",
				"Q FETCH c: refused policy_changed",
			},
		},
		{
			name: "a Parse of EXECUTE runs what the name holds at its Execute",
			events: "Q PREPARE q AS SELECT 1 | C | Z | P s1 EXECUTE q | B p s1 | S | 1 | 2 | Z" +
				" | reload v2 | E p",
			want: []string{"Z: audit allowed: PREPARE q AS SELECT 1", "E p: refused policy_changed"},
		},
		{
			name: "an error at the Sync, after the batch's Executes ended, reaches their records: their implicit transaction rolled back",
			events: "P s1 INSERT 1 | B p s1 | E p | P s2 INSERT 2 | B q s2 | E q | S" +
				" | 1 | 2 | C | 1 | 2 | C | E! 23505 | Z",
			want: []string{
				"E p: runs v1 INSERT 1", "E q: runs v1 INSERT 2",
				"Z: audit allowed: INSERT 1 23505 (" + NoteRolledBack + "), audit allowed: INSERT 2 23505 (" + NoteRolledBack + ")",
			},
		},
		{
			name:   "an error at the end of a batch inside a transaction block commits nothing: it stays the batch's",
			events: "P s1 INSERT 1 | B p s1 | E p | S | 1 | 2 | C | E! 34000 | Z E",
			want:   []string{"E p: runs v1 INSERT 1", "Z E: audit allowed: INSERT 1"},
		},
		{
			name: "a COMMIT of the batch commits what ran before it: a later error reaches only what came after",
			events: "P s1 INSERT 1 | B p s1 | E p | P s2 COMMIT | B q s2 | E q | P s3 INSERT 3 | B r s3 | E r | S" +
				" | 1 | 2 | C | 1 | 2 | C | 1 | 2 | C | E! 23505 | Z",
			want: []string{
				"E p: runs v1 INSERT 1", "E q: runs v1 COMMIT", "E r: runs v1 INSERT 3",
				"Z: audit allowed: INSERT 1, audit allowed: COMMIT, audit allowed: INSERT 3 23505 (" + NoteRolledBack + ")",
			},
		},
		{
			// PostgreSQL rolls back the implicit transaction, INSERT 1
			// with it: a later Execute's error is the batch's too.
			name:   "a later Execute's error rolls back the Executes before it",
			events: "P s1 INSERT 1 | B p s1 | E p | P s2 INSERT 2 | B q s2 | E q | S | 1 | 2 | C | 1 | E! 22012 | Z",
			want: []string{
				"E p: runs v1 INSERT 1", "E q: runs v1 INSERT 2",
				"Z: audit allowed: INSERT 1 22012 (" + NoteRolledBack + "), audit allowed: INSERT 2 22012",
			},
		},
		{
			name: "a second Parse of a name in its batch can only fail: the first is what the name holds",
			events: "P s1 SELECT 1 | P s1 SELECT 2 | P s1 SELECT 3 | S | 1 | E! 42P05 | Z" +
				" | reload v2 | B p s1",
			want: []string{
				"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
			},
		},
		{
			name: "a second Parse of a name after its first failed is skipped: the earlier statement stays",
			events: "P s1 SELECT 1 | S | 1 | Z | P s1 SELECT 2 | P s1 SELECT 3 | S | E! 42P05 | Z" +
				" | reload v2 | B p s1",
			want: []string{
				"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
			},
		},
		{
			name: "an Execute between two Parses of a name may drop it with SQL: the second is followed",
			events: "P s1 SELECT 1 | P d DEALLOCATE s1 | B p d | E p | P s1 SELECT 2 | S | 1 | 1 | 2 | C | 1 | Z" +
				" | reload v2 | B q s1",
			want: []string{
				"E p: runs v1 DEALLOCATE s1",
				"Z: audit allowed: DEALLOCATE s1",
				"B q s1: inject CS(s1) P(s1: /*v2*/ SELECT 2)",
			},
		},
		{
			name: "Binds repeated after an error: the portal is what the first answered Bind made",
			events: "P s1 SELECT 1 | B - s1 | S | 1 | 2 | Z | P bad deny | B - s1 | B - s1 | B - s1 | S | E! marker | Z" +
				" | reload v2 | E -",
			want: []string{
				"P bad deny: refused statement_kind",
				"Z: audit denied statement_kind: deny",
				"E -: refused policy_changed",
			},
		},
		{
			name: "Closes and Parses of a name alternated after an error: the statement before the batch stays",
			events: "P s1 SELECT 1 | S | 1 | Z | P bad deny | CS s1 | P s1 SELECT 2 | CS s1 | P s1 SELECT 3 | CS s1 | CS s1 | S | E! marker | Z" +
				" | reload v2 | B p s1",
			want: []string{
				"P bad deny: refused statement_kind",
				"Z: audit denied statement_kind: deny",
				"B p s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
			},
		},
		{
			name:   "a session that ends records what is in flight as interrupted",
			events: "P s1 SELECT 1 | B p s1 | E p | S | Q SELECT 2 | 1 | 2 | D | end",
			want: []string{
				"E p: runs v1 SELECT 1",
				"end: audit allowed: SELECT 1 rows=1 (interrupted), audit allowed: SELECT 2 (interrupted)",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := &seqRewriter{Version: "v1"}
			m := &machine{rw: rw, t: NewTracker(true, rw)}
			if tt.static {
				m.t = NewTracker(true, nil)
			}
			var got []string
			for _, ev := range strings.Split(tt.events, "|") {
				ev = strings.TrimSpace(ev)
				if out := m.event(t, ev); out != "" {
					got = append(got, ev+": "+out)
				}
			}
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("the Tracker said\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(tt.want, "\n\t"))
			}
		})
	}
}
