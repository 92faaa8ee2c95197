package proxy

import "testing"

// extSkips, driven as the relays drive it: the client relay's messages
// and boundaries, the backend relay's answers and ReadyForQuery.
func TestExtSkipsClosesOnlyWhatTheServerSkipped(t *testing.T) {
	type step struct {
		client string // P B E D C: extended messages; Q, S: boundaries
		answer string // upstream answers before the ReadyForQuery
		closes int64  // batches the ReadyForQuery closes (0: one, as usual)
	}
	for _, c := range []struct {
		name  string
		steps []step
	}{
		{"an Execute fails: the Query and the Sync close together", []step{
			{client: "PBEQS", answer: "12E", closes: 2},
		}},
		{"a Bind fails: two Queries and the Sync", []step{
			{client: "PBEQQS", answer: "1E", closes: 3},
		}},
		{"the Query fails itself: its own ReadyForQuery", []step{
			{client: "PBEQS", answer: "12DCTDE", closes: 0},
			{answer: "", closes: 0},
		}},
		{"an error after a Sync-closed batch is that batch's", []step{
			{client: "PBES", answer: "1E", closes: 0},
		}},
		{"a Query with no extended message before it since the Sync", []step{
			{client: "PBESQ", answer: "12CE", closes: 0},
			{answer: "E", closes: 0},
		}},
		{"the failed batch's Sync is the first after it", []step{
			{client: "PBEQSPBEQS", answer: "1E", closes: 2},
			{answer: "12E", closes: 2},
		}},
		{"a Describe's RowDescription answers it", []step{
			{client: "PDBEQS", answer: "1T2CTDCE", closes: 0},
			{answer: "", closes: 0},
		}},
		{"an Execute fails after a Query that ran", []step{
			{client: "PBEQPBEQS", answer: "12CTDC", closes: 0},
			{answer: "1E", closes: 2},
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var x extSkips
			var sent, done int64
			for i, s := range c.steps {
				for _, m := range s.client {
					switch m {
					case 'Q', 'S':
						sent++
						x.boundary(sent, m == 'S')
					default:
						x.message()
					}
				}
				for _, a := range s.answer {
					x.answer(byte(a))
				}
				got := x.closes(done, sent-done)
				if got != s.closes {
					t.Fatalf("step %d: the ReadyForQuery closes %d batches, want %d", i, got, s.closes)
				}
				done += max(got, 1)
			}
			if done != sent {
				t.Fatalf("%d batches sent, %d answered", sent, done)
			}
		})
	}
	t.Run("never more than were sent", func(t *testing.T) {
		var x extSkips
		x.message()
		x.boundary(1, false)
		x.answer('E')
		if got := x.closes(0, 1); got != 0 {
			t.Fatalf("closes %d of one batch sent", got)
		}
	})
}
