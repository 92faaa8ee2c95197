package main

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// The modes the benchmark measures: pgbench's select-only script (-S) in
// the protocol modes of its -M flag, and its built-in TPC-B-like script,
// its default, in simple protocol.
const (
	modeSimple   = "simple"
	modePrepared = "prepared"
	// modeTPCB is pgbench's default script: BEGIN, three UPDATEs, a
	// SELECT, an INSERT and END, with deltas of either sign inlined in
	// simple protocol. It has no target; it shows what a pgbench run
	// with no script option measures.
	modeTPCB = "tpcb"
)

// pgbenchRun is the shape of one select-only run.
type pgbenchRun struct {
	mode    string
	clients int
	jobs    int
	seconds int
	// steadyCPU counts the proxy's CPU only while every client runs
	// transactions (steadyCPU), not while they connect or disconnect: for
	// runs with so many clients that connecting them costs the proxy as
	// much as their transactions.
	steadyCPU bool
}

// args returns pgbench's arguments for the run: the built-in select-only
// script (the TPC-B-like one in modeTPCB, in simple protocol), no vacuum
// before it.
func (r pgbenchRun) args() []string {
	script, protocol := []string{"-S"}, r.mode
	if r.mode == modeTPCB {
		script, protocol = []string{"-b", "tpcb-like"}, modeSimple
	}
	return append(script,
		"-n",
		"-M", protocol,
		"-c", strconv.Itoa(r.clients),
		"-j", strconv.Itoa(r.jobs),
		"-T", strconv.Itoa(r.seconds),
	)
}

// measureTPS runs pgbench against t and returns what it reports; a run
// with failed transactions is an error.
func measureTPS(ctx context.Context, pgbench string, t *target, r pgbenchRun) (pgbenchResult, error) {
	out, err := runPgbench(ctx, pgbench, t, r.args()...)
	if err != nil {
		return pgbenchResult{}, err
	}
	res, err := parsePgbench(out)
	if err != nil {
		return pgbenchResult{}, fmt.Errorf("pgbench -M %s against %s: %w; output:\n%s", r.mode, t.name, err, tail(out, 2048))
	}
	if res.failed > 0 {
		return pgbenchResult{}, fmt.Errorf("pgbench -M %s against %s: %d failed transactions; output:\n%s",
			r.mode, t.name, res.failed, tail(out, 2048))
	}
	return res, nil
}

// runPgbench runs pgbench with args against the bench database of t and
// returns its combined output. The run is killed when ctx ends.
func runPgbench(ctx context.Context, pgbench string, t *target, args ...string) (string, error) {
	full := append([]string{"-h", t.host, "-p", strconv.Itoa(t.port), "-U", t.user}, args...)
	full = append(full, benchDatabase)
	cmd := exec.CommandContext(ctx, pgbench, full...)
	env := []string{"PGPASSWORD=" + t.password, "PGSSLMODE=disable"}
	if t.appName != "" {
		env = append(env, "PGAPPNAME="+t.appName)
	}
	cmd.Env = childEnv(env...)
	cmd.SysProcAttr = childAttr(nil)
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGINT) }
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("pgbench %s against %s: %w; output:\n%s",
			strings.Join(args, " "), t.name, err, tail(string(out), 2048))
	}
	return string(out), nil
}

// pgbenchResult is what the benchmark reads from pgbench's report.
type pgbenchResult struct {
	tps       float64
	processed int64 // transactions
	failed    int64
	// connTime is how long connecting the clients took ("initial
	// connection time"), before any transaction and within -T.
	connTime time.Duration
}

var (
	// tpsLine matches "tps = 12345.678901 (without initial connection time)".
	tpsLine = regexp.MustCompile(`(?m)^tps = ([0-9]+(?:\.[0-9]+)?) \(without initial connection time\)`)
	// processedLine matches "number of transactions actually processed: 123".
	processedLine = regexp.MustCompile(`(?m)^number of transactions actually processed: ([0-9]+)`)
	// failedLine matches "number of failed transactions: 0 (0.000%)"
	// (pgbench 15 and later).
	failedLine = regexp.MustCompile(`(?m)^number of failed transactions: ([0-9]+)`)
	// connLine matches "initial connection time = 12.345 ms".
	connLine = regexp.MustCompile(`(?m)^initial connection time = ([0-9]+(?:\.[0-9]+)?) ms`)
)

// errNoTransactions reports a pgbench run that ended before any
// transaction did. pgbench's -T clock starts before its clients connect,
// so this happens when connecting them takes the whole run: hundreds of
// clients through PgBouncer, which derives a SCRAM key from the
// plain-text password of its userlist for each one, in a run of a second
// or two.
var errNoTransactions = errors.New("no transaction processed: connecting the clients may have taken the whole run")

// parsePgbench reads the TPS and the transaction counts from pgbench's
// report.
func parsePgbench(out string) (pgbenchResult, error) {
	m := tpsLine.FindStringSubmatch(out)
	if m == nil {
		if m := processedLine.FindStringSubmatch(out); m != nil && m[1] == "0" {
			return pgbenchResult{}, errNoTransactions
		}
		return pgbenchResult{}, errors.New(`no "tps = N (without initial connection time)" line in the pgbench output`)
	}
	tps, err := strconv.ParseFloat(m[1], 64)
	if err != nil {
		return pgbenchResult{}, fmt.Errorf("parse tps %q: %w", m[1], err)
	}
	res := pgbenchResult{tps: tps}
	if m := processedLine.FindStringSubmatch(out); m != nil {
		if res.processed, err = strconv.ParseInt(m[1], 10, 64); err != nil {
			return pgbenchResult{}, fmt.Errorf("parse processed transactions %q: %w", m[1], err)
		}
	}
	if m := failedLine.FindStringSubmatch(out); m != nil {
		if res.failed, err = strconv.ParseInt(m[1], 10, 64); err != nil {
			return pgbenchResult{}, fmt.Errorf("parse failed transactions %q: %w", m[1], err)
		}
	}
	if m := connLine.FindStringSubmatch(out); m != nil {
		ms, err := strconv.ParseFloat(m[1], 64)
		if err != nil {
			return pgbenchResult{}, fmt.Errorf("parse initial connection time %q: %w", m[1], err)
		}
		res.connTime = time.Duration(ms * float64(time.Millisecond))
	}
	return res, nil
}

// findPgbench returns the pgbench of the server's installation, falling
// back to the one on PATH.
func findPgbench(binDir string) (string, error) {
	if binDir != "" {
		p := filepath.Join(binDir, "pgbench")
		if _, err := exec.LookPath(p); err == nil {
			return p, nil
		}
	}
	p, err := exec.LookPath("pgbench")
	if err != nil {
		return "", fmt.Errorf("pgbench not found in %s nor on PATH (Debian: apt-get install postgresql-contrib or postgresql-client): %w", binDir, err)
	}
	return p, nil
}

// tail returns the end of s, at most max bytes, starting at a line.
func tail(s string, max int) string {
	s = strings.TrimRight(s, "\n")
	if len(s) <= max {
		return s
	}
	s = s[len(s)-max:]
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	return s
}
