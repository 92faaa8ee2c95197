package main

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Performance targets of the issue.
const (
	goalTPSvsPgBouncer = 1.0      // pgveil TPS / PgBouncer TPS, each mode
	goalStreamVsDirect = 0.9      // pgveil streaming rate / direct
	goalPeakRSS        = 64 << 20 // bytes of pgveil's VmHWM
	// goalPoolIdleRSS is pgveil-pool's RSS with the transaction-pool
	// phase's idle clients (5,000 by default) connected.
	goalPoolIdleRSS = 128 << 20
)

// goalGovernedVsPgBouncer is, by mode, the least pgveil-governed TPS /
// PgBouncer TPS. Simple mode is allowed less: every pgbench -S statement
// carries a different literal, so each one is parsed and rewritten (the
// rewrite cache is keyed by the exact text), where a prepared statement's
// text is rewritten once and then found in the cache.
var goalGovernedVsPgBouncer = map[string]float64{
	modeSimple:   0.9,
	modePrepared: 1.0,
}

// report is everything printed at the end of a run.
type report struct {
	command  string
	settings string
	facts    machineFacts
	cfg      config
	res      *results
	// pgveilLogs are what each pgveil process logged, in report order.
	pgveilLogs []procLog
}

// procLog holds the first lines a process logged (warnings and errors)
// and counts them all.
type procLog struct {
	name  string
	lines []string
	total int
}

// targetNames lists the targets of the throughput table in report order.
var targetNames = []string{targetDirect, targetPgBouncer, targetPgveil, targetPgveilGoverned, targetPgveilAudited}

// streamTargetNames lists the targets of the streaming table: all but
// pgveil-governed and pgveil-audited, which are not streamed.
var streamTargetNames = []string{targetDirect, targetPgBouncer, targetPgveil}

// proxyNames lists the proxy processes of the memory table.
var proxyNames = []string{targetPgveil, targetPgveilGoverned, targetPgveilAudited, targetPgBouncer}

// poolTargetNames lists the targets of the transaction-pool tables.
var poolTargetNames = []string{targetPgBouncerTx, targetPgveilPool}

// pgveilNames lists the pgveil processes whose logs the report shows.
var pgveilNames = []string{targetPgveil, targetPgveilGoverned, targetPgveilAudited, targetPgveilPool}

// modes lists the measured modes in report order; goalModes those with
// targets.
var (
	modes     = []string{modeSimple, modePrepared, modeTPCB}
	goalModes = []string{modeSimple, modePrepared}
)

// write prints the report, as Markdown when markdown is set.
func (r *report) write(w io.Writer, markdown bool) {
	r.writeHeader(w, markdown)
	r.tpsTable().write(w, markdown)
	r.streamTable().write(w, markdown)
	r.memTable().write(w, markdown)
	if r.res.audit != nil {
		r.auditTable().write(w, markdown)
	}
	if len(r.res.idle) > 0 {
		r.idleTable().write(w, markdown)
	}
	if r.cfg.pooling() {
		r.poolTable().write(w, markdown)
		if len(r.res.poolIdle) > 0 {
			r.poolIdleTable().write(w, markdown)
		}
	}
	r.goalTable().write(w, markdown)
	r.writeNotes(w, markdown)
}

// writeHeader prints the command line, the settings and the machine.
func (r *report) writeHeader(w io.Writer, markdown bool) {
	f := r.facts
	items := [][2]string{
		{"Command", r.command},
		{"Settings", r.settings},
		{"CPUs", fmt.Sprintf("%d (%s)", f.CPUs, f.CPUModel)},
		{"Kernel", f.Kernel},
		{"Go", f.GoVersion},
		{"PostgreSQL", f.Postgres},
		{"pgbench", f.Pgbench},
		{"PgBouncer", f.PgBouncer},
		{"Load average", fmt.Sprintf("%s at start, %s at end (1, 5, 15 min)", f.LoadStart, f.LoadEnd)},
	}
	if markdown {
		fmt.Fprint(w, "### pgveil benchmark\n\n")
		for _, it := range items {
			val := it[1]
			if it[0] == "Command" {
				val = "`" + val + "`"
			}
			fmt.Fprintf(w, "- %s: %s\n", it[0], val)
		}
		fmt.Fprintln(w)
		return
	}
	fmt.Fprint(w, "pgveil benchmark\n\n")
	for _, it := range items {
		fmt.Fprintf(w, "  %-13s %s\n", it[0]+":", it[1])
	}
	fmt.Fprintln(w)
}

// tpsTable is the throughput table: one row per (target, mode).
func (r *report) tpsTable() *table {
	t := &table{
		title: fmt.Sprintf("Throughput: pgbench -S -c %d -j %d, %v runs, median of %d round(s); tpcb: its TPC-B-like script, -M simple",
			r.cfg.clients, r.cfg.jobs(), r.cfg.duration, r.cfg.rounds),
		header: []string{"target", "mode", "TPS", "vs direct", "vs pgbouncer", "proxy CPU/txn", "samples"},
	}
	for _, mode := range modes {
		direct := r.res.tps[tpsKey{targetDirect, mode}]
		bouncer := r.res.tps[tpsKey{targetPgBouncer, mode}]
		for _, name := range targetNames {
			k := tpsKey{name, mode}
			s := r.res.tps[k]
			t.add(name, mode, medianCell(s, "%.0f", 1), ratioCell(s, direct), ratioCell(s, bouncer),
				cpuCell(r.res.cpu[k]), samplesCell(s, "%.0f", 1))
		}
	}
	return t
}

// streamTable is the streaming table: one row per target.
func (r *report) streamTable() *table {
	t := &table{
		title: fmt.Sprintf("Streaming: %d rows (%s), extended protocol, median of %d round(s); MB = 10^6 bytes of values",
			r.cfg.rows, "g, repeat('x', 100)", r.cfg.streamRounds),
		header: []string{"target", "MB/s", "vs direct", "vs pgbouncer", "samples (MB/s)"},
	}
	direct := r.res.stream[targetDirect]
	bouncer := r.res.stream[targetPgBouncer]
	for _, name := range streamTargetNames {
		s := r.res.stream[name]
		t.add(name, medianCell(s, "%.1f", 1e-6), ratioCell(s, direct), ratioCell(s, bouncer), samplesCell(s, "%.1f", 1e-6))
	}
	return t
}

// memTable is the proxies' memory table.
func (r *report) memTable() *table {
	t := &table{
		title:  "Memory of the proxy processes (VmHWM = peak RSS so far, from /proc/PID/status)",
		header: []string{"process", "peak after pgbench", "peak after streaming", "RSS at end"},
	}
	for _, name := range proxyNames {
		a, okA := r.res.memAfterPgbench[name]
		b, okB := r.res.memAfterStream[name]
		t.add(name, mibCell(a.Peak, okA), mibCell(b.Peak, okB), mibCell(b.Current, okB))
	}
	return t
}

// auditTable is what pgveil-audited's audit trail holds after the pgbench
// runs, and whether its chain verifies.
func (r *report) auditTable() *table {
	t := &table{
		title:  "Audit trail of " + targetPgveilAudited + " after the pgbench runs (defaults: rewritten SQL in full, fsync at most every 200 ms)",
		header: []string{"records", "size", "per record", "files", "chain"},
	}
	a := r.res.audit
	per := "-"
	if a.records > 0 {
		per = fmt.Sprintf("%d B", a.bytes/int64(a.records))
	}
	chain := "verified"
	if a.problem != "" {
		chain = "FAILED: " + a.problem
	}
	t.add(fmt.Sprint(a.records), mibCell(a.bytes, true), per, fmt.Sprint(a.files), chain)
	return t
}

// idleTable is the memory idle clients cost the proxies.
func (r *report) idleTable() *table {
	t := &table{
		title:  "Idle clients: RSS the proxy gains with connections left idle after one statement",
		header: []string{"process", "clients", "RSS before", "RSS after", "per idle client"},
	}
	for _, name := range []string{targetPgBouncer, targetPgveil} {
		c, ok := r.res.idle[name]
		if !ok {
			continue
		}
		t.add(name, fmt.Sprint(c.clients), mibCell(c.before, true), mibCell(c.after, true), fmt.Sprintf("%.1f KiB", c.perClient()/1024))
	}
	return t
}

// poolTable is the transaction-pool throughput table: one row per pooling
// proxy.
func (r *report) poolTable() *table {
	t := &table{
		title: fmt.Sprintf("Transaction pooling: pgbench -S -c %d through a pool of %d backends (-M %s -j %d, %v runs, median of %d round(s))",
			r.cfg.poolClients, r.cfg.poolSize, modeSimple, r.cfg.poolJobs(), r.cfg.duration, r.cfg.rounds),
		header: []string{"target", "TPS", "vs pgbouncer-tx", "proxy CPU/txn", "upstream backends", "samples"},
	}
	bouncer := r.res.tps[tpsKey{targetPgBouncerTx, modeSimple}]
	for _, name := range poolTargetNames {
		k := tpsKey{name, modeSimple}
		s := r.res.tps[k]
		backends := "-"
		if n, ok := r.res.backends[name]; ok {
			backends = fmt.Sprint(n)
		}
		t.add(name, medianCell(s, "%.0f", 1), ratioCell(s, bouncer), cpuCell(r.res.cpu[k]), backends, samplesCell(s, "%.0f", 1))
	}
	return t
}

// poolIdleTable is the memory idle clients cost the pooling proxies, with
// pgveil-pool's RSS held to goalPoolIdleRSS.
func (r *report) poolIdleTable() *table {
	t := &table{
		title: "Transaction pooling: idle clients, RSS the proxy gains with connections left idle after one statement " +
			"(they hold no backend)",
		header: []string{"process", "clients", "RSS before", "RSS after", "per idle client",
			fmt.Sprintf("RSS after <= %d MiB", goalPoolIdleRSS>>20)},
	}
	for _, name := range poolTargetNames {
		c, ok := r.res.poolIdle[name]
		if !ok {
			continue
		}
		goal := "-" // NOTE: the goal is pgveil's
		if name == targetPgveilPool {
			goal = verdict(true, c.after <= goalPoolIdleRSS)
		}
		t.add(name, fmt.Sprint(c.clients), mibCell(c.before, true), mibCell(c.after, true),
			fmt.Sprintf("%.1f KiB", c.perClient()/1024), goal)
	}
	return t
}

// goalTable checks the targets.
func (r *report) goalTable() *table {
	t := &table{
		title:  "Targets",
		header: []string{"target", "goal", "measured", "result"},
	}
	for _, mode := range goalModes {
		v, ok := ratio(r.res.tps[tpsKey{targetPgveil, mode}], r.res.tps[tpsKey{targetPgBouncer, mode}])
		t.add("pgveil TPS vs pgbouncer, "+mode, fmt.Sprintf(">= %.1fx", goalTPSvsPgBouncer),
			ratioText(v, ok), verdict(ok, v >= goalTPSvsPgBouncer))
	}
	for _, mode := range goalModes {
		goal := goalGovernedVsPgBouncer[mode]
		v, ok := ratio(r.res.tps[tpsKey{targetPgveilGoverned, mode}], r.res.tps[tpsKey{targetPgBouncer, mode}])
		t.add(targetPgveilGoverned+" TPS vs pgbouncer, "+mode, fmt.Sprintf(">= %.1fx", goal),
			ratioText(v, ok), verdict(ok, v >= goal))
	}
	v, ok := ratio(r.res.stream[targetPgveil], r.res.stream[targetDirect])
	t.add("pgveil streaming vs direct", fmt.Sprintf(">= %.1fx", goalStreamVsDirect),
		ratioText(v, ok), verdict(ok, v >= goalStreamVsDirect))
	peak := r.peakRSS()
	t.add("pgveil peak RSS", fmt.Sprintf("<= %d MiB", goalPeakRSS>>20),
		mibCell(peak, peak > 0), verdict(peak > 0, peak <= goalPeakRSS))
	if r.cfg.pooling() && r.cfg.poolIdleClients > 0 {
		c, ok := r.res.poolIdle[targetPgveilPool]
		t.add(fmt.Sprintf("%s RSS, %d idle clients", targetPgveilPool, r.cfg.poolIdleClients),
			fmt.Sprintf("<= %d MiB", goalPoolIdleRSS>>20), mibCell(c.after, ok), verdict(ok, c.after <= goalPoolIdleRSS))
	}
	return t
}

// peakRSS returns pgveil's highest VmHWM reading, 0 when there is none.
func (r *report) peakRSS() int64 {
	peak := r.res.memAfterPgbench[targetPgveil].Peak
	return max(peak, r.res.memAfterStream[targetPgveil].Peak)
}

// writeNotes prints the pgveil processes' log lines and the failures.
func (r *report) writeNotes(w io.Writer, markdown bool) {
	heading := func(s string) {
		if markdown {
			fmt.Fprintf(w, "#### %s\n\n", s)
		} else {
			fmt.Fprintln(w, s)
		}
	}
	block := func(lines []string) {
		if markdown {
			fmt.Fprintln(w, "```")
		}
		for _, l := range lines {
			if markdown {
				fmt.Fprintln(w, l)
			} else {
				fmt.Fprintln(w, "  "+l)
			}
		}
		if markdown {
			fmt.Fprintln(w, "```")
		}
		fmt.Fprintln(w)
	}

	for _, l := range r.pgveilLogs {
		if l.total == 0 {
			heading(l.name + " log (--log-level warn): empty")
			fmt.Fprintln(w)
		} else {
			heading(fmt.Sprintf("%s log (--log-level warn): %d line(s), first %d:", l.name, l.total, len(l.lines)))
			block(l.lines)
		}
	}
	if errs := r.res.allErrors(); len(errs) > 0 {
		heading(fmt.Sprintf("Failures: %d", len(errs)))
		var lines []string
		for _, err := range errs {
			lines = append(lines, strings.Split(err.Error(), "\n")...)
		}
		block(lines)
	}
}

// medianCell formats the median of s times scale, or "error"/"-".
func medianCell(s *samples, format string, scale float64) string {
	m, ok := s.median()
	if !ok {
		return missing(s)
	}
	return fmt.Sprintf(format, m*scale)
}

// samplesCell lists every sample of s times scale, failures as "error".
func samplesCell(s *samples, format string, scale float64) string {
	if s == nil {
		return "-"
	}
	var parts []string
	for _, v := range s.values {
		parts = append(parts, fmt.Sprintf(format, v*scale))
	}
	for range s.errs {
		parts = append(parts, "error")
	}
	return strings.Join(parts, " ")
}

// cpuCell formats a proxy's CPU time per transaction in microseconds, or
// "-" for direct connections and missing data.
func cpuCell(c *cpuUse) string {
	d, ok := c.perTxn()
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f µs", float64(d)/float64(time.Microsecond))
}

// ratioCell formats the ratio of the medians of s and base.
func ratioCell(s, base *samples) string {
	v, ok := ratio(s, base)
	if !ok {
		return "-"
	}
	return ratioText(v, true)
}

// ratioText formats a ratio as "0.93x", or "-" when not ok.
func ratioText(v float64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.2fx", v)
}

// mibCell formats bytes in MiB, or "-" when not ok.
func mibCell(bytes int64, ok bool) string {
	if !ok {
		return "-"
	}
	return fmt.Sprintf("%.1f MiB", float64(bytes)/(1<<20))
}

// verdict is PASS or MISS, or "n/a" when the value is missing.
func verdict(ok, pass bool) string {
	switch {
	case !ok:
		return "n/a"
	case pass:
		return "PASS"
	default:
		return "MISS"
	}
}

// missing describes samples without a value.
func missing(s *samples) string {
	if s != nil && len(s.errs) > 0 {
		return "error"
	}
	return "-"
}
