package main

import (
	"bufio"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// child is a long-running helper process (PgBouncer, pgveil) that the
// harness started and must stop.
type child struct {
	name    string
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once cmd.Wait has returned
	err     error         // cmd.Wait's result; NOTE: read only after done is closed
}

// startChild starts cmd with its stdout and stderr appended to logPath. The
// process gets its own process group, so that a Ctrl-C in the terminal
// reaches only the harness, which then stops it in order, and SIGKILL when
// the harness dies. cred, when not nil, is the OS user it runs as.
func startChild(name string, cmd *exec.Cmd, logPath string, cred *credential) (*child, error) {
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	// NOTE: the child keeps its own copy of the descriptor.
	defer logf.Close()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = childAttr(cred)
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	return c, nil
}

// pid returns the process id.
func (c *child) pid() int { return c.cmd.Process.Pid }

// exited reports whether the process has ended.
func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// stop sends sig, waits up to timeout for the process to exit, then kills
// it. It is a no-op for a process that has already exited.
func (c *child) stop(sig syscall.Signal, timeout time.Duration) error {
	if c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(sig); err != nil {
		_ = c.cmd.Process.Kill()
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(timeout):
		_ = c.cmd.Process.Kill()
		<-c.done
		return fmt.Errorf("%s did not exit within %v of %v and was killed", c.name, timeout, sig)
	}
}

// logTail returns the last lines (at most max bytes) of the process's log.
func (c *child) logTail(max int) string {
	data, err := os.ReadFile(c.logPath)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", c.logPath, err)
	}
	if len(data) > max {
		data = data[len(data)-max:]
		if i := strings.IndexByte(string(data), '\n'); i >= 0 {
			data = data[i+1:]
		}
	}
	return strings.TrimRight(string(data), "\n")
}

// memStats are a process's resident set sizes, in bytes.
type memStats struct {
	Peak    int64 // VmHWM: the high-water mark
	Current int64 // VmRSS
}

// idleCost is the RSS of a proxy before and after clients connections
// opened and left idle.
type idleCost struct {
	clients       int
	before, after int64
}

// perClient returns the bytes each idle client added.
func (c idleCost) perClient() float64 {
	return float64(c.after-c.before) / float64(c.clients)
}

// readMem reads VmHWM and VmRSS from /proc/PID/status.
func readMem(pid int) (memStats, error) {
	f, err := os.Open("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return memStats{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	defer f.Close()
	var m memStats
	var found int
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok || (key != "VmHWM" && key != "VmRSS") {
			continue
		}
		fields := strings.Fields(val) // e.g. "  12345 kB"
		if len(fields) != 2 || fields[1] != "kB" {
			return memStats{}, fmt.Errorf("read memory of pid %d: unexpected %s line %q", pid, key, sc.Text())
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			return memStats{}, fmt.Errorf("read memory of pid %d: %s: %w", pid, key, err)
		}
		if key == "VmHWM" {
			m.Peak = kb << 10
		} else {
			m.Current = kb << 10
		}
		found++
	}
	if err := sc.Err(); err != nil {
		return memStats{}, fmt.Errorf("read memory of pid %d: %w", pid, err)
	}
	if found != 2 {
		return memStats{}, fmt.Errorf("read memory of pid %d: no VmHWM/VmRSS in /proc/%d/status", pid, pid)
	}
	return m, nil
}

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat: 100 on
// every Linux architecture Go supports.
const clockTicks = 100

// cpuTime returns the CPU time (user plus system, all threads) that process
// pid has used, from /proc/PID/stat, with a resolution of 1/clockTicks s.
func cpuTime(pid int) (time.Duration, error) {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
	}
	// NOTE: the command name (field 2) is in parentheses and may hold
	// spaces and parentheses; the fields after the last ")" start at
	// field 3 (state), so utime (14) and stime (15) are at 11 and 12.
	i := strings.LastIndexByte(string(data), ')')
	if i < 0 {
		return 0, fmt.Errorf("read CPU time of pid %d: malformed /proc/%d/stat", pid, pid)
	}
	fields := strings.Fields(string(data[i+1:]))
	if len(fields) < 13 {
		return 0, fmt.Errorf("read CPU time of pid %d: short /proc/%d/stat", pid, pid)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("read CPU time of pid %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * time.Second / clockTicks, nil
}

// freePort returns a TCP port of 127.0.0.1 that was free a moment ago.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	if err := l.Close(); err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	return port, nil
}

// randomSecret returns a random password of hex digits, which needs no
// quoting in URLs, configuration files or connection strings.
func randomSecret() (string, error) {
	var b [18]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("random password: %w", err)
	}
	return hex.EncodeToString(b[:]), nil
}

// childEnv returns this process's environment less the libpq variables
// (PGHOST, PGPORT, ...) and locale settings that could redirect or
// translate a child, plus extra ("NAME=value").
func childEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PG") || strings.HasPrefix(kv, "LC_") || strings.HasPrefix(kv, "LANG=") {
			continue
		}
		env = append(env, kv)
	}
	env = append(env, "LC_ALL=C")
	return append(env, extra...)
}

// errExited reports that a helper process ended while it was still needed.
var errExited = errors.New("process exited")
