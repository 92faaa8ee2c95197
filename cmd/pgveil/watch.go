package main

import (
	"os"
	"path/filepath"
	"strconv"
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
}

func newWatcher(files []string, path string, every time.Duration) *watcher {
	w := &watcher{changed: make(chan struct{}, 1), done: make(chan struct{})}
	go w.run(files, path, every)
	return w
}

func (w *watcher) stop() { close(w.done) }

func (w *watcher) run(files []string, path string, every time.Duration) {
	last := snapshot(files, path)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-w.done:
			return
		case <-t.C:
		}
		now := snapshot(files, path)
		if now != last {
			last = now
			select {
			case w.changed <- struct{}{}:
			default:
			}
		}
	}
}

// snapshot summarises the state of the configuration files.
func snapshot(files []string, path string) string {
	names := append([]string(nil), files...)
	if fi, err := os.Stat(path); err == nil && fi.IsDir() {
		if m, err := filepath.Glob(filepath.Join(path, "*.hcl")); err == nil {
			names = append(names, m...)
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
