package statement

import (
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
