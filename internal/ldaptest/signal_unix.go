//go:build unix

package ldaptest

import (
	"bytes"
	"fmt"
	"os"
	"syscall"
	"time"
)

// pause stops p (SIGSTOP), as a directory that hangs.
//
// SIGSTOP stops a process's threads as each next returns to user space:
// one running on another processor may still answer a request. So pause
// waits, where /proc shows it (Linux), until every thread is stopped.
func pause(p *os.Process) error {
	if err := p.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	dir := fmt.Sprintf("/proc/%d/task", p.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		tasks, err := os.ReadDir(dir)
		if err != nil {
			return nil // no /proc: the signal is all there is
		}
		stopped := true
		for _, task := range tasks {
			b, err := os.ReadFile(dir + "/" + task.Name() + "/stat")
			if err != nil {
				continue // the thread ended
			}
			// The state follows the command name's closing parenthesis.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || (b[i+2] != 'T' && b[i+2] != 't') {
				stopped = false
				break
			}
		}
		if stopped {
			return nil
		}
	}
	return fmt.Errorf("slapd (pid %d) did not stop within 5s of SIGSTOP", p.Pid)
}

// resume continues a paused p (SIGCONT).
func resume(p *os.Process) error { return p.Signal(syscall.SIGCONT) }
