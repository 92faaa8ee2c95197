package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// chainMaxSize makes files of three or four test statements.
const chainMaxSize = 1800

func TestVerify(t *testing.T) {
	tests := []struct {
		name string
		// tamper changes the files (oldest first) and returns the files
		// to verify and the start of the expected problem ("" for OK).
		tamper func(t *testing.T, files []string) ([]string, string)
		// key verifies with another key than the one written with.
		key []byte
	}{
		{
			name:   "an untouched chain verifies",
			tamper: func(t *testing.T, files []string) ([]string, string) { return files, "" },
		},
		{
			name: "files given in any order verify",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				rev := slices.Clone(files)
				slices.Reverse(rev)
				return rev, ""
			},
		},
		{
			name: "a changed character is a record altered, at its file and line",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				ls := lines(t, files[1])
				ls[1] = strings.Replace(ls[1], "SELECT email", "SELECT emall", 1)
				setLines(t, files[1], ls)
				return files, files[1] + ":2: record altered (mac mismatch)"
			},
		},
		{
			name: "a deleted line is a record missing",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				ls := lines(t, files[1])
				setLines(t, files[1], slices.Delete(ls, 1, 2))
				return files, files[1] + ":2: record missing before seq"
			},
		},
		{
			name: "two swapped lines are records out of order",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				ls := lines(t, files[2])
				ls[0], ls[1] = ls[1], ls[0]
				setLines(t, files[2], ls)
				return files, files[2] + ":1: records out of order"
			},
		},
		{
			name: "a rotated file cut short breaks the chain between files",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				ls := lines(t, files[1])
				setLines(t, files[1], ls[:len(ls)-2])
				return files, files[2] + ":1: file truncated or missing: chain breaks between " + files[1] + ":" +
					strconv.Itoa(len(ls)-2) + " and " + files[2] + ":1"
			},
		},
		{
			name: "a deleted rotated file breaks the chain between its neighbours",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				if err := os.Remove(files[2]); err != nil {
					t.Fatal(err)
				}
				want := files[3] + ":1: file truncated or missing: chain breaks between " +
					files[1] + ":" + strconv.Itoa(len(lines(t, files[1])))
				return slices.Delete(files, 2, 3), want
			},
		},
		{
			name: "a partial last line is unparseable",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				last := files[len(files)-1]
				ls := lines(t, last)
				ls[len(ls)-1] = ls[len(ls)-1][:40]
				setLines(t, last, ls)
				return files, last + ":" + strconv.Itoa(len(ls)) + ": unparseable line: the line does not end with a \"mac\" field"
			},
		},
		{
			name: "a record inserted without the key is altered",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				ls := lines(t, files[1])
				e, err := ParseLine([]byte(ls[0]))
				if err != nil {
					t.Fatal(err)
				}
				// A forger knowing the format but not the key: a plain
				// SHA-256 chain is all he can compute.
				e.User = "mallory"
				signed := appendSigned(nil, e)
				forged := string(appendLineEnd(signed, newChain(nil).mac(signed)))
				ls[0] = strings.TrimSuffix(forged, "\n")
				setLines(t, files[1], ls)
				return files, files[1] + ":1: record altered (mac mismatch)"
			},
		},
		{
			name: "another key fails at the first record",
			key:  []byte("not the key"),
			tamper: func(t *testing.T, files []string) ([]string, string) {
				return files, files[0] + ":1: record altered (mac mismatch)"
			},
		},
		{
			name: "files removed by retention leave a chain that verifies from later on",
			tamper: func(t *testing.T, files []string) ([]string, string) {
				if err := os.Remove(files[0]); err != nil {
					t.Fatal(err)
				}
				return files[1:], ""
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := writeChain(t, 40, Options{Key: testKey, MaxSize: chainMaxSize})
			if len(files) < 5 {
				t.Fatalf("only %d files: the cases need at least 5", len(files))
			}
			for _, f := range files[:len(files)-1] {
				if n := len(lines(t, f)); n < 3 {
					t.Fatalf("%s holds %d lines: the cases need at least 3", f, n)
				}
			}
			given, want := tt.tamper(t, files)
			key := testKey
			if tt.key != nil {
				key = tt.key
			}
			rep := verify(t, key, given)
			if want == "" {
				if !rep.OK || rep.Problem != "" {
					t.Fatalf("problem %q", rep.Problem)
				}
				return
			}
			if rep.OK || !strings.HasPrefix(rep.Problem, want) {
				t.Fatalf("problem %q\nwant    %q…", rep.Problem, want)
			}
		})
	}
}

func TestVerifyReport(t *testing.T) {
	t.Run("a whole chain is counted from its start", func(t *testing.T) {
		files := writeChain(t, 40, Options{Key: testKey, MaxSize: chainMaxSize})
		rep := verify(t, testKey, files)
		if !rep.OK || rep.Records != 40 || rep.FirstSeq != 1 || rep.LastSeq != 40 || !rep.FromStart || !rep.Keyed ||
			len(rep.Files) != len(files) || !slices.Equal(rep.Files, files) {
			t.Fatalf("%+v", rep)
		}
		if !rep.FirstTime.Equal(statement(0).Time) || !rep.LastTime.Equal(statement(39).Time) {
			t.Errorf("times %s..%s", rep.FirstTime, rep.LastTime)
		}
	})
	t.Run("a chain without key verifies as plain SHA-256", func(t *testing.T) {
		files := writeChain(t, 5, Options{})
		rep := verify(t, nil, files)
		if !rep.OK || rep.Keyed || rep.Records != 5 {
			t.Fatalf("%+v", rep)
		}
		if rep := verify(t, testKey, files); rep.OK {
			t.Fatal("a plain chain verifies with a key")
		}
	})
	t.Run("no file is an error", func(t *testing.T) {
		if _, err := Verify(testKey, nil); err == nil {
			t.Fatal("no error")
		}
	})
	t.Run("a file that cannot be read is an error", func(t *testing.T) {
		if _, err := Verify(testKey, []string{"/nonexistent/audit.log"}); err == nil || !strings.Contains(err.Error(), "no such file") {
			t.Fatalf("error %v", err)
		}
	})
}

// TestVerifyChains: several pgveil instances, each with a chain of its
// own, verified from one list of their files.
func TestVerifyChains(t *testing.T) {
	two := func(t *testing.T) (a, b []string) {
		a = writeChain(t, 12, Options{Key: testKey, MaxSize: chainMaxSize})
		b = writeChain(t, 9, Options{Key: testKey, MaxSize: chainMaxSize})
		return a, b
	}
	t.Run("the files of two instances, mixed, verify as two chains", func(t *testing.T) {
		a, b := two(t)
		mixed := append(slices.Clone(b), a...)
		slices.Reverse(mixed)
		reports, err := VerifyChains(testKey, mixed)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 2 {
			t.Fatalf("%d reports, want 2", len(reports))
		}
		total := 0
		for _, r := range reports {
			if !r.OK || !r.FromStart || len(r.Chain) != 16 {
				t.Fatalf("%+v", r)
			}
			total += int(r.Records)
		}
		if total != 21 || reports[0].Chain == reports[1].Chain {
			t.Fatalf("%d records in chains %q and %q, want 21 in two", total, reports[0].Chain, reports[1].Chain)
		}
	})
	t.Run("a damaged chain fails alone", func(t *testing.T) {
		a, b := two(t)
		ls := lines(t, b[1])
		ls[0] = strings.Replace(ls[0], "SELECT email", "SELECT emall", 1)
		setLines(t, b[1], ls)
		reports, err := VerifyChains(testKey, append(slices.Clone(a), b...))
		if err != nil {
			t.Fatal(err)
		}
		failed := 0
		for _, r := range reports {
			if !r.OK {
				failed++
				if !strings.HasPrefix(r.Problem, b[1]+":1: record altered") {
					t.Errorf("problem %q", r.Problem)
				}
			}
		}
		if len(reports) != 2 || failed != 1 {
			t.Fatalf("%d reports, %d failed; want 2 and 1", len(reports), failed)
		}
	})
	t.Run("a record moved from one chain into the other is found", func(t *testing.T) {
		a, b := two(t)
		la, lb := lines(t, a[1]), lines(t, b[1])
		lb = slices.Insert(lb, 1, la[0])
		setLines(t, b[1], lb)
		reports, err := VerifyChains(testKey, append(slices.Clone(a), b...))
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, r := range reports {
			if !r.OK && strings.Contains(r.Problem, "among those of chain") {
				found = true
			}
		}
		if !found {
			t.Fatalf("no report tells of the moved record: %+v %+v", reports[0], reports[1])
		}
	})
	t.Run("a restarted instance goes on with its chain", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		writeChain(t, 3, Options{File: path, Key: testKey})
		files := writeChain(t, 3, Options{File: path, Key: testKey})
		reports, err := VerifyChains(testKey, files)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 1 || !reports[0].OK || reports[0].Records != 6 {
			t.Fatalf("%+v", reports)
		}
	})
}

// writeRun writes, as one run of pgveil, a start record (with start), n
// statements from statement(from) on, and a stop record (with stop), to
// path under key, never rotating; it returns the files, oldest first.
func writeRun(t *testing.T, path string, key []byte, from, n int, start, stop bool) []string {
	t.Helper()
	return writeRunOpts(t, Options{File: path, Key: key}, from, n, start, stop)
}

// writeRunOpts is writeRun with the Log's options.
func writeRunOpts(t *testing.T, o Options, from, n int, start, stop bool) []string {
	t.Helper()
	path := o.File
	l, err := Open(o)
	if err != nil {
		t.Fatal(err)
	}
	if start {
		l.Write(&Record{Event: EventStart, Message: "pgveil test"})
	}
	for i := range n {
		l.Write(statement(from + i))
	}
	if stop {
		l.Write(&Record{Event: EventStop})
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	return chainFiles(t, path)
}

// cutLastLine cuts the last line of file in the middle, newline
// included, as a crash during a write does.
func cutLastLine(t *testing.T, file string) {
	t.Helper()
	ls := lines(t, file)
	last := ls[len(ls)-1]
	setLines(t, file, ls[:len(ls)-1])
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(last[:len(last)/2]); err != nil {
		t.Fatal(err)
	}
}

// editLine replaces old with new in line n (from 1) of file.
func editLine(t *testing.T, file string, n int, old, new string) {
	t.Helper()
	ls := lines(t, file)
	if !strings.Contains(ls[n-1], old) {
		t.Fatalf("%s:%d holds no %q", file, n, old)
	}
	ls[n-1] = strings.Replace(ls[n-1], old, new, 1)
	setLines(t, file, ls)
}

// TestVerifyGoesOn: verification goes on after a problem, so that every
// problem is reported, each once.
func TestVerifyGoesOn(t *testing.T) {
	tests := []struct {
		name string
		// make writes and damages a trail in dir and returns its files.
		make func(t *testing.T, path string) []string
		// want are the starts of the problems, in order.
		want []string
	}{
		{
			name: "a line cut by a crash, then the chain resumed after a restart, is one problem",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 3, false, false)
				cutLastLine(t, path)
				return writeRun(t, path, testKey, 3, 3, false, false)
			},
			want: []string{`audit.log:3: unparseable line: the line does not end with a "mac" field (a partial line?)`},
		},
		{
			name: "a record edited after a line cut by a crash is a second problem",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 3, false, false)
				cutLastLine(t, path)
				files := writeRun(t, path, testKey, 3, 3, false, false)
				editLine(t, path, 5, "SELECT email", "SELECT emall")
				return files
			},
			want: []string{"audit.log:3: unparseable line", "audit.log:5: record altered (mac mismatch)"},
		},
		{
			name: "a record altered, then a record deleted, are two problems",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 4, false, false)
				editLine(t, path, 2, "SELECT email", "SELECT emall")
				ls := lines(t, path)
				setLines(t, path, slices.Delete(ls, 2, 3))
				return []string{path}
			},
			want: []string{"audit.log:2: record altered (mac mismatch)", "audit.log:3: record missing before seq 4 (expected seq 3 after "},
		},
		{
			name: "two swapped lines are one problem, and a later edit another",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 6, false, false)
				ls := lines(t, path)
				ls[1], ls[2] = ls[2], ls[1]
				setLines(t, path, ls)
				editLine(t, path, 5, "SELECT email", "SELECT emall")
				return []string{path}
			},
			want: []string{"audit.log:2: records out of order (seq 3 where seq 2 was expected; seq 2 follows)", "audit.log:5: record altered"},
		},
		{
			name: "a line moved two places on is missing where it was, and out of order where it is",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 6, false, false)
				ls := lines(t, path)
				moved := ls[1]
				ls = slices.Insert(slices.Delete(ls, 1, 2), 3, moved)
				setLines(t, path, ls)
				return []string{path}
			},
			want: []string{"audit.log:2: record missing before seq 3 (expected seq 2 after ", "audit.log:4: records out of order (seq 2 after seq 4)"},
		},
		{
			name: "a repeated line is one problem",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 6, false, false)
				ls := lines(t, path)
				setLines(t, path, slices.Insert(ls, 4, ls[1], ls[2]))
				return []string{path}
			},
			want: []string{"audit.log:5: records out of order (seq 2 after seq 4) (and the 1 lines after it, up to "},
		},
		{
			name: "lines of another file pasted in are one problem",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 4, false, false)
				ls := lines(t, path)
				setLines(t, path, slices.Insert(ls, 2, "2026-11-30 LOG: a", "2026-11-30 LOG: b", "2026-11-30 LOG: c"))
				return []string{path}
			},
			want: []string{"audit.log:3: unparseable line: not a record: the line does not begin with {\"seq\": and end with a \"mac\" field (and the 2 lines after it, up to "},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tt.make(t, filepath.Join(t.TempDir(), "audit.log"))
			rep := verify(t, testKey, files)
			if rep.OK || len(rep.Problems) != len(tt.want) || rep.Problem != rep.Problems[0] {
				t.Fatalf("problems %q\nwant      %q", rep.Problems, tt.want)
			}
			for i, p := range rep.Problems {
				if p, _ = strings.CutPrefix(p, filepath.Dir(files[0])+"/"); !strings.HasPrefix(p, tt.want[i]) {
					t.Errorf("problem %d %q\nwant      %q…", i, p, tt.want[i])
				}
			}
		})
	}
	t.Run("many problems are capped, with a count of the others", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		writeRunOpts(t, Options{File: path, Key: testKey, MaxSize: chainMaxSize}, 0, 250, false, false)
		files := chainFiles(t, path)
		want := 0
		for _, f := range files {
			ls := lines(t, f)
			for i := 0; i < len(ls); i += 2 {
				ls[i] = strings.Replace(ls[i], "SELECT email", "SELECT emall", 1)
				want++
			}
			setLines(t, f, ls)
		}
		rep := verify(t, testKey, files)
		if rep.OK || len(rep.Problems) != maxProblems || rep.MoreProblems != want-maxProblems {
			t.Fatalf("%d problems and %d more, want %d", len(rep.Problems), rep.MoreProblems, want)
		}
	})
	t.Run("a trail under a wrong key is one problem, which says so", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "audit.log")
		writeRun(t, path, testKey, 0, 5, false, false)
		rep := verify(t, []byte("not the key"), []string{path})
		want := path + ":1: record altered (mac mismatch): no record verified before it: the key may be wrong, " +
			"or older records were written under a previous key (and the 4 lines after it, up to " + path + ":5)"
		if rep.OK || len(rep.Problems) != 1 || rep.Problem != want || rep.Records != 0 {
			t.Fatalf("problems %q\nwant      %q", rep.Problems, want)
		}
	})
}

// TestVerifyNewChainMidFile: when pgveil cannot read the last record at a
// restart, it starts a new chain in the same file; VerifyChains verifies
// it as a chain of its own, across the files after it.
func TestVerifyNewChainMidFile(t *testing.T) {
	trail := func(t *testing.T) (path string, files []string) {
		path = filepath.Join(t.TempDir(), "audit.log")
		writeRun(t, path, testKey, 0, 2, false, false)
		ls := lines(t, path)
		ls[len(ls)-1] = "garbage"
		setLines(t, path, ls)
		// Enough to rotate: the new chain goes on in the next files.
		return path, writeRunOpts(t, Options{File: path, Key: testKey, MaxSize: chainMaxSize}, 2, 8, false, false)
	}
	t.Run("the new chain is verified, and the break reported in the old one", func(t *testing.T) {
		path, files := trail(t)
		if len(files) < 2 {
			t.Fatalf("%d files: the test needs a rotation", len(files))
		}
		reports, err := VerifyChains(testKey, files)
		if err != nil {
			t.Fatal(err)
		}
		if len(reports) != 2 {
			t.Fatalf("%d reports, want 2", len(reports))
		}
		var old, fresh *Report
		for _, r := range reports {
			if r.Records == 1 {
				old = r
			} else {
				fresh = r
			}
		}
		if old == nil || fresh == nil || old.OK || len(old.Problems) != 2 ||
			!strings.HasPrefix(old.Problems[0], files[0]+":2: unparseable line: not a record") ||
			!strings.HasPrefix(old.Problems[1], files[0]+":3: a new chain starts here (chain \""+fresh.Chain+"\", seq 1,") {
			t.Fatalf("old chain %+v", old)
		}
		if !fresh.OK || !fresh.FromStart || fresh.Records != 8 || fresh.FirstSeq != 1 || fresh.LastSeq != 8 ||
			!slices.Equal(fresh.Files, files) {
			t.Fatalf("new chain %+v", fresh)
		}
		if !strings.HasPrefix(path, filepath.Dir(files[0])) {
			t.Fatalf("files %q are not those of %s", files, path)
		}
	})
	t.Run("a record edited in the new chain fails it", func(t *testing.T) {
		_, files := trail(t)
		editLine(t, files[0], 4, "SELECT email", "SELECT emall")
		last := files[len(files)-1]
		editLine(t, last, 1, "SELECT email", "SELECT emall")
		reports, err := VerifyChains(testKey, files)
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, r := range reports {
			if r.Records != 1 {
				got = r.Problems
			}
		}
		if len(got) != 2 || !strings.HasPrefix(got[0], files[0]+":4: record altered") || !strings.HasPrefix(got[1], last+":1: record altered") {
			t.Fatalf("problems of the new chain %q", got)
		}
	})
}

// TestVerifyKeys: after a key change, verifying with both keys passes
// and says where the key changes.
func TestVerifyKeys(t *testing.T) {
	newKey := []byte("fedcba9876543210fedcba9876543210")
	path := filepath.Join(t.TempDir(), "audit.log")
	writeRun(t, path, testKey, 0, 3, true, true)
	files := writeRun(t, path, newKey, 3, 3, true, true)
	t.Run("with both keys, newest first, the trail verifies, with notes where the key changes", func(t *testing.T) {
		rep, err := VerifyKeys([][]byte{newKey, testKey}, files)
		if err != nil {
			t.Fatal(err)
		}
		if !rep.OK || rep.Records != 10 || len(rep.Notes) != 2 || !strings.Contains(rep.Notes[0], ":1: key 2 from here (seq 1 on)") ||
			!strings.Contains(rep.Notes[1], ":6: key 1 from here (seq 6 on)") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("keys in the wrong order fail: keys only change to newer ones", func(t *testing.T) {
		rep, err := VerifyKeys([][]byte{testKey, newKey}, files)
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || !strings.Contains(rep.Problem, ":6: a record under key 2 after records under key 1") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("records after a key change re-signed with the old key fail", func(t *testing.T) {
		// A review rewrote every record after the change so: whoever
		// holds an old key could otherwise forge the newest records.
		ls := lines(t, files[len(files)-1])
		forged := append([]string{}, ls...)
		for i := 5; i < len(forged); i++ {
			forged[i] = strings.Replace(forged[i], `"user":"marie"`, `"user":"maria"`, 1)
			forged[i] = resign(t, forged[i], macOf(t, forged[i-1]), testKey)
		}
		path := filepath.Join(t.TempDir(), "audit.log")
		setLines(t, path, forged)
		rep, err := VerifyKeys([][]byte{newKey, testKey}, []string{path})
		if err != nil {
			t.Fatal(err)
		}
		if rep.OK || !strings.Contains(rep.Problem, "the newest record verifies under key 2, not under the first key given") {
			t.Fatalf("%+v", rep)
		}
		// Re-signing only some: an older key after the newer one.
		forged = append([]string{}, ls...)
		forged[7] = resign(t, strings.Replace(forged[7], `"user":"paul"`, `"user":"pauk"`, 1), macOf(t, forged[6]), testKey)
		forged[8] = resign(t, forged[8], macOf(t, forged[7]), newKey)
		forged[9] = resign(t, forged[9], macOf(t, forged[8]), newKey)
		setLines(t, path, forged)
		if rep, _ := VerifyKeys([][]byte{newKey, testKey}, []string{path}); rep.OK || !strings.Contains(rep.Problem, "a record under key 2 after records under key 1") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("with the new key alone the old records fail, with a hint at the key", func(t *testing.T) {
		rep := verify(t, newKey, files)
		if rep.OK || len(rep.Problems) != 1 || rep.Records != 5 ||
			!strings.Contains(rep.Problem, ":1: record altered (mac mismatch): no record verified before it: the key may be wrong") {
			t.Fatalf("%+v", rep)
		}
	})
	t.Run("with the old key alone the new records fail, without the hint", func(t *testing.T) {
		rep := verify(t, testKey, files)
		if rep.OK || len(rep.Problems) != 1 || !strings.Contains(rep.Problem, ":6: record altered (mac mismatch) (and the 4 lines after it") {
			t.Fatalf("%+v", rep)
		}
	})
}

// TestVerifyStops: a start of pgveil not preceded by a stop record is
// noted: the run before ended without a clean shutdown, or its last
// records were cut.
func TestVerifyStops(t *testing.T) {
	tests := []struct {
		name string
		// make writes a trail to path and returns its files.
		make func(t *testing.T, path string) []string
		// note is the start of the expected note, "" for none.
		note string
	}{
		{
			name: "clean restarts give no note",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 2, true, true)
				return writeRun(t, path, testKey, 2, 2, true, true)
			},
		},
		{
			name: "a run ended without stop is noted at the next start",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 2, true, false)
				return writeRun(t, path, testKey, 2, 2, true, true)
			},
			note: "audit.log:4: pgveil started again (seq 4) without a stop record after the run seen from ",
		},
		{
			name: "records cut from the end of a stopped run are noted at the next start",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 3, true, true)
				ls := lines(t, path)
				setLines(t, path, ls[:len(ls)-2])
				return writeRun(t, path, testKey, 3, 2, true, true)
			},
			note: "audit.log:4: pgveil started again (seq 4) without a stop record after the run seen from ",
		},
		{
			name: "dropped records after a stop keep the run stopped",
			make: func(t *testing.T, path string) []string {
				l, err := Open(Options{File: path, Key: testKey})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range []*Record{{Event: EventStart}, {Event: EventStop}, {Event: EventDropped, Count: 3}} {
					l.Write(r)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				return writeRun(t, path, testKey, 0, 1, true, true)
			},
		},
		{
			name: "a run whose stop record was dropped is noted, with that possibility",
			make: func(t *testing.T, path string) []string {
				l, err := Open(Options{File: path, Key: testKey})
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range []*Record{{Event: EventStart}, {Event: EventDropped, Count: 3}} {
					l.Write(r)
				}
				if err := l.Close(); err != nil {
					t.Fatal(err)
				}
				return writeRun(t, path, testKey, 0, 1, true, true)
			},
			note: "audit.log:3: pgveil started again (seq 3) without a stop record after the run seen from ",
		},
		{
			name: "a trail that does not begin with a start still notes a start without stop",
			make: func(t *testing.T, path string) []string {
				writeRun(t, path, testKey, 0, 2, false, false)
				return writeRun(t, path, testKey, 2, 2, true, true)
			},
			note: "audit.log:3: pgveil started again (seq 3) without a stop record after the run seen from ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := tt.make(t, filepath.Join(t.TempDir(), "audit.log"))
			rep := verify(t, testKey, files)
			if !rep.OK {
				t.Fatalf("problem %q", rep.Problems)
			}
			// NOTE: dropped records are noted too, each (and counted):
			// the notes about starts are the others.
			notes := slices.DeleteFunc(slices.Clone(rep.Notes), func(n string) bool {
				return strings.Contains(n, "records were dropped before this one")
			})
			if dropped := len(rep.Notes) - len(notes); rep.Dropped != 3*uint64(dropped) {
				t.Fatalf("dropped %d, notes %q", rep.Dropped, rep.Notes)
			}
			if tt.note == "" {
				if len(notes) != 0 {
					t.Fatalf("notes %q", notes)
				}
				return
			}
			if len(notes) != 1 || !strings.HasPrefix(strings.TrimPrefix(notes[0], filepath.Dir(files[0])+"/"), tt.note) ||
				!strings.Contains(notes[0], "or records were cut from its end") {
				t.Fatalf("notes %q\nwant  %q…", notes, tt.note)
			}
		})
	}
}

// resign replaces line's prev with prev and signs it with key, as whoever
// holds key could.
func resign(t *testing.T, line, prev string, key []byte) string {
	t.Helper()
	e, err := ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	signed := strings.Replace(line[:len(line)-lineEndLen], `"prev":"`+e.Prev+`"`, `"prev":"`+prev+`"`, 1)
	return signed + macField + newChain(key).mac([]byte(signed)) + `"}`
}

// macOf returns the mac of line.
func macOf(t *testing.T, line string) string {
	t.Helper()
	e, err := ParseLine([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	return e.MAC
}

// TestVerifyRefusesWhatIsNotAFile: a link to /dev/zero among the files
// exhausted memory, a FIFO hung; both are refused.
func TestVerifyRefusesWhatIsNotAFile(t *testing.T) {
	files := writeChain(t, 3, Options{Key: testKey})
	dir := t.TempDir()
	zero := filepath.Join(dir, "audit.log.zero")
	if err := os.Symlink("/dev/zero", zero); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "audit.log.fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, bad := range []string{zero, fifo} {
		if _, err := VerifyChains(testKey, append([]string{bad}, files...)); err == nil || !strings.Contains(err.Error(), "not a regular file") {
			t.Errorf("%s: %v", bad, err)
		}
	}
}

// TestVerifyReadsAFileOnce: a link to a file also given by name is the
// same file (read twice, it failed a sound chain as records out of
// order).
func TestVerifyReadsAFileOnce(t *testing.T) {
	files := writeChain(t, 3, Options{Key: testKey})
	link := filepath.Join(t.TempDir(), "audit.log.link")
	if err := os.Symlink(files[len(files)-1], link); err != nil {
		t.Fatal(err)
	}
	if rep := verify(t, testKey, append([]string{link}, files...)); !rep.OK || rep.Records != 3 {
		t.Fatalf("%+v", rep)
	}
}
