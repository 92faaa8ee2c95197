package audit

import (
	"strings"
	"testing"
)

func TestVerifyReportsWhatTheTrailLost(t *testing.T) {
	path := t.TempDir() + "/audit.log"
	write := func(rs ...*Record) {
		l, err := Open(Options{File: path, Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range rs {
			l.Write(r)
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	write(&Record{Event: EventStart}, statement(1), &Record{Event: EventDropped, Count: 3}, statement(2), &Record{Event: EventStop})
	rep := verify(t, testKey, []string{path})
	if !rep.OK || rep.Dropped != 3 || rep.Unclean != 0 || len(rep.Notes) != 1 || !strings.Contains(rep.Notes[0], "3 records were dropped") {
		t.Fatalf("%+v", rep)
	}
	// A run that wrote no stop record, then a start.
	write(&Record{Event: EventStart}, statement(3))
	write(&Record{Event: EventStart}, statement(4), &Record{Event: EventStop})
	rep = verify(t, testKey, []string{path})
	if !rep.OK || rep.Dropped != 3 || rep.Unclean != 1 {
		t.Fatalf("%+v", rep)
	}
}
