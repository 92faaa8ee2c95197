package audit

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// waitFor polls cond for up to 5 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting: %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestFailing(t *testing.T) {
	t.Run("a failed fsync makes the log failing until a write and its fsync succeed", func(t *testing.T) {
		defer func(f func(*os.File) error) { fsync = f }(fsync)
		var fail atomic.Bool
		fsync = func(f *os.File) error {
			if fail.Load() {
				return syscall.EIO
			}
			return f.Sync()
		}
		l, err := Open(Options{File: filepath.Join(t.TempDir(), "audit.log"), Key: testKey})
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if l.Failing() {
			t.Fatal("failing from the start")
		}
		fail.Store(true)
		l.Write(statement(1))
		waitFor(t, "failing after a failed fsync", l.Failing)
		fail.Store(false)
		l.Write(statement(2))
		waitFor(t, "not failing after a good write and fsync", func() bool { return !l.Failing() })
	})
	t.Run("a failing write makes the log failing while it is retried", func(t *testing.T) {
		var fail atomic.Bool
		fail.Store(true)
		l, err := open(Options{File: filepath.Join(t.TempDir(), "audit.log"), Key: testKey},
			func(f *os.File, p []byte) (int, error) {
				if fail.Load() {
					return 0, syscall.ENOSPC
				}
				return f.Write(p)
			})
		if err != nil {
			t.Fatal(err)
		}
		l.Write(statement(1))
		waitFor(t, "failing while writes fail", l.Failing)
		fail.Store(false)
		waitFor(t, "not failing once the write went through", func() bool { return !l.Failing() })
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if s := l.Stats(); s.Written != 1 {
			t.Fatalf("stats %+v", s)
		}
	})
}
