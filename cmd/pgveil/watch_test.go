package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWatcher(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "a.hcl")
	write := func(name, body string) {
		t.Helper()
		if err := os.WriteFile(name, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(file, "x")
	tick := make(chan time.Time)
	w := startWatcher(&watcher{changed: make(chan struct{}, 1), done: make(chan struct{}), looked: make(chan struct{})},
		[]string{file}, dir, tick)
	defer w.stop()
	// ticks(n) has the watcher look n times.
	ticks := func(n int) {
		for range n {
			tick <- time.Time{}
			<-w.looked
		}
	}
	// look has the watcher see a change and then the files settled.
	look := func() { ticks(2) }
	changed := func() bool {
		select {
		case <-w.changed:
			return true
		default:
			return false
		}
	}

	t.Run("nothing is reported while nothing changes", func(t *testing.T) {
		look()
		if changed() {
			t.Fatal("a change reported")
		}
	})
	t.Run("an edited file is reported", func(t *testing.T) {
		write(file, "xy")
		look()
		if !changed() {
			t.Fatal("no change reported")
		}
	})
	t.Run("a new configuration file in the directory is reported", func(t *testing.T) {
		write(filepath.Join(dir, "b.hcl"), "z")
		look()
		if !changed() {
			t.Fatal("no change reported")
		}
	})
	t.Run("files still changing at each look are reported once they settle", func(t *testing.T) {
		write(file, "a")
		ticks(1)
		write(file, "ab")
		ticks(1)
		if changed() {
			t.Fatal("a change reported while the files still change")
		}
		ticks(1)
		if !changed() {
			t.Fatal("no change reported once settled")
		}
	})
	t.Run("other files in the directory are not", func(t *testing.T) {
		write(filepath.Join(dir, "notes.txt"), "z")
		look()
		if changed() {
			t.Fatal("a change reported")
		}
	})
	t.Run("nor are hidden ones, such as an editor's lock file", func(t *testing.T) {
		write(filepath.Join(dir, ".#a.hcl"), "marie@host.1234")
		look()
		if changed() {
			t.Fatal("a change reported")
		}
	})
	t.Run("changes while a reload is pending fold into one", func(t *testing.T) {
		write(file, "xyz")
		look()
		write(file, "xyzw")
		look()
		if !changed() || changed() {
			t.Fatal("not exactly one change reported")
		}
	})
}
