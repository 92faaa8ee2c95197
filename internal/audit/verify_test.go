package audit

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
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
