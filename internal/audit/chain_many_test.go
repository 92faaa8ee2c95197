package audit

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestChainOfManyRecords: the MAC each record's line ends with, encoded
// into the writer's own array (lastMAC), is the prev of the record after
// it across batches, rotations, writes retried after an error, and a
// restart that resumes the chain from the file: thousands of records
// verify as one chain, each counted.
func TestChainOfManyRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "audit.log")
	failures := 0
	writeFile := func(f *os.File, p []byte) (int, error) {
		// Every 7th write fails halfway once: the rest is retried.
		if failures++; failures%7 == 0 {
			n, _ := f.Write(p[:len(p)/2])
			return n, syscall.EIO
		}
		return f.Write(p)
	}
	const runs, perRun = 3, 1500
	for run := range runs {
		l, err := open(Options{File: path, Key: testKey, MaxSize: 64 << 10}, writeFile)
		if err != nil {
			t.Fatal(err)
		}
		for i := range perRun {
			l.Write(statement(run*perRun + i))
		}
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
	}
	files := chainFiles(t, path)
	if len(files) < 10 {
		t.Fatalf("only %d files: the test means to cross rotations", len(files))
	}
	rep := verify(t, testKey, files)
	if !rep.OK || rep.Records < runs*perRun || !rep.FromStart {
		t.Fatalf("%d files: %+v", len(files), rep)
	}
}
