package audit

import (
	"bufio"
	"cmp"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
)

// ReadLines calls fn with every line of file, without its newline, and
// its number from 1; a last line without newline is passed too. line is
// valid only during the call. ReadLines stops at fn's first error and
// returns it. Memory stays bounded by the longest line.
func ReadLines(file string, fn func(n int, line []byte) error) error {
	// NOTE: before opening: opening a FIFO waits for a writer, and a
	// device such as /dev/zero never ends a line (a review exhausted
	// memory with a link to it among the files).
	if st, err := os.Stat(file); err == nil && !st.Mode().IsRegular() {
		return fmt.Errorf("reading audit log %q: not a regular file (%s)", file, st.Mode().Type())
	}
	f, err := os.Open(file)
	if err != nil {
		return fmt.Errorf("reading audit log %q: %w", file, unwrapPathError(err))
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 64<<10)
	var long []byte
	for n := 1; ; n++ {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			long = append(long[:0], line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("reading audit log %q: %w", file, err)
		}
		if len(line) > 0 {
			if line[len(line)-1] == '\n' {
				line = line[:len(line)-1]
			}
			if ferr := fn(n, line); ferr != nil {
				return ferr
			}
		}
		if err != nil {
			return nil
		}
	}
}

// errStop ends ReadLines early without an error.
var errStop = errors.New("stop")

// firstLine returns the first line of file, nil for an empty file.
func firstLine(file string) ([]byte, error) {
	var first []byte
	err := ReadLines(file, func(_ int, line []byte) error {
		first = append([]byte(nil), line...)
		return errStop
	})
	if err != nil && !errors.Is(err, errStop) {
		return nil, err
	}
	return first, nil
}

// OrderFiles returns files in chain order, by the seq of their first
// record, so that a shell glob (audit.log*) can be given in any order.
// Names given twice count once. Files whose first line cannot be parsed
// come first, so that Verify reports them; empty files come last.
func OrderFiles(files []string) ([]string, error) {
	type ranked struct {
		file  string
		class int // 0 unparseable first line, 1 records, 2 empty
		seq   uint64
	}
	seen := map[string]bool{}
	var stats []os.FileInfo
	var all []ranked
	for _, f := range files {
		if seen[filepath.Clean(f)] {
			continue
		}
		seen[filepath.Clean(f)] = true
		// NOTE: a link to a file given too, or a second name of it, is
		// the same file: read twice, it made a sound chain fail.
		if st, err := os.Stat(f); err == nil {
			if slices.ContainsFunc(stats, func(o os.FileInfo) bool { return os.SameFile(o, st) }) {
				continue
			}
			stats = append(stats, st)
		}
		line, err := firstLine(f)
		if err != nil {
			return nil, err
		}
		rk := ranked{file: f, class: 2}
		if line != nil {
			rk.class = 0
			if e, err := ParseLine(line); err == nil {
				rk.class, rk.seq = 1, e.Seq
			}
		}
		all = append(all, rk)
	}
	slices.SortStableFunc(all, func(a, b ranked) int {
		return cmp.Or(cmp.Compare(a.class, b.class), cmp.Compare(a.seq, b.seq))
	})
	out := make([]string, len(all))
	for i, rk := range all {
		out[i] = rk.file
	}
	return out, nil
}
