package policy

import "testing"

// TestUnpinnableDateAttributeOutsideAComparisonGrantsNoRow checks that an
// attribute holding a date pgveil cannot pin grants no row wherever the
// rule reads it as a date, not only when a column is compared with it
// directly: in a BETWEEN, or cast to date or timestamp inside arithmetic,
// PostgreSQL would read '03/02/2025' under the client's DateStyle, which
// the client SETs; IntervalStyle decides how a negative interval reads.
func TestUnpinnableDateAttributeOutsideAComparisonGrantsNoRow(t *testing.T) {
	for _, tt := range []struct{ name, where string }{
		{"a BETWEEN bound", "d BETWEEN me.since AND '2030-01-01'"},
		{"a NOT BETWEEN bound", "d NOT BETWEEN '2000-01-01' AND me.since"},
		{"a date cast inside arithmetic", "d >= me.since::date + 0"},
		{"a timestamp cast inside arithmetic", "ts >= me.since::timestamp + interval '1 day'"},
		{"a date cast compared with another cast", "d::date >= me.since::date"},
		{"a negative interval, which IntervalStyle reads", "ts >= '2025-01-01'::timestamp + me.window::interval"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			policy := datedPolicy(`{ since = "03/02/2025", window = "-1 2:00:00" }`, tt.where) + "\nidentity \"x\" {\n  query = \"SELECT 'x' AS login\"\n}\n"
			p := compile(t, policy, "marie")
			if got := whereOf(t, datedRel, p.Relation(datedRel)); got != "false" {
				t.Errorf("filter %s, want false: the client's DateStyle would decide the rows", got)
			}
		})
	}
}
