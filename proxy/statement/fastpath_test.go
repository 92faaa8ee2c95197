package statement

import (
	"strings"
	"testing"
)

// TestPopFront checks that an emptied queue keeps a small array for the
// next appends, and lets a large one go.
func TestPopFront(t *testing.T) {
	for _, c := range []struct {
		name string
		cap  int
		keep bool
	}{
		{"an emptied queue of a small array keeps it", 4, true},
		{"an emptied queue of keepCap keeps it", keepCap, true},
		{"an emptied queue of a large array lets it go", keepCap + 1, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			x := new(int)
			s := append(make([]*int, 0, c.cap), x)
			arr := &s[:1][0]
			s = PopFront(s)
			if len(s) != 0 {
				t.Fatalf("len %d, want 0", len(s))
			}
			if *arr != nil {
				t.Fatal("the array still points to the element popped")
			}
			if kept := cap(s) > 0; kept != c.keep {
				t.Fatalf("array kept: %v, want %v", kept, c.keep)
			}
			if c.keep {
				if s = append(s, x); &s[0] != arr {
					t.Fatal("the next append did not reuse the array")
				}
			}
		})
	}
	t.Run("a queue of two keeps its second", func(t *testing.T) {
		a, b := new(int), new(int)
		s := PopFront([]*int{a, b})
		if len(s) != 1 || s[0] != b {
			t.Fatalf("got %v", s)
		}
	})
}

// TestTrackerFastPaths holds the boundaries of the steady state's fast
// paths (a Bind of a confirmed statement to the unnamed portal, its
// Execute and Sync, answered before the next): what they must leave to
// the general check.
func TestTrackerFastPaths(t *testing.T) {
	const parsed = "P s1 SELECT 1 | S | 1 | Z"
	tests := []struct {
		name   string
		events string
		want   []string
	}{
		{
			name:   "a reload between two transactions is seen at the next Bind",
			events: parsed + " | B - s1 | E - | S | 2 | C | Z | reload v2 | B - s1 | E - | S | 3 | 1 | 2 | C | Z",
			want: []string{
				"E -: runs v1 SELECT 1", "Z: audit allowed: SELECT 1",
				"B - s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)", "E -: runs v2 SELECT 1",
				"3: swallowed", "1: swallowed", "Z: audit allowed: SELECT 1",
			},
		},
		{
			name:   "a reload between a Bind and its Execute in the same batch refuses the Execute",
			events: parsed + " | B - s1 | reload v2 | E -",
			want:   []string{"E -: refused policy_changed"},
		},
		{
			name:   "an Execute in its Bind's batch of a portal a cursor declared with SQL may hold is checked against the cursor",
			events: "Q DECLARE c CURSOR FOR SELECT 1 | C | Z | " + parsed + " | reload v2 | B c s1 | E c",
			want: []string{
				"Z: audit allowed: DECLARE c CURSOR FOR SELECT 1",
				"B c s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)",
				"E c: refused policy_changed",
			},
		},
		{
			name:   "an Execute in its Bind's batch of a portal a DECLARE in flight may hold is checked against it",
			events: parsed + " | Q DECLARE c CURSOR FOR SELECT 1 | reload v2 | B c s1 | E c",
			want:   []string{"B c s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)", "E c: refused policy_changed"},
		},
		{
			// The Close runs or is skipped with the Bind: nothing of
			// v1 is left for the Execute to run.
			name:   "a Close of the portal between its Bind and its Execute leaves the Execute to the general check",
			events: parsed + " | B p s1 | CP p | reload v2 | E p",
			want:   []string{`E p: runs v2 FETCH FROM "p"`},
		},
		{
			name:   "the unnamed portal bound again in the same batch after a reload runs the last Bind's statement",
			events: parsed + " | P s2 SELECT 2 | S | 1 | Z | B - s1 | reload v2 | B - s2 | E -",
			want:   []string{"B - s2: inject CS(s2) P(s2: /*v2*/ SELECT 2)", "E -: runs v2 SELECT 2"},
		},
		{
			name:   "a reload between a Bind and its Execute after an answered transaction refuses the Execute",
			events: parsed + " | B - s1 | E - | S | 2 | C | Z | B - s1 | reload v2 | E -",
			want:   []string{"E -: runs v1 SELECT 1", "Z: audit allowed: SELECT 1", "E -: refused policy_changed"},
		},
		{
			name:   "an Execute of a portal bound in an earlier batch, before a reload, is refused",
			events: parsed + " | B - s1 | S | reload v2 | E - | S | 2 | Z",
			want:   []string{"E -: refused policy_changed"},
		},
		{
			name: "Binds pipelined while earlier batches are in flight, the first failing, leave the portal the answered ones made",
			events: parsed + " | B - s1 | E - | S | B - s1 | E - | S | B - s1 | S | E! 22012 | Z | 2 | C | Z" +
				" | reload v2 | E -",
			want: []string{
				"E -: runs v1 SELECT 1", "E -: runs v1 SELECT 1",
				"Z: audit allowed: SELECT 1 22012", "Z: audit allowed: SELECT 1",
				"E -: refused policy_changed",
			},
		},
		{
			name: "a transaction after pipelined ones, all answered, runs under the policy in force",
			events: parsed + " | B - s1 | E - | S | B - s1 | E - | S | 2 | C | Z | 2 | C | Z" +
				" | B - s1 | E - | S | 2 | C | Z | reload v2 | B - s1 | E - | S",
			want: []string{
				"E -: runs v1 SELECT 1", "E -: runs v1 SELECT 1",
				"Z: audit allowed: SELECT 1", "Z: audit allowed: SELECT 1",
				"E -: runs v1 SELECT 1", "Z: audit allowed: SELECT 1",
				"B - s1: inject CS(s1) P(s1: /*v2*/ SELECT 1)", "E -: runs v2 SELECT 1",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := &seqRewriter{Version: "v1"}
			m := &machine{rw: rw, t: NewTracker(true, rw)}
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
