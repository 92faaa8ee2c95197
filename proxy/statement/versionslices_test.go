package statement

import (
	"fmt"
	"testing"
)

// versionSliceCount counts the entries of versionSlices.
func versionSliceCount() int {
	n := 0
	versionSlices.Range(func(any, any) bool { n++; return true })
	return n
}

// TestVersionSlicesStayBounded: the policy version a statement is checked
// under is not only the policy's: the proxy tags it with the end user a BI
// service acts for and the generation of a login's directory groups
// (proxy/actfor.go versionFor, proxy/ldapreload.go groupsVersion). The
// slices oneVersion shares are kept for the life of the process, for
// every session: sessions that ended, acting for thousands of end users
// across reloads, must not leave one entry each behind.
func TestVersionSlicesStayBounded(t *testing.T) {
	before := versionSliceCount()
	const users = 20000
	for i := range users {
		// A BI service's session acting for end user i: two Parses of
		// one name pipelined (a flight), and a PREPARE in flight.
		rw := &seqRewriter{Version: fmt.Sprintf("v1\x00act_for:user%d", i)}
		tr := NewTracker(false, rw)
		for range 2 {
			st := &Statement{Source: SourceParse, Name: "s", Text: "SELECT 1"}
			res, r := rw.rewrite(st)
			tr.OnStatement(st, res, r)
			tr.OnBatchClosed(tr.sent + 1)
		}
		q := &Statement{Source: SourceQuery, Text: "PREPARE p AS SELECT 1"}
		res, r := rw.rewrite(q)
		tr.OnSimpleBatchClosed(tr.sent + 1)
		tr.OnStatement(q, res, r)
		tr.OnEnd()
	}
	if grew := versionSliceCount() - before; grew > maxVersionSlices {
		t.Fatalf("versionSlices grew by %d entries for %d ended sessions of one policy version acting for %d end users: "+
			"it keeps one per acting user (and per directory groups generation) for the life of the process", grew, users, users)
	}
}
