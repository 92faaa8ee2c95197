package audit

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"
)

// rotatedLayout is the UTC timestamp appended to a rotated file's name;
// names sort in time order.
const rotatedLayout = "20060102T150405.000000000Z"

// fileMode is the mode of the files the Log creates: the trail holds
// statements and user names.
const fileMode = 0o600

// openFile resumes the chain from the existing trail, then opens File for
// appending, creating it when missing.
func (w *writer) openFile() error {
	path := w.o.File
	line, partial, err := lastLineOf(path)
	if err != nil {
		return fmt.Errorf("opening audit log %q: %w", path, err)
	}
	from := path
	if line == nil {
		// NOTE: right after a rotation the current file may hold no
		// record yet; the chain goes on from the newest rotated one.
		if rotated := newestRotated(path); rotated != "" {
			if line, _, err = lastLineOf(rotated); err != nil {
				return fmt.Errorf("opening audit log %q: %w", path, err)
			}
			from = rotated
		}
	}
	if line != nil {
		w.resume(from, line)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("opening audit log %q: %w", path, unwrapPathError(err))
	}
	if partial {
		w.log.Warn("the audit log ends with a partial line, probably cut by a crash: "+
			"ending it so that new records start on a line of their own; verify will report it",
			zap.String("file", path))
		if _, err := f.Write([]byte("\n")); err != nil {
			f.Close()
			return fmt.Errorf("ending the partial last line of audit log %q: %w", path, err)
		}
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening audit log %q: %w", path, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// resume continues the chain after line, the last complete line of file.
func (w *writer) resume(file string, line []byte) {
	e, err := ParseLine(line)
	if err != nil {
		w.log.Warn("the last record of the audit log cannot be read: starting a new chain from seq 1; "+
			"verify will report the break", zap.String("file", file), zap.Error(err))
		return
	}
	w.seq, w.prev, w.chainID = e.Seq, e.MAC, e.Chain
	w.lastSeq.Store(e.Seq)
	if signed, err := signedPart(line); err == nil && w.chain.mac(signed) != e.MAC {
		w.log.Warn("the last record of the audit log was not written with this key (was the key changed?); "+
			"the chain goes on; verify the trail with both keys (pgveil audit verify --key-env NEW --key-env OLD)",
			zap.String("file", file), zap.Uint64("seq", e.Seq))
	}
}

// flush writes the batch, then syncs the file.
func (w *writer) flush() {
	w.write()
	w.sync()
}

// write writes the batch and counts the records written or lost; the
// file is left to sync.
func (w *writer) write() {
	if w.lines == 0 {
		return
	}
	w.followPath()
	if err := w.writeAll(w.buf); err != nil {
		w.lost += w.lines
		w.dropped.Add(uint64(w.lines))
	} else {
		w.written.Add(uint64(w.lines))
		// NOTE: the batch ends with the last record added.
		w.lastSeq.Store(w.seq)
		w.unsynced = w.f != nil
		if !w.unsynced {
			// Standard output: written is as far as it goes.
			w.failing.Store(false)
		}
	}
	w.buf, w.lines = w.buf[:0], 0
}

// fsync is (*os.File).Sync; a variable for tests, which count the calls.
var fsync = (*os.File).Sync

// sync makes what write wrote durable, if anything waits for it.
func (w *writer) sync() {
	w.synced = time.Now()
	if !w.unsynced || w.f == nil {
		return
	}
	w.unsynced = false
	if err := fsync(w.f); err != nil {
		// NOTE: the kernel may have dropped what the failed fsync was to
		// write, and a later fsync may well succeed without it: the
		// records since the last good one may be missing (verify shows
		// it). Failing says so until a write and its fsync succeed.
		w.failing.Store(true)
		w.log.Error("syncing the audit log: records written since the last sync may be lost",
			zap.String("file", w.o.File), zap.Error(err))
		return
	}
	w.failing.Store(false)
}

// writeAll writes p, retrying with backoff after errors; only the bytes
// not yet written are retried, so that no line is split or repeated.
// It gives up only once Close was called and closeGiveUp has passed, or
// after it gave up before.
func (w *writer) writeAll(p []byte) error {
	if w.lastErr != nil {
		return w.lastErr
	}
	delay := firstRetryDelay
	var closingSince time.Time
	for attempt := 1; ; attempt++ {
		var err error
		switch {
		case w.out != nil:
			var n int
			n, err = w.out.Write(p)
			p = p[n:]
		case w.f == nil:
			err = w.reopen()
		default:
			var n int
			n, err = w.writeFile(w.f, p)
			w.size += int64(n)
			p = p[n:]
		}
		if err == nil && len(p) == 0 {
			return nil
		}
		if err == nil {
			err = io.ErrShortWrite
		}
		w.failing.Store(true)
		w.log.Error("writing the audit log; retrying: sessions wait when the queue is full (on_full = \"block\")",
			zap.String("file", w.o.File), zap.Int("attempt", attempt), zap.Duration("retry_in", delay), zap.Error(err))
		if w.closing.Load() {
			if closingSince.IsZero() {
				closingSince = time.Now()
			} else if time.Since(closingSince) >= closeGiveUp {
				w.lastErr = err
				return err
			}
		}
		time.Sleep(delay)
		delay = min(2*delay, maxRetryDelay)
	}
}

// followPath makes the writer write to the file at File again when the
// one it holds is no longer there: moved or removed by hand or by a log
// rotation tool without copytruncate, which left pgveil writing to the
// moved file (and failing every rotation of its own). The chain goes on
// in the new file; verify needs the moved one too.
func (w *writer) followPath() {
	if w.f == nil {
		return
	}
	st, err := os.Stat(w.o.File)
	if err == nil {
		if cur, err := w.f.Stat(); err != nil || os.SameFile(st, cur) {
			return
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return
	}
	w.log.Warn("the audit log was moved or removed while pgveil wrote it: writing a new file at its path; "+
		"the chain goes on there, and verify needs the moved file too",
		zap.String("file", w.o.File), zap.Uint64("next_seq", w.seq-uint64(w.lines)+1))
	if err := w.f.Close(); err != nil {
		w.log.Error("closing the moved audit log", zap.String("file", w.o.File), zap.Error(err))
	}
	w.f = nil
	if err := w.reopen(); err != nil {
		w.log.Error("opening a new audit log; retrying at the next write", zap.String("file", w.o.File), zap.Error(err))
	}
	syncDir(filepath.Dir(w.o.File))
}

// reopen opens File again after a failed rotation.
func (w *writer) reopen() error {
	f, err := os.OpenFile(w.o.File, os.O_WRONLY|os.O_APPEND|os.O_CREATE, fileMode)
	if err != nil {
		return fmt.Errorf("opening audit log %q: %w", w.o.File, unwrapPathError(err))
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening audit log %q: %w", w.o.File, err)
	}
	w.f, w.size = f, st.Size()
	return nil
}

// rotate renames the full current file to File.<UTC timestamp> and opens
// a new File. When the rename fails, the current file goes on growing;
// when the new file cannot be opened, the next write retries.
func (w *writer) rotate() {
	if w.f == nil || w.lastErr != nil {
		return
	}
	path := w.o.File
	if err := w.f.Sync(); err != nil {
		w.log.Error("syncing the audit log before rotating it", zap.String("file", path), zap.Error(err))
	}
	now := time.Now().UTC()
	name := path + "." + now.Format(rotatedLayout)
	for {
		if _, err := os.Lstat(name); errors.Is(err, os.ErrNotExist) {
			break
		}
		now = now.Add(time.Nanosecond)
		name = path + "." + now.Format(rotatedLayout)
	}
	if err := os.Rename(path, name); err != nil {
		w.log.Error("rotating the audit log; it goes on growing", zap.String("file", path), zap.Error(err))
		return
	}
	if err := w.f.Close(); err != nil {
		w.log.Error("closing the rotated audit log", zap.String("file", name), zap.Error(err))
	}
	w.f = nil
	if err := w.reopen(); err != nil {
		w.log.Error("opening a new audit log after rotation; retrying at the next write",
			zap.String("file", path), zap.Error(err))
	}
	syncDir(filepath.Dir(path))
}

// close syncs and closes the current file.
func (w *writer) close() error {
	if w.f == nil {
		return nil
	}
	f := w.f
	w.f = nil
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("syncing audit log %q: %w", w.o.File, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("closing audit log %q: %w", w.o.File, err)
	}
	return nil
}

// syncDir makes a rename and a creation in dir durable; errors are
// ignored (some file systems cannot sync directories).
func syncDir(dir string) {
	if d, err := os.Open(dir); err == nil {
		_ = d.Sync()
		d.Close()
	}
}

// newestRotated returns the newest rotated file of path, "" when there is
// none.
func newestRotated(path string) string {
	matches, _ := filepath.Glob(globEscape(path) + ".*")
	var rotated []string
	for _, m := range matches {
		if _, err := time.Parse(rotatedLayout, strings.TrimPrefix(m, path+".")); err == nil {
			rotated = append(rotated, m)
		}
	}
	if len(rotated) == 0 {
		return ""
	}
	return slices.Max(rotated)
}

// globEscape escapes the metacharacters of filepath.Match in s.
func globEscape(s string) string {
	var b strings.Builder
	for _, r := range s {
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// tailChunk is how much lastLineOf reads at a time, from the end.
const tailChunk = 64 << 10

// lastLineOf returns the last complete line of path without its newline
// (nil when there is none, or no file), and whether the file ends with a
// partial line.
func lastLineOf(path string) (line []byte, partial bool, err error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, unwrapPathError(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() == 0 {
		return nil, false, err
	}
	end, err := lastIndexByte(f, st.Size(), '\n')
	if err != nil {
		return nil, false, err
	}
	partial = end != st.Size()-1
	if end < 0 {
		return nil, partial, nil
	}
	start, err := lastIndexByte(f, end, '\n')
	if err != nil {
		return nil, false, err
	}
	line = make([]byte, end-start-1)
	if _, err := f.ReadAt(line, start+1); err != nil {
		return nil, false, err
	}
	return line, partial, nil
}

// lastIndexByte returns the offset of the last c in f before offset
// before, or -1.
func lastIndexByte(f *os.File, before int64, c byte) (int64, error) {
	buf := make([]byte, tailChunk)
	for before > 0 {
		n := min(before, tailChunk)
		chunk := buf[:n]
		if _, err := f.ReadAt(chunk, before-n); err != nil {
			return 0, err
		}
		if i := bytes.LastIndexByte(chunk, c); i >= 0 {
			return before - n + int64(i), nil
		}
		before -= n
	}
	return -1, nil
}

// unwrapPathError drops the operation and path an *os.PathError repeats.
func unwrapPathError(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}
