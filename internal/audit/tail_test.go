package audit

import (
	"testing"
)

// TestTailTruncationIsVisible checks what an auditor has against records
// cut from the end of the newest file, which the chain alone cannot
// show: the Log's last seq (the metric pgveil_audit_last_seq) and the
// report's word that the chain ends without a stop record.
func TestTailTruncationIsVisible(t *testing.T) {
	key := []byte("k")
	t.Run("the log's last seq is that of the last record written", func(t *testing.T) {
		path := t.TempDir() + "/audit.log"
		l, err := Open(Options{File: path, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		for i := range 7 {
			l.Write(statement(i))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := l.Stats().LastSeq; got != 7 {
			t.Fatalf("last seq %d, want 7", got)
		}
	})
	t.Run("a reopened log's last seq is the file's until it writes", func(t *testing.T) {
		files := writeChain(t, 5, Options{Key: key})
		l, err := Open(Options{File: files[len(files)-1], Key: key})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if got := l.Stats().LastSeq; got != 5 {
			t.Fatalf("last seq %d, want 5", got)
		}
	})
	t.Run("a chain cut at its end verifies, but says it ends without a stop record", func(t *testing.T) {
		files := writeChain(t, 10, Options{Key: key})
		f := files[len(files)-1]
		ls := lines(t, f)
		setLines(t, f, ls[:len(ls)-3])
		rep := verify(t, key, files)
		if !rep.OK || !rep.Open || rep.LastSeq != 7 {
			t.Fatalf("%+v: want OK, open, last seq 7", rep)
		}
	})
	t.Run("a chain ending with a stop record is not open", func(t *testing.T) {
		path := t.TempDir() + "/audit.log"
		l, err := Open(Options{File: path, Key: key})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(&Record{Event: EventStart})
		l.Write(statement(1))
		l.Write(&Record{Event: EventStop})
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if rep := verify(t, key, chainFiles(t, path)); !rep.OK || rep.Open {
			t.Fatalf("%+v: want OK, not open", rep)
		}
	})
}
