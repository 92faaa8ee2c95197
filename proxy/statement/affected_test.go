package statement

import (
	"slices"
	"testing"

	"github.com/pgveil/pgveil/rewrite"
)

// TestAffectedOf checks the rows a CommandComplete tag says a write
// changed, and that no other tag counts: a SELECT's rows are its
// DataRows, a COPY TO's its CopyData.
func TestAffectedOf(t *testing.T) {
	for _, c := range []struct {
		tag    string
		copyIn bool
		want   int64
	}{
		{"INSERT 0 3", false, 3},
		{"UPDATE 12", false, 12},
		{"DELETE 5000", false, 5000},
		{"MERGE 2", false, 2},
		{"COPY 40", true, 40},
		{"COPY 40", false, 0},
		{"SELECT 7", false, 0},
		{"CREATE TABLE", false, 0},
		{"INSERT 3", false, 0},
		{"DELETE -1", false, 0},
		{"DELETE 99999999999999999999", false, 0},
		{"", false, 0},
	} {
		if got := affectedOf([]byte(c.tag), c.copyIn); got != c.want {
			t.Errorf("affectedOf(%q, copyIn %v) = %d, want %d", c.tag, c.copyIn, got, c.want)
		}
	}
}

// TestWantsTag checks that only an audited execution of a write asks
// for its CommandComplete's tag.
func TestWantsTag(t *testing.T) {
	for _, c := range []struct {
		name  string
		audit bool
		kinds []string
		want  bool
	}{
		{"a delete in an audited session", true, []string{"delete"}, true},
		{"an execute in an audited session", true, []string{"execute"}, true},
		{"a query of a select and an update", true, []string{"select", "update"}, true},
		{"a select in an audited session", true, []string{"select"}, false},
		{"a delete in an unaudited session", false, []string{"delete"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := NewTracker(c.audit, nil)
			tr.pending = append(tr.pending, &Execution{Info: &Info{Result: &rewrite.Result{Kinds: c.kinds}}, batch: 1})
			if got := tr.WantsTag(); got != c.want {
				t.Fatalf("WantsTag = %v, want %v", got, c.want)
			}
		})
	}
}

// BenchmarkCompletion measures an audited execution's completion: a
// SELECT's CommandComplete accounted undecoded (OnAnswer), and a
// write's, whose tag the relay decodes (WantsTag, OnCommandComplete).
func BenchmarkCompletion(b *testing.B) {
	for _, c := range []struct {
		name  string
		kinds []string
		tag   []byte
	}{
		{"select", []string{"select"}, nil},
		{"delete", []string{"delete"}, []byte("DELETE 5000")},
	} {
		b.Run(c.name, func(b *testing.B) {
			tr := NewTracker(true, nil)
			info := &Info{Result: &rewrite.Result{Kinds: c.kinds}}
			for range b.N {
				tr.pending = append(tr.pending, &Execution{Info: info, batch: tr.done + 1})
				if tr.WantsTag() {
					tr.OnCommandComplete(16, c.tag)
				} else {
					tr.OnAnswer('C', 16, "", "", false)
				}
				tr.OnReadyForQuery(6, 1, 'I')
			}
		})
	}
}

// TestAffectedOfASuspendedPortal checks the count of a write whose
// RETURNING rows the client reads in chunks (Execute with a row limit,
// PortalSuspended): PostgreSQL's CommandComplete of the last Execute
// counts the rows of that fetch alone (UPDATE 1 after 2 and 2), so each
// execution of the portal counts the rows it returned, each a row the
// write changed, and the portal's records sum to what it changed.
func TestAffectedOfASuspendedPortal(t *testing.T) {
	for _, c := range []struct {
		name  string
		kinds []string
		want  []int64
	}{
		{"an UPDATE … RETURNING read 2, 2 and 1 rows at a time", []string{"update"}, []int64{2, 2, 1}},
		{"a SELECT read the same way changes nothing", []string{"select"}, []int64{0, 0, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tr := NewTracker(true, nil)
			info := &Info{Result: &rewrite.Result{Kinds: c.kinds}}
			for range 3 {
				tr.pending = append(tr.pending, &Execution{Info: info, batch: 1})
			}
			var got []int64
			for i, rows := range []int{2, 2, 1} {
				for range rows {
					tr.OnAnswer('D', 10, "", "", false)
				}
				x := tr.cur
				if i < 2 {
					tr.OnAnswer('s', 5, "", "", false)
				} else if tr.WantsTag() {
					tr.OnCommandComplete(14, []byte("UPDATE 1"))
				} else {
					tr.OnAnswer('C', 14, "", "", false)
				}
				got = append(got, x.Affected)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("affected %v, want %v", got, c.want)
			}
		})
	}
}
