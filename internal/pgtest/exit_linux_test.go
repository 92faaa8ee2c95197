package pgtest_test

import (
	"errors"
	"fmt"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// sysPidfdOpen is pidfd_open(2)'s number, the same on every Linux
// architecture Go supports.
const sysPidfdOpen = 434

// waitExited waits until the process pid has exited (a zombie counts as
// exited), or timeout passes: it reports whether it exited. The kernel
// says so through a pidfd, which becomes readable when the process ends;
// pid need not be a child of ours.
func waitExited(pid int, timeout time.Duration) (bool, error) {
	fd, _, errno := syscall.Syscall(sysPidfdOpen, uintptr(pid), 0, 0)
	switch {
	case errno == syscall.ESRCH:
		return true, nil // NOTE: gone, and already reaped.
	case errno != 0:
		return false, fmt.Errorf("pidfd_open %d: %w", pid, errno)
	}
	defer syscall.Close(int(fd))
	ep, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return false, fmt.Errorf("epoll_create1: %w", err)
	}
	defer syscall.Close(ep)
	if err := syscall.EpollCtl(ep, syscall.EPOLL_CTL_ADD, int(fd), &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(fd)}); err != nil {
		return false, fmt.Errorf("epoll_ctl: %w", err)
	}
	deadline := time.Now().Add(timeout)
	events := make([]syscall.EpollEvent, 1)
	for {
		ms := int(time.Until(deadline).Milliseconds())
		if ms < 0 {
			ms = 0
		}
		n, err := syscall.EpollWait(ep, events, ms)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			return false, fmt.Errorf("epoll_wait: %w", err)
		}
		return n > 0, nil
	}
}

func TestWaitExited(t *testing.T) {
	cmd := exec.Command("sleep", "0.5")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Wait()
	t.Run("a running process has not exited when the timeout passes", func(t *testing.T) {
		if exited, err := waitExited(cmd.Process.Pid, 10*time.Millisecond); err != nil || exited {
			t.Fatalf("exited %v, %v", exited, err)
		}
	})
	t.Run("an exited process, a zombie until reaped, has exited", func(t *testing.T) {
		if exited, err := waitExited(cmd.Process.Pid, 10*time.Second); err != nil || !exited {
			t.Fatalf("exited %v, %v", exited, err)
		}
	})
}
