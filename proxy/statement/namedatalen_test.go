package statement

import (
	"strings"
	"testing"
)

// TestTrackerNamesPastNAMEDATALEN: PostgreSQL keeps prepared statements
// and portals in hash tables keyed by their first NAMEDATALEN-1 (63)
// bytes, so a protocol name of 64 bytes and the 63-byte SQL identifier
// EXECUTE or FETCH names (the lexer truncates identifiers to 63 bytes)
// are one object upstream. What was checked under an older policy must
// be refused under either spelling.
func TestTrackerNamesPastNAMEDATALEN(t *testing.T) {
	long := func(c string) string { return strings.Repeat(c, 64) }
	short := func(c string) string { return strings.Repeat(c, 63) }
	tests := []struct {
		name   string
		events string
		want   string // the outcome of the last event
	}{
		{
			name:   "a statement Parsed under a 64-byte name, run by SQL EXECUTE of its 63-byte prefix after a reload",
			events: "P " + long("s") + " SELECT 1 | S | 1 | Z | reload v2 | Q EXECUTE " + short("s"),
			want:   "refused policy_changed",
		},
		{
			name:   "a portal Bound under a 64-byte name, fetched by SQL FETCH of its 63-byte prefix after a reload",
			events: "P s1 SELECT 1 | B " + long("p") + " s1 | S | 1 | 2 | Z | reload v2 | Q FETCH " + short("p"),
			want:   "refused policy_changed",
		},
		{
			name:   "a statement Parsed under a 64-byte name, Bound by its 63-byte prefix after a reload",
			events: "P " + long("s") + " SELECT 1 | S | 1 | Z | reload v2 | B p " + short("s") + " | E p",
			// The Bind must prepare the statement again under v2 (or
			// the Execute be refused), never run what v1 checked.
			want: "runs v2 SELECT 1",
		},
		{
			name:   "a cursor DECLAREd (63-byte SQL name), run by a protocol Execute of a 64-byte portal name after a reload",
			events: "Q DECLARE " + short("q") + " CURSOR FOR SELECT 1 | C | Z | reload v2 | E " + long("q"),
			want:   "refused policy_changed",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rw := &seqRewriter{Version: "v1"}
			m := &machine{rw: rw, t: NewTracker(true, rw)}
			evs := strings.Split(tt.events, "|")
			var last string
			for _, ev := range evs {
				last = m.event(t, strings.TrimSpace(ev))
			}
			if !strings.HasPrefix(last, tt.want) {
				t.Errorf("%s: the Tracker said %q, want %q", strings.TrimSpace(evs[len(evs)-1]), last, tt.want)
			}
		})
	}
}
