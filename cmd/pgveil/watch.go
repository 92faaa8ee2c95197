package main

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// watcher polls the configuration files and reports when they change:
// a file's size or modification time moved, or a *.hcl file appeared in
// or left a configuration directory. Polling needs no dependency and
// sees edits made through editors' rename-and-replace as well.
//
// NOTE: changed has a buffer of one and is never closed; a change while
// a reload is pending is folded into it.
type watcher struct {
	changed chan struct{}
	done    chan struct{}
	// release frees the ticker of newWatcher; nil for watchFiles.
	release func()
	// looked, when not nil, receives after each look (tests).
	looked chan struct{}
}

// newWatcher watches files and the configuration path, polling every
// interval.
func newWatcher(files []string, path string, every time.Duration) *watcher {
	t := time.NewTicker(every)
	w := watchFiles(files, path, t.C)
	w.release = t.Stop
	return w
}

// watchFiles watches files and the configuration path, looking at each
// tick: the clock is injected, so that a test drives it. The first
// snapshot is taken before it returns.
func watchFiles(files []string, path string, tick <-chan time.Time) *watcher {
	return startWatcher(&watcher{changed: make(chan struct{}, 1), done: make(chan struct{})}, files, path, tick)
}

// startWatcher takes the first snapshot and starts w.
func startWatcher(w *watcher, files []string, path string, tick <-chan time.Time) *watcher {
	go w.run(files, path, snapshot(files, path), tick)
	return w
}

func (w *watcher) stop() {
	close(w.done)
	if w.release != nil {
		w.release()
	}
}

// run compares a snapshot with last at each tick until stop. A change is
// reported once the files have stayed as they are for a tick: a deploy
// that moves a rule from one file to another, written file by file, is
// not loaded half done, wider than both the old and the new policy.
func (w *watcher) run(files []string, path, last string, tick <-chan time.Time) {
	settling := false
	for {
		select {
		case <-w.done:
			return
		case <-tick:
		}
		now := snapshot(files, path)
		switch {
		case now != last:
			last, settling = now, true
		case settling:
			settling = false
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
		if w.looked != nil {
			w.looked <- struct{}{}
		}
	}
}

// snapshot summarises the state of the configuration files.
func snapshot(files []string, path string) string {
	names := append([]string(nil), files...)
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		if m, err := filepath.Glob(filepath.Join(path, "*.hcl")); err == nil {
			for _, n := range m {
				// NOTE: the loader skips hidden files (editors' lock files).
				if !strings.HasPrefix(filepath.Base(n), ".") {
					names = append(names, n)
				}
			}
		}
	}
	var b []byte
	for _, n := range names {
		b = append(b, n...)
		if fi, err := os.Stat(n); err == nil {
			b = strconv.AppendInt(b, fi.ModTime().UnixNano(), 10)
			b = append(b, ' ')
			b = strconv.AppendInt(b, fi.Size(), 10)
		}
		b = append(b, 0)
	}
	return string(b)
}
