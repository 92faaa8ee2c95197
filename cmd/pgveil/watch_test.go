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
	w := watchFiles([]string{file}, dir, tick)
	defer w.stop()
	// look ticks twice: the channel is unbuffered, so when the second
	// tick is taken the first has been looked at.
	look := func() {
		tick <- time.Time{}
		tick <- time.Time{}
	}
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
	t.Run("other files in the directory are not", func(t *testing.T) {
		write(filepath.Join(dir, "notes.txt"), "z")
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
